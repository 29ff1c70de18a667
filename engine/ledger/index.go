package ledger

import (
	"bytes"
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
)

// The index file, as git documents it in gitformat-index(5): a header
// ("DIRC", version, entry count), the entries sorted by path, optional
// extensions, and a SHA-1 of everything before it (all zeros when
// index.skipHash is set).
//
// An index update here rewrites the file in one pass: it copies every
// entry it does not touch byte for byte (in version 4, re-encoding the
// path of an entry whose predecessor changed), inserts or replaces the
// entries of the written paths, marks the cache-tree directories on those
// paths invalid, and drops the optional extensions that describe entries
// by position or the worktree as a whole (untracked cache, fsmonitor,
// entry offset tables), which git rebuilds when it wants them.

const (
	entryFixed  = 62 // stat data (40), object name (20), flags (2)
	flagExtend  = 0x4000
	flagValid   = 0x8000
	flagNameMax = 0x0fff
	// extended flags (version 3 and later)
	extSkipWorktree = 0x4000
	extIntentToAdd  = 0x2000
)

// statInfo is the stat data git keeps in an index entry, truncated to 32
// bits as git truncates it.
type statInfo struct {
	ctimeSec, ctimeNsec, mtimeSec, mtimeNsec, dev, ino, uid, gid, size uint32
}

// indexEntry is what the old index held for a written path.
type indexEntry struct {
	found    bool // a stage-0 entry
	unmerged bool // entries of stages 1 to 3
	hash     plumbing.Hash
	mode     uint32
	flags    uint16
	extFlags uint16
}

// indexUpdate is a rewritten index waiting for the stat data of the files
// it adds, which exist only once the worktree is written.
type indexUpdate struct {
	out      []byte
	old      []indexEntry // per change
	statAt   []int        // per change: offset of the new entry in out, -1 when removed
	skipHash bool
	checked  chan error // the old index's checksum, checked
}

// verify reports whether the old index was intact. It must pass before the
// new index is written: a corrupt index must not come out with a valid
// checksum.
func (u *indexUpdate) verify() error {
	if u.checked == nil {
		return nil
	}
	return <-u.checked
}

var errIndex = errors.New("index")

// planIndex rewrites index data (nil when there is no index) for changes,
// sorted by path, into buf (reused when large enough); hashes and modes
// are the new entries' (ignored for removals). data must stay untouched
// until verify returns; on error planIndex is done with it.
func planIndex(data, buf []byte, changes []change, hashes []plumbing.Hash, modes []uint32) (u *indexUpdate, err error) {
	if data == nil {
		data = []byte("DIRC\x00\x00\x00\x02\x00\x00\x00\x00" + strings.Repeat("\x00", 20))
	}
	bad := func(why string, args ...any) error {
		return fmt.Errorf("%w: %s", errIndex, fmt.Sprintf(why, args...))
	}
	if len(data) < 12+20 || string(data[:4]) != "DIRC" {
		return nil, bad("not an index file")
	}
	version := binary.BigEndian.Uint32(data[4:8])
	if version < 2 || version > 4 {
		return nil, bad("version %d", version)
	}
	count := binary.BigEndian.Uint32(data[8:12])
	body, trailer := data[:len(data)-20], data[len(data)-20:]
	u = &indexUpdate{
		old:      make([]indexEntry, len(changes)),
		statAt:   make([]int, len(changes)),
		skipHash: bytes.Equal(trailer, make([]byte, 20)),
	}
	if !u.skipHash {
		// On another core while the rest goes on; verify waits for it.
		checked := make(chan error, 1)
		u.checked = checked
		go func() {
			if sum := sha1.Sum(body); !bytes.Equal(sum[:], trailer) {
				checked <- bad("checksum mismatch (corrupt index)")
			}
			close(checked)
		}()
		defer func() {
			if err != nil {
				<-checked
			}
		}()
	}

	if need := len(data) + len(changes)*(entryFixed+16) + 8<<10; cap(buf) < need {
		buf = make([]byte, 0, need+need/8)
	}
	u.out = buf[:0]
	u.out = append(u.out, data[:12]...)
	w := entryWriter{v4: version == 4}
	sc := entryScanner{data: body, off: 12, version: version}
	paths := make([][]byte, len(changes))
	for i, c := range changes {
		paths[i] = []byte(c.path)
	}
	ci := 0
	emit := func(i int) {
		u.statAt[i] = -1
		if changes[i].delete {
			return
		}
		flags := uint16(min(len(changes[i].path), flagNameMax))
		if u.old[i].found {
			flags |= u.old[i].flags & flagValid
		}
		u.statAt[i] = w.add(&u.out, paths[i], hashes[i], modes[i], flags)
	}
	for n := uint32(0); n < count; n++ {
		if err := sc.next(); err != nil {
			return nil, err
		}
		for ci < len(changes) && bytes.Compare(paths[ci], sc.path) < 0 {
			emit(ci)
			ci++
		}
		if ci < len(changes) && bytes.Equal(sc.path, paths[ci]) {
			old := &u.old[ci]
			if stage := (sc.flags >> 12) & 3; stage != 0 {
				old.unmerged = true
			} else {
				old.found = true
				old.hash = plumbing.Hash(sc.raw[40:60])
				old.mode = binary.BigEndian.Uint32(sc.raw[24:28])
				old.flags, old.extFlags = sc.flags, sc.extFlags
			}
			continue
		}
		w.copy(&u.out, sc.raw, sc.hdr, sc.path, sc.prev)
	}
	for ; ci < len(changes); ci++ {
		emit(ci)
	}
	binary.BigEndian.PutUint32(u.out[8:12], w.count)

	// Extensions.
	off := sc.off
	for off < len(body) {
		if len(body)-off < 8 {
			return nil, bad("truncated extension")
		}
		sig := string(body[off : off+4])
		size := int(binary.BigEndian.Uint32(body[off+4 : off+8]))
		if size > len(body)-off-8 {
			return nil, bad("truncated extension %q", sig)
		}
		ext := body[off+8 : off+8+size]
		off += 8 + size
		switch sig {
		case "TREE":
			tree, err := invalidateCacheTree(ext, changes)
			if err != nil {
				return nil, err
			}
			u.out = appendExtension(u.out, sig, tree)
		case "REUC":
			u.out = appendExtension(u.out, sig, ext)
		case "link", "sdir":
			return nil, fmt.Errorf("%w: %s index (extension %q)", ErrUnsupported, map[string]string{"link": "split", "sdir": "sparse"}[sig], sig)
		default:
			if sig[0] < 'A' || sig[0] > 'Z' {
				return nil, fmt.Errorf("%w: required index extension %q", ErrUnsupported, sig)
			}
			// UNTR, FSMN, EOIE, IEOT and unknown optional extensions:
			// dropped; they describe entries by position or the whole
			// worktree.
		}
	}
	return u, nil
}

// setStat fills the stat data of the entry of change i.
func (u *indexUpdate) setStat(i int, st statInfo) {
	at := u.statAt[i]
	if at < 0 {
		return
	}
	b := u.out[at:]
	for j, v := range []uint32{st.ctimeSec, st.ctimeNsec, st.mtimeSec, st.mtimeNsec, st.dev, st.ino} {
		binary.BigEndian.PutUint32(b[4*j:], v)
	}
	binary.BigEndian.PutUint32(b[28:], st.uid)
	binary.BigEndian.PutUint32(b[32:], st.gid)
	binary.BigEndian.PutUint32(b[36:], st.size)
}

// bytes returns the finished index file.
func (u *indexUpdate) bytes() []byte {
	if u.skipHash {
		return append(u.out, make([]byte, 20)...)
	}
	sum := sha1.Sum(u.out)
	return append(u.out, sum[:]...)
}

func appendExtension(out []byte, sig string, data []byte) []byte {
	out = append(out, sig...)
	out = binary.BigEndian.AppendUint32(out, uint32(len(data)))
	return append(out, data...)
}

// entryScanner walks the entries of an index.
type entryScanner struct {
	data     []byte
	off      int
	version  uint32
	raw      []byte // the current entry, as stored
	hdr      int    // length of its fixed part
	flags    uint16
	extFlags uint16
	path     []byte // the current entry's full path
	prev     []byte // the previous entry's full path (version 4)
	buf      [2][]byte
	flip     int
}

func (s *entryScanner) next() error {
	bad := func(why string) error {
		return fmt.Errorf("%w: entry at offset %d: %s", errIndex, s.off, why)
	}
	d := s.data[s.off:]
	if len(d) < entryFixed {
		return bad("truncated")
	}
	s.flags = binary.BigEndian.Uint16(d[60:62])
	s.hdr, s.extFlags = entryFixed, 0
	if s.flags&flagExtend != 0 {
		if s.version < 3 {
			return bad("extended flags in a version 2 index")
		}
		if len(d) < entryFixed+2 {
			return bad("truncated")
		}
		s.extFlags = binary.BigEndian.Uint16(d[62:64])
		s.hdr += 2
	}
	rest := d[s.hdr:]
	var size int
	if s.version < 4 {
		nameLen := int(s.flags & flagNameMax)
		if nameLen == flagNameMax {
			nameLen = bytes.IndexByte(rest, 0)
		}
		if nameLen < 0 || nameLen >= len(rest) || rest[nameLen] != 0 {
			return bad("bad path")
		}
		s.prev, s.path = s.path, rest[:nameLen]
		size = (s.hdr + nameLen + 8) &^ 7
	} else {
		strip, n := decodeVarint(rest)
		if n <= 0 {
			return bad("bad path prefix")
		}
		end := bytes.IndexByte(rest[n:], 0)
		if end < 0 {
			return bad("bad path")
		}
		prev := s.path
		if strip > uint64(len(prev)) {
			return bad("bad path prefix")
		}
		s.flip ^= 1
		p := append(s.buf[s.flip][:0], prev[:len(prev)-int(strip)]...)
		p = append(p, rest[n:n+end]...)
		s.buf[s.flip] = p
		s.prev, s.path = prev, p
		size = s.hdr + n + end + 1
	}
	if size > len(d) {
		return bad("truncated")
	}
	s.raw = d[:size]
	s.off += size
	return nil
}

// entryWriter appends entries to a new index.
type entryWriter struct {
	v4    bool
	last  []byte // path of the last entry written (version 4)
	count uint32
}

// copy appends an entry of the old index whose predecessor there was
// named prev.
func (w *entryWriter) copy(out *[]byte, raw []byte, hdr int, path, prev []byte) {
	if !w.v4 || bytes.Equal(w.last, prev) {
		*out = append(*out, raw...)
	} else {
		*out = append(*out, raw[:hdr]...)
		*out = w.appendPath(*out, path)
	}
	w.setLast(path)
	w.count++
}

// add appends a new entry with blank stat data and returns its offset.
func (w *entryWriter) add(out *[]byte, path []byte, h plumbing.Hash, mode uint32, flags uint16) int {
	at := len(*out)
	var fixed [entryFixed]byte
	binary.BigEndian.PutUint32(fixed[24:], mode)
	copy(fixed[40:60], h[:])
	binary.BigEndian.PutUint16(fixed[60:], flags)
	*out = append(*out, fixed[:]...)
	if w.v4 {
		*out = w.appendPath(*out, path)
	} else {
		*out = append(*out, path...)
		pad := (entryFixed+len(path)+8)&^7 - entryFixed - len(path)
		*out = append(*out, make([]byte, pad)...)
	}
	w.setLast(path)
	w.count++
	return at
}

// appendPath appends path as version 4 stores it: how many bytes of the
// previous path to drop, then the rest, NUL-terminated.
func (w *entryWriter) appendPath(out, path []byte) []byte {
	common := 0
	for common < len(w.last) && common < len(path) && w.last[common] == path[common] {
		common++
	}
	out = appendVarint(out, uint64(len(w.last)-common))
	out = append(out, path[common:]...)
	return append(out, 0)
}

func (w *entryWriter) setLast(path []byte) {
	if w.v4 {
		w.last = append(w.last[:0], path...)
	}
}

// decodeVarint reads git's offset varint (varint.c), returning the value
// and the bytes read, 0 when malformed.
func decodeVarint(b []byte) (uint64, int) {
	if len(b) == 0 {
		return 0, 0
	}
	c := b[0]
	val := uint64(c & 127)
	n := 1
	for c&128 != 0 {
		if n >= len(b) || n > 9 {
			return 0, 0
		}
		val++
		c = b[n]
		n++
		val = val<<7 | uint64(c&127)
	}
	return val, n
}

func appendVarint(out []byte, v uint64) []byte {
	var buf [16]byte
	pos := len(buf) - 1
	buf[pos] = byte(v & 127)
	for v >>= 7; v != 0; v >>= 7 {
		v--
		pos--
		buf[pos] = 128 | byte(v&127)
	}
	return append(out, buf[pos:]...)
}

// invalidateCacheTree rewrites the TREE extension with every directory on
// the changed paths marked invalid (entry count -1, no object name), as
// git does when it adds to the index, so no git command takes a stale tree
// for a directory that changed.
func invalidateCacheTree(ext []byte, changes []change) ([]byte, error) {
	dirs := map[string]bool{"": true}
	for _, c := range changes {
		for i := strings.IndexByte(c.path, '/'); i >= 0; i = nextSlash(c.path, i) {
			dirs[c.path[:i]] = true
		}
	}
	out := make([]byte, 0, len(ext))
	rest, err := rewriteCacheTree(ext, &out, "", true, dirs)
	if err != nil {
		return nil, err
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: cache tree: trailing bytes", errIndex)
	}
	return out, nil
}

func rewriteCacheTree(in []byte, out *[]byte, parent string, root bool, dirs map[string]bool) ([]byte, error) {
	bad := fmt.Errorf("%w: cache tree: malformed", errIndex)
	nul := bytes.IndexByte(in, 0)
	if nul < 0 {
		return nil, bad
	}
	name := string(in[:nul])
	in = in[nul+1:]
	lf := bytes.IndexByte(in, '\n')
	if lf < 0 {
		return nil, bad
	}
	countStr, subStr, ok := strings.Cut(string(in[:lf]), " ")
	if !ok {
		return nil, bad
	}
	count, err1 := strconv.Atoi(countStr)
	subtrees, err2 := strconv.Atoi(subStr)
	if err1 != nil || err2 != nil || subtrees < 0 {
		return nil, bad
	}
	in = in[lf+1:]
	var hash []byte
	if count >= 0 {
		if len(in) < 20 {
			return nil, bad
		}
		hash, in = in[:20], in[20:]
	}
	path := name
	if !root && parent != "" {
		path = parent + "/" + name
	}
	*out = append(*out, name...)
	*out = append(*out, 0)
	if dirs[path] {
		*out = fmt.Appendf(*out, "-1 %d\n", subtrees)
	} else {
		*out = fmt.Appendf(*out, "%d %d\n", count, subtrees)
		*out = append(*out, hash...)
	}
	for range subtrees {
		var err error
		if in, err = rewriteCacheTree(in, out, path, false, dirs); err != nil {
			return nil, err
		}
	}
	return in, nil
}
