package istiotest

import (
	"os"
	"testing"

	"istio.io/istio/pkg/log"
)

// TestMain keeps Istio's informational logging (hundreds of lines per generated gateway) out of
// the test output; warnings and errors still show.
func TestMain(m *testing.M) {
	opts := log.DefaultOptions()
	opts.SetDefaultOutputLevel(log.OverrideScopeName, log.WarnLevel)
	if err := log.Configure(opts); err != nil {
		panic(err)
	}
	os.Exit(m.Run())
}
