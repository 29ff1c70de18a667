package main

import (
	"context"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/firebreak-dev/firebreak/actions/secrets"
	"github.com/firebreak-dev/firebreak/engine/respond"
	"github.com/firebreak-dev/firebreak/engine/serve"
)

type serveOptions struct {
	listen        string
	stateDir      string
	insecure      bool
	workers       int
	maxRuns       int
	maxBody       int64
	maxPending    int
	poll          time.Duration
	grace         time.Duration
	grafanaHeader string
	engine        engineFlags
}

func newServeCmd(g *globalOptions) *cobra.Command {
	opts := &serveOptions{}
	cmd := &cobra.Command{
		Use:   "serve [DIR] [--listen ADDR]",
		Short: "Run the webhook server: alerts in, incidents handled and recorded",
		Long: `Serve takes alerts over HTTP and handles them as 'firebreak run' does, in the
background, recording every incident in the playbook repository (DIR, or
--repo URL).

  POST /v1/alerts/alertmanager  Alertmanager webhook (version 4)   bearer token
  POST /v1/alerts/grafana       Grafana alerting webhook           bearer token, or HMAC
  POST /v1/alerts/pagerduty     PagerDuty V3 webhook               X-PagerDuty-Signature
  POST /v1/alerts               normalized alerts (JSON)           bearer token
  POST /v1/github               issue_comment (/approve, /deny),   X-Hub-Signature-256
                                push (reload the playbooks)
  GET  /v1/incidents[/ID]       the incident log                   bearer token
  GET  /healthz /readyz /metrics

An alert request is answered 202 only once its alerts are written to the
journal in --state-dir (synced to disk): a crash after that loses nothing,
since the next start handles what the journal holds and resumes the
incidents the repository records as unfinished. Trouble recording answers
5xx (Alertmanager sends again); too much waiting work answers 503 with
Retry-After. Repeats of a firing alert join its open incident.

The incident log is kept in memory ahead of the repository: an incident's
steps start as soon as its alerts are handled, and its record follows in the
next commit, which takes every change made since the last one (in a storm,
one commit for hundreds of changes). An entry leaves the journal only once
what it did is committed.

Secrets, by name (FIREBREAK_SECRET_<NAME> or --secrets-dir): API_TOKEN (the
bearer token), GITHUB_WEBHOOK_SECRET, PAGERDUTY_WEBHOOK_SECRET,
GRAFANA_WEBHOOK_SECRET (optional). Without API_TOKEN the server refuses to
start unless --insecure. Every flag can also be set as FIREBREAK_<FLAG>
(FIREBREAK_LISTEN, FIREBREAK_STATE_DIR, ...). Logs are JSON on stderr.`,
		Example: `  FIREBREAK_SECRET_API_TOKEN=s3cret firebreak serve ./ops --listen :8080
  firebreak serve --repo https://github.com/acme/ops.git --poll 30s`,
		Args: maxOneDir,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := flagsFromEnv(cmd.Flags()); err != nil {
				return err
			}
			return runServe(cmd, g, args, opts)
		},
	}
	cmd.Flags().StringVar(&opts.listen, "listen", ":8080", "address to listen on")
	cmd.Flags().StringVar(&opts.stateDir, "state-dir", "", "where the journal of accepted alerts is kept (default: the user state dir)")
	cmd.Flags().BoolVar(&opts.insecure, "insecure", false, "start without an API token: anyone can send alerts")
	cmd.Flags().IntVar(&opts.workers, "workers", 4, "queued alert requests handled at once (a request is handled by itself when none wait)")
	cmd.Flags().IntVar(&opts.maxRuns, "max-runs", respond.DefaultMaxRuns, "runs of one playbook's steps going on at once")
	cmd.Flags().Int64Var(&opts.maxBody, "max-body", 10<<20, "largest request body accepted, in bytes")
	cmd.Flags().IntVar(&opts.maxPending, "max-pending", 10_000, "accepted requests waiting to be handled before 503s")
	cmd.Flags().DurationVar(&opts.poll, "poll", 0, "reload the playbooks this often (e.g. 30s); 0: only on a push webhook")
	cmd.Flags().DurationVar(&opts.grace, "grace", 30*time.Second, "on SIGTERM, how long in-flight work may take to finish")
	cmd.Flags().StringVar(&opts.grafanaHeader, "grafana-signature-header", "X-Grafana-Alerting-Signature", "header of Grafana's HMAC signature, when GRAFANA_WEBHOOK_SECRET is set")
	opts.engine.register(cmd)
	return cmd
}

func runServe(cmd *cobra.Command, g *globalOptions, args []string, opts *serveOptions) error {
	// The one-shot commands trade memory for speed (GOGC=400, see Main); a
	// server runs for months next to other processes: the default again
	// (a storm peaked at 166 MB instead of 360 MB), unless GOGC says.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(100)
	}
	sec := secrets.New(opts.engine.secretsDir)
	log := slog.New(secrets.Handler(slog.NewJSONHandler(cmd.ErrOrStderr(), nil), sec))
	secret := func(name string) []byte {
		v, err := sec.Get(name)
		if err != nil {
			return nil
		}
		return []byte(v)
	}
	if opts.stateDir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			base = os.TempDir()
		}
		opts.stateDir = filepath.Join(base, "firebreak", "state")
	}
	journal, err := serve.OpenJournal(filepath.Join(opts.stateDir, "journal"))
	if err != nil {
		return err
	}

	dir, err := g.dir(cmd, args)
	if err != nil {
		return err
	}
	w := newWiring(cmd, &opts.engine)
	w.log = log
	l, err := w.ledger(g, dir)
	if err != nil {
		return err
	}
	branch, _, err := head(dir)
	if err != nil {
		return err
	}
	first := true
	// One log and one set of run slots for every playbook set loaded.
	var rec *respond.Recorder
	slots := respond.NewRunSlots(opts.maxRuns)
	load := func(ctx context.Context) (*respond.Engine, error) {
		d := dir
		if g.repoURL != "" && !first {
			// A fresh clone: what the remote holds now.
			if d, err = g.dir(cmd, nil); err != nil {
				return nil, err
			}
		}
		first = false
		e, err := w.engine(cmd, d, l, true)
		if err != nil {
			return nil, err
		}
		// Compile every playbook's plan before the set goes live, so the
		// first alert of each playbook does not wait on CUE.
		if err := e.Planner.Warm(); err != nil {
			return nil, err
		}
		if rec == nil {
			if rec, err = respond.NewRecorder(ctx, l, e.Repo.Config.Paths.Incidents, log); err != nil {
				return nil, err
			}
		}
		e.Recorder, e.RunSlots = rec, slots
		return e, nil
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv, err := serve.New(ctx, serve.Config{
		Journal: journal, Load: load,
		APIToken: secret("API_TOKEN"), GitHubSecret: secret("GITHUB_WEBHOOK_SECRET"),
		PagerDutySecret: secret("PAGERDUTY_WEBHOOK_SECRET"),
		GrafanaSecret:   secret("GRAFANA_WEBHOOK_SECRET"), GrafanaHeader: opts.grafanaHeader,
		Insecure: opts.insecure, MaxBody: opts.maxBody, MaxPending: opts.maxPending,
		Workers: opts.workers, Branch: branch, Poll: opts.poll, Log: log,
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", opts.listen)
	if err != nil {
		return err
	}
	log.Info("firebreak serve listening", "addr", ln.Addr().String(), "journal", filepath.Join(opts.stateDir, "journal"), "insecure", opts.insecure)
	return srv.Serve(ctx, ln, opts.grace)
}

// flagsFromEnv sets every flag not given on the command line from
// FIREBREAK_<FLAG>, the flag's name upper-cased with dashes as underscores.
func flagsFromEnv(fs *pflag.FlagSet) error {
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed || err != nil {
			return
		}
		name := "FIREBREAK_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(name); ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = usagef("%s=%q: %v", name, v, e)
			}
		}
	})
	return err
}
