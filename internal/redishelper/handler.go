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
// It can only rate-limit: it runs floodgate's own scripts (redislimit.Scripts) and nothing else.
// A command is PING, EVALSHA of a known script's SHA-1, or EVAL of a script whose SHA-1 is a
// known one; a script call names exactly one key, "{<prefix>:...}" for an allowed prefix, and
// arguments the plugin could send (redislimit.LuaScript.Check). Everything else is refused
// before Redis sees it, and counted (floodgate_helper_refused_total). A pipeline is bounded in
// commands, bytes and state records (redislimit.MaxPipelineRecords), so that one call cannot
// hold Redis for long. The helper also serves /healthz, /readyz and Prometheus /metrics.
package redishelper

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/floodgate-proxy/floodgate/redislimit"
	"github.com/redis/go-redis/v9"
)

// Options configure a Handler.
type Options struct {
	// Token is the bearer token every request must carry (required; see CheckToken).
	Token string
	// KeyPrefixes are the shared_data.prefix values of the plugins served: a script call's key
	// must be "{<prefix>:...}" for one of them. Default: floodgate. Each is 1 to 64 of
	// [A-Za-z0-9_.-], so that it is also a literal Redis ACL key pattern.
	KeyPrefixes []string
	// MaxBody bounds a request body in bytes (default 64 KiB).
	MaxBody int64
	// MaxPipeline bounds the commands of one pipeline (default 500).
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

// DefaultKeyPrefix is the plugin's default shared_data.prefix.
const DefaultKeyPrefix = "floodgate"

var prefixRule = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// Handler serves the REST protocol over one Redis client.
type Handler struct {
	client  redis.UniversalClient
	pipe    *pipeliner
	opts    Options
	scripts map[string]redislimit.LuaScript // by SHA-1
	metrics *metrics
	mux     *http.ServeMux
}

// New returns a Handler; client may be standalone, cluster or sentinel (redis.NewUniversalClient).
func New(client redis.UniversalClient, opts Options) (*Handler, error) {
	if err := CheckToken(opts.Token); err != nil {
		return nil, err
	}
	if len(opts.KeyPrefixes) == 0 {
		opts.KeyPrefixes = []string{DefaultKeyPrefix}
	}
	for _, p := range opts.KeyPrefixes {
		if !prefixRule.MatchString(p) {
			return nil, fmt.Errorf("redishelper: key prefix %q: want 1 to 64 of [A-Za-z0-9_.-]", p)
		}
	}
	if opts.MaxBody <= 0 {
		opts.MaxBody = 64 << 10
	}
	if opts.MaxPipeline <= 0 {
		opts.MaxPipeline = 500
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
	h := &Handler{client: client, pipe: &pipeliner{client: client, max: opts.InFlight}, opts: opts, scripts: map[string]redislimit.LuaScript{}, metrics: newMetrics(), mux: http.NewServeMux()}
	for _, s := range redislimit.Scripts() {
		sum := sha1.Sum([]byte(s.Source))
		h.scripts[hex.EncodeToString(sum[:])] = s
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
		h.metrics.refused("auth")
		writeJSON(w, http.StatusUnauthorized, reply{Error: "Unauthorized"})
		return false
	}
	return true
}

// readBody reads a size-limited JSON body into v.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.opts.MaxBody))
	if err != nil {
		h.metrics.refused("body")
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
		h.metrics.refused("body")
		writeJSON(w, http.StatusBadRequest, reply{Error: "ERR the body must be a JSON array: " + err.Error()})
		return false
	}
	return true
}

// refusal is a command the helper does not send to Redis; reason labels its metric.
type refusal struct{ reason, msg string }

func (r *refusal) Error() string { return r.msg }

func refuse(reason, format string, a ...any) (int, error) {
	return 0, &refusal{reason: reason, msg: "ERR " + fmt.Sprintf(format, a...)}
}

// args turns a JSON command into Redis arguments.
func args(cmd []any) ([]any, error) {
	if len(cmd) == 0 {
		return nil, &refusal{reason: "arguments", msg: "ERR empty command"}
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
			return nil, &refusal{reason: "arguments", msg: fmt.Sprintf("ERR argument %d must be a string or a number", i)}
		}
	}
	return out, nil
}

// accept turns a JSON command into Redis arguments if it is what floodgate needs, and returns
// its cost in state records.
func (h *Handler) accept(cmd []any) (a []any, records int, err error) {
	if a, err = args(cmd); err == nil {
		records, err = h.check(a)
	}
	return a, records, err
}

// check lets through what floodgate needs and nothing else, and returns the command's cost in
// state records: PING, or EVALSHA / EVAL of one of the scripts with exactly one key under an
// allowed prefix and arguments the script's rule accepts.
func (h *Handler) check(cmd []any) (records int, err error) {
	name := strings.ToUpper(cmd[0].(string))
	switch name {
	case "PING":
		if len(cmd) > 2 {
			return refuse("arguments", "PING takes at most one argument")
		}
		return 0, nil
	case "EVALSHA", "EVAL":
	default:
		return refuse("command", "command %.40s is not allowed by this helper", name)
	}
	if len(cmd) < 3 {
		return refuse("arguments", "%s needs a script and 1 key", name)
	}
	sha := strings.ToLower(cmd[1].(string))
	if name == "EVAL" {
		sum := sha1.Sum([]byte(cmd[1].(string)))
		sha = hex.EncodeToString(sum[:])
	}
	script, ok := h.scripts[sha]
	if !ok {
		return refuse("script", "%s: the script is not one of floodgate's", name)
	}
	if cmd[2] != "1" || len(cmd) < 4 {
		return refuse("key", "%s: a floodgate script names exactly one key", name)
	}
	if key := cmd[3].(string); !h.keyAllowed(key) {
		return refuse("key", "%s: key %.80q is not {prefix:...} for a prefix of this helper", name, key)
	}
	rest := make([]string, len(cmd)-4)
	for i, a := range cmd[4:] {
		rest[i] = a.(string)
	}
	if records, err = script.Check(rest); err != nil {
		return refuse("arguments", "%s: %v", name, err)
	}
	return records, nil
}

// keyAllowed: "{<prefix>:<rest>}", the whole key one hash tag, as the plugin names its keys.
func (h *Handler) keyAllowed(key string) bool {
	if len(key) > 256 || !strings.HasSuffix(key, "}") {
		return false
	}
	for _, p := range h.opts.KeyPrefixes {
		if rest, ok := strings.CutPrefix(key, "{"+p+":"); ok && len(rest) > 1 && !strings.ContainsAny(rest[:len(rest)-1], "{}") {
			return true
		}
	}
	return false
}

// refused answers a refusal with 400 and counts it.
func (h *Handler) refused(w http.ResponseWriter, err error, where string) {
	reason := "arguments"
	var r *refusal
	if errors.As(err, &r) {
		reason = r.reason
	}
	h.metrics.refused(reason)
	writeJSON(w, http.StatusBadRequest, reply{Error: err.Error() + where})
}

func (h *Handler) command(w http.ResponseWriter, r *http.Request) {
	if !h.authorized(w, r) {
		return
	}
	var cmd []any
	if !h.readBody(w, r, &cmd) {
		return
	}
	a, _, err := h.accept(cmd)
	if err != nil {
		h.refused(w, err, "")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.opts.Timeout)
	defer cancel()
	res := h.convert(h.pipe.do(ctx, a), base64Wanted(r))
	h.metrics.command(a[0].(string), res.Error != "")
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
		h.refused(w, &refusal{reason: "pipeline", msg: fmt.Sprintf("ERR a pipeline holds 1 to %d commands", h.opts.MaxPipeline)}, "")
		return
	}
	all := make([][]any, len(cmds))
	total := 0
	for i, c := range cmds {
		a, records, err := h.accept(c)
		if err != nil {
			h.refused(w, err, fmt.Sprintf(" (command %d)", i))
			return
		}
		if total += records; total > redislimit.MaxPipelineRecords {
			h.refused(w, &refusal{reason: "pipeline", msg: fmt.Sprintf(
				"ERR the pipeline's scripts touch more than %d state records (command %d): split it", redislimit.MaxPipelineRecords, i)}, "")
			return
		}
		all[i] = a
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.opts.Timeout)
	defer cancel()
	results, _ := h.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, a := range all {
			p.Do(ctx, a...)
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
