package docs

import (
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// maxFuncLines bounds a function, from `func` to its closing brace, in
// every file but tests and benchmarks: past it, split it into named steps.
const maxFuncLines = 80

// TestFunctionsAreShort holds every function and function literal outside
// tests and bench/ to maxFuncLines.
func TestFunctionsAreShort(t *testing.T) {
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "bin" || d.Name() == "testdata" || path == filepath.Join(root, "bench")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		for _, long := range longFunctions(t, path) {
			t.Error(long)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// longFunctions names the functions in the file at path longer than maxFuncLines.
func longFunctions(t *testing.T, path string) []string {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	var long []string
	ast.Inspect(f, func(n ast.Node) bool {
		var body *ast.BlockStmt
		name := "a func literal"
		switch fn := n.(type) {
		case *ast.FuncDecl:
			body, name = fn.Body, fn.Name.Name
		case *ast.FuncLit:
			body = fn.Body
		}
		if body == nil {
			return true
		}
		start := fset.Position(n.Pos())
		if lines := fset.Position(body.Rbrace).Line - start.Line + 1; lines > maxFuncLines {
			long = append(long, fmt.Sprintf("%s:%d: %s is %d lines, more than %d: split it into named steps",
				rel(path), start.Line, name, lines, maxFuncLines))
		}
		return true
	})
	return long
}

// TestPublicAPINamesNoInternalType checks that no exported identifier of a
// public package (one outside internal/ that is not a command) has a type
// from this module's internal/ packages in its signature, fields or
// methods: an outside program could not name it. It reads the packages'
// export data (`go list -export`), so it type-checks nothing itself.
func TestPublicAPINamesNoInternalType(t *testing.T) {
	public, exports := publicPackages(t)
	imp := importer.ForCompiler(token.NewFileSet(), "gc", func(path string) (io.ReadCloser, error) {
		if exports[path] == "" {
			return nil, fmt.Errorf("no export data for %s", path)
		}
		return os.Open(exports[path])
	})
	for _, path := range public {
		pkg, err := imp.Import(path)
		if err != nil {
			t.Fatalf("import %s: %v", path, err)
		}
		w := apiWalker{pkg: pkg, seen: map[types.Type]bool{}}
		for _, name := range pkg.Scope().Names() {
			if obj := pkg.Scope().Lookup(name); obj.Exported() {
				w.walk(pkg.Name()+"."+name, obj.Type())
			}
		}
		for _, bad := range w.bad {
			t.Errorf("%s: give the public package a type of its own, or an interface, or move the package under internal/", bad)
		}
	}
}

// publicPackages lists the module's public packages and the export data
// of them and everything they import.
func publicPackages(t *testing.T) (public []string, exports map[string]string) {
	t.Helper()
	cmd := exec.Command("go", "list", "-export", "-deps", "-json=ImportPath,Name,Export", "./...")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list -export: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list -export: %v", err)
	}
	exports = map[string]string{}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p struct{ ImportPath, Name, Export string }
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		exports[p.ImportPath] = p.Export
		if strings.HasPrefix(p.ImportPath, module+"/") && !isInternal(p.ImportPath) && p.Name != "main" && p.Export != "" {
			public = append(public, p.ImportPath)
		}
	}
	return public, exports
}

func isInternal(path string) bool {
	return strings.HasPrefix(path, module+"/internal/")
}

// apiWalker walks the types an exported identifier shows, into the
// package's own named types (exported fields and methods) and no further.
type apiWalker struct {
	pkg  *types.Package
	seen map[types.Type]bool
	bad  []string
}

func (w *apiWalker) walk(where string, t types.Type) {
	if w.seen[t] {
		return
	}
	w.seen[t] = true
	switch t := t.(type) {
	case *types.Alias:
		w.walk(where, types.Unalias(t))
	case *types.Named:
		w.named(where, t)
	case *types.Pointer:
		w.walk(where, t.Elem())
	case *types.Slice:
		w.walk(where, t.Elem())
	case *types.Array:
		w.walk(where, t.Elem())
	case *types.Chan:
		w.walk(where, t.Elem())
	case *types.Map:
		w.walk(where, t.Key())
		w.walk(where, t.Elem())
	case *types.Signature:
		for v := range t.Params().Variables() {
			w.walk(where, v.Type())
		}
		for v := range t.Results().Variables() {
			w.walk(where, v.Type())
		}
	case *types.Struct:
		for f := range t.Fields() {
			if f.Exported() || f.Embedded() {
				w.walk(where+"."+f.Name(), f.Type())
			}
		}
	case *types.Interface:
		for m := range t.Methods() {
			if m.Exported() {
				w.walk(where+"."+m.Name(), m.Type())
			}
		}
	}
}

func (w *apiWalker) named(where string, t *types.Named) {
	obj := t.Obj()
	if obj.Pkg() != nil && isInternal(obj.Pkg().Path()) {
		w.bad = append(w.bad, fmt.Sprintf("%s shows %s", where, types.TypeString(t, nil)))
		return
	}
	for arg := range t.TypeArgs().Types() {
		w.walk(where, arg)
	}
	if obj.Pkg() != w.pkg {
		return
	}
	w.walk(where, t.Underlying())
	ms := types.NewMethodSet(types.NewPointer(t))
	for i := range ms.Len() {
		if m := ms.At(i).Obj(); m.Exported() {
			w.walk(where+"."+m.Name(), m.Type())
		}
	}
}
