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
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/ast/astutil"
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
	defer raiseGC()()
	ctx := cuecontext.New()
	defs, err := schema.Compile(ctx)
	if err != nil {
		return nil, err
	}
	l := &loader{ctx: ctx, defs: defs, dir: abs, ds: &diags{dir: abs}}
	r := &Repo{Dir: abs}
	r.Config = l.config()
	// The tests are a package of their own, loaded alongside the
	// playbooks in a cue.Context of their own.
	tl := &loader{ctx: cuecontext.New(), dir: abs, ds: &diags{dir: abs}}
	testsDone := make(chan error)
	go func() {
		var err error
		if tl.defs, err = schema.Compile(tl.ctx); err == nil {
			r.Tests = tl.tests()
		}
		testsDone <- err
	}()
	r.Playbooks = l.playbooks(r.Config)
	r.index = l.index
	if err := <-testsDone; err != nil {
		return nil, err
	}
	for _, d := range tl.ds.list {
		l.ds.add(d)
	}
	r.Diagnostics = l.ds.sorted()
	return r, nil
}

// loadGC holds the garbage collector's setting while repositories load.
var loadGC struct {
	sync.Mutex
	loads   int // loads under way
	restore int // the setting before the first of them
}

// raiseGC sets the garbage collector's target to GOGC=1000 until the
// returned function is called, which restores the setting before it,
// unless the environment sets GOGC. A load allocates an evaluation that
// stays reachable to its end (the match values keep it): of the ~350 MB a
// load of the 1,000 playbooks of bench/ allocates, ~180 MB is live when it
// ends. At lower targets (firebreak's commands run at 400) the collector
// still ran three times over that growing heap, the last over most of it,
// with the evaluation running under write barriers meanwhile: a third of
// validate's CPU time. At 1000 it runs once, early, and validate's peak RSS
// went from ~300 to ~350 MB. The target is relative, so a larger
// repository is still collected as often as its own size calls for. Loads
// that overlap share one raise.
func raiseGC() (restore func()) {
	if os.Getenv("GOGC") != "" {
		return func() {}
	}
	loadGC.Lock()
	defer loadGC.Unlock()
	if loadGC.loads == 0 {
		loadGC.restore = debug.SetGCPercent(1000)
	}
	loadGC.loads++
	return func() {
		loadGC.Lock()
		defer loadGC.Unlock()
		if loadGC.loads--; loadGC.loads == 0 {
			debug.SetGCPercent(loadGC.restore)
		}
	}
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
	var extra []*ast.File // the overlay's syntax, for parseDir
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
			extra = append(extra, f)
		}
	}
	if !hasCUE && len(overlay) == 0 {
		return nil, nil
	}
	if withAlert {
		path := filepath.Join(abs, alertFile)
		src := "package " + pkg + "\n\n" + alertDecl
		overlay[path] = load.FromString(src)
		f, err := parser.ParseFile(path, src, parser.ParseComments)
		if err != nil {
			panic(err) // alertDecl parses; every load shows it
		}
		extra = append(extra, f)
	}
	if inst, ok := l.parseDir(abs, pkg, entries, extra); ok {
		return inst, nil
	}
	cfg := &load.Config{Dir: l.dir, Package: pkg, Overlay: overlay}
	inst := load.Instances([]string{"./" + filepath.ToSlash(dir)}, cfg)[0]
	slices.SortStableFunc(inst.Files, func(a, b *ast.File) int { return strings.Compare(a.Filename, b.Filename) })
	return inst, nil
}

// noParseDir turns parseDir off, for tests that compare it with cue/load.
var noParseDir = false

// parseDir is what sources asks of cue/load, for a directory cue/load
// would load file by file: its .cue files parsed on one goroutine per
// CPU, where cue/load parses them one after the other. It declines, for
// cue/load to do it, when anything else could be involved: a module (a
// cue.mod above the repository: its language version, its dependencies),
// imports, file attributes (@if), _test.cue and _tool.cue files, a file
// of another package or none, or a file that does not parse, so that
// cue/load reports it.
func (l *loader) parseDir(abs, pkg string, entries []os.DirEntry, extra []*ast.File) (*build.Instance, bool) {
	if noParseDir {
		return nil, false
	}
	for dir := l.dir; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "cue.mod")); err == nil {
			return nil, false
		}
		if filepath.Dir(dir) == dir {
			break
		}
	}
	var paths []string
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || filepath.Ext(name) != ".cue" {
			continue
		}
		if strings.HasSuffix(name, "_test.cue") || strings.HasSuffix(name, "_tool.cue") {
			return nil, false
		}
		paths = append(paths, filepath.Join(abs, name))
	}
	files := make([]*ast.File, len(paths))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(paths)) {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < len(paths); i = int(next.Add(1)) - 1 {
				src, err := os.ReadFile(paths[i])
				if err != nil {
					continue
				}
				f, err := parser.ParseFile(paths[i], src, parser.ParseComments)
				if err != nil {
					continue
				}
				// What AddSyntax does first, file by file, in parallel
				// too; an error is left to cue/load.
				ok := true
				astutil.Resolve(f, func(token.Pos, string, ...any) { ok = false })
				if ok {
					files[i] = f
				}
			}
		})
	}
	wg.Wait()
	resolved := len(files)
	files = append(files, extra...)
	for _, f := range files {
		if f == nil || f.PackageName() != pkg {
			return nil, false
		}
		for _, d := range f.Decls {
			switch d.(type) {
			case *ast.ImportDecl, *ast.Attribute:
				return nil, false
			}
		}
	}
	inst := build.NewContext().NewInstance(abs, nil)
	inst.PkgName = pkg
	inst.Files = files[:resolved:resolved]
	for _, f := range extra {
		if err := inst.AddSyntax(f); err != nil || inst.Err != nil {
			return nil, false
		}
	}
	slices.SortStableFunc(inst.Files, func(a, b *ast.File) int { return strings.Compare(a.Filename, b.Filename) })
	return inst, true
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
