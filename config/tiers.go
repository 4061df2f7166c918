package config

import (
	"github.com/floodgate-proxy/floodgate/algorithm"
	"github.com/tidwall/gjson"
)

// MaxTiers bounds the tiers a policy lists (each keeps its own state).
const MaxTiers = 32

// Tier is one set of limits of a policy.
type Tier struct {
	// Name is the value of the policy's TierBy that selects it; "" for the default tier.
	Name string
	// Unlimited tiers are not limited by the policy.
	Unlimited bool
	Limits    []algorithm.Limit
	Compiled  *algorithm.Policy
}

// TierFor returns the tier of the request: the one its TierBy value names, else the default
// (a request without the value, or with one no tier lists, gets the default).
func (p *Policy) TierFor(r Request) *Tier {
	if p.TierBy == nil || len(p.Tiers) == 1 {
		return p.Tiers[0]
	}
	v, ok := p.TierBy.value(r)
	if !ok {
		return p.Tiers[0]
	}
	for _, t := range p.Tiers[1:] {
		if t.Name == v {
			return t
		}
	}
	return p.Tiers[0]
}

// shortestWindowMs is the shortest window of every limited tier, 0 when none is limited.
func (p *Policy) shortestWindowMs() int64 {
	var w int64
	for _, t := range p.Tiers {
		if t.Compiled != nil && (w == 0 || t.Compiled.ShortestWindowMs() < w) {
			w = t.Compiled.ShortestWindowMs()
		}
	}
	return w
}

// tiers parses {"by": <key source>, "values": {"<value>": <tier>, ...}, "default": <tier>}, a tier
// being {"limits": [...]} or {"unlimited": true}.
func (p *parser) tiers(v gjson.Result, path string, pol *Policy) {
	dflt := &Tier{Unlimited: true}
	pol.Tiers = []*Tier{dflt}
	if !p.object(v, path, "by", "values", "default") {
		return
	}
	if by := v.Get("by"); !by.Exists() {
		p.errf(join(path, "by"), "is required: the key source whose value names the tier")
	} else if part, ok := p.keyPart(by, join(path, "by")); ok {
		pol.TierBy = &part
	}
	if d := v.Get("default"); d.Exists() {
		*dflt = *p.tier(d, join(path, "default"), pol, "")
	} else {
		p.errf(join(path, "default"), "is required: the limits of requests without a listed tier (or {\"unlimited\": true})")
	}
	values := v.Get("values")
	vp := join(path, "values")
	switch n := boundedLen(values, MaxTiers); {
	case !values.Exists():
		p.errf(vp, "is required")
		return
	case !values.IsObject() || n == 0 || n > MaxTiers:
		p.errf(vp, "must be an object of 1 to %d tiers", MaxTiers)
		return
	}
	p.unique(values, vp)
	values.ForEach(func(k, t gjson.Result) bool {
		name, tp := k.String(), join(vp, k.String())
		if !policyName.MatchString(name) {
			p.errf(tp, "a tier's value must be 1 to 64 letters, digits, '_', '.' or '-'")
		}
		pol.Tiers = append(pol.Tiers, p.tier(t, tp, pol, name))
		return true
	})
}

func (p *parser) tier(v gjson.Result, path string, pol *Policy, name string) *Tier {
	t := &Tier{Name: name}
	if !p.object(v, path, "limits", "unlimited") {
		return t
	}
	u, l := v.Get("unlimited"), v.Get("limits")
	switch {
	case u.Exists() && l.Exists():
		p.errf(path, "give one of limits, unlimited")
	case u.Exists():
		if t.Unlimited = p.boolean(u, join(path, "unlimited")); !t.Unlimited {
			p.errf(join(path, "unlimited"), "must be true (give limits otherwise)")
		}
	default:
		t.Limits, t.Compiled = p.limits(l, join(path, "limits"), pol)
	}
	return t
}
