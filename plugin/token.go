package plugin

import (
	"fmt"

	"github.com/floodgate-proxy/floodgate/config"
	"github.com/floodgate-proxy/floodgate/internal/host"
)

// helperToken is the helper's bearer token: redis.token, or the variable of the VM's environment
// redis.token_env names, read once when the configuration loads. An unset or empty variable
// refuses the configuration, so a gateway never starts calling the helper without its token.
func helperToken(r *config.Redis) (string, error) {
	if r.TokenEnv == "" {
		return r.Token, nil
	}
	if v, ok := host.Env(r.TokenEnv); ok && v != "" {
		return v, nil
	}
	return "", fmt.Errorf("redis.token_env: %s is unset or empty in the VM's environment "+
		"(Envoy: vm_config.environment_variables.host_env_keys; Istio: WasmPlugin vmConfig.env, valueFrom HOST)", r.TokenEnv)
}
