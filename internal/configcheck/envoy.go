package configcheck

import (
	"fmt"
	"maps"
	"slices"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	wasmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/wasm/v3"
	"github.com/floodgate-proxy/floodgate/internal/bootstrap"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// bootstrap checks an Envoy bootstrap as Envoy would read it, then every floodgate wasm filter's
// configuration in it.
func (c *checker) bootstrap(data []byte) {
	in := bootstrap.Inspect(data)
	for _, p := range in.Problems {
		c.add(Error, at{}, p.Path, "%s", p.Msg)
	}
	if in.Raw == nil {
		return
	}
	clusters := staticClusters(in.Raw)
	for _, f := range in.Filters {
		pc := f.Config
		name := pc.GetRootId()
		if name == "" {
			name = pc.GetName()
		}
		label := fmt.Sprintf("wasm filter %q at %s", name, f.Path)
		code := pc.GetVmConfig().GetCode()
		module := code.GetLocal().GetFilename()
		if module == "" {
			module = code.GetRemote().GetHttpUri().GetUri()
		}
		if !c.floodgates(module, pc.GetRootId(), pc.GetName()) {
			c.r.Skipped = append(c.r.Skipped, label+" (not floodgate's)")
			continue
		}
		c.r.Checked = append(c.r.Checked, label)
		data, field, err := configuration(pc)
		if err != nil {
			c.add(Error, at{path: f.Path}, "configuration", "%v", err)
			continue
		}
		c.plugin(data, at{path: join(f.Path, field)}, vmEnvOf(pc.GetVmConfig()), clusters)
	}
	if len(c.r.Checked) == 0 {
		c.add(Warning, at{}, "", "no floodgate wasm filter, so no floodgate configuration was checked "+
			"(floodgate's has root_id floodgate, a module named floodgate..., or a root_id given with -name)")
	}
}

// configuration is the plugin configuration a filter gives the plugin, as Envoy hands it over
// (MessageUtil::anyToBytes, source/common/protobuf/utility.h: a StringValue's or BytesValue's
// value as it is, a Struct as JSON, anything else as its protobuf bytes), and the field that
// holds it.
func configuration(pc *wasmv3.PluginConfig) ([]byte, string, error) {
	a := pc.GetConfiguration()
	if a == nil {
		return nil, "configuration", nil
	}
	m, err := a.UnmarshalNew()
	if err != nil {
		return nil, "", err // not once protojson has resolved it
	}
	switch v := m.(type) {
	case *wrapperspb.StringValue:
		return []byte(v.GetValue()), "configuration.value", nil
	case *wrapperspb.BytesValue:
		return v.GetValue(), "configuration.value", nil
	case *structpb.Struct:
		js, err := compactJSON(v)
		return js, "configuration", err
	}
	return nil, "", fmt.Errorf("a %s reaches the plugin as protobuf bytes, not JSON: give the configuration as a google.protobuf.StringValue", a.GetTypeUrl())
}

// vmEnvOf is the environment Envoy gives the VM (vm_config.environment_variables).
func vmEnvOf(vm *wasmv3.VmConfig) *vmEnv {
	ev := vm.GetEnvironmentVariables()
	names := append(slices.Collect(maps.Keys(ev.GetKeyValues())), ev.GetHostEnvKeys()...)
	return &vmEnv{names: names, where: "vm_config.environment_variables: host_env_keys or key_values"}
}

// staticClusters names the bootstrap's clusters; nil when more may come from CDS.
func staticClusters(b *bootstrapv3.Bootstrap) []string {
	if d := b.GetDynamicResources(); d.GetCdsConfig() != nil || d.GetCdsResourcesLocator() != "" {
		return nil
	}
	names := []string{}
	for _, c := range b.GetStaticResources().GetClusters() {
		names = append(names, c.GetName())
	}
	return names
}
