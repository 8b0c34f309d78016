package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// conn is the load generator's keep-alive HTTP/1.1 client: one TCP
// connection, requests written from bytes prepared in advance, answers read
// with just enough parsing (status, Content-Length, body). net/http's
// client costs the shared CPU about as much as the server it measures; the
// baseline's load generator, a NATS publisher, is as lean as this.
type conn struct {
	addr string
	c    net.Conn
	r    *bufio.Reader
}

// wire is a request ready to be written.
func wire(host string, r request) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "POST /v1/widget/connect HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nOrigin: %s\r\nContent-Length: %d\r\n\r\n",
		host, r.origin, len(r.body))
	b.Write(r.body)
	return b.Bytes()
}

// do sends one request and reads the answer into body (reused), returning
// the status. It dials on first use and again after an error.
func (c *conn) do(req []byte, body *[]byte) (int, error) {
	if c.c == nil {
		nc, err := net.DialTimeout("tcp", c.addr, 5*time.Second)
		if err != nil {
			return 0, err
		}
		c.c, c.r = nc, bufio.NewReaderSize(nc, 8<<10)
	}
	status, err := c.roundTrip(req, body)
	if err != nil {
		c.c.Close()
		c.c = nil
	}
	return status, err
}

func (c *conn) roundTrip(req []byte, body *[]byte) (int, error) {
	_ = c.c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.c.Write(req); err != nil {
		return 0, err
	}
	line, err := c.r.ReadSlice('\n')
	if err != nil {
		return 0, err
	}
	// "HTTP/1.1 200 OK\r\n"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.1 ")) {
		return 0, errors.New("bench client: not an HTTP/1.1 status line")
	}
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, err
	}
	length := -1
	for {
		h, err := c.r.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		if len(h) <= 2 {
			break
		}
		if len(h) > 16 && bytes.EqualFold(h[:15], []byte("Content-Length:")) {
			if length, err = strconv.Atoi(string(bytes.TrimSpace(h[15:]))); err != nil {
				return 0, err
			}
		}
	}
	if length < 0 {
		return 0, errors.New("bench client: answer without Content-Length")
	}
	if cap(*body) < length {
		*body = make([]byte, length)
	}
	*body = (*body)[:length]
	if _, err := io.ReadFull(c.r, *body); err != nil {
		return 0, err
	}
	return status, nil
}

func (c *conn) close() {
	if c.c != nil {
		c.c.Close()
	}
}
