package envoyhost

import (
	"context"
	"errors"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
)

// Outcome is how a stream's request phase ended.
type Outcome int

const (
	// OutcomeContinue: the request goes on to the upstream.
	OutcomeContinue Outcome = iota
	// OutcomeLocal: the plugin answered the request itself (see Stream.Local).
	OutcomeLocal
	// OutcomeReset: the plugin closed the stream.
	OutcomeReset
	// OutcomeFailed: the VM failed; the failure policy answered (see Config.FailOpen).
	OutcomeFailed
)

const (
	outcomeContinue = OutcomeContinue
	outcomeLocal    = OutcomeLocal
	outcomeReset    = OutcomeReset
)

// LocalResponse is an answer the plugin sent with proxy_send_local_response.
type LocalResponse struct {
	Status  int
	Headers [][2]string
	Body    []byte
}

// Header returns the first value of header name.
func (r *LocalResponse) Header(name string) string { return first(r.Headers, name) }

func first(h [][2]string, name string) string {
	name = strings.ToLower(name)
	for _, kv := range h {
		if kv[0] == name {
			return kv[1]
		}
	}
	return ""
}

// Stream is one HTTP request through the plugin, on one VM.
type Stream struct {
	vm      *vm
	id      uint32
	props   map[string][]byte
	created bool

	reqHeaders, reqTrailers, respHeaders, respTrailers [][2]string
	reqBody, respBody                                  []byte

	metadata *corev3.Metadata // dynamic metadata (see SetMetadata)

	local    *LocalResponse
	resumed  chan Outcome
	signaled bool
}

// NewStream starts a request on the next worker VM (round robin). props are the stream's
// properties, by dotted path ("source.address" -> "10.0.0.1:5555").
func (h *Host) NewStream(props map[string]string) *Stream {
	i := int(h.next.Add(1)-1) % len(h.vms)
	return h.NewStreamOn(i, props)
}

// NewStreamOn starts a request on worker VM index.
func (h *Host) NewStreamOn(index int, props map[string]string) *Stream {
	s := &Stream{vm: h.vms[index], props: make(map[string][]byte, len(props)), resumed: make(chan Outcome, 1)}
	for k, v := range props {
		s.props[strings.ReplaceAll(k, ".", "\x00")] = []byte(v)
	}
	return s
}

// signal records how a paused request ends; only the first signal counts.
func (s *Stream) signal(o Outcome) {
	if s.signaled {
		return
	}
	s.signaled = true
	s.resumed <- o
}

// run calls a stream callback on the VM goroutine with the stream as the current one.
func (s *Stream) run(name string, args ...uint64) (uint64, error) {
	var res uint64
	err := s.vm.do(func() error {
		v := s.vm
		if !s.created {
			s.id = v.nextCtxID
			v.nextCtxID++
			v.streams[s.id] = s
			s.created = true
			v.current = s
			_, err := v.call("proxy_on_context_create", uint64(s.id), rootContextID)
			v.current, v.effectiv = nil, nil
			if err != nil {
				return err
			}
		}
		v.current = s
		var err error
		res, err = v.call(name, append([]uint64{uint64(s.id)}, args...)...)
		v.current, v.effectiv = nil, nil
		return err
	})
	return res, err
}

// ErrFailed is returned by stream calls on a failed VM.
var ErrFailed = errors.New("envoyhost: vm failed")

// RequestHeaders runs proxy_on_request_headers and, when the plugin pauses the request, waits
// until it resumes it, answers it or closes it, or ctx ends. headers are lower-cased.
func (s *Stream) RequestHeaders(ctx context.Context, headers [][2]string, endOfStream bool) (Outcome, error) {
	s.reqHeaders = lower(headers)
	action, err := s.run("proxy_on_request_headers", uint64(len(headers)), b2u(endOfStream))
	if err != nil {
		return OutcomeFailed, errors.Join(ErrFailed, err)
	}
	return s.settle(ctx, action)
}

// settle turns the action a callback returned into an outcome, waiting for a paused stream.
func (s *Stream) settle(ctx context.Context, action uint64) (Outcome, error) {
	select {
	case o := <-s.resumed: // a local response or a close during the callback itself
		return o, nil
	default:
	}
	if action == 0 {
		return OutcomeContinue, nil
	}
	select {
	case o := <-s.resumed:
		return o, nil
	case <-ctx.Done():
		return OutcomeReset, ctx.Err()
	}
}

// Local returns the plugin's local response, if it sent one.
func (s *Stream) Local() *LocalResponse { return s.local }

// RequestHeadersNow returns the request headers as the plugin left them.
func (s *Stream) RequestHeadersNow() [][2]string { return s.reqHeaders }

// ResponseHeaders runs proxy_on_response_headers and returns the headers as the plugin left
// them.
func (s *Stream) ResponseHeaders(ctx context.Context, headers [][2]string, endOfStream bool) ([][2]string, error) {
	s.respHeaders = lower(headers)
	s.signaled = false
	action, err := s.run("proxy_on_response_headers", uint64(len(headers)), b2u(endOfStream))
	if err != nil {
		return nil, errors.Join(ErrFailed, err)
	}
	if _, err := s.settle(ctx, action); err != nil {
		return nil, err
	}
	return s.respHeaders, nil
}

// Done ends the stream: proxy_on_log, proxy_on_done, proxy_on_delete.
func (s *Stream) Done() error {
	if !s.created {
		return nil
	}
	return s.vm.do(func() error {
		v := s.vm
		defer delete(v.streams, s.id)
		if v.failure() != nil {
			return nil
		}
		v.current = s
		defer func() { v.current, v.effectiv = nil, nil }()
		if _, err := v.call("proxy_on_log", uint64(s.id)); err != nil {
			return err
		}
		if _, err := v.call("proxy_on_done", uint64(s.id)); err != nil {
			return err
		}
		_, err := v.call("proxy_on_delete", uint64(s.id))
		return err
	})
}

func lower(h [][2]string) [][2]string {
	out := make([][2]string, len(h))
	for i, kv := range h {
		out[i] = [2]string{strings.ToLower(kv[0]), kv[1]}
	}
	return out
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}
