package deploy

import (
	"bufio"
	"debug/elf"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// stage is one FROM ... AS name of the Dockerfile, with its instructions.
type stage struct {
	from, name string
	lines      []string // instructions after FROM, continuation lines joined
}

type dockerfile struct {
	args   map[string]string // ARGs before the first FROM, with their defaults
	stages map[string]*stage
}

func readDockerfile(t *testing.T) dockerfile {
	t.Helper()
	f, err := os.Open("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d := dockerfile{args: map[string]string{}, stages: map[string]*stage{}}
	var cur *stage
	var pending string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if pending == "" && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			pending += strings.TrimSuffix(line, "\\") + " "
			continue
		}
		line, pending = pending+line, ""
		instr, rest, _ := strings.Cut(line, " ")
		switch strings.ToUpper(instr) {
		case "FROM":
			f := strings.Fields(rest)
			cur = &stage{from: d.expand(f[0])}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				cur.name = f[2]
			}
			d.stages[cur.name] = cur
		case "ARG":
			if cur == nil {
				name, def, _ := strings.Cut(rest, "=")
				d.args[name] = def
				continue
			}
			fallthrough
		default:
			if cur == nil {
				t.Fatalf("Dockerfile: %q before the first FROM", line)
			}
			cur.lines = append(cur.lines, line)
		}
	}
	return d
}

func (d dockerfile) expand(s string) string {
	return os.Expand(s, func(k string) string { return d.args[k] })
}

// chain is the stage and the stages it builds on, nearest first.
func (d dockerfile) chain(name string) []*stage {
	var out []*stage
	for s := d.stages[name]; s != nil; s = d.stages[s.from] {
		out = append(out, s)
	}
	return out
}

// last is the last instruction of kind instr in the chain (the one in force).
func (d dockerfile) last(name, instr string) string {
	for _, s := range d.chain(name) {
		for i := len(s.lines) - 1; i >= 0; i-- {
			if k, rest, _ := strings.Cut(s.lines[i], " "); strings.EqualFold(k, instr) {
				return rest
			}
		}
	}
	return ""
}

// copies lists the "SRC DST" of every COPY --from in the chain.
func (d dockerfile) copies(name string) []string {
	var out []string
	for _, s := range d.chain(name) {
		for _, l := range s.lines {
			if f := strings.Fields(l); len(f) == 4 && strings.EqualFold(f[0], "COPY") && strings.HasPrefix(f[1], "--from=") {
				out = append(out, f[2]+" "+f[3])
			}
		}
	}
	return out
}

// Each image compose builds: an empty base, a non-root user, its binary and
// the healthcheck probe where compose expects them.
func TestDockerfileTargets(t *testing.T) {
	d := readDockerfile(t)
	targets := map[string]bool{}
	for _, s := range stack(t).Services {
		if s.Build != nil {
			targets[s.Build.Target] = true
			if s.Build.Dockerfile != "" && s.Build.Dockerfile != "Dockerfile" && filepath.Base(s.Build.Dockerfile) != "Dockerfile" {
				t.Errorf("%s builds from %s", s.Name, s.Build.Dockerfile)
			}
		}
	}
	if !sameSet(keys(targets), keys(mainPackages)) {
		t.Fatalf("compose builds targets %v, want %v", keys(targets), keys(mainPackages))
	}
	for target := range targets {
		chain := d.chain(target)
		if len(chain) == 0 {
			t.Errorf("target %s: no such stage", target)
			continue
		}
		if base := chain[len(chain)-1].from; base != "scratch" && !strings.HasPrefix(base, "gcr.io/distroless/") {
			t.Errorf("target %s: based on %s, want scratch or distroless", target, base)
		}
		user := d.last(target, "USER")
		if uid, _, _ := strings.Cut(user, ":"); !regexp.MustCompile(`^[1-9][0-9]*$`).MatchString(uid) {
			t.Errorf("target %s: USER %q, want a numeric non-root uid", target, user)
		}
		var entrypoint []string
		if err := json.Unmarshal([]byte(d.last(target, "ENTRYPOINT")), &entrypoint); err != nil || len(entrypoint) != 1 {
			t.Errorf("target %s: ENTRYPOINT %q, want the exec form of one binary", target, d.last(target, "ENTRYPOINT"))
			continue
		}
		binary := filepath.Base(mainPackages[target])
		copies := d.copies(target)
		for _, want := range []string{"/out/" + binary + " " + entrypoint[0], "/out/healthcheck /usr/local/bin/healthcheck"} {
			if !slices.Contains(copies, want) {
				t.Errorf("target %s: no COPY %s (copies %v)", target, want, copies)
			}
		}
		if entrypoint[0] != "/usr/local/bin/"+binary {
			t.Errorf("target %s: ENTRYPOINT %s, want /usr/local/bin/%s", target, entrypoint[0], binary)
		}
	}
}

// The builder is Go as go.mod asks for, pinned, and builds static binaries
// of every main the images need.
func TestDockerfileBuild(t *testing.T) {
	d := readDockerfile(t)
	gomod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	goLine := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(gomod)
	build := d.stages["build"]
	if build == nil || build.from != "golang:"+string(goLine[1]) {
		t.Fatalf("build stage from %v, want golang:%s (go.mod's go line)", build, goLine[1])
	}
	cmd := buildCommand(t, d)
	for _, want := range append([]string{"CGO_ENABLED=0 go build"}, slices.Collect(func(yield func(string) bool) {
		for _, pkg := range mainPackages {
			yield(" " + pkg)
		}
		yield(" ./deploy/healthcheck")
	})...) {
		if !strings.Contains(cmd, want) {
			t.Errorf("the build command %q lacks %q", cmd, want)
		}
	}
	ignore, err := os.ReadFile("../.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	var patterns []string
	for _, l := range strings.Split(string(ignore), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			patterns = append(patterns, l)
		}
	}
	// Everything is left out but the module files and Go sources: never secrets/ or .env.
	if !slices.Equal(patterns, []string{"*", "!go.mod", "!go.sum", "!**/*.go"}) {
		t.Errorf(".dockerignore patterns %q", patterns)
	}
}

// The Dockerfile's own build command, run here, yields static binaries.
func TestDockerfileBuildsStaticBinaries(t *testing.T) {
	dir := builtBinaries(t)
	for _, name := range []string{"worker", "starter", "receiver", "healthcheck"} {
		f, err := elf.Open(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		libs, _ := f.ImportedLibraries()
		if len(libs) > 0 || f.Section(".interp") != nil {
			t.Errorf("%s links dynamically: %v", name, libs)
		}
		f.Close()
	}
}

// buildCommand is the go build of the build stage, as the Dockerfile runs it.
func buildCommand(t *testing.T, d dockerfile) string {
	t.Helper()
	for _, l := range d.stages["build"].lines {
		if run, ok := strings.CutPrefix(l, "RUN "); ok && strings.Contains(run, "go build") {
			cmd, _, _ := strings.Cut(run, " && ")
			return strings.Join(strings.Fields(cmd), " ")
		}
	}
	t.Fatal("the build stage runs no go build")
	return ""
}

// builtBinaries runs the Dockerfile's build command here, once, into a
// temporary directory, with the ARG defaults the image build would use.
func builtBinaries(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		d := readDockerfile(t)
		cmd := buildCommand(t, d)
		if binDir, buildErr = os.MkdirTemp("", "hookrelay-deploy-"); buildErr != nil {
			return
		}
		cmd = strings.ReplaceAll(cmd, "/out/", binDir+"/")
		cmd = strings.ReplaceAll(cmd, "${VERSION}", "dev")
		sh := exec.Command("sh", "-c", cmd)
		sh.Dir = ".."
		if out, err := sh.CombinedOutput(); err != nil {
			buildErr = errorf("%s: %v\n%s", cmd, err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}
