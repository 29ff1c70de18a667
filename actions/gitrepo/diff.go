package gitrepo

import (
	"bytes"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	fdiff "github.com/go-git/go-git/v5/plumbing/format/diff"
	"github.com/go-git/go-git/v5/utils/diff"
	"github.com/sergi/go-diff/diffmatchpatch"
)

// unified renders changes as git's unified diff, three lines of context.
func (o *objects) unified(changes []fileChange) (string, error) {
	if len(changes) == 0 {
		return "", nil
	}
	p := &patch{}
	for _, c := range changes {
		fp, err := o.filePatch(c)
		if err != nil {
			return "", err
		}
		p.files = append(p.files, fp)
	}
	var buf bytes.Buffer
	if err := fdiff.NewUnifiedEncoder(&buf, fdiff.DefaultContextLines).Encode(p); err != nil {
		return "", err
	}
	return buf.String(), nil
}

func (o *objects) filePatch(c fileChange) (*filePatch, error) {
	fp := &filePatch{}
	var texts [2]string
	for i, e := range []entry{c.from, c.to} {
		if e.hash.IsZero() {
			continue
		}
		f := &file{hash: e.hash, mode: e.mode, path: c.path}
		if i == 0 {
			fp.from = f
		} else {
			fp.to = f
		}
		if e.mode == filemode.Submodule {
			texts[i] = "Subproject commit " + e.hash.String() + "\n"
			continue
		}
		data, err := o.blob(e.hash)
		if err != nil {
			return nil, err
		}
		if bytes.IndexByte(data[:min(len(data), 8000)], 0) >= 0 {
			fp.binary = true
		}
		texts[i] = string(data)
	}
	if fp.binary {
		return fp, nil
	}
	for _, d := range diff.Do(texts[0], texts[1]) {
		op := fdiff.Equal
		switch d.Type {
		case diffmatchpatch.DiffInsert:
			op = fdiff.Add
		case diffmatchpatch.DiffDelete:
			op = fdiff.Delete
		}
		fp.chunks = append(fp.chunks, chunk{d.Text, op})
	}
	return fp, nil
}

type patch struct{ files []fdiff.FilePatch }

func (p *patch) FilePatches() []fdiff.FilePatch { return p.files }
func (p *patch) Message() string                { return "" }

type filePatch struct {
	from, to *file
	binary   bool
	chunks   []fdiff.Chunk
}

func (f *filePatch) IsBinary() bool { return f.binary }
func (f *filePatch) Chunks() []fdiff.Chunk {
	return f.chunks
}

// Files returns untyped nils for an absent side, as the encoder expects.
func (f *filePatch) Files() (from, to fdiff.File) {
	if f.from != nil {
		from = f.from
	}
	if f.to != nil {
		to = f.to
	}
	return from, to
}

type file struct {
	hash plumbing.Hash
	mode filemode.FileMode
	path string
}

func (f *file) Hash() plumbing.Hash     { return f.hash }
func (f *file) Mode() filemode.FileMode { return f.mode }
func (f *file) Path() string            { return f.path }

type chunk struct {
	content string
	op      fdiff.Operation
}

func (c chunk) Content() string       { return c.content }
func (c chunk) Type() fdiff.Operation { return c.op }
