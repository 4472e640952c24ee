// Command layers checks the module's import graph against the rules that
// docs/architecture.md states, in both builds (with the cairn_testonly
// tag and without), and exits 1 listing every import that breaks one:
//
//  1. Layers, lowest first: crypt, backend, repo, snapshot, cmd, scripts.
//     A package, its tests included, imports only packages of its own
//     layer or a lower one: crypt imports nothing of the module's, and no
//     benchmark reaches up into scripts/. Nothing outside cmd/ imports
//     cmd/. A new top-level folder must be given a layer here.
//  2. Test helpers (packages whose name ends in "test": backendtest,
//     sftptest; the standard library's httptest, fstest, iotest) are
//     imported only from _test.go files and from other test helpers: not
//     by the product, and not by the programs under scripts/ (the soak,
//     the benchmark tools).
//  3. The test infrastructure that programs need as well as tests
//     (harness: the sshd launcher, the benchmark tree generator) is
//     imported only from _test.go files, test helpers and scripts/, so
//     it stays out of the release binary.
//
// It also keeps docs/architecture.md, the code map, true to the code
// (doc.go): the page must name every package outside scripts/, and every
// file, folder and Go name it cites in a code span must exist.
//
// `make layers` runs it (and `make test`):
//
//	go run ./scripts/layers [DIR]
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"sort"
	"strings"
)

// layers are the module's top-level folders, lowest first.
var layers = []string{"crypt", "backend", "repo", "snapshot", "cmd", "scripts"}

// harness lists the packages (relative to the module) that are test
// infrastructure without being test helpers: the soak and the benchmark
// tools use them, so their names do not end in "test".
var harness = []string{"backend/sftp/sshd", "snapshot/archiver/benchtree"}

// testTag is the build tag of the test-only code (see the Makefile).
const testTag = "cairn_testonly"

// pkg is what layers reads of `go list -json` for one package.
type pkg struct {
	ImportPath   string
	Name         string
	Imports      []string // of its non-test files
	TestImports  []string // of its _test.go files in the package
	XTestImports []string // of its _test.go files in package NAME_test
}

// violation is one import that breaks a rule.
type violation struct {
	from, to string
	test     bool // the import is in a _test.go file
	rule     string
}

func (v violation) String() string {
	where := ""
	if v.test {
		where = " (in a test)"
	}
	return fmt.Sprintf("%s imports %s%s: %s", v.from, v.to, where, v.rule)
}

func main() {
	dir := "."
	if len(os.Args) > 1 {
		dir = os.Args[1]
	}
	os.Exit(run(os.Stdout, os.Stderr, dir))
}

// run checks the module in dir, reports to out, and returns the exit
// status: 0 for no violation, 1 for some, 2 on an error.
func run(out, errw io.Writer, dir string) int {
	vs, dirs, err := checkModule(dir)
	if err != nil {
		fmt.Fprintf(errw, "layers: %v\n", err)
		return 2
	}
	stale, err := checkDoc(dir, dirs)
	if err != nil {
		fmt.Fprintf(errw, "layers: %v\n", err)
		return 2
	}
	for _, v := range vs {
		fmt.Fprintln(out, v)
	}
	for _, s := range stale {
		fmt.Fprintln(out, s)
	}
	if len(vs) > 0 {
		fmt.Fprintf(out, "%d import(s) break the layering (see %s)\n", len(vs), archDoc)
	}
	if len(stale) > 0 {
		fmt.Fprintf(out, "%d problem(s) in %s: update it with the code\n", len(stale), archDoc)
	}
	if len(vs)+len(stale) > 0 {
		return 1
	}
	return 0
}

// checkModule lists the packages of the module in dir in both builds and
// checks them. It also returns the module-relative directories of the
// packages, sorted.
func checkModule(dir string) ([]violation, []string, error) {
	out, err := goCmd(dir, "list", "-m")
	if err != nil {
		return nil, nil, err
	}
	module := strings.TrimSpace(string(out))
	seen := map[string]bool{}
	dirSet := map[string]bool{}
	var all []violation
	for _, tags := range []string{"-tags=" + testTag, "-tags="} {
		data, err := goCmd(dir, "list", "-e", "-json", tags, "./...")
		if err != nil {
			return nil, nil, err
		}
		pkgs, err := decode(data)
		if err != nil {
			return nil, nil, err
		}
		for _, p := range pkgs {
			if rel, ok := strings.CutPrefix(p.ImportPath, module+"/"); ok {
				dirSet[rel] = true
			}
		}
		for _, v := range check(module, pkgs) {
			if s := v.String(); !seen[s] {
				seen[s] = true
				all = append(all, v)
			}
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].String() < all[j].String() })
	var dirs []string
	for d := range dirSet {
		dirs = append(dirs, d)
	}
	sort.Strings(dirs)
	return all, dirs, nil
}

// goCmd runs the go command in dir and returns its standard output.
func goCmd(dir string, args ...string) ([]byte, error) {
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// decode reads the stream of JSON objects `go list -json` prints.
func decode(data []byte) ([]pkg, error) {
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(data))
	for {
		var p pkg
		err := dec.Decode(&p)
		if errors.Is(err, io.EOF) {
			return pkgs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("go list output: %w", err)
		}
		pkgs = append(pkgs, p)
	}
}

// check applies the rules to pkgs, the packages of module.
func check(module string, pkgs []pkg) []violation {
	names := map[string]string{} // import path -> package name, for the module's packages
	for _, p := range pkgs {
		names[p.ImportPath] = p.Name
	}
	rel := func(p string) (string, bool) {
		if p == module {
			return "", true
		}
		r, ok := strings.CutPrefix(p, module+"/")
		return r, ok
	}
	// helper says whether p is a test helper: a module package whose
	// name ends in "test", or such a standard library package.
	helper := func(p string) bool {
		if _, ok := rel(p); ok {
			return strings.HasSuffix(names[p], "test")
		}
		first, _, _ := strings.Cut(p, "/")
		return !strings.Contains(first, ".") && strings.HasSuffix(path.Base(p), "test")
	}
	var out []violation
	for _, p := range pkgs {
		from, ok := rel(p.ImportPath)
		if !ok {
			continue
		}
		isHelper := strings.HasSuffix(p.Name, "test")
		add := func(to string, test bool, rule string) {
			out = append(out, violation{from: p.ImportPath, to: to, test: test, rule: rule})
		}
		for _, imp := range p.Imports {
			if helper(imp) && !isHelper {
				add(imp, false, "a test helper is imported only from _test.go files and other test helpers")
			}
			if r, ok := rel(imp); ok && isHarness(r) && !isHelper && layerOf(from) != "scripts" {
				add(imp, false, "test infrastructure is imported only from tests, test helpers and scripts/")
			}
		}
		for _, set := range []struct {
			imps []string
			test bool
		}{{p.Imports, false}, {p.TestImports, true}, {p.XTestImports, true}} {
			for _, imp := range set.imps {
				r, ok := rel(imp)
				if !ok {
					continue
				}
				if rule := layerRule(from, r); rule != "" {
					add(imp, set.test, rule)
				}
			}
		}
	}
	return out
}

// layerOf is the layer (top-level folder) of a module-relative path.
func layerOf(rel string) string {
	first, _, _ := strings.Cut(rel, "/")
	return first
}

// rank is the place of layer in layers, -1 for none.
func rank(layer string) int {
	for i, l := range layers {
		if l == layer {
			return i
		}
	}
	return -1
}

// layerRule says which layering rule an import of module package to by
// module package from breaks ("" for none); both are module-relative.
func layerRule(from, to string) string {
	lf, lt := layerOf(from), layerOf(to)
	rf, rt := rank(lf), rank(lt)
	switch {
	case rf < 0:
		return fmt.Sprintf("%s/ is in no layer (add it to scripts/layers and docs/architecture.md)", lf)
	case rt < 0:
		return fmt.Sprintf("%s/ is in no layer (add it to scripts/layers and docs/architecture.md)", lt)
	case lt == "cmd" && lf != "cmd":
		return "nothing outside cmd/ imports cmd/"
	case rt > rf:
		return fmt.Sprintf("%s/ may not import the higher layer %s/ (%s)", lf, lt, strings.Join(layers, " < "))
	}
	return ""
}

// isHarness says whether the module-relative path rel is a harness
// package.
func isHarness(rel string) bool {
	for _, h := range harness {
		if rel == h {
			return true
		}
	}
	return false
}
