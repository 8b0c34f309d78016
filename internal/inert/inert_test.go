package inert_test

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"strings"
	"testing"

	"github.com/hissuno/widgetauth/internal/inert"
	"github.com/hissuno/widgetauth/internal/stack/stacktest"
)

func TestInert(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
	}{
		{name: "plain text stays", in: "user-42 https://shop.example", want: "user-42 https://shop.example"},
		{name: "letters of every script stay", in: "Zoë 東京 مرحبا", want: "Zoë 東京 مرحبا"},
		{name: "empty stays", in: "", want: ""},
		{name: "the fake row of the issue", in: stacktest.HostileUserID, want: `x\n2026-12-02 00:00:00.000  proj_demo  accept … authenticated  ceo …\x1b[31m`},
		{name: "clear screen", in: "ops\n\x1b[2J", want: `ops\n\x1b[2J`},
		{name: "CR and tab", in: "a\rb\tc", want: `a\rb\tc`},
		{name: "NUL and DEL", in: "\x00\x7f", want: `\x00\x7f`},
		{name: "C1 CSI", in: "\u009b31m", want: `\u009b31m`},
		{name: "bidi override", in: "abc\u202eevil", want: `abc\u202eevil`},
		{name: "every bidi control", in: "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069",
			want: `\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069`},
		{name: "line and paragraph separators", in: "a\u2028b\u2029", want: `a\u2028b\u2029`},
		{name: "not UTF-8", in: "a\xffb\xc3", want: `a\xffb\xc3`},
		{name: "backslash doubled, so no escape is forged", in: `x\n`, want: `x\\n`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := inert.Text(tt.in)
			if got != tt.want {
				t.Errorf("inert.Text(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if r, ok := inert.Raw(got); ok {
				t.Errorf("inert.Text(%q) = %q holds %q raw", tt.in, got, r)
			}
		})
	}
}

func TestInertJSONAndCSV(t *testing.T) {
	t.Parallel()
	for _, v := range append(stacktest.HostileValues, "plain", "", " leading space", `quote " and , comma`, `\.`) {
		t.Run(inert.Text(v), func(t *testing.T) {
			t.Parallel()
			var jb bytes.Buffer
			if err := (inert.JSONWriter{W: &jb}).Write(map[string]string{v: v}); err != nil {
				t.Fatal(err)
			}
			line := strings.TrimSuffix(jb.String(), "\n")
			if strings.Contains(line, "\n") {
				t.Errorf("inert.JSON of %q is not one line: %q", v, line)
			}
			if r, ok := inert.Raw(line); ok {
				t.Errorf("inert.JSON of %q holds %q raw: %q", v, r, line)
			}
			var back map[string]string
			if err := json.Unmarshal([]byte(line), &back); err != nil || len(back) != 1 || back[v] != v {
				t.Errorf("inert.JSON %q decodes to %q (%v), want %q", line, back, err, v)
			}

			var cb bytes.Buffer
			cw := inert.NewCSVWriter(&cb)
			cw.Write("before", v, "after")
			if err := cw.Flush(); err != nil {
				t.Fatal(err)
			}
			recs, err := csv.NewReader(bytes.NewReader(cb.Bytes())).ReadAll()
			if err != nil || len(recs) != 1 || len(recs[0]) != 3 || recs[0][1] != v {
				t.Errorf("CSV %q reads back as %q (%v), want %q", cb.String(), recs, err, v)
			}
			if _, ok := inert.Raw(v); ok && !strings.Contains(cb.String(), `,"`) {
				t.Errorf("CSV of %q leaves it unquoted: %q", v, cb.String())
			}
		})
	}
}
