package replay

import (
	"encoding/json"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/format"

	"github.com/firebreak-dev/firebreak/engine/repo"
	"github.com/firebreak-dev/firebreak/schema"
)

// compareSteps aligns two step lists and reports the steps added, removed,
// changed or moved. Steps pair up, in this order: by a name given in the
// playbook, by identical content (longest common subsequence, names
// aside), then by the name firebreak gave them. What pairs with nothing is
// added or removed.
func compareSteps(list string, base, head []schema.Step) []StepChange {
	pb, ph := make([]int, len(base)), make([]int, len(head)) // partner or -1
	for i := range pb {
		pb[i] = -1
	}
	for j := range ph {
		ph[j] = -1
	}
	pair := func(i, j int) { pb[i], ph[j] = j, i }
	// 1. Given names, when unique on both sides.
	bNames, hNames := nameIndex(base), nameIndex(head)
	for name, i := range bNames {
		if j, ok := hNames[name]; ok && i >= 0 && j >= 0 && !autoName(base[i]) && !autoName(head[j]) {
			pair(i, j)
		}
	}
	// 2. Identical content among the rest, in order.
	var bi, hj []int
	for i := range base {
		if pb[i] < 0 {
			bi = append(bi, i)
		}
	}
	for j := range head {
		if ph[j] < 0 {
			hj = append(hj, j)
		}
	}
	for _, p := range lcs(len(bi), len(hj), func(x, y int) bool { return sameContent(base[bi[x]], head[hj[y]]) }) {
		pair(bi[p[0]], hj[p[1]])
	}
	// 3. Equal names among the rest.
	for i := range base {
		if pb[i] >= 0 {
			continue
		}
		for j := range head {
			if ph[j] < 0 && head[j].Name == base[i].Name {
				pair(i, j)
				break
			}
		}
	}
	// Pairs out of their relative order have moved: those outside a
	// longest increasing run of base positions, in head order.
	var order []int
	for j := range head {
		if ph[j] >= 0 {
			order = append(order, ph[j])
		}
	}
	inOrder := map[int]bool{}
	for _, i := range lis(order) {
		inOrder[i] = true
	}

	type keyed struct {
		key float64
		c   StepChange
	}
	var out []keyed
	for j := range head {
		h := head[j]
		if ph[j] < 0 {
			out = append(out, keyed{float64(j), StepChange{List: list, Change: StepAdded, Index: j + 1, Name: h.Name, Action: h.Action, Head: &h, NewApproval: h.Approval == "required"}})
			continue
		}
		i := ph[j]
		b := base[i]
		fields := stepFields(b, h)
		if !inOrder[i] {
			fields = append(fields, ValueChange{Path: "position", Base: i + 1, Head: j + 1})
		}
		if len(fields) == 0 {
			continue
		}
		kind := StepChanged
		if len(fields) == 1 && fields[0].Path == "position" {
			kind = StepMoved
		}
		out = append(out, keyed{float64(j), StepChange{List: list, Change: kind, Index: j + 1, Name: h.Name, Action: h.Action, Base: &b, Head: &h, Fields: fields,
			NewApproval: h.Approval == "required" && b.Approval != "required"}})
	}
	// A removed step goes after the head position of the paired step
	// before it in base.
	prev := -1.0
	for i := range base {
		if pb[i] >= 0 {
			prev = float64(pb[i])
			continue
		}
		b := base[i]
		out = append(out, keyed{prev + 0.5, StepChange{List: list, Change: StepRemoved, Index: i + 1, Name: b.Name, Action: b.Action, Base: &b}})
	}
	sort.SliceStable(out, func(x, y int) bool { return out[x].key < out[y].key })
	changes := make([]StepChange, len(out))
	for i, k := range out {
		changes[i] = k.c
	}
	return changes
}

// nameIndex maps step names to their index, or -1 when a name repeats.
func nameIndex(steps []schema.Step) map[string]int {
	m := map[string]int{}
	for i, s := range steps {
		if _, dup := m[s.Name]; dup {
			m[s.Name] = -1
		} else {
			m[s.Name] = i
		}
	}
	return m
}

var autoNamePattern = regexp.MustCompile(`^(on_failure-)?([a-z]+)(-[0-9]+)?$`)

// autoName reports whether s carries the name firebreak gives an unnamed
// step: its action, maybe numbered, maybe prefixed with "on_failure-".
func autoName(s schema.Step) bool {
	m := autoNamePattern.FindStringSubmatch(s.Name)
	return m != nil && m[2] == s.Action
}

func sameContent(a, b schema.Step) bool {
	return len(stepFields(withName(a, ""), withName(b, ""))) == 0
}

func withName(s schema.Step, name string) schema.Step {
	s.Name = name
	return s
}

// stepFields are the fields of a step that differ. A name firebreak gave
// is not the playbook's doing: it changes when a step of the same action
// is added before, and is left out.
func stepFields(b, h schema.Step) []ValueChange {
	var out []ValueChange
	if b.Name != h.Name && !(autoName(b) && autoName(h)) {
		out = append(out, ValueChange{Path: "name", Base: b.Name, Head: h.Name})
	}
	if b.Action != h.Action {
		out = append(out, ValueChange{Path: "action", Base: b.Action, Head: h.Action})
	}
	out = append(out, diffValues("params", normalize(b.Params), normalize(h.Params))...)
	if b.Approval != h.Approval {
		out = append(out, ValueChange{Path: "approval", Base: b.Approval, Head: h.Approval})
	}
	if b.Timeout != h.Timeout {
		out = append(out, ValueChange{Path: "timeout", Base: orNil(b.Timeout), Head: orNil(h.Timeout)})
	}
	if b.ContinueOnError != h.ContinueOnError {
		out = append(out, ValueChange{Path: "continue_on_error", Base: b.ContinueOnError, Head: h.ContinueOnError})
	}
	return out
}

func orNil(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// normalize makes v plain JSON data, so that equal values compare equal
// whatever Go types they were decoded into.
func normalize(v any) any {
	data, err := json.Marshal(v)
	if err != nil {
		return v
	}
	var out any
	if json.Unmarshal(data, &out) != nil {
		return v
	}
	return out
}

// diffValues compares two JSON values field by field: objects are walked,
// anything else is compared whole. A list of strings on both sides also
// says which elements came and went.
func diffValues(path string, b, h any) []ValueChange {
	bm, bok := b.(map[string]any)
	hm, hok := h.(map[string]any)
	if bok && hok {
		var out []ValueChange
		keys := slices.Sorted(maps.Keys(bm))
		for k := range hm {
			if _, ok := bm[k]; !ok {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		for _, k := range keys {
			bv, bin := bm[k]
			hv, hin := hm[k]
			sub := path + selector(k)
			switch {
			case !bin:
				out = append(out, leafChange(sub, nil, hv))
			case !hin:
				out = append(out, leafChange(sub, bv, nil))
			default:
				out = append(out, diffValues(sub, bv, hv)...)
			}
		}
		return out
	}
	if reflect.DeepEqual(b, h) {
		return nil
	}
	return []ValueChange{leafChange(path, b, h)}
}

func leafChange(path string, b, h any) ValueChange {
	c := ValueChange{Path: path, Base: b, Head: h}
	bs, bok := stringList(b)
	hs, hok := stringList(h)
	if bok && hok {
		c.Added, c.Removed = []string{}, []string{}
		for _, s := range hs {
			if !slices.Contains(bs, s) {
				c.Added = append(c.Added, s)
			}
		}
		for _, s := range bs {
			if !slices.Contains(hs, s) {
				c.Removed = append(c.Removed, s)
			}
		}
		if len(c.Added) == 0 && len(c.Removed) == 0 {
			// Only the order differs.
			c.Added, c.Removed = nil, nil
		}
	}
	return c
}

func stringList(v any) ([]string, bool) {
	list, ok := v.([]any)
	if !ok {
		return nil, false
	}
	out := make([]string, len(list))
	for i, x := range list {
		s, ok := x.(string)
		if !ok {
			return nil, false
		}
		out[i] = s
	}
	return out, true
}

var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// selector is ".k", or `."k"` when k is not an identifier.
func selector(k string) string {
	if identifier.MatchString(k) {
		return "." + k
	}
	return "." + strconv.Quote(k)
}

// comparePolicy compares the parts of firebreak.cue that decide what
// playbooks may do: policy (paused, limits, owners), targets and channels.
func comparePolicy(base, head *schema.Config) []ValueChange {
	out := []ValueChange{}
	if base == nil || head == nil {
		return out
	}
	view := func(c *schema.Config) any {
		return normalize(map[string]any{"policy": c.Policy, "targets": c.Targets, "channels": c.Channels})
	}
	bv, hv := view(base).(map[string]any), view(head).(map[string]any)
	for _, top := range []string{"policy", "targets", "channels"} {
		out = append(out, diffValues(top, bv[top], hv[top])...)
	}
	return out
}

// comparePlaybooks lists the playbooks added, removed, renamed and changed
// between base and head, and returns the renames as base name → head name.
// A removed and an added playbook are a rename when they are the only
// such pair with the same title, or else with the same match.
func comparePlaybooks(base, head []*repo.Playbook) (PlaybookDelta, map[string]string) {
	d := PlaybookDelta{Added: []string{}, Removed: []string{}, Renamed: []Rename{}, Changed: []PlaybookEdit{}}
	bm, hm := byName(base), byName(head)
	var removed, added []*repo.Playbook
	for _, name := range slices.Sorted(maps.Keys(bm)) {
		if _, ok := hm[name]; !ok {
			removed = append(removed, bm[name])
		}
	}
	for _, name := range slices.Sorted(maps.Keys(hm)) {
		if _, ok := bm[name]; !ok {
			added = append(added, hm[name])
		}
	}
	renames := map[string]string{}
	for _, key := range []func(*repo.Playbook) string{
		func(p *repo.Playbook) string { return p.Title },
		func(p *repo.Playbook) string { return matchText(p.Match) },
	} {
		count := map[string]int{}
		for _, p := range removed {
			count["r"+key(p)]++
		}
		for _, p := range added {
			count["a"+key(p)]++
		}
		var restR []*repo.Playbook
		for _, r := range removed {
			k := key(r)
			i := slices.IndexFunc(added, func(a *repo.Playbook) bool { return key(a) == k })
			if k == "" || i < 0 || count["r"+k] != 1 || count["a"+k] != 1 {
				restR = append(restR, r)
				continue
			}
			renames[r.Name] = added[i].Name
			d.Renamed = append(d.Renamed, Rename{From: r.Name, To: added[i].Name})
			added = slices.Delete(added, i, i+1)
		}
		removed = restR
	}
	for _, p := range removed {
		d.Removed = append(d.Removed, p.Name)
	}
	for _, p := range added {
		d.Added = append(d.Added, p.Name)
	}
	sort.Slice(d.Renamed, func(i, j int) bool { return d.Renamed[i].From < d.Renamed[j].From })
	for _, name := range slices.Sorted(maps.Keys(hm)) {
		h := hm[name]
		was := name
		for from, to := range renames {
			if to == name {
				was = from
			}
		}
		b, ok := bm[was]
		if !ok {
			continue
		}
		if fields := playbookFields(b, h); len(fields) > 0 {
			e := PlaybookEdit{Playbook: name, Fields: fields}
			if was != name {
				e.Was = was
			}
			d.Changed = append(d.Changed, e)
		}
	}
	return d, renames
}

func byName(pbs []*repo.Playbook) map[string]*repo.Playbook {
	m := make(map[string]*repo.Playbook, len(pbs))
	for _, p := range pbs {
		m[p.Name] = p
	}
	return m
}

// playbookFields are the fields other than steps that differ.
func playbookFields(b, h *repo.Playbook) []ValueChange {
	var out []ValueChange
	str := func(path, bv, hv string) {
		if bv != hv {
			out = append(out, ValueChange{Path: path, Base: bv, Head: hv})
		}
	}
	str("title", b.Title, h.Title)
	str("owner", b.Owner, h.Owner)
	str("severity", b.Severity, h.Severity)
	str("match", matchText(b.Match), matchText(h.Match))
	if !slices.Equal(b.GroupBy, h.GroupBy) {
		out = append(out, leafChange("group_by", normalize(nonNilList(b.GroupBy)), normalize(nonNilList(h.GroupBy))))
	}
	if b.Cooldown != h.Cooldown {
		out = append(out, ValueChange{Path: "cooldown", Base: b.Cooldown.String(), Head: h.Cooldown.String()})
	}
	return out
}

func nonNilList(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// matchText is a playbook's match constraint as one line of CUE.
func matchText(v cue.Value) string {
	if !v.Exists() {
		return ""
	}
	data, err := format.Node(v.Syntax(cue.Raw()))
	if err != nil {
		return ""
	}
	return strings.Join(strings.Fields(string(data)), " ")
}

// lcs returns the index pairs of a longest common subsequence of two
// sequences of lengths n and m under eq.
func lcs(n, m int, eq func(i, j int) bool) [][2]int {
	t := make([][]int, n+1)
	for i := range t {
		t[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if eq(i, j) {
				t[i][j] = t[i+1][j+1] + 1
			} else {
				t[i][j] = max(t[i+1][j], t[i][j+1])
			}
		}
	}
	var out [][2]int
	for i, j := 0, 0; i < n && j < m; {
		switch {
		case eq(i, j):
			out = append(out, [2]int{i, j})
			i++
			j++
		case t[i+1][j] >= t[i][j+1]:
			i++
		default:
			j++
		}
	}
	return out
}

// lis returns the values of a longest strictly increasing subsequence of
// xs, the first such in order.
func lis(xs []int) []int {
	if len(xs) == 0 {
		return nil
	}
	length := make([]int, len(xs))
	prev := make([]int, len(xs))
	best := 0
	for i := range xs {
		length[i], prev[i] = 1, -1
		for j := 0; j < i; j++ {
			if xs[j] < xs[i] && length[j]+1 > length[i] {
				length[i], prev[i] = length[j]+1, j
			}
		}
		if length[i] > length[best] {
			best = i
		}
	}
	var out []int
	for i := best; i >= 0; i = prev[i] {
		out = append(out, xs[i])
	}
	slices.Reverse(out)
	return out
}
