// Package docs holds hookrelay's reference pages and the tests that keep them
// honest: against the packages, the commands' --help, the environment
// variables the code reads, the Go compiler and the Makefile. They live here,
// beside the pages they check, rather than in deploy (which checks the
// deployment files), and `go test ./docs/` names what they guard.
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
	"strconv"
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

// The tests below hold the docs to the binaries: flags, environment
// variables, Go snippets and make targets.
//
// Flag tables. A flag table is a Markdown table whose header's first cell is
// "flag"; each row's first cell names one or more flags as code spans
// (`--tls-cert`, `--profile DIR`). It says which commands take its flags in a
// column headed "commands" (full command paths, comma-separated:
// `worker, starter serve`), or else in an HTML comment on a line of its own
// before the table: <!-- flags: worker codec-server; starter serve -->.
// For every command, the flags of the tables that name it are exactly the
// flags its --help lists; a row that says "deprecated" names a flag --help
// hides, which the command must still accept. A flag may have rows in several
// tables (the page on serve and the page on the worker both list --pollers).

// flagDoc is one documented flag of one command.
type flagDoc struct {
	where      string // "docs/configuration.md:162"
	deprecated bool
}

var (
	flagMarkerRE = regexp.MustCompile(`^<!--\s*flags:\s*(.*?)\s*-->$`)
	codeSpanRE   = regexp.MustCompile("`([^`]*)`")
	flagNameRE   = regexp.MustCompile(`(?:^|\s)--([a-z0-9][a-z0-9-]*)`)
	helpFlagRE   = regexp.MustCompile(`^\s+(?:-[a-zA-Z], )?--([a-z0-9][a-z0-9-]*)`)
)

// docPages returns README.md and docs/*.md.
func docPages(t *testing.T) []string {
	t.Helper()
	pages, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	return append(pages, filepath.Join(root, "README.md"))
}

func readPage(t *testing.T, page string) []string {
	t.Helper()
	data, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(string(data), "\n")
}

// splitRow returns the cells of a Markdown table row; `\|` is a pipe inside
// a cell, as GitHub reads it.
func splitRow(line string) []string {
	const escaped = "\x00"
	line = strings.ReplaceAll(strings.TrimSpace(line), `\|`, escaped)
	cells := strings.Split(strings.Trim(line, "|"), "|")
	for i := range cells {
		cells[i] = strings.TrimSpace(strings.ReplaceAll(cells[i], escaped, "|"))
	}
	return cells
}

// documentedFlags returns, per command path, the flags the docs' flag tables
// give it.
func documentedFlags(t *testing.T) map[string]map[string]flagDoc {
	t.Helper()
	out := map[string]map[string]flagDoc{}
	for _, page := range docPages(t) {
		lines := readPage(t, page)
		marker := "" // the last flags comment, until a table takes it
		fence := false
		for i := 0; i < len(lines); i++ {
			line := strings.TrimSpace(lines[i])
			if strings.HasPrefix(line, "```") {
				fence = !fence
			}
			if fence {
				continue
			}
			if m := flagMarkerRE.FindStringSubmatch(line); m != nil {
				marker = m[1]
				continue
			}
			if !strings.HasPrefix(line, "|") {
				continue
			}
			header := splitRow(line)
			start := i
			for i+1 < len(lines) && strings.HasPrefix(strings.TrimSpace(lines[i+1]), "|") {
				i++
			}
			if header[0] != "flag" {
				marker = ""
				continue
			}
			addFlagTable(t, out, rel(page), start, lines[start:i+1], marker)
			marker = ""
		}
	}
	return out
}

// addFlagTable records the flags of the table lines[0] heads, first at line
// index start of page.
func addFlagTable(t *testing.T, out map[string]map[string]flagDoc, page string, start int, lines []string, marker string) {
	t.Helper()
	header := splitRow(lines[0])
	col := slices.Index(header, "commands")
	if (col < 0) == (marker == "") {
		t.Errorf("%s:%d: a flag table names its commands in a \"commands\" column or in a "+
			"<!-- flags: CMD; CMD --> line before it, exactly one of the two", page, start+1)
		return
	}
	tableCmds := commandList(marker, ";")
	for j, line := range lines[1:] {
		if strings.HasPrefix(strings.TrimSpace(line), "|---") {
			continue
		}
		where := fmt.Sprintf("%s:%d", page, start+j+2)
		cells := splitRow(line)
		var flags []string
		for _, span := range codeSpanRE.FindAllStringSubmatch(cells[0], -1) {
			for _, f := range flagNameRE.FindAllStringSubmatch(span[1], -1) {
				flags = append(flags, f[1])
			}
		}
		if len(flags) == 0 {
			t.Errorf("%s: a flag table's row names its flags in its first cell, as `--flag`: %q", where, line)
			continue
		}
		cmds := tableCmds
		if col >= 0 {
			if col >= len(cells) {
				t.Errorf("%s: the row has no \"commands\" cell", where)
				continue
			}
			cmds = commandList(strings.ReplaceAll(cells[col], "`", ""), ",")
		}
		deprecated := strings.Contains(strings.ToLower(line), "deprecated")
		for _, c := range cmds {
			if out[c] == nil {
				out[c] = map[string]flagDoc{}
			}
			for _, f := range flags {
				out[c][f] = flagDoc{where: where, deprecated: deprecated}
			}
		}
	}
}

// commandList splits a list of command paths on sep; a last word with
// alternatives stands for each ("starter status|list": "starter status",
// "starter list"), as in the commands' usage lines.
func commandList(s, sep string) []string {
	var out []string
	for _, c := range strings.Split(s, sep) {
		words := strings.Fields(c)
		if len(words) == 0 {
			continue
		}
		prefix := strings.Join(words[:len(words)-1], " ")
		for _, last := range strings.Split(words[len(words)-1], "|") {
			out = append(out, strings.TrimSpace(prefix+" "+last))
		}
	}
	return out
}

// buildCommands builds worker, starter, bench and the example receiver into a temporary directory.
func buildCommands(t *testing.T) string {
	t.Helper()
	bin := t.TempDir()
	cmd := exec.Command("go", "build", "-o", bin+string(filepath.Separator), "./worker", "./starter", "./bench", "./examples/receiver")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// help runs a command path ("starter endpoint create") with --help and
// returns what it printed.
func help(t *testing.T, bin, path string, extra ...string) (string, error) {
	t.Helper()
	words := strings.Fields(path)
	args := append(append(words[1:], extra...), "--help")
	cmd := exec.Command(filepath.Join(bin, words[0]), args...)
	cmd.Dir = root // bench looks for the module
	cmd.Env = cleanEnv()
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// cleanEnv is the environment without hookrelay's and Temporal's variables,
// so --help shows the commands' own defaults.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HOOKRELAY_") && !strings.HasPrefix(kv, "TEMPORAL_") {
			env = append(env, kv)
		}
	}
	return env
}

// commandFlags returns, per command path, the flags its --help lists. The
// starter's subcommands come from its usage lines ("  starter list ...",
// "  starter endpoint create|list ..."), recursively.
func commandFlags(t *testing.T, bin string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	var walk func(path string)
	walk = func(path string) {
		text, err := help(t, bin, path)
		if err != nil {
			t.Fatalf("%s --help: %v\n%s", path, err, text)
		}
		if strings.Contains(text, "\n      --") {
			for _, line := range strings.Split(text, "\n") {
				if m := helpFlagRE.FindStringSubmatch(line); m != nil && m[1] != "help" {
					out[path] = append(out[path], m[1])
				}
			}
			return
		}
		usage := regexp.MustCompile(`(?m)^\s+` + regexp.QuoteMeta(path) + ` ([a-z][a-z|-]*)`)
		subs := usage.FindAllStringSubmatch(text, -1)
		if len(subs) == 0 {
			t.Fatalf("%s --help lists neither flags nor subcommands:\n%s", path, text)
		}
		for _, m := range subs {
			for _, sub := range strings.Split(m[1], "|") {
				if _, done := out[path+" "+sub]; !done {
					walk(path + " " + sub)
				}
			}
		}
	}
	for _, path := range []string{"worker", "worker codec-server", "starter", "bench", "receiver"} {
		walk(path)
	}
	return out
}

// TestFlagTablesMatchHelp checks the docs' flag tables against every command's
// --help, both ways.
func TestFlagTablesMatchHelp(t *testing.T) {
	docs := documentedFlags(t)
	bin := buildCommands(t)
	cmds := commandFlags(t, bin)
	if len(cmds) < 10 {
		t.Fatalf("found only %d commands; the usage parser is broken: %v", len(cmds), cmds)
	}
	for path, flags := range cmds {
		doc := docs[path]
		if doc == nil {
			t.Errorf("`%s` takes %d flags and no flag table in docs/ names it", path, len(flags))
			continue
		}
		for _, f := range flags {
			d, ok := doc[f]
			switch {
			case !ok:
				t.Errorf("`%s --%s` is in its --help but in no flag table naming `%s`: add a row", path, f, path)
			case d.deprecated:
				t.Errorf("%s: `%s --%s` is in --help but its row says deprecated", d.where, path, f)
			}
		}
		for f, d := range doc {
			if slices.Contains(flags, f) {
				continue
			}
			if !d.deprecated {
				t.Errorf("%s: `%s` has no flag --%s (not in its --help); fix or remove the row", d.where, path, f)
				continue
			}
			if out, err := help(t, bin, path, "--"+f+"=x"); err != nil {
				t.Errorf("%s: `%s` refuses the deprecated --%s: %v\n%s", d.where, path, f, err, out)
			}
		}
	}
	for path, doc := range docs {
		if _, ok := cmds[path]; !ok {
			for f, d := range doc {
				t.Errorf("%s: no command `%s` (for --%s)", d.where, path, f)
			}
		}
	}
}

var envVarRE = regexp.MustCompile(`HOOKRELAY_[A-Z0-9_]*[A-Z0-9]`)

// TestEnvironmentVariablesDocumented checks that every HOOKRELAY_* variable a
// non-test Go source names is documented in README.md or docs/*.md, and that
// every documented one is read somewhere: by Go code, the Makefile, a script
// or a compose file.
func TestEnvironmentVariablesDocumented(t *testing.T) {
	documented := map[string]string{} // name -> where
	for _, page := range docPages(t) {
		for i, line := range readPage(t, page) {
			for _, v := range envVarRE.FindAllString(line, -1) {
				if _, ok := documented[v]; !ok {
					documented[v] = fmt.Sprintf("%s:%d", rel(page), i+1)
				}
			}
		}
	}
	readByCode := map[string]string{} // by non-test Go sources
	readAnywhere := map[string]bool{}
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (strings.HasPrefix(name, ".") || name == "bin" || name == "docs") {
				return filepath.SkipDir
			}
			return nil
		}
		goFile := strings.HasSuffix(name, ".go")
		if !goFile && name != "Makefile" && !strings.HasSuffix(name, ".sh") && !strings.HasSuffix(name, ".yml") &&
			!strings.HasSuffix(name, ".yaml") && name != "Dockerfile" {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, v := range envVarRE.FindAllString(string(data), -1) {
			readAnywhere[v] = true
			if goFile && !strings.HasSuffix(name, "_test.go") {
				readByCode[v] = rel(path)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(readByCode) < 10 {
		t.Fatalf("found only %d HOOKRELAY_ variables in the Go sources; the search is broken", len(readByCode))
	}
	for v, file := range readByCode {
		if _, ok := documented[v]; !ok {
			t.Errorf("%s reads %s, which README.md and docs/ never name: document it beside its flag", file, v)
		}
	}
	for v, where := range documented {
		if !readAnywhere[v] {
			t.Errorf("%s: %s is read by no Go source, script, Makefile or compose file", where, v)
		}
	}
}

// TestGoSnippetsCompile extracts every ```go block of README.md and docs/*.md
// into a package of its own inside the module and vets it (which compiles
// it). A snippet is a whole file: a package clause, its imports, declarations.
func TestGoSnippetsCompile(t *testing.T) {
	dir, err := os.MkdirTemp(".", "_snippets") // "_": go list ./... skips it
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	type origin struct {
		page string
		line int // of the snippet's first line
	}
	var pkgs []string
	where := map[string]origin{}
	for _, page := range docPages(t) {
		lines := readPage(t, page)
		for i := 0; i < len(lines); i++ {
			if strings.TrimSpace(lines[i]) != "```go" {
				continue
			}
			indent := lines[i][:strings.Index(lines[i], "```")]
			start := i + 1
			for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
			}
			var src strings.Builder
			for _, l := range lines[start:i] {
				src.WriteString(strings.TrimPrefix(l, indent) + "\n")
			}
			pos := fmt.Sprintf("%s:%d", rel(page), start+1)
			if !strings.HasPrefix(strings.TrimSpace(src.String()), "package ") {
				t.Errorf("%s: a ```go snippet is a whole file, from its package clause", pos)
				continue
			}
			pkg := filepath.Join(dir, fmt.Sprintf("s%d", len(pkgs)))
			if err := os.Mkdir(pkg, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(pkg, "snippet.go"), []byte(src.String()), 0o644); err != nil {
				t.Fatal(err)
			}
			pkgs = append(pkgs, "./"+filepath.ToSlash(pkg))
			where[filepath.Base(pkg)] = origin{rel(page), start + 1}
		}
	}
	if len(pkgs) == 0 {
		t.Fatal("found no ```go snippet; the extraction is broken")
	}
	cmd := exec.Command("go", append([]string{"vet"}, pkgs...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		// Name the pages' lines, not the temporary files'.
		fileLine := regexp.MustCompile(`\S*` + regexp.QuoteMeta(filepath.Base(dir)) + `/(s\d+)/snippet\.go:(\d+)`)
		msg := fileLine.ReplaceAllStringFunc(string(out), func(m string) string {
			sub := fileLine.FindStringSubmatch(m)
			n, _ := strconv.Atoi(sub[2])
			o := where[sub[1]]
			return fmt.Sprintf("%s:%d", o.page, o.line+n-1)
		})
		t.Errorf("the Go snippets do not compile or vet:\n%s", msg)
	}
}

var makeRE = regexp.MustCompile(`\bmake ([a-z][a-z0-9-]*)`)

// TestMakeTargetsExist checks that every `make TARGET` in code of README.md
// and docs/*.md (spans and blocks) is a target of the Makefile.
func TestMakeTargetsExist(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	targets := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^([a-z][a-z0-9 -]*):`).FindAllStringSubmatch(string(data), -1) {
		for _, name := range strings.Fields(m[1]) {
			targets[name] = true
		}
	}
	checked := 0
	for _, page := range docPages(t) {
		fence := false
		for i, line := range readPage(t, page) {
			if strings.HasPrefix(strings.TrimSpace(line), "```") {
				fence = !fence
				continue
			}
			code := []string{line}
			if !fence {
				code = nil
				for _, m := range codeSpanRE.FindAllStringSubmatch(line, -1) {
					code = append(code, m[1])
				}
			}
			for _, c := range code {
				for _, m := range makeRE.FindAllStringSubmatch(c, -1) {
					checked++
					if !targets[m[1]] {
						t.Errorf("%s:%d: `make %s`: the Makefile has no target %s", rel(page), i+1, m[1], m[1])
					}
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("found no `make TARGET` in the docs; the search is broken")
	}
}

// historyRE matches what a reader of the docs cannot resolve: issue numbers,
// "#123" references and commit hashes (7 to 40 hex digits, at least one a
// letter and one a digit).
var historyRE = regexp.MustCompile(`(?i)\bissues? \d+|\bcommits? [0-9a-f]{7,40}\b|(?:^|[\s(])#\d+\b|\b[0-9a-f]{7,40}\b`)

// historyWords returns the words of a line that read as work history.
func historyWords(line string) []string {
	var out []string
	for _, m := range historyRE.FindAllString(line, -1) {
		m = strings.TrimLeft(strings.TrimSpace(m), "(")
		if strings.HasPrefix(strings.ToLower(m), "commit") {
			out = append(out, m) // "commit 8167288": a hash, even of digits only
			continue
		}
		if hexWordRE.MatchString(m) &&
			(!strings.ContainsAny(m, "0123456789") || !strings.ContainsAny(strings.ToLower(m), "abcdef")) {
			continue // a number, or a word of hex letters
		}
		out = append(out, m)
	}
	return out
}

var hexWordRE = regexp.MustCompile(`^[0-9a-fA-F]+$`)

// TestNoWorkHistory checks that README.md and docs/*.md describe hookrelay as
// it is: no issue numbers, issue references or commit hashes.
func TestNoWorkHistory(t *testing.T) {
	for _, page := range docPages(t) {
		for i, line := range readPage(t, page) {
			for _, m := range historyWords(line) {
				t.Errorf("%s:%d: %q reads as work history (an issue or a commit); say what is true now", rel(page), i+1, m)
			}
		}
	}
}

func TestHistoryPattern(t *testing.T) {
	for s, want := range map[string]bool{
		"see issue 13":           true,
		"fixed in #42":           true,
		"(#7)":                   true,
		"commit 2d17691":         true,
		"on commit 8167288":      true,
		"a3f9c2e1b0d4":           true,
		"evt_257fe6b1f89e4e1a3b": false, // an id, not a word of its own
		"1234567 deliveries":     false,
		"the facade":             false,
		"[x](#anchor-2)":         false,
	} {
		if got := len(historyWords(s)) > 0; got != want {
			t.Errorf("%q: work history %t, want %t", s, got, want)
		}
	}
}
