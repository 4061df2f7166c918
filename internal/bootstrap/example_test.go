package bootstrap_test

import (
	"fmt"
	"log"

	"github.com/floodgate-proxy/floodgate/internal/bootstrap"
)

func ExampleParse() {
	b, err := bootstrap.Parse([]byte(`
static_resources:
  listeners:
  - address: {socket_address: {address: 127.0.0.1, port_value: 10000}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          route_config:
            virtual_hosts:
            - {name: all, domains: ["*"], routes: [{match: {prefix: "/"}, route: {cluster: upstream}}]}
          http_filters:
          - name: envoy.filters.http.wasm
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                root_id: floodgate
                vm_config: {runtime: envoy.wasm.runtime.v8, code: {local: {filename: plugin.wasm}}}
                configuration:
                  "@type": type.googleapis.com/google.protobuf.StringValue
                  value: '{"policies": []}'
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: upstream
    connect_timeout: 1s
    load_assignment:
      cluster_name: upstream
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 8080}}}}]}]
`))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(b.Listener, "->", b.Route, b.Clusters[b.Route])
	fmt.Println(b.Filter.RootID, b.Filter.Code, b.Filter.Configuration)
	// Output:
	// 127.0.0.1:10000 -> upstream 127.0.0.1:8080
	// floodgate plugin.wasm {"policies": []}
}
