package render

import (
	"path/filepath"
	"testing"

	"github.com/firebreak-dev/firebreak/engine/repo"
	"github.com/firebreak-dev/firebreak/schema"
)

// BenchmarkRender renders the shipped playbooks for their test alerts,
// from templates and with CUE.
func BenchmarkRender(b *testing.B) {
	dir, _ := filepath.Abs("../..")
	r, err := repo.Load(dir)
	if err != nil || !r.Valid() {
		b.Fatal(err, r.Diagnostics)
	}
	type job struct {
		pb *repo.Playbook
		a  *schema.Alert
	}
	var jobs []job
	for _, tc := range r.Tests {
		for _, name := range tc.Playbooks {
			for _, pb := range r.Playbooks {
				if pb.Name == name {
					jobs = append(jobs, job{pb, &tc.Alert})
				}
			}
		}
	}
	rd := New(0)
	if err := rd.Warm(r.Playbooks); err != nil {
		b.Fatal(err)
	}
	b.Run("template", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			j := jobs[i%len(jobs)]
			if _, err := rd.Render(j.pb, j.a); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cue", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			j := jobs[i%len(jobs)]
			if _, err := rd.RenderCUE(j.pb, j.a); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkCompile compiles the shipped playbooks to templates.
func BenchmarkCompile(b *testing.B) {
	dir, _ := filepath.Abs("../..")
	r, err := repo.Load(dir)
	if err != nil || !r.Valid() {
		b.Fatal(err, r.Diagnostics)
	}
	b.ReportAllocs()
	for b.Loop() {
		g, err := newGeneration()
		if err != nil {
			b.Fatal(err)
		}
		for _, pb := range r.Playbooks {
			if g.compile(pb) == nil {
				b.Fatalf("%s does not compile", pb.Name)
			}
		}
	}
}
