package configcheck_test

import (
	"os"

	"github.com/floodgate-proxy/floodgate/internal/configcheck"
)

func ExampleCheck() {
	plugin := []byte(`{"policies": [{"name": "per-client", "key": [{"type": "client_ip"}], "limits": [{"rate": 0}]}]}`)
	r := configcheck.Check("plugin.json", plugin, configcheck.Options{})
	r.Write(os.Stdout)

	fixed := []byte(`{"policies": [{"name": "per-client", "key": [{"type": "client_ip"}], "limits": [{"rate": 10}]}]}`)
	configcheck.Check("plugin.json", fixed, configcheck.Options{}).Write(os.Stdout)
	// Output:
	// plugin.json: policies[0].limits[0].rate: error: must be > 0
	// plugin.json: ok: plugin configuration, 1 floodgate configuration
}
