package redishelper

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/floodgate-proxy/floodgate/algorithm"
	"github.com/floodgate-proxy/floodgate/redislimit"
	"github.com/redis/go-redis/v9"
)

// BenchmarkDecision is one decision as the plugin asks for it (EVALSHA of the decision script
// with its arguments, bearer token, JSON answer) through the helper over loopback HTTP/1.1
// with keep-alive; parallel runs 16 clients per core. The client shares the process: profile
// with -cpuprofile and focus on the handler to see the helper's part.
func BenchmarkDecision(b *testing.B) {
	limit, _ := algorithm.PerPeriod(1<<30, 1, 0) // never rejects: the same work on every call
	p, _ := algorithm.NewPolicy(algorithm.Absolute, 1, limit)
	client := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{redisAddr}, Protocol: 2})
	if err := client.ScriptLoad(b.Context(), redislimit.Script).Err(); err != nil {
		b.Fatal(err)
	}
	defer client.Close()
	h, err := New(client, Options{Token: "secret"})
	if err != nil {
		b.Fatal(err)
	}
	hs := httptest.NewServer(h)
	defer hs.Close()
	bodies := make([][]byte, 1000)
	for i := range bodies {
		args := append([]string{"EVALSHA", redislimit.ScriptSHA, "1", "{floodgate:bench:" + strconv.Itoa(i) + "}"}, redislimit.Args(p, 1, 0.5, -1)...)
		bodies[i] = []byte(`["` + strings.Join(args, `","`) + `"]`)
	}
	httpClient := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	decide := func(b *testing.B, i int) {
		req, _ := http.NewRequest(http.MethodPost, hs.URL+"/", bytes.NewReader(bodies[i%len(bodies)]))
		req.Header.Set("Authorization", "Bearer secret")
		req.Header.Set("Content-Type", "application/json")
		res, err := httpClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK || !bytes.HasPrefix(body, []byte(`{"result":[1,`)) {
			b.Fatalf("%d %s", res.StatusCode, body)
		}
	}
	b.Run("sequential", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			decide(b, i)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.SetParallelism(16)
		b.RunParallel(func(pb *testing.PB) {
			for i := 0; pb.Next(); i++ {
				decide(b, i)
			}
		})
	})
}
