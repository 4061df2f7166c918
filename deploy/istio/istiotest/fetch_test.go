package istiotest

import (
	"bytes"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	envoycore "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbacconfig "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	rbac "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	httpwasm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/wasm/v3"
	"github.com/google/go-containerregistry/pkg/registry"
	"google.golang.org/protobuf/types/known/anypb"
	"istio.io/istio/pkg/util/sets"
	"istio.io/istio/pkg/wasm"
)

// repoRoot is floodgate's main module, three levels up.
const repoRoot = "../../.."

var (
	pluginOnce sync.Once
	pluginPath string
	pluginErr  error
)

// pluginWasm returns the path of plugin.wasm: $FLOODGATE_WASM (make sets it) or a fresh build
// of cmd/floodgate by floodgate's own module, as `make build` does.
func pluginWasm(t *testing.T) string {
	t.Helper()
	pluginOnce.Do(func() {
		if pluginPath = os.Getenv("FLOODGATE_WASM"); pluginPath != "" {
			return
		}
		dir, err := os.MkdirTemp("", "floodgate-istiotest")
		if err != nil {
			pluginErr = err
			return
		}
		pluginPath = filepath.Join(dir, "plugin.wasm")
		cmd := exec.Command("go", "build", "-buildmode=c-shared", "-trimpath", "-o", pluginPath, "./cmd/floodgate")
		cmd.Dir = repoRoot
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
		if out, err := cmd.CombinedOutput(); err != nil {
			pluginErr = fmt.Errorf("build plugin.wasm: %w\n%s", err, out)
		}
	})
	if pluginErr != nil {
		t.Fatal(pluginErr)
	}
	return pluginPath
}

var printedDigest = regexp.MustCompile(`manifest digest sha256:([0-9a-f]{64})`)

// pushed runs `make push`'s command (cmd/floodgate-oci -push) for plugin.wasm against an
// in-process registry on loopback, and returns the image's oci:// URL, the digest the command
// printed (the one the README says to pin), and the module's bytes.
func pushed(t *testing.T) (url, digest string, module []byte) {
	t.Helper()
	path := pluginWasm(t)
	module, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	ref := strings.TrimPrefix(srv.URL, "http://") + "/floodgate-proxy/floodgate:v1"
	cmd := exec.Command("go", "run", "./cmd/floodgate-oci", "-wasm", path, "-push", ref, "-version", "v1")
	cmd.Dir = repoRoot
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("floodgate-oci -push: %v\n%s", err, out)
	}
	m := printedDigest.FindSubmatch(out)
	if m == nil {
		t.Fatalf("floodgate-oci printed no digest:\n%s", out)
	}
	return "oci://" + ref, string(m[1]), module
}

// agentCache is the wasm module cache of the gateway's istio-agent (pkg/wasm), allowed plain
// HTTP to the test registry as the agent is for the registries listed in its insecure list.
func agentCache(t *testing.T, url string) *wasm.LocalFileCache {
	t.Helper()
	host := strings.SplitN(strings.TrimPrefix(url, "oci://"), "/", 2)[0]
	c := wasm.NewLocalFileCache(t.TempDir(), wasm.Options{InsecureRegistries: sets.New(host)})
	t.Cleanup(c.Cleanup)
	return c
}

// fetchTimeout bounds one fetch from the loopback registry; it is a bound, not a measure.
const fetchTimeout = 2 * time.Minute

// TestIstioFetchesTheExactModule pushes plugin.wasm as `make push` does and fetches it with the
// gateway agent's own code, pinned to the digest the command printed: Istio must accept the
// image and yield plugin.wasm byte for byte. A wrong sha256 must be refused.
func TestIstioFetchesTheExactModule(t *testing.T) {
	url, digest, module := pushed(t)
	cache := agentCache(t, url)

	got, err := cache.Get(url, wasm.GetOptions{Checksum: digest, ResourceName: "istio-system.floodgate", RequestTimeout: fetchTimeout})
	if err != nil {
		t.Fatalf("Istio's fetcher refuses the image pinned to the printed digest: %v", err)
	}
	b, err := os.ReadFile(got)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, module) {
		t.Fatalf("Istio's fetcher yields %d bytes, plugin.wasm has %d (or they differ)", len(b), len(module))
	}

	wrong := strings.Repeat("0", 64)
	if _, err := cache.Get(url, wasm.GetOptions{Checksum: wrong, ResourceName: "istio-system.floodgate", RequestTimeout: fetchTimeout}); err == nil ||
		!strings.Contains(err.Error(), "checksum") {
		t.Fatalf("a wrong sha256 gave err = %v, want a checksum mismatch", err)
	}
}

// ecdsFor returns the ECDS resource istiod sends the ingress gateway for the shipped WasmPlugin
// with its url and sha256 replaced, and failStrategy set to strategy.
func ecdsFor(t *testing.T, url, sha256, strategy string) *anypb.Any {
	t.Helper()
	cfgs := shipped(t, func(wp string) string {
		wp = regexp.MustCompile(`(?m)^  url: .*$`).ReplaceAllString(wp, "  url: "+url)
		wp = strings.Replace(wp, "  # sha256: <digest>", "  sha256: \""+sha256+"\"", 1)
		return regexp.MustCompile(`(?m)^  failStrategy: .*$`).ReplaceAllString(wp, "  failStrategy: "+strategy)
	})
	gw := istiod(t, cfgs)
	at, _ := gw.floodgate(t)
	if at < 0 {
		t.Fatal("floodgate is not on the gateway's chain")
	}
	res, err := anypb.New(gw.ecds[gw.filters[at].GetName()])
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestFailStrategyAsTheAgentApplies runs the gateway agent's rewrite of ECDS
// (wasm.MaybeConvertWasmExtensionConfig, what istio-agent does to every ECDS answer before
// Envoy sees it) on istiod's configuration for the shipped WasmPlugin:
//   - right digest: Envoy gets the wasm filter, loading the fetched plugin.wasm from a local file;
//   - wrong digest, FAIL_CLOSE: Envoy gets an RBAC filter with an empty rule set in its place,
//     which denies every request: Envoy's HTTP RBAC filter answers a denied request with 403
//     (envoy docs/root/intro/arch_overview/security/rbac_filter.rst), not the 503 of a failed VM;
//   - wrong digest, FAIL_OPEN: an RBAC filter with no rules, which allows everything: traffic
//     passes unlimited.
func TestFailStrategyAsTheAgentApplies(t *testing.T) {
	url, digest, module := pushed(t)
	wrong := strings.Repeat("0", 64)
	for _, tc := range []struct {
		name, sha256, strategy string
		want                   string // "wasm", "deny" or "allow"
	}{
		{"pinned digest", digest, "FAIL_CLOSE", "wasm"},
		{"wrong digest, FAIL_CLOSE", wrong, "FAIL_CLOSE", "deny"},
		{"wrong digest, FAIL_OPEN", wrong, "FAIL_OPEN", "allow"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resources := []*anypb.Any{ecdsFor(t, url, tc.sha256, tc.strategy)}
			if err := wasm.MaybeConvertWasmExtensionConfig(resources, agentCache(t, url)); err != nil {
				t.Fatalf("the agent NACKs: %v", err)
			}
			var ec envoycore.TypedExtensionConfig
			if err := resources[0].UnmarshalTo(&ec); err != nil {
				t.Fatal(err)
			}
			switch tc.want {
			case "wasm":
				var w httpwasm.Wasm
				if err := ec.GetTypedConfig().UnmarshalTo(&w); err != nil {
					t.Fatalf("Envoy gets %s, want the wasm filter", ec.GetTypedConfig().GetTypeUrl())
				}
				file := w.GetConfig().GetVmConfig().GetCode().GetLocal().GetFilename()
				b, err := os.ReadFile(file)
				if err != nil || !bytes.Equal(b, module) {
					t.Fatalf("the wasm filter loads %q (%v), not plugin.wasm", file, err)
				}
				for k := range w.GetConfig().GetVmConfig().GetEnvironmentVariables().GetKeyValues() {
					if strings.HasPrefix(k, "ISTIO_META_") {
						t.Errorf("the agent left %s in the VM's environment", k)
					}
				}
			case "deny", "allow":
				var r rbac.RBAC
				if err := ec.GetTypedConfig().UnmarshalTo(&r); err != nil {
					t.Fatalf("Envoy gets %s, want an RBAC filter", ec.GetTypedConfig().GetTypeUrl())
				}
				// An RBAC filter whose rules are set but hold no policy denies everything; one
				// without rules allows everything (envoy/extensions/filters/http/rbac/v3/rbac.proto).
				denies := r.GetRules() != nil && r.GetRules().GetAction() == rbacconfig.RBAC_ALLOW && len(r.GetRules().GetPolicies()) == 0
				if denies != (tc.want == "deny") {
					t.Fatalf("RBAC %v: denies everything = %v, want %s", &r, denies, tc.want)
				}
			}
		})
	}
}
