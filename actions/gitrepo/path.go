package gitrepo

import (
	"errors"
	"fmt"
	"path"
	"strings"
)

// ErrBadPath marks a path that does not name a place inside the
// repository: absolute, climbing out with "..", empty, or into .git.
var ErrBadPath = errors.New("not a relative path inside the repository")

// CleanPath returns p cleaned, or an error wrapping ErrBadPath when p is
// absolute, has a ".." element, names the repository root, or reaches into
// a .git directory. Every path a Tx takes goes through it.
func CleanPath(p string) (string, error) {
	bad := func(why string) (string, error) {
		return "", fmt.Errorf("path %q: %w (%s)", p, ErrBadPath, why)
	}
	switch {
	case p == "":
		return bad("empty")
	case strings.ContainsRune(p, 0):
		return bad("NUL byte")
	case strings.HasPrefix(p, "/"):
		return bad("absolute")
	case strings.Contains(p, `\`):
		return bad("backslash")
	}
	for _, elem := range strings.Split(p, "/") {
		switch {
		case elem == "..":
			return bad(`has a ".." element`)
		case strings.EqualFold(elem, ".git"):
			return bad("reaches into .git")
		}
	}
	clean := path.Clean(p)
	if clean == "." {
		return bad("names the repository root")
	}
	return clean, nil
}
