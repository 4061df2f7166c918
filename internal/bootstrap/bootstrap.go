// Package bootstrap reads an Envoy bootstrap (envoy.yaml) the way Envoy would: every
// typed_config resolved, unknown fields refused, the generated validators run. It then extracts
// what the wazero gateway needs to serve the same file: the listener, the clusters, the route and
// the wasm filter's configuration.
package bootstrap

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	wasmfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/wasm/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	// Registered so that an original_ip_detection_extensions entry decodes and is refused by name.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/http/original_ip_detection/xff/v3"
	wasmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/wasm/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	"sigs.k8s.io/yaml"
)

// Bootstrap is what the gateway serves of an envoy.yaml.
type Bootstrap struct {
	// Listener is the first listener's "host:port".
	Listener string
	// Clusters maps each static cluster to its first endpoint's "host:port".
	Clusters map[string]string
	// Route is the cluster the first route of the first virtual host sends to.
	Route string
	// Filter is the wasm filter of the first listener.
	Filter WasmFilter
	// ConnManager is what the listener's HTTP connection manager does before any filter runs.
	ConnManager ConnManager
	// Raw is the whole decoded bootstrap.
	Raw *bootstrapv3.Bootstrap
}

// WasmFilter is the wasm filter's plugin configuration.
type WasmFilter struct {
	Name, RootID, VMID, Runtime string
	// Code is the local filename of the module.
	Code string
	// Configuration is the plugin configuration (a StringValue's value).
	Configuration string
	// FailOpen is the failure policy: true lets requests through when the plugin fails.
	FailOpen bool
	// Env is the VM's environment, as Envoy builds it from vm_config.environment_variables
	// (source/extensions/common/wasm/plugin.cc, WasmConfig): key_values as given, and each of
	// host_env_keys with its value in this process's environment (skipped when unset there).
	Env map[string]string
}

// ConnManager is the part of an HttpConnectionManager that decides the trusted client address
// and X-Forwarded-For before the filters run (see e2e/envoyhost's model of it).
type ConnManager struct {
	// UseRemoteAddress, XffNumTrustedHops and SkipXffAppend are the fields of the same names.
	UseRemoteAddress  bool
	XffNumTrustedHops uint32
	SkipXffAppend     bool
	// InternalAddresses is internal_address_config.cidr_ranges: since Envoy 1.33 no address is
	// internal (x-envoy-internal) unless it is listed there.
	InternalAddresses []netip.Prefix
}

// Load reads and validates the bootstrap file at path.
func Load(path string) (*Bootstrap, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	b, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}

// validator is what protoc-gen-validate generates on every message.
type validator interface{ ValidateAll() error }

func validate(m proto.Message, where string) error {
	if v, ok := m.(validator); ok {
		if err := v.ValidateAll(); err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
	}
	return nil
}

// unpack resolves an Any into its message and validates it.
func unpack(a *anypb.Any, where string) (proto.Message, error) {
	m, err := a.UnmarshalNew()
	if err != nil {
		return nil, fmt.Errorf("%s: typed_config %s: %w", where, a.GetTypeUrl(), err)
	}
	return m, validate(m, where)
}

// Parse decodes and validates a bootstrap in YAML (or JSON).
func Parse(data []byte) (*Bootstrap, error) {
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, fmt.Errorf("bootstrap: yaml: %w", err)
	}
	raw := &bootstrapv3.Bootstrap{}
	if err := (protojson.UnmarshalOptions{}).Unmarshal(js, raw); err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	if err := validate(raw, "bootstrap"); err != nil {
		return nil, err
	}
	b := &Bootstrap{Raw: raw, Clusters: make(map[string]string)}
	for i, c := range raw.GetStaticResources().GetClusters() {
		addr, err := clusterAddress(c)
		if err != nil {
			return nil, fmt.Errorf("bootstrap: clusters[%d] %s: %w", i, c.GetName(), err)
		}
		b.Clusters[c.GetName()] = addr
	}
	listeners := raw.GetStaticResources().GetListeners()
	if len(listeners) == 0 {
		return nil, errors.New("bootstrap: no listener")
	}
	l := listeners[0]
	if b.Listener, err = socketAddress(l.GetAddress()); err != nil {
		return nil, fmt.Errorf("bootstrap: listeners[0]: %w", err)
	}
	if err := b.readFilters(l.GetFilterChains()); err != nil {
		return nil, err
	}
	if _, ok := b.Clusters[b.Route]; !ok {
		return nil, fmt.Errorf("bootstrap: the route sends to cluster %q, which is not defined", b.Route)
	}
	return b, nil
}

func (b *Bootstrap) readFilters(chains []*listenerv3.FilterChain) error {
	var hcm *hcmv3.HttpConnectionManager
	for i, fc := range chains {
		for j, f := range fc.GetFilters() {
			where := fmt.Sprintf("bootstrap: listeners[0].filter_chains[%d].filters[%d]", i, j)
			m, err := unpack(f.GetTypedConfig(), where)
			if err != nil {
				return err
			}
			if h, ok := m.(*hcmv3.HttpConnectionManager); ok && hcm == nil {
				hcm = h
			}
		}
	}
	if hcm == nil {
		return errors.New("bootstrap: listeners[0] has no http_connection_manager")
	}
	cm, err := connManager(hcm)
	if err != nil {
		return err
	}
	b.ConnManager = cm
	vhosts := hcm.GetRouteConfig().GetVirtualHosts()
	if len(vhosts) == 0 || len(vhosts[0].GetRoutes()) == 0 || vhosts[0].GetRoutes()[0].GetRoute().GetCluster() == "" {
		return errors.New("bootstrap: the http_connection_manager needs an inline route_config whose first route sends to a cluster")
	}
	b.Route = vhosts[0].GetRoutes()[0].GetRoute().GetCluster()
	found := 0
	for i, f := range hcm.GetHttpFilters() {
		where := fmt.Sprintf("bootstrap: http_filters[%d] %s", i, f.GetName())
		m, err := unpack(f.GetTypedConfig(), where)
		if err != nil {
			return err
		}
		switch c := m.(type) {
		case *wasmfilterv3.Wasm:
			found++
			if err := b.readWasm(c.GetConfig(), where); err != nil {
				return err
			}
		case *routerv3.Router:
		default:
			return fmt.Errorf("%s: the gateway does not run %T filters", where, m)
		}
	}
	if found != 1 {
		return fmt.Errorf("bootstrap: want exactly one wasm filter, found %d", found)
	}
	return nil
}

// connManager reads the connection manager's client-address settings.
func connManager(hcm *hcmv3.HttpConnectionManager) (ConnManager, error) {
	if len(hcm.GetOriginalIpDetectionExtensions()) > 0 {
		return ConnManager{}, errors.New("bootstrap: http_connection_manager: the gateway does not model original_ip_detection_extensions; use xff_num_trusted_hops")
	}
	cm := ConnManager{UseRemoteAddress: hcm.GetUseRemoteAddress().GetValue(), XffNumTrustedHops: hcm.GetXffNumTrustedHops(),
		SkipXffAppend: hcm.GetSkipXffAppend()}
	for i, r := range hcm.GetInternalAddressConfig().GetCidrRanges() {
		a, err := netip.ParseAddr(r.GetAddressPrefix())
		if err != nil {
			return ConnManager{}, fmt.Errorf("bootstrap: http_connection_manager: internal_address_config.cidr_ranges[%d]: %w", i, err)
		}
		p, err := a.Prefix(int(r.GetPrefixLen().GetValue())) // prefix_len defaults to 0
		if err != nil {
			return ConnManager{}, fmt.Errorf("bootstrap: http_connection_manager: internal_address_config.cidr_ranges[%d]: %w", i, err)
		}
		cm.InternalAddresses = append(cm.InternalAddresses, p)
	}
	return cm, nil
}

func (b *Bootstrap) readWasm(pc *wasmv3.PluginConfig, where string) error {
	vm := pc.GetVmConfig()
	if vm == nil {
		return fmt.Errorf("%s: only an inline vm_config is supported", where)
	}
	local := vm.GetCode().GetLocal()
	if local.GetFilename() == "" {
		return fmt.Errorf("%s: vm_config.code must be a local filename", where)
	}
	env, err := environment(vm.GetEnvironmentVariables())
	if err != nil {
		return fmt.Errorf("%s: vm_config.environment_variables: %w", where, err)
	}
	b.Filter = WasmFilter{Name: pc.GetName(), RootID: pc.GetRootId(), VMID: vm.GetVmId(), Runtime: vm.GetRuntime(),
		Code: local.GetFilename(), FailOpen: pc.GetFailOpen() || pc.GetFailurePolicy() == wasmv3.FailurePolicy_FAIL_OPEN, Env: env}
	if c := pc.GetConfiguration(); c != nil {
		m, err := unpack(c, where+" configuration")
		if err != nil {
			return err
		}
		s, ok := m.(*wrapperspb.StringValue)
		if !ok {
			return fmt.Errorf("%s: configuration must be a google.protobuf.StringValue, not %T", where, m)
		}
		b.Filter.Configuration = s.GetValue()
	}
	return nil
}

// environment builds the VM's environment the way Envoy does: a key in both key_values and
// host_env_keys is refused ("All the keys must be unique"), a host key unset in the process's
// environment is left out.
func environment(ev *wasmv3.EnvironmentVariables) (map[string]string, error) {
	env := make(map[string]string)
	for k, v := range ev.GetKeyValues() {
		env[k] = v
	}
	for _, k := range ev.GetHostEnvKeys() {
		if _, dup := ev.GetKeyValues()[k]; dup {
			return nil, fmt.Errorf("key %s is in both key_values and host_env_keys: all the keys must be unique", k)
		}
		if v, ok := os.LookupEnv(k); ok {
			env[k] = v
		}
	}
	return env, nil
}

func clusterAddress(c *clusterv3.Cluster) (string, error) {
	for _, e := range c.GetLoadAssignment().GetEndpoints() {
		for _, lb := range e.GetLbEndpoints() {
			return socketAddress(lb.GetEndpoint().GetAddress())
		}
	}
	return "", errors.New("no endpoint in load_assignment")
}

func socketAddress(a *corev3.Address) (string, error) {
	sa := a.GetSocketAddress()
	if sa == nil || sa.GetAddress() == "" {
		return "", errors.New("only socket addresses are supported")
	}
	return net.JoinHostPort(sa.GetAddress(), strconv.Itoa(int(sa.GetPortValue()))), nil
}
