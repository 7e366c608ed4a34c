package portal

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// No inline script or style, no event-handler attribute, no javascript:
// URL and nothing fetched from elsewhere: the CSP would block them, and
// the page must not need them.
func TestNoInlineScript(t *testing.T) {
	html, err := fs.ReadFile(Assets(), "index.html")
	if err != nil {
		t.Fatal(err)
	}
	page := strings.ToLower(string(html))
	scripts := regexp.MustCompile(`<script\b[^>]*>`).FindAllString(page, -1)
	if len(scripts) != 1 || scripts[0] != `<script src="app.js" defer>` || strings.Count(page, "</script>") != 1 ||
		!strings.Contains(page, `<script src="app.js" defer></script>`) {
		t.Errorf("scripts: %q, want only <script src=\"app.js\" defer></script>", scripts)
	}
	for _, bad := range []*regexp.Regexp{
		regexp.MustCompile(`\son[a-z]+\s*=`), regexp.MustCompile(`<style\b`), regexp.MustCompile(`\sstyle\s*=`),
		regexp.MustCompile(`javascript:`), regexp.MustCompile(`(src|href)\s*=\s*"(https?:)?//`),
	} {
		if m := bad.FindString(page); m != "" {
			t.Errorf("index.html holds %q", m)
		}
	}
	js, err := fs.ReadFile(Assets(), "app.js")
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "localStorage", "http://", "https://"} {
		if strings.Contains(string(js), bad) {
			t.Errorf("app.js uses %s", bad)
		}
	}
}

// Every answer carries the CSP, with the frame ancestors configured.
func TestHandlerHeaders(t *testing.T) {
	h, err := Handler(Options{FrameAncestors: "https://mail.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/portal/", "/portal/app.js", "/portal/style.css", "/portal/nothing.js"} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
		csp := w.Header().Get("Content-Security-Policy")
		if !strings.Contains(csp, "script-src 'self';") || !strings.HasSuffix(csp, "frame-ancestors https://mail.example.com") || w.Header().Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: CSP %q", path, csp)
		}
		body, _ := io.ReadAll(w.Body)
		if want := map[bool]int{true: 404, false: 200}[strings.Contains(path, "nothing")]; w.Code != want || (want == 200 && len(body) == 0) {
			t.Errorf("%s: %d", path, w.Code)
		}
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("POST", "/portal/", nil))
	if w.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", w.Code)
	}
	if d, _ := Handler(Options{}); d == nil {
		t.Fatal("no handler by default")
	}
	for _, bad := range []string{" ", "mail.example.com", "https://a.example.com; script-src *", "'unsafe-inline'"} {
		if _, err := Handler(Options{FrameAncestors: bad}); err == nil {
			t.Errorf("frame ancestors %q accepted", bad)
		}
	}
	if !strings.HasSuffix(CSP(""), "frame-ancestors 'none'") {
		t.Errorf("default CSP %q", CSP(""))
	}
}

// Every control has a label: each input and select (but hidden ones) by a
// <label for>, each button by its text.
func TestEveryControlLabelled(t *testing.T) {
	html, err := fs.ReadFile(Assets(), "index.html")
	if err != nil {
		t.Fatal(err)
	}
	page := string(html)
	labels := map[string]bool{}
	for _, m := range regexp.MustCompile(`<label for="([^"]+)"`).FindAllStringSubmatch(page, -1) {
		labels[m[1]] = true
	}
	controls := regexp.MustCompile(`<(input|select|textarea)\b[^>]*>`).FindAllString(page, -1)
	if len(controls) < 10 {
		t.Fatalf("found only %d controls", len(controls))
	}
	idRE := regexp.MustCompile(`\bid="([^"]+)"`)
	for _, c := range controls {
		if strings.Contains(c, `type="hidden"`) {
			continue
		}
		m := idRE.FindStringSubmatch(c)
		if m == nil || !labels[m[1]] {
			t.Errorf("%s has no <label for>", c)
		}
	}
	for _, m := range regexp.MustCompile(`<button\b[^>]*>([^<]*)</button>`).FindAllStringSubmatch(page, -1) {
		if strings.TrimSpace(m[1]) == "" {
			t.Errorf("a button without text: %s", m[0])
		}
	}
}
