// Package inert writes what clients sent fit to show. The audit holds a
// userId, a projectId, a reason that can hold line breaks, terminal escape
// sequences and bidi controls; what the CLI prints and the console exports
// of them must be inert, so that no record can draw a fake row or rewrite
// the screen: tables escape them (one line a record), JSON escapes them,
// CSV quotes the fields that hold them.
package inert

import (
	"bufio"
	"encoding/json"
	"io"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// NeedsEscape reports whether r must not reach a terminal raw: C0 controls,
// DEL, C1 controls, the Unicode bidi controls (U+061C, U+200E, U+200F,
// U+202A–U+202E, U+2066–U+2069) and the line and paragraph separators.
func NeedsEscape(r rune) bool {
	switch {
	case r < 0x20, r >= 0x7f && r <= 0x9f:
		return true
	case r == 0x061c, r == 0x200e, r == 0x200f, r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
		return true
	case r == 0x2028, r == 0x2029:
		return true
	}
	return false
}

// Text returns s fit for one cell of a table on a terminal: every rune
// NeedsEscape names, and every byte that is not UTF-8, as a visible escape
// (\n, \r, \t, \x1b, \u202e), and the backslash doubled so that an escape
// cannot be forged either. Text without any of them is returned as it is.
func Text(s string) string {
	i := 0
	for i < len(s) {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == 0x7f || c == '\\' {
				break
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size == 1) || NeedsEscape(r) {
			break
		}
		i += size
	}
	if i == len(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	b.WriteString(s[:i])
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b.WriteString(`\x`)
			b.WriteString(hex2(s[i]))
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x80 && NeedsEscape(r):
			b.WriteString(`\x`)
			b.WriteString(hex2(byte(r)))
		case NeedsEscape(r):
			b.WriteString(`\u`)
			b.WriteString(hex4(r))
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

func hex2(c byte) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[c>>4], digits[c&0xf]})
}

func hex4(r rune) string {
	s := strconv.FormatInt(int64(r), 16)
	return strings.Repeat("0", 4-len(s)) + s
}

// JSON returns encoding/json's output with the runes it leaves raw
// and NeedsEscape names (DEL, C1 and bidi controls) written as \u
// escapes: still valid JSON, decoding to the same strings. Bytes of 0x7f
// and above occur only inside JSON strings, never inside an escape.
func JSON(b []byte) []byte {
	i := 0
	for i < len(b) {
		if b[i] < 0x7f {
			i++
			continue
		}
		r, size := utf8.DecodeRune(b[i:])
		if NeedsEscape(r) {
			break
		}
		i += size
	}
	if i == len(b) {
		return b
	}
	out := make([]byte, 0, len(b)+12)
	out = append(out, b[:i]...)
	for i < len(b) {
		if b[i] < 0x7f {
			out = append(out, b[i])
			i++
			continue
		}
		r, size := utf8.DecodeRune(b[i:])
		if NeedsEscape(r) {
			out = append(out, `\u`...)
			out = append(out, hex4(r)...)
		} else {
			out = append(out, b[i:i+size]...)
		}
		i += size
	}
	return out
}

// JSONWriter writes values as JSON, one a line, inert (JSON).
type JSONWriter struct{ W io.Writer }

// Write writes v and a line break.
func (j JSONWriter) Write(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	b = append(JSON(b), '\n')
	_, err = j.W.Write(b)
	return err
}

// CSVWriter writes CSV that encoding/csv reads back field for field, and
// quotes, besides what encoding/csv's Writer quotes (a comma, a quote, CR
// or LF, a leading space), every field holding a rune Text would escape or
// a byte that is not UTF-8, so that no such field is ever bare. (CSV has no
// escapes: inside quotes the bytes stay as they are; encoding/csv reads a
// quoted CR LF back as LF.)
type CSVWriter struct{ w *bufio.Writer }

// NewCSVWriter writes CSV to w, buffered: Flush at the end.
func NewCSVWriter(w io.Writer) *CSVWriter { return &CSVWriter{w: bufio.NewWriter(w)} }

// Write writes one record.
func (c *CSVWriter) Write(fields ...string) {
	for i, f := range fields {
		if i > 0 {
			c.w.WriteByte(',')
		}
		if !csvNeedsQuotes(f) {
			c.w.WriteString(f)
			continue
		}
		c.w.WriteByte('"')
		c.w.WriteString(strings.ReplaceAll(f, `"`, `""`))
		c.w.WriteByte('"')
	}
	c.w.WriteByte('\n')
}

// Flush writes what is buffered.
func (c *CSVWriter) Flush() error { return c.w.Flush() }

func csvNeedsQuotes(f string) bool {
	if f == "" {
		return false
	}
	if f == `\.` || strings.ContainsAny(f, `,"`) {
		return true
	}
	if r, _ := utf8.DecodeRuneInString(f); unicode.IsSpace(r) {
		return true
	}
	for i, r := range f {
		if NeedsEscape(r) || (r == utf8.RuneError && !strings.HasPrefix(f[i:], "\uFFFD")) {
			return true
		}
	}
	return false
}

// Raw returns the first byte or rune of s a terminal must not get raw, and
// whether there is one.
func Raw(s string) (string, bool) {
	for i, r := range s {
		if r == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD") {
			return s[i : i+1], true
		}
		if NeedsEscape(r) {
			return string(r), true
		}
	}
	return "", false
}
