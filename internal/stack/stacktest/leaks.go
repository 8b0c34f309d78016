package stacktest

import (
	"bytes"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

// serverFrames mark the goroutines of an embedded NATS server: the test's
// own server lives in the process, its goroutines are not the code's under
// test.
const serverFrames = "github.com/nats-io/nats-server/"

// ownFrames mark the goroutines running the project's own code.
const ownFrames = "github.com/hissuno/widgetauth/"

// NoLeaks snapshots the goroutines running now and returns a check that
// fails the test when goroutines started since are still running — but
// those of an embedded NATS server: at once for one running the project's
// code (a role's Run must have joined its goroutines before it returned),
// within a few seconds for a library's (a NATS subscription ends a moment
// after it is removed). It is goleak's check (go.uber.org/goleak) with the
// test's own server left out; call it once the role's Run has returned.
func NoLeaks(t testing.TB) (check func()) {
	t.Helper()
	before := map[string]bool{}
	for id := range goroutines() {
		before[id] = true
	}
	return func() {
		t.Helper()
		for id, stack := range goroutines() {
			if !before[id] && strings.Contains(stack, ownFrames) && !strings.Contains(stack, serverFrames) {
				t.Errorf("a goroutine of the project's code outlived Run:\n\n%s", stack)
			}
		}
		var leaked []string
		deadline := time.Now().Add(5 * time.Second)
		for {
			leaked = leaked[:0]
			for id, stack := range goroutines() {
				if !before[id] && !strings.Contains(stack, serverFrames) {
					leaked = append(leaked, stack)
				}
			}
			if len(leaked) == 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if len(leaked) > 0 {
			t.Errorf("%d goroutine(s) still running:\n\n%s", len(leaked), strings.Join(leaked, "\n\n"))
		}
	}
}

// goroutines are the stacks of every goroutine but the caller's, by id.
func goroutines() map[string]string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	out := map[string]string{}
	for i, g := range bytes.Split(buf, []byte("\n\n")) {
		if i == 0 {
			continue // the caller's own
		}
		head, _, _ := bytes.Cut(g, []byte("\n"))
		var id int
		if _, err := fmt.Sscanf(string(head), "goroutine %d ", &id); err == nil {
			out[fmt.Sprint(id)] = string(g)
		}
	}
	return out
}
