// Package redact shortens URLs for messages: an endpoint's URL may carry a
// customer's token in its query, and an issuer's or a proxy's may carry
// credentials, so errors and logs name a URL only by scheme, host and path.
package redact

import "strings"

// maxURL bounds a URL in a message.
const maxURL = 200

// URL is s fit for an error or a log line: its query and fragment become
// "?…" and "#…", credentials before the host "…@", and it is cut to 200
// bytes. It works on text that does not parse as a URL too, since that is
// when errors quote it.
func URL(s string) string {
	var tail string
	if i := strings.IndexAny(s, "?#"); i >= 0 {
		s, tail = s[:i], s[i:i+1]+"…"
	}
	prefix, rest := "", s
	if i := strings.Index(s, "//"); i >= 0 {
		prefix, rest = s[:i+2], s[i+2:]
	}
	authority, path := rest, ""
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		authority, path = rest[:i], rest[i:]
	}
	if i := strings.LastIndexByte(authority, '@'); i >= 0 {
		authority = "…@" + authority[i+1:]
	}
	s = prefix + authority + path
	if len(s) > maxURL {
		s = strings.ToValidUTF8(s[:maxURL], "") + "…"
	}
	return s + tail
}
