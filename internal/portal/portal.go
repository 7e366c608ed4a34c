// Package portal is the customer portal `starter serve` serves under
// /portal/: a page, a script and a style sheet, embedded in the binary (no
// build step, nothing fetched at run time). The page holds no data: it
// reads a portal session's token from its URL fragment and calls the HTTP
// API with it as a bearer token, so the page itself is public.
package portal

import (
	"embed"
	"fmt"
	"io/fs"
	"net/http"
	"strings"
)

//go:embed assets
var assets embed.FS

// Assets are the portal's files, for tests that check them.
func Assets() fs.FS {
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embedded tree always has assets/
	}
	return sub
}

// DefaultFrameAncestors lets no other page frame the portal.
const DefaultFrameAncestors = "'none'"

// Options configure the portal's handler.
type Options struct {
	// FrameAncestors is the CSP frame-ancestors source list: the origins
	// that may show the portal in an iframe ("" is DefaultFrameAncestors).
	FrameAncestors string
}

// CheckFrameAncestors checks a frame-ancestors source list: 'none',
// 'self', or space-separated http(s) origins (a leading *. is allowed),
// none with characters that would end the CSP directive.
func CheckFrameAncestors(list string) error {
	if strings.TrimSpace(list) == "" {
		return fmt.Errorf("frame ancestors: empty; leave it out for %s", DefaultFrameAncestors)
	}
	for _, src := range strings.Fields(list) {
		switch {
		case src == "'none'" || src == "'self'":
		case strings.ContainsAny(src, ";,'\"\\"):
			return fmt.Errorf("frame ancestors: %q: give origins such as https://mail.example.com, 'self' or 'none'", src)
		case !strings.HasPrefix(src, "https://") && !strings.HasPrefix(src, "http://"):
			return fmt.Errorf("frame ancestors: %q: give an origin with its scheme, such as https://mail.example.com", src)
		}
	}
	return nil
}

// CSP is the Content-Security-Policy of every answer of the portal: only
// its own script and style, calls to its own origin only, no inline
// script or style, framed only by frameAncestors.
func CSP(frameAncestors string) string {
	if frameAncestors == "" {
		frameAncestors = DefaultFrameAncestors
	}
	return "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; " +
		"base-uri 'none'; form-action 'none'; object-src 'none'; frame-ancestors " + frameAncestors
}

// Handler serves the portal's files under /portal/ (GET and HEAD only),
// each with the CSP and headers that keep it from being sniffed, cached
// with a token or leaking its URL.
func Handler(o Options) (http.Handler, error) {
	if o.FrameAncestors != "" {
		if err := CheckFrameAncestors(o.FrameAncestors); err != nil {
			return nil, err
		}
	}
	csp := CSP(o.FrameAncestors)
	files := http.StripPrefix("/portal/", http.FileServerFS(Assets()))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "the portal is read with GET", http.StatusMethodNotAllowed)
			return
		}
		files.ServeHTTP(w, r)
	}), nil
}
