package secrets

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestGetFromEnvAndDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "FROM_FILE"), []byte("file-value\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("FIREBREAK_SECRET_FROM_ENV", "env-value")
	t.Setenv("FIREBREAK_SECRET_BOTH", "env-wins")
	if err := os.WriteFile(filepath.Join(dir, "BOTH"), []byte("file-loses"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := New(dir)
	for name, want := range map[string]string{"FROM_ENV": "env-value", "FROM_FILE": "file-value", "BOTH": "env-wins"} {
		got, err := s.Get(name)
		if err != nil || got != want {
			t.Errorf("Get(%s) = %q, %v; want %q", name, got, err, want)
		}
	}
	_, err := s.Get("MISSING")
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "FIREBREAK_SECRET_MISSING") {
		t.Errorf("missing secret: %v", err)
	}
	if _, err := s.Get("../etc/passwd"); err == nil {
		t.Error("a path as secret name was accepted")
	}
}

func TestRedact(t *testing.T) {
	s := NewFromMap(map[string]string{"TOKEN": "ghp_abc123", "LONG": "ghp_abc123-and-more", "SHORT": "x1"})
	for _, n := range []string{"TOKEN", "LONG", "SHORT"} {
		if _, err := s.Get(n); err != nil {
			t.Fatal(err)
		}
	}
	got := s.Redact("push https://oauth2:ghp_abc123@git/x: ghp_abc123-and-more x1")
	want := "push https://oauth2:[redacted TOKEN]@git/x: [redacted LONG] [redacted SHORT]"
	if got != want {
		t.Errorf("Redact = %q, want %q", got, want)
	}
	base := errors.New("boom")
	err := s.RedactError(fmt.Errorf("auth with ghp_abc123: %w", base))
	if strings.Contains(err.Error(), "ghp_abc123") || !errors.Is(err, base) {
		t.Errorf("RedactError = %v", err)
	}
}

func TestHandlerRedacts(t *testing.T) {
	s := NewFromMap(map[string]string{"TOKEN": "s3cr3t-value"})
	if _, err := s.Get("TOKEN"); err != nil {
		t.Fatal(err)
	}
	var buf strings.Builder
	log := slog.New(Handler(slog.NewTextHandler(&buf, nil), s))
	log = log.With("url", "https://x:s3cr3t-value@h")
	log.Info("pushing with s3cr3t-value", "err", errors.New("auth s3cr3t-value failed"), slog.Group("g", "k", "s3cr3t-value"), "n", 3)
	out := buf.String()
	if strings.Contains(out, "s3cr3t-value") {
		t.Fatalf("secret in log: %s", out)
	}
	for _, want := range []string{"pushing with [redacted TOKEN]", "auth [redacted TOKEN] failed", "g.k=\"[redacted TOKEN]\"", "n=3"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q: %s", want, out)
		}
	}
}

// BenchmarkRedactParallel: every log line of every run goes through
// Redact at once; it must not serialize them.
func BenchmarkRedactParallel(b *testing.B) {
	s := NewFromMap(map[string]string{"A": "ghp_abc123", "B": "xoxb-1-2-3", "C": "s3cr3t"})
	for _, n := range []string{"A", "B", "C"} {
		if _, err := s.Get(n); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if s.Redact("step succeeded: notified channel hook of incident 2026-11-21-chatty-api") == "" {
				b.Fatal("empty")
			}
		}
	})
}
