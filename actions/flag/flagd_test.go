package flag

import (
	"errors"
	"strings"
	"testing"
)

func TestSetDefault(t *testing.T) {
	tests := []struct {
		name, in, key, to string
		want              string // "" : unchanged
		err               error
		errText           string
	}{
		{
			name: "both values change in place",
			in: `{
    "$schema": "https://flagd.dev/schema/v0/flags.json",
    "flags": {
        "new-checkout": {
            "state": "DISABLED",
            "variants": { "on": true, "off": false },
            "defaultVariant": "on",
            "targeting": {"if": [{"in": ["@acme.com", {"var": "email"}]}, "on", null]}
        }
    }
}
`,
			key: "new-checkout", to: "off",
			want: `{
    "$schema": "https://flagd.dev/schema/v0/flags.json",
    "flags": {
        "new-checkout": {
            "state": "ENABLED",
            "variants": { "on": true, "off": false },
            "defaultVariant": "off",
            "targeting": {"if": [{"in": ["@acme.com", {"var": "email"}]}, "on", null]}
        }
    }
}
`,
		},
		{
			name: "already so",
			in:   `{"flags": {"f": {"state": "ENABLED", "variants": {"a": 1, "b": 2}, "defaultVariant": "b"}}}`,
			key:  "f", to: "b",
		},
		{
			name: "missing state goes in after the last member, as laid out",
			in:   "{\n\t\"flags\": {\n\t\t\"f\": {\n\t\t\t\"variants\": {\"a\": \"x\", \"b\": \"y\"},\n\t\t\t\"defaultVariant\": \"a\"\n\t\t}\n\t}\n}",
			key:  "f", to: "b",
			want: "{\n\t\"flags\": {\n\t\t\"f\": {\n\t\t\t\"variants\": {\"a\": \"x\", \"b\": \"y\"},\n\t\t\t\"defaultVariant\": \"b\",\n\t\t\t\"state\": \"ENABLED\"\n\t\t}\n\t}\n}",
		},
		{
			name: "inline flag object, CRLF elsewhere",
			in:   "{\r\n  \"flags\": {\r\n    \"f\": {\"variants\": {\"on\": true, \"off\": false}, \"defaultVariant\":\"on\"},\r\n    \"g\": {\"state\": \"ENABLED\", \"variants\": {\"x\": 1}, \"defaultVariant\": \"x\"}\r\n  }\r\n}\r\n",
			key:  "f", to: "off",
			want: "{\r\n  \"flags\": {\r\n    \"f\": {\"variants\": {\"on\": true, \"off\": false}, \"defaultVariant\":\"off\", \"state\":\"ENABLED\"},\r\n    \"g\": {\"state\": \"ENABLED\", \"variants\": {\"x\": 1}, \"defaultVariant\": \"x\"}\r\n  }\r\n}\r\n",
		},
		{
			name: "keys with escapes and HTML characters are kept",
			in:   `{"flags": {"a\u002fb": {"state": "DISABLED", "variants": {"<on>": true, "off": false}, "defaultVariant": "off", "metadata": {"note": "\u00e9 & <b>"}}}}`,
			key:  "a/b", to: "<on>",
			want: `{"flags": {"a\u002fb": {"state": "ENABLED", "variants": {"<on>": true, "off": false}, "defaultVariant": "<on>", "metadata": {"note": "\u00e9 & <b>"}}}}`,
		},
		{
			name: "null default variant",
			in:   `{"flags": {"f": {"state": "ENABLED", "variants": {"on": true}, "defaultVariant": null}}}`,
			key:  "f", to: "on",
			want: `{"flags": {"f": {"state": "ENABLED", "variants": {"on": true}, "defaultVariant": "on"}}}`,
		},
		{
			name: "unknown variant",
			in:   `{"flags": {"f": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "on"}}}`,
			key:  "f", to: "of",
			err: errNoVariant, errText: `flag "f" has no variant "of" (it has "off", "on")`,
		},
		{
			name: "unknown flag",
			in:   `{"flags": {"f": {"state": "ENABLED", "variants": {"on": true}, "defaultVariant": "on"}}}`,
			key:  "checkout-v2", to: "on",
			err: errNoFlag, errText: `no such flag "checkout-v2" (the file defines "f")`,
		},
		{name: "not JSON", in: `{"flags": `, key: "f", to: "on", errText: "not a valid JSON object"},
		{name: "no flags", in: `{"flag": {}}`, key: "f", to: "on", errText: `has no "flags" object`},
		{name: "duplicate key", in: `{"flags": {"f": {"variants": {"on": true}, "state": "ENABLED", "state": "DISABLED"}}}`, key: "f", to: "on", errText: `key "state" appears twice`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, changed, err := setDefault([]byte(tt.in), tt.key, tt.to)
			if tt.errText != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errText) || (tt.err != nil && !errors.Is(err, tt.err)) {
					t.Fatalf("err = %v; want %v saying %q", err, tt.err, tt.errText)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := tt.want
			if want == "" {
				want = tt.in
			}
			if changed != (tt.want != "") || string(out) != want {
				t.Errorf("setDefault = %v,\n%s\nwant %v,\n%s", changed, out, tt.want != "", want)
			}
		})
	}
}
