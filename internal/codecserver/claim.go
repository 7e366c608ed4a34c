package codecserver

import (
	"errors"
	"fmt"
	"strings"
)

// ErrMissingClaim means a valid token lacks the required claim: its user
// signed in, but is not one the codec server decrypts for (403).
var ErrMissingClaim = errors.New("the token lacks the required claim")

// Claim is a claim a token must carry: Name holding Value, as a string or
// among a list of strings (groups, roles).
type Claim struct {
	Name  string
	Value string
}

// ParseClaim reads --oidc-required-claim NAME=VALUE.
func ParseClaim(s string) (Claim, error) {
	name, value, ok := strings.Cut(s, "=")
	name, value = strings.TrimSpace(name), strings.TrimSpace(value)
	if !ok || name == "" || value == "" {
		return Claim{}, fmt.Errorf("--oidc-required-claim: %q is not NAME=VALUE, such as groups=hookrelay-codec or realm_access.roles=codec-reader", s)
	}
	return Claim{Name: name, Value: value}, nil
}

// String is NAME=VALUE.
func (c Claim) String() string { return c.Name + "=" + c.Value }

// heldBy tells whether claims carry c. The name is first a top-level
// claim, as is ("https://example.com/roles" included); failing that, a
// dotted name walks nested objects (Keycloak's realm_access.roles).
func (c Claim) heldBy(claims map[string]any) bool {
	v, ok := claims[c.Name]
	if !ok && strings.Contains(c.Name, ".") {
		v, ok = walk(claims, strings.Split(c.Name, "."))
	}
	if !ok {
		return false
	}
	switch v := v.(type) {
	case string:
		return v == c.Value
	case []any:
		for _, e := range v {
			if s, ok := e.(string); ok && s == c.Value {
				return true
			}
		}
	}
	return false
}

func walk(m map[string]any, path []string) (any, bool) {
	v, ok := m[path[0]]
	if !ok || len(path) == 1 {
		return v, ok
	}
	next, isMap := v.(map[string]any)
	if !isMap {
		return nil, false
	}
	return walk(next, path[1:])
}
