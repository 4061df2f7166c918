package config

import (
	"fmt"
	"strconv"

	"github.com/floodgate-proxy/floodgate/algorithm"
	"github.com/tidwall/gjson"
)

// Counting says when a policy counts a request, and what clears a key.
type Counting struct {
	// OnResponse: the request is only checked (rejected when the key has no room left) and the
	// upstream's status decides whether it counts: one of Statuses counts it.
	OnResponse bool
	Statuses   []uint32
	// ResetStatuses clear the key's state when the upstream answers one of them (a successful
	// login forgives the failures before it).
	ResetStatuses []uint32
}

// Counts tells whether a response status counts the request.
func (c *Counting) Counts(status uint32) bool { return hasStatus(c.Statuses, status) }

// Resets tells whether a response status clears the key.
func (c *Counting) Resets(status uint32) bool { return hasStatus(c.ResetStatuses, status) }

func hasStatus(list []uint32, s uint32) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// MaxBlockS bounds block_for.
const MaxBlockS = 31 * 86400

// counting parses a policy's "count", "reset" and "block_for", and refuses the combinations a
// strategy or backend cannot honour, with the reason.
func (p *parser) counting(v gjson.Result, path string, pol *Policy) {
	if c := v.Get("count"); c.Exists() {
		cp := join(path, "count")
		if p.object(c, cp, "on", "statuses") {
			on, _ := p.oneOf(c.Get("on"), join(cp, "on"), "request", "response")
			st := c.Get("statuses")
			switch {
			case on == "response":
				pol.Counting.OnResponse = true
				pol.Counting.Statuses = p.statuses(st, join(cp, "statuses"))
			case st.Exists():
				p.errf(join(cp, "statuses"), "applies with \"on\": \"response\" only")
			}
		}
	}
	if r := v.Get("reset"); r.Exists() {
		rp := join(path, "reset")
		if p.object(r, rp, "statuses") {
			pol.Counting.ResetStatuses = p.statuses(r.Get("statuses"), join(rp, "statuses"))
		}
	}
	if pol.Counting.OnResponse || len(pol.Counting.ResetStatuses) > 0 {
		what := "count"
		if !pol.Counting.OnResponse {
			what = "reset"
		}
		switch {
		case pol.Strategy == algorithm.Suppressed:
			p.errf(join(path, what), "does not apply to the suppressed strategy: it sheds on every attempt, so it must count when the request arrives")
		case pol.Backend == BackendHybrid:
			p.errf(join(path, what), "does not apply to the hybrid backend: it spends reservations when requests arrive; use the local or redis backend")
		}
		for i, s := range pol.Counting.Statuses {
			if hasStatus(pol.Counting.ResetStatuses, s) {
				p.errf(index(join(path, "reset.statuses"), slicesIndex(pol.Counting.ResetStatuses, s)),
					"%d also counts (count.statuses[%d]): a status either counts or resets", s, i)
			}
		}
	}
}

func slicesIndex(list []uint32, s uint32) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}

// statuses reads a non-empty array of HTTP statuses.
func (p *parser) statuses(v gjson.Result, path string) []uint32 {
	if n := boundedLen(v, MaxListItems); !v.IsArray() || n == 0 || n > MaxListItems {
		p.errf(path, "must be an array of 1 to %d HTTP statuses", MaxListItems)
		return nil
	}
	var out []uint32
	for i, s := range v.Array() {
		if n, ok := p.integer(s, index(path, i), 100, 599); ok {
			out = append(out, uint32(n))
		}
	}
	return out
}

// blockFor reads "block_for": a duration such as "30s", "10m", "1h" or "2d".
func (p *parser) blockFor(v gjson.Result, path string) int64 {
	s, ok := p.str(v, path)
	if !ok {
		return 0
	}
	m := durationForm.FindStringSubmatch(s)
	if m == nil {
		p.errf(path, "must look like \"30s\", \"10m\", \"1h\" or \"2d\"")
		return 0
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil || n < 1 || n*unitSeconds[m[2]] > MaxBlockS {
		p.errf(path, "must be between 1s and %dd", MaxBlockS/86400)
		return 0
	}
	return n * unitSeconds[m[2]] * 1000
}

// String renders statuses for logs.
func (c *Counting) String() string {
	if !c.OnResponse {
		return "on request"
	}
	return fmt.Sprintf("on response %v", c.Statuses)
}
