package ledger

import (
	"crypto/sha1"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/go-git/go-git/v5/plumbing"
)

func TestVarint(t *testing.T) {
	for _, v := range []uint64{0, 1, 127, 128, 129, 255, 256, 16383, 16384, 16511, 16512, 1 << 20, 1<<32 + 7} {
		enc := appendVarint(nil, v)
		got, n := decodeVarint(append(enc, 0xAA))
		if got != v || n != len(enc) {
			t.Errorf("varint %d: encoded % x, decoded %d (%d bytes)", v, enc, got, n)
		}
	}
	// git's own encoding of 128 (varint.c): 0x80 0x00.
	if enc := appendVarint(nil, 128); string(enc) != "\x80\x00" {
		t.Errorf("128 encodes as % x", enc)
	}
}

func TestCacheTreeInvalidation(t *testing.T) {
	// root (3 entries, 2 subtrees) → a (1 entry), b (1 entry, 1 subtree) → c
	h := string(make([]byte, 20))
	ext := "\x003 2\n" + h + "a\x001 0\n" + h + "b\x001 1\n" + h + "c\x001 0\n" + h
	got, err := invalidateCacheTree([]byte(ext), []change{{path: "b/c/x.md"}})
	if err != nil {
		t.Fatal(err)
	}
	want := "\x00-1 2\n" + "a\x001 0\n" + h + "b\x00-1 1\n" + "c\x00-1 0\n"
	if string(got) != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
	if _, err := invalidateCacheTree([]byte(ext[:len(ext)-5]), nil); err == nil {
		t.Error("truncated cache tree: no error")
	}
}

func TestLocalCorruptIndex(t *testing.T) {
	dir := newRepo(t, seed)
	index := filepath.Join(dir, ".git", "index")
	data, err := os.ReadFile(index)
	if err != nil {
		t.Fatal(err)
	}
	data[12+8] ^= 0xff // the first entry's mtime: the layout still parses
	if err := os.WriteFile(index, data, 0o644); err != nil {
		t.Fatal(err)
	}
	l := openLocalT(t, dir, Options{})
	_, _, err = l.Write(t.Context(), "m", map[string][]byte{"incidents/x.md": []byte("x")})
	if !errors.Is(err, errIndex) {
		t.Fatalf("Write over a corrupt index: %v", err)
	}
	if got := git(t, dir, "rev-list", "--count", "HEAD"); got != "1" {
		t.Error("committed over a corrupt index")
	}
	if _, err := os.Stat(index + ".lock"); err == nil {
		t.Error("index.lock left behind")
	}
	if after, _ := os.ReadFile(index); string(after) != string(data) {
		t.Error("the corrupt index was rewritten")
	}
}

// FuzzPlanIndex feeds planIndex arbitrary index bodies (with a valid
// checksum, so the parsing is what is exercised): it must never panic, and
// what it writes must read back with the written entries in it.
func FuzzPlanIndex(f *testing.F) {
	for _, version := range []string{"2", "3", "4"} {
		dir := newRepo(f, seed)
		if version == "3" {
			git(f, dir, "update-index", "--skip-worktree", "firebreak.cue")
		} else {
			git(f, dir, "update-index", "--index-version", version)
		}
		data, err := os.ReadFile(filepath.Join(dir, ".git", "index"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data[:len(data)-20])
	}
	changes := []change{
		{path: "incidents/2024/01/a.md", data: []byte("x")},
		{path: "incidents/2024/01/a0.md", data: []byte("y")},
		{path: "postmortems/TEMPLATE.md", delete: true},
		{path: "zz.md", data: []byte("z")},
	}
	hashes := []plumbing.Hash{blobHash([]byte("x")), blobHash([]byte("y")), {}, blobHash([]byte("z"))}
	modes := []uint32{0o100644, 0o100644, 0, 0o100644}
	f.Fuzz(func(t *testing.T, body []byte) {
		sum := sha1.Sum(body)
		data := append(slices.Clip(body), sum[:]...)
		u, err := planIndex(data, nil, changes, hashes, modes)
		if err != nil {
			return
		}
		if err := u.verify(); err != nil {
			t.Fatalf("verify of a valid checksum: %v", err)
		}
		out := slices.Clone(u.bytes())
		again, err := planIndex(out, nil, changes, hashes, modes)
		if err != nil {
			t.Fatalf("the rewritten index does not read back: %v", err)
		}
		again.verify()
		for i, c := range changes {
			if again.old[i].found == c.delete {
				t.Errorf("%s: found=%v after the rewrite", c.path, again.old[i].found)
			}
			if !c.delete && again.old[i].hash != hashes[i] {
				t.Errorf("%s: hash %s after the rewrite", c.path, again.old[i].hash)
			}
		}
	})
}
