package cli

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// hostileProjectID is a projectId (at most 64 bytes) that would forge a row
// and colour the terminal.
const hostileProjectID = "x\nproj_demo  accept  authenticated  ceo\u001b[31m\u202e"

// hostileUserID draws a fake "authenticated ceo" row on a terminal that
// prints it raw, and turns the rest of the screen red.
const hostileUserID = "x\n2026-12-02 00:00:00.000  proj_demo  accept … authenticated  ceo …\u001b[31m"

// hostileValues are strings a client can get into the audit.
var hostileValues = []string{
	hostileUserID,
	"ops\n\x1b[2J",
	"\x1b[31mred\u202eevil",
	"a\rb",
	"tab\there",
	"del\x7f",
	"nul\x00",
	"csi\u009b31m",
	"bidi \u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069",
	"line\u2028para\u2029",
	`back\slash \n`,
}

// raw reports the first byte or rune of s a terminal must not get raw.
func raw(s string) (string, bool) {
	for i, r := range s {
		if r == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD") {
			return s[i : i+1], true
		}
		if needsEscape(r) {
			return string(r), true
		}
	}
	return "", false
}

func TestInert(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
	}{
		{name: "plain text stays", in: "user-42 https://shop.example", want: "user-42 https://shop.example"},
		{name: "letters of every script stay", in: "Zoë 東京 مرحبا", want: "Zoë 東京 مرحبا"},
		{name: "empty stays", in: "", want: ""},
		{name: "the fake row of the issue", in: hostileUserID, want: `x\n2026-12-02 00:00:00.000  proj_demo  accept … authenticated  ceo …\x1b[31m`},
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
			got := inert(tt.in)
			if got != tt.want {
				t.Errorf("inert(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if r, ok := raw(got); ok {
				t.Errorf("inert(%q) = %q holds %q raw", tt.in, got, r)
			}
		})
	}
}

func TestInertJSONAndCSV(t *testing.T) {
	t.Parallel()
	for _, v := range append(hostileValues, "plain", "", " leading space", `quote " and , comma`, `\.`) {
		t.Run(inert(v), func(t *testing.T) {
			t.Parallel()
			var jb bytes.Buffer
			if err := (jsonWriter{&jb}).write(map[string]string{v: v}); err != nil {
				t.Fatal(err)
			}
			line := strings.TrimSuffix(jb.String(), "\n")
			if strings.Contains(line, "\n") {
				t.Errorf("JSON of %q is not one line: %q", v, line)
			}
			if r, ok := raw(line); ok {
				t.Errorf("JSON of %q holds %q raw: %q", v, r, line)
			}
			var back map[string]string
			if err := json.Unmarshal([]byte(line), &back); err != nil || len(back) != 1 || back[v] != v {
				t.Errorf("JSON %q decodes to %q (%v), want %q", line, back, err, v)
			}

			var cb bytes.Buffer
			cw := newCSVWriter(&cb)
			cw.write("before", v, "after")
			if err := cw.flush(); err != nil {
				t.Fatal(err)
			}
			recs, err := csv.NewReader(bytes.NewReader(cb.Bytes())).ReadAll()
			if err != nil || len(recs) != 1 || len(recs[0]) != 3 || recs[0][1] != v {
				t.Errorf("CSV %q reads back as %q (%v), want %q", cb.String(), recs, err, v)
			}
			if _, ok := raw(v); ok && !strings.Contains(cb.String(), `,"`) {
				t.Errorf("CSV of %q leaves it unquoted: %q", v, cb.String())
			}
		})
	}
}
