package scale

import (
	"strconv"
	"strings"
	"testing"
)

func TestLocateAndSet(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		resource string
		current  int
		set      int
		want     string // "" : in with the marked number replaced
		err      string
	}{
		{
			name: "one document, comments everywhere",
			in: `# checkout — prod
apiVersion: apps/v1
kind: Deployment
metadata:
  name: checkout   # the API
spec:
  # how many
  replicas: «3»    # keep ≥ 3 in prod
  selector: {matchLabels: {app: checkout}}
`,
			current: 3, set: 12,
		},
		{
			name: "several documents, the second one named",
			in: `apiVersion: v1
kind: Service
metadata: {name: checkout}
spec:
  ports: [{port: 80}]
---
# the workers
apiVersion: apps/v1
kind: Deployment
metadata:
  name: checkout-worker
spec:
  replicas: 2
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: checkout
spec:
    replicas:   «10»
    template: {}
`,
			resource: "Deployment/checkout", current: 10, set: 4,
		},
		{
			name:     "kind matched case-insensitively",
			in:       "kind: StatefulSet\nmetadata: {name: db}\nspec: {serviceName: db, replicas: «1»}\n",
			resource: "statefulset/db", current: 1, set: 2,
		},
		{
			name:    "multibyte characters before the value on its line",
			in:      "kind: Deployment\nmetadata: {name: ü}\nspec: {name: \"ñandú\", replicas: «5»}\n",
			current: 5, set: 6,
		},
		{
			name:    "CRLF line ends",
			in:      "kind: Deployment\r\nmetadata:\r\n  name: a\r\nspec:\r\n  replicas: «2»\r\n  paused: false\r\n",
			current: 2, set: 3,
		},
		{
			name:    "no replicas: a line goes in before spec's first key",
			in:      "kind: Deployment\nmetadata:\n  name: a\nspec:\n  # pods\n  template: {}\n",
			current: 1, set: 4,
			want: "kind: Deployment\nmetadata:\n  name: a\nspec:\n  # pods\n  replicas: 4\n  template: {}\n",
		},
		{
			name: "several documents, none named",
			in:   "kind: Service\nmetadata: {name: a}\n---\nkind: Deployment\nmetadata: {name: a}\nspec: {replicas: 1}\n",
			err:  `holds 2 resources (Service/a, Deployment/a): name one with resource: "Kind/name"`,
		},
		{
			name:     "resource not in the file",
			in:       "kind: Deployment\nmetadata: {name: a}\nspec: {replicas: 1}\n",
			resource: "Deployment/b",
			err:      "has no Deployment/b (it holds Deployment/a)",
		},
		{
			name: "quoted replicas",
			in:   "kind: Deployment\nmetadata: {name: a}\nspec:\n  replicas: \"3\"\n",
			err:  "spec.replicas at line 4 is not an integer",
		},
		{
			name: "alias",
			in:   "kind: Deployment\nmetadata: {name: a}\nx: &n 3\nspec:\n  replicas: *n\n",
			err:  "is not an integer",
		},
		{
			name: "tagged",
			in:   "kind: Deployment\nmetadata: {name: a}\nspec:\n  replicas: !!int 3\n",
			err:  "written in a form firebreak does not edit",
		},
		{
			name: "not YAML",
			in:   "kind: [\n",
			err:  "not valid YAML",
		},
		{
			name: "no spec",
			in:   "kind: ConfigMap\nmetadata: {name: a}\ndata: {}\n",
			err:  "ConfigMap/a has no spec mapping",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := strings.NewReplacer("«", "", "»", "").Replace(tt.in)
			r, err := locate([]byte(in), tt.resource)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v; want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.current != tt.current {
				t.Errorf("current = %d, want %d", r.current, tt.current)
			}
			want := tt.want
			if want == "" {
				// Only the marked number changes.
				i := strings.LastIndex(tt.in, "«")
				j := strings.LastIndex(tt.in, "»")
				want = strings.NewReplacer("«", "", "»", "").Replace(tt.in[:i] + strconv.Itoa(tt.set) + tt.in[j+len("»"):])
			}
			if got := string(r.set([]byte(in), tt.set)); got != want {
				t.Errorf("set(%d) =\n%s\nwant\n%s", tt.set, got, want)
			}
		})
	}
}
