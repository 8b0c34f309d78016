package verifier

import (
	"context"
	"sync"
	"testing"

	"github.com/rs/zerolog"
)

// TestResyncKeepsANewerLoss: a catch-up that began after one reconnect and
// ends after the connection was lost again does not let the verifier
// decide; the next reconnect's catch-up does.
func TestResyncKeepsANewerLoss(t *testing.T) {
	t.Parallel()
	var l lease
	l.init()
	var wg sync.WaitGroup
	release := make(chan struct{})
	l.lost()
	l.regained(context.Background(), &wg, func(context.Context) error { <-release; return nil }, zerolog.Nop())
	l.lost() // while the first catch-up still runs
	close(release)
	wg.Wait()
	if !l.resyncing.Load() {
		t.Fatal("an older catch-up cleared the resync a newer disconnect started")
	}
	l.regained(context.Background(), &wg, func(context.Context) error { return nil }, zerolog.Nop())
	wg.Wait()
	if l.resyncing.Load() {
		t.Error("the catch-up after the last reconnect did not end the resync")
	}
}
