package redishelper

import (
	"errors"
	"fmt"
	"strings"
)

// MinTokenLength is the shortest bearer token the helper accepts: 32 characters, what
// `openssl rand -hex 16` gives (the documented command, `openssl rand -hex 32`, gives 64).
const MinTokenLength = 32

// placeholders are words that mark a token someone was meant to replace.
var placeholders = []string{"change", "replace", "example", "placeholder", "default", "password", "secret", "token",
	"floodgate", "xxxxxx", "123456", "qwerty"}

// CheckToken refuses a token an attacker could guess: shorter than MinTokenLength, holding a
// character that is not printable ASCII (it travels in an HTTP header), containing a
// placeholder word (change-me, secret, password, example, ... in any case), or made of fewer
// than 10 distinct characters (aaaa..., abab...).
func CheckToken(token string) error {
	if len(token) < MinTokenLength {
		return fmt.Errorf("redishelper: the token has %d characters, want at least %d (openssl rand -hex 32)", len(token), MinTokenLength)
	}
	distinct := map[rune]bool{}
	for _, r := range token {
		if r <= ' ' || r > '~' {
			return errors.New("redishelper: the token must be printable ASCII without spaces")
		}
		distinct[r] = true
	}
	lower := strings.ToLower(token)
	for _, p := range placeholders {
		if strings.Contains(lower, p) {
			return fmt.Errorf("redishelper: the token contains %q: a placeholder, not a secret (openssl rand -hex 32)", p)
		}
	}
	if len(distinct) < 10 {
		return fmt.Errorf("redishelper: the token uses %d distinct characters, want at least 10 (openssl rand -hex 32)", len(distinct))
	}
	return nil
}
