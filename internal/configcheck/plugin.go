package configcheck

import (
	"errors"
	"slices"

	"github.com/floodgate-proxy/floodgate/config"
)

// vmEnv is what a proxy puts in the plugin's environment: the variable names, and where they
// are declared, for a message.
type vmEnv struct {
	names []string
	where string
}

// plugin checks a plugin configuration sitting at where with config.Parse, then what the plugin
// accepts but cannot work with: a redis.token_env the VM's environment (env, when known) lacks,
// which makes the plugin refuse the configuration, or a redis.cluster that is not one of the
// proxy's clusters (when known). It returns the configuration when it parses.
func (c *checker) plugin(data []byte, where at, env *vmEnv, clusters []string) *config.Config {
	cfg, err := config.Parse(data)
	if err != nil {
		var errs config.Errors
		if !errors.As(err, &errs) {
			errs = config.Errors{{Msg: err.Error()}}
		}
		for _, fe := range errs {
			c.add(Error, where, fe.Path, "%s", fe.Msg)
		}
		return nil
	}
	r := cfg.Redis
	if r == nil {
		return cfg
	}
	if r.Token != "" {
		c.add(Warning, where, "redis.token", "the helper's token is written in the configuration, where whoever reads it "+
			"(the WasmPlugin, Envoy's config dump) reads the token: put it in the VM's environment and name it with redis.token_env")
	}
	if r.TokenEnv != "" && env != nil && !slices.Contains(env.names, r.TokenEnv) {
		c.add(Error, where, "redis.token_env", "%s is not in the VM's environment (%s): the plugin refuses the configuration", r.TokenEnv, env.where)
	}
	if clusters != nil && !slices.Contains(clusters, r.Cluster) {
		c.add(Error, where, "redis.cluster", "%q is not a cluster of this bootstrap: every redis and hybrid decision would fail, "+
			"and the policies' failure mode decide instead", r.Cluster)
	}
	return cfg
}
