// Package scaffold writes a new playbook repository: firebreak.cue, two
// playbooks of the shipped library with their tests, and the GitHub
// workflows that validate, test and replay them on pull requests, respond to
// alerts and report stats (using the action in action.yml).
package scaffold

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"

	"github.com/firebreak-dev/firebreak/playbooks"
)

//go:embed all:template
var template embed.FS

// Starters are the library playbooks a new repository begins with.
var Starters = []string{"checkout_crashloop", "checkout_5xx_flag_off"}

// Files returns the scaffold's files by slash-separated path.
func Files() (map[string][]byte, error) {
	files := map[string][]byte{}
	err := fs.WalkDir(template, "template", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := template.ReadFile(p)
		files[p[len("template/"):]] = data
		return err
	})
	if err != nil {
		return nil, err
	}
	for _, name := range Starters {
		for _, p := range []string{name + ".cue", "tests/" + name + ".cue"} {
			data, err := playbooks.Files.ReadFile(p)
			if err != nil {
				return nil, err
			}
			files[path.Join("playbooks", p)] = data
		}
	}
	for _, keep := range []string{"incidents/.gitkeep", "postmortems/.gitkeep"} {
		files[keep] = nil
	}
	return files, nil
}

// Write writes the scaffold into dir and returns the paths written, in
// order. It refuses to overwrite an existing file unless force is set, and
// then writes nothing at all.
func Write(dir string, force bool) ([]string, error) {
	files, err := Files()
	if err != nil {
		return nil, err
	}
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	if !force {
		for _, p := range paths {
			if _, err := os.Stat(filepath.Join(dir, p)); err == nil {
				return nil, fmt.Errorf("%s already exists (use --force to overwrite)", filepath.Join(dir, p))
			} else if !errors.Is(err, fs.ErrNotExist) {
				return nil, err
			}
		}
	}
	for _, p := range paths {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(full, files[p], 0o644); err != nil {
			return nil, err
		}
	}
	return paths, nil
}
