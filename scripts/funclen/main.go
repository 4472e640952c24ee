// Command funclen lists the Go functions longer than a limit (120 lines by
// default), counted from the func keyword to the closing brace, in the
// non-test, non-generated Go files under the given folders (default "."),
// and exits 1 if it finds any. Test files (_test.go), generated files (a
// "Code generated ... DO NOT EDIT." line before the package clause),
// testdata, vendor and hidden folders are skipped. `make funclen` runs it
// on the whole tree.
//
//	go run ./scripts/funclen [-max 120] [DIR...]
package main

import (
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// finding is one function over the limit.
type finding struct {
	file  string
	line  int
	name  string
	lines int
}

func (f finding) String() string {
	return fmt.Sprintf("%s:%d: %s is %d lines", f.file, f.line, f.name, f.lines)
}

func main() {
	max := flag.Int("max", 120, "report functions longer than `N` lines")
	flag.Parse()
	dirs := flag.Args()
	if len(dirs) == 0 {
		dirs = []string{"."}
	}
	os.Exit(run(os.Stdout, os.Stderr, dirs, *max))
}

// run reports to out the functions longer than max lines under dirs and
// returns the exit status: 0 for none, 1 for some, 2 on an error.
func run(out, errw io.Writer, dirs []string, max int) int {
	var all []finding
	for _, d := range dirs {
		fs, err := longFuncs(d, max)
		if err != nil {
			fmt.Fprintf(errw, "funclen: %v\n", err)
			return 2
		}
		all = append(all, fs...)
	}
	for _, f := range all {
		fmt.Fprintln(out, f)
	}
	if len(all) > 0 {
		fmt.Fprintf(out, "%d function(s) over %d lines\n", len(all), max)
		return 1
	}
	return 0
}

// longFuncs returns the functions longer than max lines in the Go files
// under root that are neither tests nor generated, sorted by file and
// line.
func longFuncs(root string, max int) ([]finding, error) {
	var out []finding
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (name == "testdata" || name == "vendor" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ParseComments)
		if err != nil {
			return err
		}
		if generated(f) {
			return nil
		}
		for _, decl := range f.Decls {
			fd, ok := decl.(*ast.FuncDecl)
			if !ok || fd.Body == nil {
				continue
			}
			start, end := fset.Position(fd.Pos()), fset.Position(fd.End())
			if n := end.Line - start.Line + 1; n > max {
				out = append(out, finding{file: path, line: start.Line, name: funcName(fd), lines: n})
			}
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool {
		if out[i].file != out[j].file {
			return out[i].file < out[j].file
		}
		return out[i].line < out[j].line
	})
	return out, err
}

// generatedRE is the marker of generated Go files (go help generate).
var generatedRE = regexp.MustCompile(`^// Code generated .* DO NOT EDIT\.$`)

// generated says whether f carries the generated-code marker before its
// package clause.
func generated(f *ast.File) bool {
	for _, cg := range f.Comments {
		if cg.Pos() > f.Package {
			break
		}
		for _, c := range cg.List {
			if generatedRE.MatchString(c.Text) {
				return true
			}
		}
	}
	return false
}

// funcName is the function's name, with its receiver type for a method:
// "(*Repository).Prune".
func funcName(fd *ast.FuncDecl) string {
	if fd.Recv == nil || len(fd.Recv.List) == 0 {
		return fd.Name.Name
	}
	t := fd.Recv.List[0].Type
	star := ""
	if s, ok := t.(*ast.StarExpr); ok {
		star, t = "*", s.X
	}
	if ix, ok := t.(*ast.IndexExpr); ok { // generic receiver T[P]
		t = ix.X
	}
	if ix, ok := t.(*ast.IndexListExpr); ok {
		t = ix.X
	}
	if id, ok := t.(*ast.Ident); ok {
		return "(" + star + id.Name + ")." + fd.Name.Name
	}
	return fd.Name.Name
}
