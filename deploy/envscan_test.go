package deploy

import (
	"bufio"
	"bytes"
	"go/ast"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/hookrelay/hookrelay"

// envFunc is a function that reads the environment variable named by its
// argument at index arg.
type envFunc struct {
	pkg, name string
	arg       int
}

// envReads derives, from the source, the environment variables the binary
// built from mainPkg (such as "./worker") reads: the names passed as string
// constants to os.Getenv or os.LookupEnv, or to a function of the module that
// hands its parameter on to one of them (temporalclient's envOr), in the
// non-test files of every module package the binary is built from. A name
// that is not a constant (an endpoint's secret_env, read by name at attempt
// time) is returned in dynamic, as "file:line".
func envReads(t *testing.T, mainPkg string) (names map[string]bool, dynamic []string) {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}\t{{.Dir}}\t{{join .GoFiles \" \"}}", mainPkg)
	cmd.Dir = ".."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v\n%s", mainPkg, err, stderr(err))
	}
	fset := token.NewFileSet()
	files := map[string][]*ast.File{} // import path -> files
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		path, rest, _ := strings.Cut(sc.Text(), "\t")
		dir, goFiles, _ := strings.Cut(rest, "\t")
		if path != module && !strings.HasPrefix(path, module+"/") {
			continue
		}
		for _, name := range strings.Fields(goFiles) {
			f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			files[path] = append(files[path], f)
		}
	}
	if len(files) == 0 {
		t.Fatalf("go list -deps %s: no package of the module", mainPkg)
	}

	// String constants, by package.
	consts := map[string]map[string]string{}
	for pkg, fs := range files {
		consts[pkg] = map[string]string{}
		for _, f := range fs {
			for _, d := range f.Decls {
				g, ok := d.(*ast.GenDecl)
				if !ok || g.Tok != token.CONST {
					continue
				}
				for _, spec := range g.Specs {
					vs := spec.(*ast.ValueSpec)
					for i, n := range vs.Names {
						if i < len(vs.Values) {
							if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
								consts[pkg][n.Name], _ = strconv.Unquote(lit.Value)
							}
						}
					}
				}
			}
		}
	}

	// callee names the function a call calls, as (package, name), in file f of package pkg.
	callee := func(pkg string, f *ast.File, call *ast.CallExpr) (string, string) {
		switch fn := call.Fun.(type) {
		case *ast.Ident:
			return pkg, fn.Name
		case *ast.SelectorExpr:
			if x, ok := fn.X.(*ast.Ident); ok {
				if path := importPath(f, x.Name); path != "" {
					return path, fn.Sel.Name
				}
			}
		}
		return "", ""
	}
	// constant resolves e to a string constant, if it is one.
	constant := func(pkg string, f *ast.File, e ast.Expr) (string, bool) {
		switch e := e.(type) {
		case *ast.BasicLit:
			if e.Kind == token.STRING {
				s, err := strconv.Unquote(e.Value)
				return s, err == nil
			}
		case *ast.Ident:
			s, ok := consts[pkg][e.Name]
			return s, ok
		case *ast.SelectorExpr:
			if x, ok := e.X.(*ast.Ident); ok {
				s, ok := consts[importPath(f, x.Name)][e.Sel.Name]
				return s, ok
			}
		}
		return "", false
	}

	// The env functions: os's, then, to a fixed point, every function that
	// passes one of its parameters on as an env function's name argument.
	readers := map[envFunc]bool{{"os", "Getenv", 0}: true, {"os", "LookupEnv", 0}: true}
	argOf := func(pkg, name string) (int, bool) {
		for r := range readers {
			if r.pkg == pkg && r.name == name {
				return r.arg, true
			}
		}
		return 0, false
	}
	// nameArg is the name argument of n, when n is a call of an env function.
	nameArg := func(pkg string, f *ast.File, n ast.Node) (*ast.CallExpr, ast.Expr, bool) {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return nil, nil, false
		}
		arg, ok := argOf(callee(pkg, f, call))
		if !ok || arg >= len(call.Args) {
			return nil, nil, false
		}
		return call, call.Args[arg], true
	}
	for changed := true; changed; {
		changed = false
		for pkg, fs := range files {
			for _, f := range fs {
				for _, d := range f.Decls {
					fd, ok := d.(*ast.FuncDecl)
					if !ok || fd.Recv != nil || fd.Body == nil {
						continue
					}
					params := map[string]int{}
					i := 0
					for _, field := range fd.Type.Params.List {
						for _, n := range field.Names {
							params[n.Name] = i
							i++
						}
					}
					ast.Inspect(fd.Body, func(n ast.Node) bool {
						_, arg, ok := nameArg(pkg, f, n)
						if !ok {
							return true
						}
						if id, ok := arg.(*ast.Ident); ok {
							if p, ok := params[id.Name]; ok && !readers[envFunc{pkg, fd.Name.Name, p}] {
								readers[envFunc{pkg, fd.Name.Name, p}] = true
								changed = true
							}
						}
						return true
					})
				}
			}
		}
	}

	names = map[string]bool{}
	for pkg, fs := range files {
		for _, f := range fs {
			ast.Inspect(f, func(n ast.Node) bool {
				call, arg, ok := nameArg(pkg, f, n)
				if !ok {
					return true
				}
				if s, ok := constant(pkg, f, arg); ok {
					names[s] = true
				} else if _, isParam := arg.(*ast.Ident); !isParam || !inEnvFunc(readers, pkg, f, call) {
					p := fset.Position(call.Pos())
					dynamic = append(dynamic, filepath.Base(p.Filename)+":"+strconv.Itoa(p.Line))
				}
				return true
			})
		}
	}
	return names, dynamic
}

// inEnvFunc reports whether call sits in an env function passing its
// parameter on (envOr's own os.LookupEnv(name)), which is not a read of its own.
func inEnvFunc(readers map[envFunc]bool, pkg string, f *ast.File, call *ast.CallExpr) bool {
	for _, d := range f.Decls {
		fd, ok := d.(*ast.FuncDecl)
		if !ok || fd.Body == nil || call.Pos() < fd.Body.Pos() || call.Pos() > fd.Body.End() {
			continue
		}
		for r := range readers {
			if r.pkg == pkg && r.name == fd.Name.Name && fd.Recv == nil {
				return true
			}
		}
	}
	return false
}

// importPath is the path file f imports under name, or "".
func importPath(f *ast.File, name string) string {
	for _, imp := range f.Imports {
		path, _ := strconv.Unquote(imp.Path.Value)
		local := filepath.Base(path)
		if strings.HasPrefix(local, "v") && len(local) <= 3 { // a major version suffix: pkg/v2
			local = filepath.Base(filepath.Dir(path))
		}
		if imp.Name != nil {
			local = imp.Name.Name
		}
		if local == name {
			return path
		}
	}
	return ""
}

func stderr(err error) string {
	if exit, ok := err.(*exec.ExitError); ok {
		return string(exit.Stderr)
	}
	return ""
}

// The scan finds what the binaries are known to read, and only what each reads.
func TestEnvReadsFindsWhatTheBinariesRead(t *testing.T) {
	for _, c := range []struct {
		pkg       string
		want, not []string
	}{
		{"./worker", []string{"TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "HOOKRELAY_TASK_QUEUE", "HOOKRELAY_ENDPOINTS",
			"HOOKRELAY_CODEC_KEY_FILE", "HOOKRELAY_CODEC_TOKEN_FILE", "TEMPORAL_TLS_CERT", "TEMPORAL_API_KEY_FILE"}, []string{"HOOKRELAY_API_TOKEN", "HOOKRELAY_RECEIVER_SECRET"}},
		{"./starter", []string{"TEMPORAL_ADDRESS", "HOOKRELAY_ENDPOINTS", "HOOKRELAY_API_TOKEN", "HOOKRELAY_CODEC_KEY_FILE", "TEMPORAL_TLS_CA"}, []string{"HOOKRELAY_CODEC_TOKEN_FILE"}},
		{"./examples/receiver", []string{"HOOKRELAY_RECEIVER_SECRET"}, []string{"TEMPORAL_ADDRESS"}},
	} {
		names, dynamic := envReads(t, c.pkg)
		for _, w := range c.want {
			if !names[w] {
				t.Errorf("%s: the scan misses %s (found %v)", c.pkg, w, keys(names))
			}
		}
		for _, n := range c.not {
			if names[n] {
				t.Errorf("%s: the scan finds %s, which it does not read", c.pkg, n)
			}
		}
		t.Logf("%s reads %v; by a name known only at run time at %v", c.pkg, keys(names), dynamic)
	}
}
