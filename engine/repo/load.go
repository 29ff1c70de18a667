// Package repo loads and validates a playbook repository: firebreak.cue,
// playbooks/ and playbooks/tests/. It reports every problem at once, each
// at its position in the user's own files.
package repo

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/build"
	"cuelang.org/go/cue/cuecontext"
	"cuelang.org/go/cue/load"
	"cuelang.org/go/cue/parser"
	"cuelang.org/go/cue/token"
	cuejson "cuelang.org/go/encoding/json"
	"cuelang.org/go/encoding/yaml"

	"github.com/firebreak-dev/firebreak/actions"
	"github.com/firebreak-dev/firebreak/engine/match"
	"github.com/firebreak-dev/firebreak/schema"
)

// Layout of a playbook repository, relative to its root.
const (
	ConfigFile   = "firebreak.cue"
	PlaybooksDir = "playbooks"
	TestsDir     = "playbooks/tests"
)

// AlertName is the package-level name playbooks use for the triggering
// alert. firebreak declares it; a playbook repository must not.
const AlertName = "alert"

// alertDecl declares `alert` for every playbook file: closed, so that a
// typo such as alert.lables is an error rather than a silent blank.
const alertDecl = `alert: close({
	source:        string
	status:        string
	fingerprint?:  string
	labels:        [string]: string
	annotations:   [string]: string
	startsAt?:     string
	endsAt?:       string
	generatorURL?: string
	receivedAt?:   string
})
`

// alertFile is the overlay file that holds alertDecl.
const alertFile = "zz_firebreak_alert.cue"

var playbookName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*$`)

// Repo is a loaded playbook repository.
type Repo struct {
	Dir    string
	Config *schema.Config // nil when firebreak.cue is missing or invalid
	// Playbooks in declaration order: files by name, then position.
	Playbooks []*Playbook
	Tests     []*Test
	// Diagnostics lists every problem found; the repository is valid when
	// it is empty.
	Diagnostics []Diagnostic

	index *match.Index
}

// Index returns the match index of Playbooks, compiled while validating
// (regular expressions are checked there), or nil for an invalid
// repository.
func (r *Repo) Index() *match.Index {
	if !r.Valid() {
		return nil
	}
	return r.index
}

// Playbook is one playbook with what matching and rendering need.
type Playbook struct {
	Name     string
	File     string // relative to the repository root
	Line     int
	Title    string
	Owner    string
	Severity string
	GroupBy  []string
	Cooldown time.Duration
	// Match is the user's match constraint, evaluated in the load context.
	Match cue.Value
	// Unit is the smallest set of files that evaluates this playbook
	// exactly as the whole package does: the playbook, what it references,
	// and the declaration of alert. See unit.go.
	Unit *Unit
}

// Test is one playbook test.
type Test struct {
	Name  string
	File  string
	Line  int
	Alert schema.Alert
	// Playbooks are the names expected to match, in order.
	Playbooks []string
	// Steps is the expected plan constraint; it does not exist when the
	// test gives none.
	Steps cue.Value
}

// Valid reports whether the repository has no diagnostics.
func (r *Repo) Valid() bool { return len(r.Diagnostics) == 0 }

// Load reads and validates the repository at dir. The error is for a
// repository that cannot be read at all; problems with its content are in
// Diagnostics.
func Load(dir string) (*Repo, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(abs); err != nil {
		return nil, fmt.Errorf("playbook repository: %w", err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("playbook repository %s: not a directory", dir)
	}
	ctx := cuecontext.New()
	defs, err := schema.Compile(ctx)
	if err != nil {
		return nil, err
	}
	l := &loader{ctx: ctx, defs: defs, dir: abs, ds: &diags{dir: abs}}
	r := &Repo{Dir: abs}
	r.Config = l.config()
	r.Playbooks = l.playbooks(r.Config)
	r.index = l.index
	r.Tests = l.tests()
	r.Diagnostics = l.ds.sorted()
	return r, nil
}

type loader struct {
	ctx   *cue.Context
	defs  *schema.Defs
	dir   string
	ds    *diags
	paths map[string]cue.Path
	index *match.Index
}

func (l *loader) config() *schema.Config {
	path := filepath.Join(l.dir, ConfigFile)
	src, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		l.ds.add(Diagnostic{File: ConfigFile, Message: "missing: a playbook repository needs firebreak.cue at its root (firebreak init writes one)"})
		return nil
	} else if err != nil {
		l.ds.add(Diagnostic{File: ConfigFile, Message: err.Error()})
		return nil
	}
	f, err := parser.ParseFile(path, src, parser.ParseComments)
	if err != nil {
		l.ds.cue(err, token.NoPos, ConfigFile)
		return nil
	}
	v := l.ctx.BuildFile(f)
	if err := v.Err(); err != nil {
		l.ds.cue(err, token.NoPos, ConfigFile)
		return nil
	}
	raw := v
	v = v.Unify(l.defs.Config)
	if err := v.Validate(cue.Concrete(true)); err != nil {
		l.ds.cue(err, token.NoPos, ConfigFile)
		return nil
	}
	var cfg schema.Config
	if err := decodeJSON(v, &cfg); err != nil {
		l.ds.add(Diagnostic{File: ConfigFile, Message: err.Error()})
		return nil
	}
	if cfg.Targets == nil {
		cfg.Targets = map[string]schema.Target{}
	}
	if cfg.Channels == nil {
		cfg.Channels = map[string]schema.Channel{}
	}
	for _, pv := range actions.CheckConfig(&cfg) {
		l.ds.at(configPos(raw.LookupPath(cue.ParsePath(pv.Path))), ConfigFile, "%s: %s", pv.Path, pv.Message)
	}
	return &cfg
}

// sources loads the package in dir: its .cue files through cue/load, and
// YAML and JSON files as overlay files of the same package, so that all
// three kinds are checked by the same schema in the same way. It returns a
// nil instance when dir holds no such file, and an error when dir cannot
// be read.
func (l *loader) sources(dir, pkg string, withAlert bool) (*build.Instance, error) {
	abs := filepath.Join(l.dir, dir)
	entries, err := os.ReadDir(abs)
	if err != nil {
		return nil, err
	}
	overlay := map[string]load.Source{}
	hasCUE := false
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") {
			continue
		}
		path := filepath.Join(abs, name)
		switch filepath.Ext(name) {
		case ".cue":
			hasCUE = true
		case ".yaml", ".yml", ".json":
			f, ok := l.dataFile(path, pkg)
			if !ok {
				continue
			}
			overlay[path+".cue"] = load.FromFile(f)
		}
	}
	if !hasCUE && len(overlay) == 0 {
		return nil, nil
	}
	if withAlert {
		overlay[filepath.Join(abs, alertFile)] = load.FromString("package " + pkg + "\n\n" + alertDecl)
	}
	cfg := &load.Config{Dir: l.dir, Package: pkg, Overlay: overlay}
	inst := load.Instances([]string{"./" + filepath.ToSlash(dir)}, cfg)[0]
	slices.SortStableFunc(inst.Files, func(a, b *ast.File) int { return strings.Compare(a.Filename, b.Filename) })
	return inst, nil
}

// dataFile reads a YAML or JSON playbook file as CUE syntax in package pkg.
func (l *loader) dataFile(path, pkg string) (*ast.File, bool) {
	src, err := os.ReadFile(path)
	if err != nil {
		l.ds.add(Diagnostic{File: l.ds.rel(path), Message: err.Error()})
		return nil, false
	}
	var f *ast.File
	if filepath.Ext(path) == ".json" {
		expr, err := cuejson.Extract(path, src)
		if err != nil {
			l.ds.cue(err, token.NoPos, l.ds.rel(path))
			return nil, false
		}
		f = &ast.File{Filename: path}
		if s, ok := expr.(*ast.StructLit); ok {
			f.Decls = s.Elts
		} else {
			f.Decls = []ast.Decl{&ast.EmbedDecl{Expr: expr}}
		}
	} else {
		f, err = yaml.Extract(path, src)
		if err != nil {
			l.ds.cue(err, token.NoPos, l.ds.rel(path))
			return nil, false
		}
	}
	f.Decls = append([]ast.Decl{&ast.Package{Name: ast.NewIdent(pkg)}}, f.Decls...)
	return f, true
}

func decodeJSON(v cue.Value, dst any) error {
	data, err := v.MarshalJSON()
	if err != nil {
		return err
	}
	return json.Unmarshal(data, dst)
}

// configPos is the position of v, or of its first field when v, a struct
// with several declarations, has none of its own.
func configPos(v cue.Value) token.Pos {
	if p := v.Pos(); p.IsValid() {
		return p
	}
	if iter, err := v.Fields(); err == nil && iter.Next() {
		return iter.Value().Pos()
	}
	return token.NoPos
}
