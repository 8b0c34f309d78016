package audit

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
	"unicode/utf8"
)

// ErrBadCursor means a cursor is not one a page of the same query
// returned: not base64url, cut short, out of range, or another query's.
var ErrBadCursor = errors.New("bad cursor")

// The kinds of cursor, each cursor's first byte, so that one query refuses
// another's cursor.
const (
	cursorDecisions byte = 'd'
	cursorAdmin     byte = 'a'
	cursorUsers     byte = 'u'
)

// maxCursorString bounds a string in a cursor: an id, a project id or a
// user id (the ingress bounds each far below).
const maxCursorString = 1024

// cursorWriter builds a cursor: unpadded base64url of its kind's byte,
// then its fields, numbers as uvarints and strings as a uvarint length and
// their bytes. Cursors are opaque to callers, not secret: a crafted one
// moves a page, never past the filter.
type cursorWriter []byte

func (w cursorWriter) uint(v uint64) cursorWriter { return binary.AppendUvarint(w, v) }

func (w cursorWriter) str(s string) cursorWriter {
	return append(binary.AppendUvarint(w, uint64(len(s))), s...)
}

func (w cursorWriter) String() string { return base64.RawURLEncoding.EncodeToString(w) }

// cursorReader reads a cursor's fields in the order they were written; a
// field out of range or missing marks it bad, and done reports it.
type cursorReader struct {
	b   []byte
	bad bool
}

// readCursor opens s, a cursor of kind.
func readCursor(s string, kind byte) (*cursorReader, error) {
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil || len(b) == 0 || b[0] != kind {
		return nil, ErrBadCursor
	}
	return &cursorReader{b: b[1:]}, nil
}

// uint reads a number of at most limit.
func (r *cursorReader) uint(limit uint64) uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 || v > limit {
		r.bad = true
		return 0
	}
	r.b = r.b[n:]
	return v
}

// str reads a string of valid UTF-8, empty only if empty is true.
func (r *cursorReader) str(empty bool) string {
	n := r.uint(maxCursorString)
	if r.bad || uint64(len(r.b)) < n || (n == 0 && !empty) {
		r.bad = true
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	if !utf8.ValidString(s) {
		r.bad = true
	}
	return s
}

// done reports ErrBadCursor if a field was bad or bytes are left over.
func (r *cursorReader) done() error {
	if r.bad || len(r.b) > 0 {
		return ErrBadCursor
	}
	return nil
}

// position is a row in the order every listing uses, (time, time_us, id)
// descending: where a page ended.
type position struct {
	sec int64
	us  uint32
	id  string
}

// positionOf is the position of a row at t (to the microsecond) with id.
func positionOf(t time.Time, id string) position {
	return position{sec: t.Unix(), us: uint32(t.Nanosecond() / 1000), id: id}
}

func (p position) cursor(kind byte) string {
	return cursorWriter{kind}.uint(uint64(p.sec)).uint(uint64(p.us)).str(p.id).String()
}

// parsePosition reads a position cursor of kind.
func parsePosition(s string, kind byte) (position, error) {
	r, err := readCursor(s, kind)
	if err != nil {
		return position{}, err
	}
	var p position
	p.sec = int64(r.uint(math.MaxUint32))
	p.us = uint32(r.uint(999_999))
	p.id = r.str(false)
	return p, r.done()
}

// after restricts c to the rows after p, in the order (time, time_us,
// idColumn) descending. The first condition repeats part of the second so
// that ClickHouse skips the partitions and granules of later times.
func (p position) after(c *conds, idColumn string) {
	c.add("time <= toDateTime(?)", p.sec)
	if c.until == 0 || p.sec+1 < c.until {
		c.until = p.sec + 1
	}
	c.add("(time < toDateTime(?) OR time_us < ? OR (time_us = ? AND "+idColumn+" < ?))", p.sec, p.us, p.us, p.id)
}

// userPosition is where a page of Users ended: the time its listing is
// as of (the first page's), and its last user's last-seen time in
// microseconds and ids.
type userPosition struct {
	asOf    int64
	lastUS  uint64
	project string
	user    string
}

func (p userPosition) cursor() string {
	return cursorWriter{cursorUsers}.uint(uint64(p.asOf)).uint(p.lastUS).str(p.project).str(p.user).String()
}

func parseUserPosition(s string) (userPosition, error) {
	r, err := readCursor(s, cursorUsers)
	if err != nil {
		return userPosition{}, err
	}
	var p userPosition
	p.asOf = int64(r.uint(math.MaxUint32))
	p.lastUS = r.uint(math.MaxUint32*1_000_000 + 999_999)
	p.project = r.str(true)
	p.user = r.str(false)
	return p, r.done()
}

// badCursor wraps a cursor error for the query that was given it.
func badCursor(query string, err error) error {
	return fmt.Errorf("%s: %w: pass the next cursor a page of it returned, or none for the first page", query, err)
}
