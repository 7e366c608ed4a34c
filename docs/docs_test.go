// Package docs holds hookrelay's reference pages and the test that keeps them
// honest. The test lives here, beside the pages it checks, rather than in
// deploy (which checks the deployment files): it reads README.md and docs/*.md,
// nothing a deployment needs, and `go test ./docs/` names what it guards.
package docs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"
)

const (
	module = "github.com/hookrelay/hookrelay"
	root   = ".." // tests run in their package's directory
)

// layoutRow is one row of the README's layout table.
type layoutRow struct {
	dir  string // "internal/codec", without the trailing slash
	kind string // "public library", "command", "internal", "tests only" or "not Go"
	line int
}

var kinds = []string{"public library", "command", "internal", "tests only", "not Go"}

// TestLayoutTableMatchesPackages checks the README's layout table against
// `go list ./...`, both ways: every package has a row, and every row names a
// folder that exists and is a package exactly when the row says it is Go.
// Commands are the main packages, and only packages under internal/ are internal.
func TestLayoutTableMatchesPackages(t *testing.T) {
	rows := readLayout(t)
	pkgs := listPackages(t) // dir -> package name

	const fix = "fix the row in README.md's \"## Layout\" table, or remove it"
	listed := map[string]bool{}
	for _, r := range rows {
		where := fmt.Sprintf("README.md:%d: `%s/`", r.line, r.dir)
		if listed[r.dir] {
			t.Errorf("%s is listed twice; keep one row", where)
		}
		listed[r.dir] = true
		if !slices.Contains(kinds, r.kind) {
			t.Errorf("%s: kind %q is none of %q", where, r.kind, kinds)
		}
		if fi, err := os.Stat(filepath.Join(root, r.dir)); err != nil || !fi.IsDir() {
			t.Errorf("%s: no such folder in the repository; %s", where, fix)
			continue
		}
		name, isPkg := pkgs[r.dir]
		switch {
		case r.kind == "not Go" && isPkg:
			t.Errorf("%s is a Go package (%s/%s) but its row says \"not Go\"; %s", where, module, r.dir, fix)
		case r.kind != "not Go" && !isPkg:
			t.Errorf("%s is not a Go package in `go list ./...`; %s", where, fix)
		case isPkg && (name == "main") != (r.kind == "command"):
			t.Errorf("%s: package %s, but its row says %q; %s", where, name, r.kind, fix)
		case (strings.HasPrefix(r.dir, "internal/")) != (r.kind == "internal"):
			t.Errorf("%s: kind %q, but a package is internal exactly when it is under internal/", where, r.kind)
		}
	}
	for dir := range pkgs {
		if !listed[dir] {
			t.Errorf("package %s/%s has no row in README.md's \"## Layout\" table: add one, "+
				"| `%s/` | kind | what it holds |, kind one of %q", module, dir, dir, kinds)
		}
	}
}

// readLayout parses the table under "## Layout" in README.md.
func readLayout(t *testing.T) []layoutRow {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	cell := regexp.MustCompile("^`([^`]+)/`$")
	var rows []layoutRow
	in := false
	for i, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "#") {
			in = line == "## Layout"
			continue
		}
		if !in || !strings.HasPrefix(line, "|") || strings.HasPrefix(line, "|---") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		if len(cells) < 3 {
			t.Errorf("README.md:%d: a layout row has folder, kind and what it holds: %q", i+1, line)
			continue
		}
		first := strings.TrimSpace(cells[0])
		if first == "folder" { // the header
			continue
		}
		m := cell.FindStringSubmatch(first)
		if m == nil {
			t.Errorf("README.md:%d: the first cell names one folder, as `dir/`: %q", i+1, first)
			continue
		}
		rows = append(rows, layoutRow{dir: m[1], kind: strings.TrimSpace(cells[1]), line: i + 1})
	}
	if len(rows) == 0 {
		t.Fatal(`README.md has no "## Layout" table`)
	}
	return rows
}

// listPackages runs `go list ./...` at the repository root and returns each
// package's folder, relative to the root, with its package name.
func listPackages(t *testing.T) map[string]string {
	t.Helper()
	cmd := exec.Command("go", "list", "-f", "{{.ImportPath}} {{.Name}}", "./...")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list ./...: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list ./...: %v", err)
	}
	pkgs := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		path, name, _ := strings.Cut(sc.Text(), " ")
		dir, ok := strings.CutPrefix(path, module+"/")
		if !ok {
			t.Fatalf("go list: package %s is outside module %s", path, module)
		}
		pkgs[dir] = name
	}
	return pkgs
}

// TestRelativeLinks checks every relative link in README.md and docs/*.md:
// its file exists and, with a #fragment, a heading of that file has that
// anchor (GitHub's rule: lower case, punctuation dropped, spaces to hyphens).
func TestRelativeLinks(t *testing.T) {
	pages, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	pages = append(pages, filepath.Join(root, "README.md"))
	anchors := map[string]map[string]bool{} // cleaned path -> anchors
	anchorsOf := func(path string) map[string]bool {
		if a, ok := anchors[path]; ok {
			return a
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		a := headingAnchors(string(data))
		anchors[path] = a
		return a
	}
	checked := 0
	for _, page := range pages {
		data, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range links(string(data)) {
			target, frag, _ := strings.Cut(l.target, "#")
			path := filepath.Clean(page)
			if target != "" {
				path = filepath.Join(filepath.Dir(page), target)
			}
			where := fmt.Sprintf("%s:%d: [%s](%s)", rel(page), l.line, l.text, l.target)
			checked++
			fi, err := os.Stat(path)
			if err != nil {
				t.Errorf("%s: no file %s", where, rel(path))
				continue
			}
			if frag == "" {
				continue
			}
			if fi.IsDir() || !strings.HasSuffix(path, ".md") {
				t.Errorf("%s: an anchor needs a Markdown file", where)
				continue
			}
			if !anchorsOf(path)[frag] {
				t.Errorf("%s: %s has no heading with anchor #%s", where, rel(path), frag)
			}
		}
	}
	if checked == 0 {
		t.Fatal("found no relative links at all; the link parser is broken")
	}
}

type link struct {
	text, target string
	line         int
}

var linkRE = regexp.MustCompile(`\[([^\]]*)\]\(([^)\s]+)\)`)

// links returns the relative links of a Markdown text, outside code blocks and
// code spans.
func links(md string) []link {
	var out []link
	fence := false
	for i, line := range strings.Split(md, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fence = !fence
			continue
		}
		if fence {
			continue
		}
		for _, m := range linkRE.FindAllStringSubmatch(withoutCodeSpans(line), -1) {
			target := m[2]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			out = append(out, link{text: m[1], target: target, line: i + 1})
		}
	}
	return out
}

// withoutCodeSpans blanks `code` spans, so a link-like text inside one is not
// taken for a link; a span in a link's text keeps the link's brackets intact.
func withoutCodeSpans(line string) string {
	var b strings.Builder
	in := false
	for _, r := range line {
		switch {
		case r == '`':
			in = !in
			b.WriteRune(r)
		case in:
			b.WriteRune('x')
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// headingAnchors returns the anchors GitHub gives the headings of a Markdown
// text, outside code blocks, numbering repeats as -1, -2, ...
func headingAnchors(md string) map[string]bool {
	out := map[string]bool{}
	seen := map[string]int{}
	fence := false
	for _, line := range strings.Split(md, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fence = !fence
			continue
		}
		if fence || !strings.HasPrefix(line, "#") {
			continue
		}
		title := strings.TrimSpace(strings.TrimLeft(line, "#"))
		a := slug(title)
		if n := seen[a]; n > 0 {
			out[fmt.Sprintf("%s-%d", a, n)] = true
		} else {
			out[a] = true
		}
		seen[a]++
	}
	return out
}

func slug(title string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(title) {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteRune('-')
		}
	}
	return b.String()
}

func rel(path string) string {
	if r, err := filepath.Rel(root, path); err == nil {
		return r
	}
	return path
}

func TestSlug(t *testing.T) {
	for title, want := range map[string]string{
		"Connecting to a production cluster: TLS, mutual TLS, Temporal Cloud": "connecting-to-a-production-cluster-tls-mutual-tls-temporal-cloud",
		"HTTP API: `starter serve`":                                          "http-api-starter-serve",
		"POST /v1/deliveries/{workflow_id}/cancel and /resend":               "post-v1deliveriesworkflow_idcancel-and-resend",
		"GET /healthz, GET /readyz":                                          "get-healthz-get-readyz",
		"`make bench`: throughput, latency and cost, beside a lean baseline": "make-bench-throughput-latency-and-cost-beside-a-lean-baseline",
	} {
		if got := slug(title); got != want {
			t.Errorf("slug(%q) = %q, want %q", title, got, want)
		}
	}
}
