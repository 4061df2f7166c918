package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/floodgate-proxy/floodgate/config"
	"github.com/floodgate-proxy/floodgate/internal/redistest"
	"github.com/floodgate-proxy/floodgate/redislimit"
	"github.com/redis/go-redis/v9"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// shippedRedisConf writes the redis.conf of deploy/istio/redis.yaml to a temporary file, its
// ACL file left out (tests add the floodgate user with redistest.SetUser).
func shippedRedisConf(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("../deploy/istio/redis.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cm corev1.ConfigMap
	if err := yaml.Unmarshal([]byte(strings.Split(string(data), "\n---\n")[0]), &cm); err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(cm.Data["redis.conf"], "\n") {
		if !strings.HasPrefix(l, "aclfile ") {
			lines = append(lines, l)
		}
	}
	if !strings.Contains(cm.Data["redis.conf"], "maxmemory-policy") {
		t.Fatal("the shipped redis.conf has no eviction policy")
	}
	path := filepath.Join(t.TempDir(), "redis.conf")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestRedisStaysBoundedUnderAKeyFlood replays issue #12's observation 3: a client choosing its
// own key parts (here the path) makes one Redis key per request. Redis runs the shipped
// redis.conf (allkeys-lfu) with an 8 MB maxmemory; 100 000 one-shot keys, about 30 MB of
// state, go through the helper with the plugin's exact calls (the same key form, the script's
// arguments from the same configuration), in /pipeline calls of 250, because 100 000 requests
// through plugin.wasm take minutes on a busy 2-core machine. Meanwhile ten established keys are
// limited by the real plugin.wasm, 80 requests each: each admits exactly its quota of 50, so
// none was evicted, and Redis's memory stays within maxmemory.
func TestRedisStaysBoundedUnderAKeyFlood(t *testing.T) {
	const (
		maxmemory  = 8 << 20
		floodKeys  = 100_000
		batch      = 250 // about 45 KiB of body, within the helper's 64 KiB
		quota      = 50
		perKey     = 80
		hotKeys    = 10
		beforehand = 10 // requests per established key before the flood
	)
	srv, err := redistest.StartWith(shippedRedisConf(t), "--maxmemory", strconv.Itoa(maxmemory))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	addr := serveHelper(t, srv)
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr, Protocol: 2})
	defer admin.Close()

	cfgJSON := `{"redis":{"cluster":"floodgate-redis-helper","token":"` + helperToken + `","timeout_ms":2000,"breaker":{"failures":1000}},
		"policies":[{"name":"per-path","key":[{"type":"path"}],"limits":[{"requests":"` + strconv.Itoa(quota) + `/h","group_ms":360000}],
		"backend":"redis","failure_mode":"closed"}]}`
	cfg, err := config.Parse([]byte(cfgJSON))
	if err != nil {
		t.Fatal(err)
	}
	h := startHost(t, cfgJSON, 2, withCluster(addr))
	admitted := make([]int, hotKeys)
	hit := func(n int) {
		for k := range hotKeys {
			for range n {
				a := sendHeaders(t, h, "192.0.2.1:1", [][2]string{{":method", "GET"}, {":path", fmt.Sprintf("/api/hot/%d", k)}, {":authority", "x"}})
				switch a.status {
				case 200:
					admitted[k]++
				case 429:
				default:
					t.Fatalf("established key %d: status %d", k, a.status)
				}
			}
		}
	}
	hit(beforehand)

	// The flood: the decision the plugin sends for a path never seen again.
	args := redislimit.Args(cfg.Policies[0].Compiled, redislimit.Call{Cost: 1, Draw: 0.5, NowMs: -1})
	rng := rand.New(rand.NewPCG(12, 34))
	var peak int64
	rounds := floodKeys / batch
	spread := (perKey - beforehand) / 10 // established requests every rounds/10 pipelines
	deadline := time.Now().Add(3 * time.Minute)
	for r := range rounds {
		if time.Now().After(deadline) {
			t.Fatalf("the flood took over 3 minutes (%d of %d pipelines)", r, rounds)
		}
		cmds := make([][]string, batch)
		for i := range cmds {
			key := fmt.Sprintf("{floodgate:per-path:%x%x}", rng.Uint64(), rng.Uint64())
			cmds[i] = append([]string{"EVALSHA", redislimit.ScriptFor(cfg.Policies[0].Compiled).SHA, "1", key}, args...)
		}
		if r == 0 { // the script may not be loaded yet
			floodPipeline(t, addr, [][]string{append([]string{"EVAL", redislimit.ScriptFor(cfg.Policies[0].Compiled).Source}, cmds[0][2:]...)})
			cmds = cmds[1:]
		}
		floodPipeline(t, addr, cmds)
		if used := usedMemory(t, admin); used > peak {
			peak = used
		}
		if (r+1)%(rounds/10) == 0 {
			hit(spread)
		}
	}
	info := admin.Info(context.Background(), "stats").Val()
	evicted := infoField(info, "evicted_keys")
	keys := admin.DBSize(context.Background()).Val()
	t.Logf("flood of %d keys: peak used_memory %d bytes (maxmemory %d), %d keys evicted, %d left", floodKeys, peak, maxmemory, evicted, keys)
	if evicted == 0 || keys >= floodKeys {
		t.Fatalf("nothing was evicted (%d keys): the flood did not reach maxmemory", keys)
	}
	// Redis frees memory before each command; one command's allocations may pass the bound.
	if peak > maxmemory+maxmemory/10 {
		t.Fatalf("used_memory peaked at %d bytes, over maxmemory %d", peak, maxmemory)
	}
	for k, n := range admitted {
		if n != quota {
			t.Errorf("established key %d admitted %d of %d, want exactly %d: its state was evicted", k, n, perKey, quota)
		}
	}
}

// floodPipeline posts commands to the helper's /pipeline; every one must be answered.
func floodPipeline(t *testing.T, addr string, cmds [][]string) {
	t.Helper()
	body, _ := json.Marshal(cmds)
	req, _ := http.NewRequest("POST", "http://"+addr+"/pipeline", strings.NewReader(string(body)))
	req.Header.Set("Authorization", "Bearer "+helperToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out []struct {
		Result []int64
		Error  string
	}
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil || res.StatusCode != 200 || len(out) != len(cmds) {
		t.Fatalf("pipeline: %d %v (%d answers)", res.StatusCode, err, len(out))
	}
	for i, o := range out {
		if res, err := redislimit.Result(o.Result); o.Error != "" || err != nil || !res.Allowed {
			t.Fatalf("flood command %d: %+v", i, o)
		}
	}
}

func usedMemory(t *testing.T, admin *redis.Client) int64 {
	t.Helper()
	return infoField(admin.Info(context.Background(), "memory").Val(), "used_memory")
}

// infoField reads one integer field of an INFO answer.
func infoField(info, field string) int64 {
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return -1
}
