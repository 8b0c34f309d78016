package audit

import (
	"encoding/base64"
	"errors"
	"math"
	"testing"
	"time"
)

func TestPositionCursor(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		p    position
	}{
		{name: "a decision", p: positionOf(time.Date(2026, 3, 1, 12, 30, 5, 123_456_789, time.UTC), "dec_att_019a2b3c4d5eXYZ")},
		{name: "1970", p: position{sec: 0, us: 0, id: "x"}},
		{name: "the last second of DateTime", p: position{sec: math.MaxUint32, us: 999_999, id: "dec_" + string(make([]byte, 100))}},
		{name: "an id of other bytes", p: position{sec: 1, us: 1, id: "dé-c/+=?'"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := tt.p.cursor(cursorDecisions)
			got, err := parsePosition(s, cursorDecisions)
			if err != nil || got != tt.p {
				t.Errorf("parsePosition(%q) = %+v, %v, want %+v", s, got, err, tt.p)
			}
			if _, err := parsePosition(s, cursorAdmin); !errors.Is(err, ErrBadCursor) {
				t.Errorf("a decisions cursor read as an admin one: %v, want ErrBadCursor", err)
			}
		})
	}
	if got := positionOf(time.Date(2026, 3, 1, 12, 30, 5, 123_456_789, time.UTC), "d"); got.us != 123_456 {
		t.Errorf("positionOf keeps %d µs, want 123456 (what time_us holds)", got.us)
	}
}

func TestUserPositionCursor(t *testing.T) {
	t.Parallel()
	for _, p := range []userPosition{
		{asOf: 1_700_000_000, lastUS: 1_700_000_000_123_456, project: "p_a", user: "u1"},
		{asOf: math.MaxUint32, lastUS: math.MaxUint32*1_000_000 + 999_999, project: "", user: "ü"},
	} {
		s := p.cursor()
		if got, err := parseUserPosition(s); err != nil || got != p {
			t.Errorf("parseUserPosition(%q) = %+v, %v, want %+v", s, got, err, p)
		}
		if _, err := parsePosition(s, cursorDecisions); !errors.Is(err, ErrBadCursor) {
			t.Errorf("a users cursor read as a decisions one: %v, want ErrBadCursor", err)
		}
	}
}

func TestBadCursors(t *testing.T) {
	t.Parallel()
	raw := func(b cursorWriter) string { return base64.RawURLEncoding.EncodeToString(b) }
	good := position{sec: 1_700_000_000, us: 5, id: "dec_x"}.cursor(cursorDecisions)
	tests := []struct {
		name   string
		cursor string
	}{
		{name: "not base64url", cursor: "***"},
		{name: "standard base64", cursor: "ZA+/"},
		{name: "padded", cursor: good + "="},
		{name: "empty after decoding", cursor: raw(cursorWriter{})},
		{name: "another kind", cursor: position{sec: 1, us: 1, id: "adm_1"}.cursor(cursorAdmin)},
		{name: "an unknown kind", cursor: raw(cursorWriter{'z'}.uint(1).uint(1).str("x"))},
		{name: "the kind only", cursor: raw(cursorWriter{cursorDecisions})},
		{name: "cut short", cursor: good[:len(good)-3]},
		{name: "a byte too many", cursor: raw(append(mustDecode(t, good), 0))},
		{name: "seconds past DateTime", cursor: raw(cursorWriter{cursorDecisions}.uint(math.MaxUint32 + 1).uint(0).str("x"))},
		{name: "a million microseconds", cursor: raw(cursorWriter{cursorDecisions}.uint(1).uint(1_000_000).str("x"))},
		{name: "an empty id", cursor: raw(cursorWriter{cursorDecisions}.uint(1).uint(1).str(""))},
		{name: "an id too long", cursor: raw(cursorWriter{cursorDecisions}.uint(1).uint(1).str(string(make([]byte, maxCursorString+1))))},
		{name: "an id longer than the bytes", cursor: raw(append(cursorWriter{cursorDecisions}.uint(1).uint(1).uint(10), "abc"...))},
		{name: "an id not UTF-8", cursor: raw(cursorWriter{cursorDecisions}.uint(1).uint(1).str("\xff\xfe"))},
		{name: "a number that never ends", cursor: raw(cursorWriter{cursorDecisions, 0x80, 0x80, 0x80})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if p, err := parsePosition(tt.cursor, cursorDecisions); !errors.Is(err, ErrBadCursor) {
				t.Errorf("parsePosition(%q) = %+v, %v, want ErrBadCursor", tt.cursor, p, err)
			}
		})
	}
}

func mustDecode(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
