// Package redishelper is the HTTP service the plugin reaches Redis through: a plugin cannot open
// sockets, but it can make HTTP calls to an Envoy cluster. It speaks the Upstash-compatible Redis
// REST protocol, so the plugin works against it and against a managed Upstash-compatible endpoint:
//
//   - POST / with a JSON array command (["EVALSHA", sha, "1", key, ...]) answers {"result": ...}
//     or {"error": "..."};
//   - POST /pipeline with an array of commands answers an array of those objects;
//   - every request needs Authorization: Bearer <token>;
//   - with Upstash-Encoding: base64, string results are base64-encoded (what @upstash/redis asks).
//
// Only allowed commands pass (by default what the plugin needs: EVALSHA, EVAL, SCRIPT LOAD,
// PING). Bodies are size-limited, every Redis call has a timeout, and the service exposes
// /healthz, /readyz and Prometheus /metrics.
package redishelper

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Options configure a Handler.
type Options struct {
	// Token is the bearer token every request must carry (required).
	Token string
	// Allow lists the commands that pass, upper case; "SCRIPT LOAD" allows one subcommand.
	// Default: EVALSHA, EVAL, SCRIPT LOAD, PING.
	Allow []string
	// MaxBody bounds a request body in bytes (default 64 KiB).
	MaxBody int64
	// MaxPipeline bounds the commands of one pipeline (default 1000).
	MaxPipeline int
	// Timeout bounds the Redis work of one request (default 1 s).
	Timeout time.Duration
	// InFlight bounds the single commands (POST /) out to Redis at once (default 2): more wait
	// and then leave together in one pipeline, which under load spares the helper and Redis a
	// write and a read per command.
	InFlight int
	// Logger receives structured logs (default slog.Default()).
	Logger *slog.Logger
}

// DefaultAllow is what the plugin needs.
var DefaultAllow = []string{"EVALSHA", "EVAL", "SCRIPT LOAD", "PING"}

// Handler serves the REST protocol over one Redis client.
type Handler struct {
	client  redis.UniversalClient
	pipe    *pipeliner
	opts    Options
	allow   map[string]bool
	metrics *metrics
	mux     *http.ServeMux
}

// New returns a Handler; client may be standalone, cluster or sentinel (redis.NewUniversalClient).
func New(client redis.UniversalClient, opts Options) (*Handler, error) {
	if opts.Token == "" {
		return nil, errors.New("redishelper: a bearer token is required")
	}
	if len(opts.Allow) == 0 {
		opts.Allow = DefaultAllow
	}
	if opts.MaxBody <= 0 {
		opts.MaxBody = 64 << 10
	}
	if opts.MaxPipeline <= 0 {
		opts.MaxPipeline = 1000
	}
	if opts.Timeout <= 0 {
		opts.Timeout = time.Second
	}
	if opts.InFlight <= 0 {
		opts.InFlight = 2
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	h := &Handler{client: client, pipe: &pipeliner{client: client, max: opts.InFlight}, opts: opts, allow: map[string]bool{}, metrics: newMetrics(), mux: http.NewServeMux()}
	for _, c := range opts.Allow {
		h.allow[strings.ToUpper(strings.TrimSpace(c))] = true
	}
	h.mux.HandleFunc("POST /{$}", h.command)
	h.mux.HandleFunc("POST /pipeline", h.pipeline)
	h.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	h.mux.HandleFunc("GET /readyz", h.ready)
	h.mux.HandleFunc("GET /metrics", h.metrics.serve)
	return h, nil
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w, status: 200}
	h.mux.ServeHTTP(rec, r)
	h.metrics.request(r.URL.Path, rec.status, time.Since(start))
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// reply is one command's answer.
type reply struct {
	Result any
	Error  string
}

// MarshalJSON writes {"result": null} for a nil result, which omitempty would drop.
func (r reply) MarshalJSON() ([]byte, error) {
	if r.Error != "" {
		return json.Marshal(map[string]string{"error": r.Error})
	}
	return json.Marshal(map[string]any{"result": r.Result})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	if r, ok := v.(reply); ok {
		if b, ok := r.appendJSON(make([]byte, 0, 128)); ok {
			w.WriteHeader(status)
			_, _ = w.Write(b)
			return
		}
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (h *Handler) authorized(w http.ResponseWriter, r *http.Request) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(h.opts.Token)) != 1 {
		writeJSON(w, http.StatusUnauthorized, reply{Error: "Unauthorized"})
		return false
	}
	return true
}

// readBody reads a size-limited JSON body into v.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.opts.MaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeJSON(w, http.StatusRequestEntityTooLarge, reply{Error: fmt.Sprintf("ERR body larger than %d bytes", h.opts.MaxBody)})
			return false
		}
		writeJSON(w, http.StatusBadRequest, reply{Error: "ERR reading the body: " + err.Error()})
		return false
	}
	if cmd, ok := v.(*[]any); ok {
		if *cmd, ok = decodeCommand(body); ok {
			return true
		}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		writeJSON(w, http.StatusBadRequest, reply{Error: "ERR the body must be a JSON array: " + err.Error()})
		return false
	}
	return true
}

// args turns a JSON command into Redis arguments, checking the allow-list.
func (h *Handler) args(cmd []any) ([]any, error) {
	if len(cmd) == 0 {
		return nil, errors.New("ERR empty command")
	}
	out := make([]any, len(cmd))
	for i, a := range cmd {
		switch v := a.(type) {
		case string:
			out[i] = v
		case json.Number:
			out[i] = v.String()
		case bool:
			out[i] = strconv.FormatBool(v)
		default:
			return nil, fmt.Errorf("ERR argument %d must be a string or a number", i)
		}
	}
	name := strings.ToUpper(out[0].(string))
	if h.allow[name] {
		return out, nil
	}
	if len(out) > 1 && h.allow[name+" "+strings.ToUpper(out[1].(string))] {
		return out, nil
	}
	return nil, fmt.Errorf("ERR command %s is not allowed by this helper", name)
}

func (h *Handler) command(w http.ResponseWriter, r *http.Request) {
	if !h.authorized(w, r) {
		return
	}
	var cmd []any
	if !h.readBody(w, r, &cmd) {
		return
	}
	args, err := h.args(cmd)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, reply{Error: err.Error()})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.opts.Timeout)
	defer cancel()
	res := h.convert(h.pipe.do(ctx, args), base64Wanted(r))
	h.metrics.command(args[0].(string), res.Error != "")
	status := http.StatusOK
	if res.Error != "" {
		status = http.StatusBadRequest
		if ctx.Err() != nil {
			status = http.StatusGatewayTimeout
		}
	}
	writeJSON(w, status, res)
}

func (h *Handler) pipeline(w http.ResponseWriter, r *http.Request) {
	if !h.authorized(w, r) {
		return
	}
	var cmds [][]any
	if !h.readBody(w, r, &cmds) {
		return
	}
	if len(cmds) == 0 || len(cmds) > h.opts.MaxPipeline {
		writeJSON(w, http.StatusBadRequest, reply{Error: fmt.Sprintf("ERR a pipeline holds 1 to %d commands", h.opts.MaxPipeline)})
		return
	}
	all := make([][]any, len(cmds))
	for i, c := range cmds {
		args, err := h.args(c)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, reply{Error: fmt.Sprintf("%v (command %d)", err, i)})
			return
		}
		all[i] = args
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.opts.Timeout)
	defer cancel()
	results, _ := h.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, args := range all {
			p.Do(ctx, args...)
		}
		return nil
	})
	out := make([]reply, len(results))
	encode := base64Wanted(r)
	for i, c := range results {
		cmd, _ := c.(*redis.Cmd)
		out[i] = h.convert(cmd, encode)
		h.metrics.command(all[i][0].(string), out[i].Error != "")
	}
	if ctx.Err() != nil {
		writeJSON(w, http.StatusGatewayTimeout, reply{Error: "ERR redis timeout"})
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func base64Wanted(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upstash-Encoding"), "base64")
}

// convert turns a Redis reply into the protocol's JSON value.
func (h *Handler) convert(cmd *redis.Cmd, encode bool) reply {
	if cmd == nil {
		return reply{Error: "ERR no reply"}
	}
	v, err := cmd.Result()
	if errors.Is(err, redis.Nil) {
		return reply{}
	}
	if err != nil {
		var re redis.Error
		if !errors.As(err, &re) {
			h.opts.Logger.Warn("redis call failed", "error", err)
			h.metrics.redisError()
		}
		return reply{Error: err.Error()}
	}
	return reply{Result: jsonValue(v, encode)}
}

func jsonValue(v any, encode bool) any {
	switch x := v.(type) {
	case string:
		if encode {
			return base64.StdEncoding.EncodeToString([]byte(x))
		}
		return x
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = jsonValue(e, encode)
		}
		return out
	case redis.Error:
		return x.Error()
	}
	return v
}

func (h *Handler) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), h.opts.Timeout)
	defer cancel()
	if err := h.client.Ping(ctx).Err(); err != nil {
		http.Error(w, "redis: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	io.WriteString(w, "ready\n")
}
