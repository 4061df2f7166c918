package redishelper

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/redis/go-redis/v9"
)

// BenchmarkDecision is the helper's own work for one decision: a request shaped as the plugin's
// (EVALSHA, a hash-tagged key, 12 arguments, bearer token) over loopback HTTP/1.1 with
// keep-alive, answered with 11 integers, by a script that does nothing else so that Redis's part
// stays small; parallel runs 16 clients per core. The client shares the process: profile with
// -cpuprofile and focus on net/http.(*conn).serve to see the helper's part.
func BenchmarkDecision(b *testing.B) {
	const answer = `return {1, 100, 1000, 99, 0, 1000, 0, 0, -1, 0, 0}`
	client := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{redisAddr}, Protocol: 2})
	defer client.Close()
	sha, err := client.ScriptLoad(b.Context(), answer).Result()
	if err != nil {
		b.Fatal(err)
	}
	h, err := New(client, Options{Token: "secret"})
	if err != nil {
		b.Fatal(err)
	}
	hs := httptest.NewServer(h)
	defer hs.Close()
	bodies := make([][]byte, 1000)
	for i := range bodies {
		bodies[i] = []byte(`["EVALSHA","` + sha + `","1","{floodgate:bench:` + strconv.Itoa(i) +
			`}","1","0.5","","1","2632644023","1","100","1000","100","100","100","10"]`)
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
