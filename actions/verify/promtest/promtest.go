// Package promtest runs a real Prometheus (the Debian package) on a free
// loopback port for tests.
package promtest

import (
	"bytes"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Binary is where the Debian package prometheus installs it.
const Binary = "/usr/bin/prometheus"

// Start runs a real Prometheus on a free loopback port with a
// temporary storage directory and a recording rule firebreak_test_constant
// = 1, evaluated every second, and returns its URL once it is ready.
func Start(t testing.TB) string {
	t.Helper()
	if _, err := os.Stat(Binary); err != nil {
		t.Fatalf("%s is missing: install the Debian package with `apt-get install -y prometheus` (CI installs it): %v", Binary, err)
	}
	dir := t.TempDir()
	write := func(name, data string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("prometheus.yml", "global:\n  evaluation_interval: 1s\nrule_files: [rules.yml]\n")
	write("rules.yml", `groups:
  - name: firebreak_test
    interval: 1s
    rules:
      - record: firebreak_test_constant
        expr: vector(1)
`)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	var output bytes.Buffer
	cmd := exec.Command(Binary,
		"--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
	)
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Start(); err != nil {
		t.Fatalf("start prometheus: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})

	base := "http://" + addr
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-exited:
			t.Fatalf("prometheus exited (%v) before it was ready:\n%s", err, output.String())
		default:
		}
		resp, err := http.Get(base + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready at %s after 60s:\n%s", base, output.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
