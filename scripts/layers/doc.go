package main

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// archDoc is the code map that checkDoc keeps true, relative to the
// module root.
const archDoc = "docs/architecture.md"

// decls are the Go names declared in the module: per file, per package
// name, and in all. A name is "X" for a top-level function, type, var or
// const, and "T.M" (and "M") for a method, struct field or interface
// method M of type T.
type decls struct {
	byFile map[string]map[string]bool // module-relative path -> names
	byPkg  map[string]map[string]bool // package name -> names
	all    map[string]bool
	types  map[string]bool // the type names among all
}

func (d *decls) add(file, pkg, name string) {
	for _, m := range []map[string]bool{d.byFile[file], d.byPkg[pkg], d.all} {
		m[name] = true
	}
}

// scanDecls parses every Go file under root (tests included, whatever
// their build tags) and collects its declarations.
func scanDecls(root string) (*decls, error) {
	d := &decls{byFile: map[string]map[string]bool{}, byPkg: map[string]map[string]bool{}, all: map[string]bool{}, types: map[string]bool{}}
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.IsDir() {
			if p != root && (e.Name() == "testdata" || strings.HasPrefix(e.Name(), ".")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") {
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		pkg := strings.TrimSuffix(f.Name.Name, "_test")
		d.byFile[rel] = map[string]bool{}
		if d.byPkg[pkg] == nil {
			d.byPkg[pkg] = map[string]bool{}
		}
		names, types := declNames(f)
		for _, n := range names {
			d.add(rel, pkg, n)
		}
		for _, t := range types {
			d.types[t] = true
		}
		return nil
	})
	return d, err
}

// declNames lists the names f declares, as decls describes them, and
// the type names among them.
func declNames(f *ast.File) (names, types []string) {
	var out []string
	for _, decl := range f.Decls {
		switch decl := decl.(type) {
		case *ast.FuncDecl:
			if decl.Recv == nil || len(decl.Recv.List) == 0 {
				out = append(out, decl.Name.Name)
				continue
			}
			out = append(out, recvType(decl.Recv.List[0].Type)+"."+decl.Name.Name, decl.Name.Name)
		case *ast.GenDecl:
			for _, spec := range decl.Specs {
				switch spec := spec.(type) {
				case *ast.TypeSpec:
					out = append(out, spec.Name.Name)
					types = append(types, spec.Name.Name)
					out = append(out, memberNames(spec)...)
				case *ast.ValueSpec:
					for _, n := range spec.Names {
						out = append(out, n.Name)
					}
				}
			}
		}
	}
	return out, types
}

// recvType is the name of a method's receiver type: T for T, *T, T[P].
func recvType(t ast.Expr) string {
	for {
		switch x := t.(type) {
		case *ast.StarExpr:
			t = x.X
		case *ast.IndexExpr:
			t = x.X
		case *ast.IndexListExpr:
			t = x.X
		case *ast.Ident:
			return x.Name
		default:
			return ""
		}
	}
}

// memberNames lists "T.F" and "F" for the fields of a struct type and the
// methods of an interface type T.
func memberNames(spec *ast.TypeSpec) []string {
	var fields *ast.FieldList
	switch t := spec.Type.(type) {
	case *ast.StructType:
		fields = t.Fields
	case *ast.InterfaceType:
		fields = t.Methods
	default:
		return nil
	}
	var out []string
	for _, f := range fields.List {
		names := f.Names
		if len(names) == 0 { // embedded: named by its type
			if id := recvType(f.Type); id != "" {
				names = []*ast.Ident{{Name: id}}
			} else if sel, ok := f.Type.(*ast.SelectorExpr); ok {
				names = []*ast.Ident{sel.Sel}
			}
		}
		for _, n := range names {
			out = append(out, spec.Name.Name+"."+n.Name, n.Name)
		}
	}
	return out
}

// The shapes of code spans in the doc that name something checkable.
var (
	codeSpanRE = regexp.MustCompile("`([^`\n]+)`")
	// cmd/cairn/open.go, or cmd/cairn/open.go:withRepo, or
	// repo/prune.go:Repository.ExecutePrune.
	fileRefRE = regexp.MustCompile(`^([\w./-]+\.go)(?::([A-Za-z_]\w*(?:\.\w+)?))?$`)
	// A capitalised word in a path is a placeholder: cmd_NAME.go.
	placeholderRE = regexp.MustCompile(`[A-Z]{3,}`)
	// repo.OpenForJob, restorer.Options.TestOnlyBetween, and (the first
	// word not a package name) packer.upload.
	pkgRefRE = regexp.MustCompile(`^([a-z]\w*)\.(\w+(?:\.\w+)?)(?:\(\))?$`)
	// Repository.LoadIndex.
	memberRefRE = regexp.MustCompile(`^([A-Z]\w*\.\w+)(?:\(\))?$`)
	// A Go name with a capital letter in it: walkRoot, ErrNotLocked.
	nameRefRE = regexp.MustCompile(`^([A-Za-z_]\w*[A-Z]\w*|[A-Z]\w*)(?:\(\))?$`)
	// A folder or file of the module: backend/limit, scripts/bench.
	pathRefRE = regexp.MustCompile(`^(?:backend|repo|snapshot|crypt|cmd|scripts)(?:/[\w.-]+)*$`)
)

// checkDoc checks the code map at root/archDoc: it names, in a code span,
// every package directory outside scripts/ (dirs, module-relative), and
// every file, folder and Go name it cites in one exists. It returns one
// line per problem.
func checkDoc(root string, dirs []string) ([]string, error) {
	text, err := os.ReadFile(filepath.Join(root, archDoc))
	if err != nil {
		return nil, err
	}
	d, err := scanDecls(root)
	if err != nil {
		return nil, err
	}
	spans := map[string]bool{}
	for _, m := range codeSpanRE.FindAllStringSubmatch(string(text), -1) {
		spans[m[1]] = true
	}
	var out []string
	for _, dir := range dirs {
		if dir != "" && !strings.HasPrefix(dir, "scripts/") && !spans[dir] {
			out = append(out, fmt.Sprintf("%s does not name the package %s", archDoc, dir))
		}
	}
	for s := range spans {
		if why := d.resolve(root, s); why != "" {
			out = append(out, fmt.Sprintf("%s cites `%s`: %s", archDoc, s, why))
		}
	}
	sort.Strings(out)
	return out, nil
}

// resolve says why the code span s names nothing that exists ("" when it
// does, or when s is not a reference the check understands).
func (d *decls) resolve(root, s string) string {
	exists := func(p string) bool {
		_, err := os.Stat(filepath.Join(root, filepath.FromSlash(p)))
		return err == nil
	}
	if m := fileRefRE.FindStringSubmatch(s); m != nil {
		if !strings.Contains(m[1], "/") || placeholderRE.MatchString(m[1]) {
			return "" // "_test.go", "cmd/cairn/cmd_NAME.go": not a path
		}
		names, ok := d.byFile[m[1]]
		switch {
		case !ok:
			return "no such Go file"
		case m[2] != "" && !names[m[2]]:
			return "not declared in " + m[1]
		}
		return ""
	}
	if m := pkgRefRE.FindStringSubmatch(s); m != nil {
		names, ok := d.byPkg[m[1]]
		switch {
		case ok && !names[m[2]]:
			return "not declared in package " + m[1]
		case ok:
			return ""
		case d.types[m[1]] && !strings.Contains(m[2], ".") && !d.all[m[1]+"."+m[2]]:
			return "no such method or field" // an unexported type's member
		}
		return "" // another module's package
	}
	if m := memberRefRE.FindStringSubmatch(s); m != nil {
		if !d.all[m[1]] {
			return "no such method or field"
		}
		return ""
	}
	if m := nameRefRE.FindStringSubmatch(s); m != nil {
		if !d.all[m[1]] {
			return "no such Go name"
		}
		return ""
	}
	if pathRefRE.MatchString(s) && !exists(s) {
		return "no such file or folder"
	}
	return ""
}
