package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/firebreak-dev/firebreak/actions/gitrepo/gittest"
	"github.com/firebreak-dev/firebreak/playbooks"
)

// TestRemoteRepo runs validate, test and plan on a playbook repository
// named by --repo, served by a real git server that wants a token.
func TestRemoteRepo(t *testing.T) {
	const token = "ghp_remoteREPOtoken123"
	srv := gittest.NewServer(t, gittest.WithToken(token))
	files := map[string]string{}
	root, _ := filepath.Abs("../..")
	cfg, err := os.ReadFile(filepath.Join(root, "firebreak.cue"))
	if err != nil {
		t.Fatal(err)
	}
	files["firebreak.cue"] = string(cfg)
	for _, name := range []string{"checkout_crashloop.cue", "tests/checkout_crashloop.cue"} {
		data, err := playbooks.Files.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		files["playbooks/"+name] = string(data)
	}
	srv.CreateRepo("ops", files)
	t.Setenv("FIREBREAK_SECRET_GITHUB_TOKEN", token)

	for _, args := range [][]string{
		{"validate", "--repo", srv.RepoURL("ops")},
		{"test", "--repo", srv.RepoURL("ops")},
	} {
		var out, errOut bytes.Buffer
		if code := execute(t.Context(), args, &out, &errOut); code != 0 {
			t.Fatalf("%v: exit %d\n%s\n%s", args, code, out.String(), errOut.String())
		}
		if strings.Contains(out.String()+errOut.String(), token) {
			t.Fatalf("token in output")
		}
	}

	var out, errOut bytes.Buffer
	if code := execute(t.Context(), []string{"validate", "--repo", srv.RepoURL("ops"), "."}, &out, &errOut); code != exitUsage {
		t.Errorf("DIR and --repo: exit %d, want 2", code)
	}
	t.Setenv("FIREBREAK_SECRET_GITHUB_TOKEN", "wrong")
	errOut.Reset()
	if code := execute(t.Context(), []string{"validate", "--repo", srv.RepoURL("ops")}, &out, &errOut); code != exitFailure || !strings.Contains(errOut.String(), "clone ") {
		t.Errorf("bad token: exit %d, %s", code, errOut.String())
	}
}
