package redishelper

import (
	"regexp"
	"slices"
	"strings"

	"github.com/floodgate-proxy/floodgate/redislimit"
)

// scriptCall finds the commands a Lua script runs: redis.call('NAME', ...) and redis.pcall.
var scriptCall = regexp.MustCompile(`redis\.p?call\(\s*['"]([A-Za-z]+)['"]`)

// ScriptCommands returns the commands scripts run, lower case and sorted. Redis 7 checks the
// user's ACL on each of them.
func ScriptCommands(scripts []redislimit.LuaScript) []string {
	var out []string
	for _, s := range scripts {
		for _, m := range scriptCall.FindAllStringSubmatch(s.Source, -1) {
			out = append(out, strings.ToLower(m[1]))
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// ACLRules are the rules of the Redis user the helper connects as, for
// `ACL SETUSER <user> <rules...>` (or a `user <user> <rules...>` line of an ACL file): the user
// reaches only the keys of the given prefixes ("{<prefix>:" and anything after) and runs only
// what the helper sends (PING, EVALSHA, EVAL) and what floodgate's scripts run. Even a stolen
// Redis password then cannot flush, list or read other keys; a script can still burn CPU, which
// the helper's script gate stops.
func ACLRules(password string, prefixes ...string) []string {
	rules := []string{"reset", "on", ">" + password}
	for _, p := range prefixes {
		rules = append(rules, "~{"+p+":*")
	}
	rules = append(rules, "resetchannels", "+ping", "+evalsha", "+eval")
	for _, c := range ScriptCommands(redislimit.Scripts()) {
		rules = append(rules, "+"+c)
	}
	return rules
}
