package main

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"text/template"
	"time"

	"github.com/spf13/cobra"

	"github.com/firebreak-dev/firebreak/actions/gitrepo"
	"github.com/firebreak-dev/firebreak/actions/secrets"
	"github.com/firebreak-dev/firebreak/engine/ledger"
	"github.com/firebreak-dev/firebreak/engine/playtest"
	"github.com/firebreak-dev/firebreak/engine/run"
	"github.com/firebreak-dev/firebreak/schema"
)

//go:embed demodata
var demoData embed.FS

func newDemoCmd() *cobra.Command {
	var clean bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the whole loop on embedded defaults in a temporary directory",
		Long: `Demo runs firebreak's whole loop with no accounts and no network beyond
loopback, in a temporary directory it leaves for you to explore:

  a GitOps config repository (deploy manifests with a bad deploy on top,
  a flagd flag file) served by a git server on 127.0.0.1, and a webhook
  standing in for Slack;
  a playbook repository (firebreak.cue, a playbook, its tests), validated
  and tested;
  a sample alert: the incident opens, the playbook pages, rolls the deploy
  back, doubles the workers and turns a flag off — real commits pushed to
  the config repository — and every step is recorded in the incident file;
  the alert resolves: the incident resolves and its postmortem is drafted
  on the branch postmortem/<id>.

It ends with where each result is and the commands to look at them.
--clean removes the directory afterwards.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd, clean)
		},
	}
	cmd.Flags().BoolVar(&clean, "clean", false, "remove the temporary directory afterwards")
	return cmd
}

const demoManifest = `# checkout-worker: consumes the order queue
apiVersion: apps/v1
kind: Deployment
metadata:
  name: checkout-worker
spec:
  replicas: 3 # firebreak scales this when checkout is in trouble
  template: {}
`

const demoFlags = `{
  "$schema": "https://flagd.dev/schema/v0/flags.json",
  "flags": {
    "new-checkout": {
      "state": "ENABLED",
      "variants": {"on": true, "off": false},
      "defaultVariant": "on"
    }
  }
}
`

func runDemo(cmd *cobra.Command, clean bool) error {
	out := cmd.OutOrStdout()
	start := time.Now()
	root, err := os.MkdirTemp("", "firebreak-demo-")
	if err != nil {
		return err
	}
	if clean {
		defer os.RemoveAll(root)
	}
	ops, gitRoot := filepath.Join(root, "ops"), filepath.Join(root, "git")
	for _, d := range []string{ops, gitRoot} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}

	// The config repository, on a real git server on loopback.
	srv, err := startGitServer(gitRoot)
	if err != nil {
		return err
	}
	defer srv.Close()
	err = srv.createRepo("shop-deploy", []demoCommit{
		{"checkout-api v1", map[string]string{
			"apps/checkout-api/deployment.yaml":    "image: registry.example.com/checkout-api:v1\n",
			"apps/checkout-worker/deployment.yaml": demoManifest,
			"flags/shop.flagd.json":                demoFlags,
		}},
		{"checkout-api v2: new payment client", map[string]string{
			"apps/checkout-api/deployment.yaml": "image: registry.example.com/checkout-api:v2\n",
		}},
	})
	if err != nil {
		return err
	}
	hook, err := startHook()
	if err != nil {
		return err
	}
	defer hook.Close()
	fmt.Fprintf(out, "1. config repository %s served at %s (bare: %s)\n", "shop-deploy", srv.repoURL("shop-deploy"), filepath.Join(gitRoot, "shop-deploy.git"))

	// The playbook repository.
	if err := writeDemoRepo(ops, srv.repoURL("shop-deploy"), hook.url); err != nil {
		return err
	}
	if err := srv.run(ops, "init", "--quiet", "-b", "main"); err != nil {
		return err
	}
	if err := srv.run(ops, "add", "."); err != nil {
		return err
	}
	if err := srv.run(ops, "-c", "user.name=firebreak demo", "-c", "user.email=demo@localhost", "commit", "--quiet", "-m", "playbooks"); err != nil {
		return err
	}
	fmt.Fprintf(out, "2. playbook repository %s\n", ops)

	sec := secrets.NewFromMap(nil)
	quiet := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	w := &wiring{sec: sec, log: quiet, store: gitrepo.NewStore(filepath.Join(root, "cache"), quiet)}
	l, err := ledger.OpenLocal(ops, ledger.Options{AuthorName: "firebreak", AuthorEmail: "firebreak@localhost"})
	if err != nil {
		return err
	}
	defer l.Close()
	e, err := w.engine(cmd, ops, l, true)
	if err != nil {
		return err
	}
	passed, failed := 0, 0
	for _, res := range playtest.Run(e.Planner, e.Repo, nil) {
		if res.Passed {
			passed++
		} else {
			failed++
		}
	}
	fmt.Fprintf(out, "3. validate: %d playbook, no problems; test: %d passed, %d failed\n", len(e.Repo.Playbooks), passed, failed)
	if failed > 0 {
		return errSilent
	}

	firing := schema.Alert{
		Source: "alertmanager", Status: "firing", Fingerprint: "demo-checkout-api",
		Labels:      map[string]string{"alertname": "CheckoutErrors", "deployment": "checkout-api", "severity": "critical"},
		Annotations: map[string]string{"summary": "5xx ratio above 5% for 5m"},
		StartsAt:    time.Now().UTC().Add(-2 * time.Minute), ReceivedAt: time.Now().UTC(),
	}
	fmt.Fprintln(out, "4. alert CheckoutErrors{deployment=\"checkout-api\"} fires:")
	outcomes, err := e.Handle(cmd.Context(), []schema.Alert{firing})
	if err != nil {
		return err
	}
	if len(outcomes) != 1 || outcomes[0].Result == nil {
		return fmt.Errorf("the demo alert was not handled: %+v", outcomes)
	}
	o := outcomes[0]
	fmt.Fprintf(out, "   incident %s %s, run %s\n", o.Incident, o.What, o.Result.Status)
	printStepResults(out, "   ", o.Result.Steps)
	if o.Result.Status != run.RunSucceeded {
		return errSilent
	}
	fmt.Fprintf(out, "   the webhook standing in for Slack got: %q\n", hook.texts())

	resolved := firing
	resolved.Status, resolved.EndsAt = "resolved", time.Now().UTC()
	if _, err := e.Handle(cmd.Context(), []schema.Alert{resolved}); err != nil {
		return err
	}
	in, err := e.Get(cmd.Context(), o.Incident)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "5. the alert resolves: incident %s %s; postmortem drafted on branch postmortem/%s\n", in.ID, in.Status, in.ID)

	clone := filepath.Join(root, "shop-deploy")
	if err := srv.run("", "clone", "--quiet", filepath.Join(gitRoot, "shop-deploy.git"), clone); err != nil {
		return err
	}
	fmt.Fprintf(out, "\nDone in %s. Look at the results:\n", time.Since(start).Round(100*time.Millisecond))
	fmt.Fprintf(out, "  git -C %s log --stat   # the rollback, scale and flag commits, in a clone of the config repository\n", clone)
	fmt.Fprintf(out, "  git -C %s log --oneline   # one commit per state change of the incident\n", ops)
	fmt.Fprintf(out, "  firebreak incidents %s\n", ops)
	fmt.Fprintf(out, "  firebreak incidents show %s %s\n", in.ID, ops)
	fmt.Fprintf(out, "  git -C %s show postmortem/%s:postmortems/%s.md\n", ops, in.ID, in.ID)
	fmt.Fprintf(out, "  firebreak stats %s\n", ops)
	if clean {
		fmt.Fprintln(out, "  (--clean: the directory is removed now; run without it to keep it)")
	}
	return nil
}

// writeDemoRepo writes the embedded playbook repository into dir, its
// firebreak.cue pointing at the demo's git server and webhook.
func writeDemoRepo(dir, gitURL, hookURL string) error {
	sub, err := fs.Sub(demoData, "demodata")
	if err != nil {
		return err
	}
	return fs.WalkDir(sub, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(sub, p)
		if err != nil {
			return err
		}
		if name, ok := strings.CutSuffix(p, ".tmpl"); ok {
			var b bytes.Buffer
			t := template.Must(template.New(p).Parse(string(data)))
			if err := t.Execute(&b, map[string]string{"GitURL": gitURL, "HookURL": hookURL}); err != nil {
				return err
			}
			p, data = name, b.Bytes()
		}
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		return os.WriteFile(full, data, 0o644)
	})
}

// demoHook is the webhook standing in for Slack: it keeps what it gets.
type demoHook struct {
	url string
	srv *http.Server
	mu  sync.Mutex
	got []string
}

func startHook() (*demoHook, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	h := &demoHook{url: "http://" + ln.Addr().String() + "/hook"}
	h.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Text string `json:"text"`
		}
		data, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		_ = json.Unmarshal(data, &body)
		h.mu.Lock()
		h.got = append(h.got, body.Text)
		h.mu.Unlock()
	})}
	go h.srv.Serve(ln)
	return h, nil
}

func (h *demoHook) texts() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.got...)
}

func (h *demoHook) Close() { h.srv.Close() }
