package config_test

import (
	"fmt"

	"github.com/floodgate-proxy/floodgate/config"
)

func ExampleParse() {
	_, err := config.Parse([]byte(`{"policies":[{"name":"per-ip","key":[{"type":"client_ip"}],
		"limits":[{"rate":0}],"strategy":"fast"}]}`))
	fmt.Println(err)
	cfg, _ := config.Parse([]byte(`{"policies":[{"name":"per-ip","key":[{"type":"client_ip"}],
		"limits":[{"rate":10},{"requests":"300/m"}]}]}`))
	fmt.Println(cfg.Policies[0].Name, cfg.Policies[0].Limits[1].Quota)
	// Output:
	// policies[0].strategy: must be one of absolute, suppressed, gcra, token_bucket
	// policies[0].limits[0].rate: must be > 0
	// per-ip 300
}
