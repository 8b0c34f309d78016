package project_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/project"
	"github.com/hissuno/widgetauth/internal/stack/stacktest"
)

// newStore runs an embedded JetStream server and returns a Store on its
// projects bucket, with the bucket itself for raw reads.
func newStore(t *testing.T) (*project.Store, jetstream.KeyValue) {
	t.Helper()
	_, nc := stacktest.NATS(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(testCtx(t), events.BucketProjects)
	if err != nil {
		t.Fatalf("projects bucket: %v", err)
	}
	return project.NewStore(kv), kv
}

// testCtx is a context that ends with the test or after 30 s.
func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestStore(t *testing.T) {
	t.Parallel()
	store, kv := newStore(t)
	ctx := testCtx(t)
	s := newSealer(t)

	r, secret := newRecord(t, s)
	rev, err := store.Create(ctx, &r)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if rev == 0 {
		t.Error("Create returned revision 0")
	}

	t.Run("stored sealed", func(t *testing.T) {
		e, err := kv.Get(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(e.Value()), secret) || strings.Contains(string(e.Value()), "sk_live_") {
			t.Errorf("the KV entry holds the key in clear: %s", e.Value())
		}
	})

	t.Run("get", func(t *testing.T) {
		got, gotRev, err := store.Get(ctx, r.ID)
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		if gotRev != rev {
			t.Errorf("revision %d, want %d", gotRev, rev)
		}
		if got.ID != r.ID || got.Name != r.Name || got.KeyVersion != r.KeyVersion {
			t.Errorf("Get = %+v, want %+v", got, r)
		}
		if key := openKey(t, s, got, 1); key != secret {
			t.Errorf("the stored key opens to %q, want %q", key, secret)
		}
	})

	t.Run("create twice", func(t *testing.T) {
		again, _ := newRecord(t, s)
		if _, err := store.Create(ctx, &again); !errors.Is(err, project.ErrExists) {
			t.Fatalf("second Create error = %v, want ErrExists", err)
		}
		got, gotRev, err := store.Get(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if gotRev != rev || got.Keys[0].Sealed != r.Keys[0].Sealed {
			t.Error("a refused Create overwrote the project")
		}
	})

	t.Run("not found", func(t *testing.T) {
		for _, id := range []string{"unknown", "proj_nope", "", "a.b", "a*", "a>", "../x", strings.Repeat("a", 65)} {
			if _, _, err := store.Get(ctx, id); !errors.Is(err, project.ErrNotFound) {
				t.Errorf("Get(%q) error = %v, want ErrNotFound", id, err)
			}
		}
	})

	t.Run("update and stale revision", func(t *testing.T) {
		got, gotRev, err := store.Get(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		yes := true
		if err := got.Update(&yes, nil, false, t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		newRev, err := store.Update(ctx, &got, gotRev)
		if err != nil {
			t.Fatalf("Update at the current revision: %v", err)
		}
		if newRev <= gotRev {
			t.Errorf("new revision %d not after %d", newRev, gotRev)
		}
		// Writing again at the old revision is refused.
		got.Name = "lost update"
		if _, err := store.Update(ctx, &got, gotRev); !errors.Is(err, project.ErrConflict) {
			t.Fatalf("Update at a stale revision: error %v, want ErrConflict", err)
		}
		now, nowRev, err := store.Get(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if nowRev != newRev || now.Name == "lost update" || !now.RequireToken {
			t.Errorf("after a refused update: revision %d name %q requireToken %v; want %d, the old name, true", nowRev, now.Name, now.RequireToken, newRev)
		}
	})

	t.Run("update unknown", func(t *testing.T) {
		other, _, err := project.New(s, "never_created", "n", false, nil, t0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.Update(ctx, &other, 1); err == nil {
			t.Error("Update of a project that was never created succeeded")
		}
	})

	t.Run("corrupt entry", func(t *testing.T) {
		if _, err := kv.Put(ctx, "corrupt", []byte("not json")); err != nil {
			t.Fatal(err)
		}
		if _, _, err := store.Get(ctx, "corrupt"); err == nil || errors.Is(err, project.ErrNotFound) {
			t.Errorf("Get of a corrupt entry: error %v, want a decode error", err)
		}
	})
}

// TestStoreConcurrentUpdates has two writers do read-modify-write on the same
// project, retrying on ErrConflict: no update may be lost.
func TestStoreConcurrentUpdates(t *testing.T) {
	t.Parallel()
	store, _ := newStore(t)
	ctx := testCtx(t)
	s := newSealer(t)
	r, _ := newRecord(t, s)
	if _, err := store.Create(ctx, &r); err != nil {
		t.Fatal(err)
	}

	const writers, perWriter = 2, 50
	var conflicts sync.Map
	errs := make(chan error, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := 0
			for i := range perWriter {
				for {
					rec, rev, err := store.Get(ctx, r.ID)
					if err != nil {
						errs <- err
						return
					}
					rec.KeyVersion++ // a counter
					if err := rec.RevokeUser(fmt.Sprintf("w%d-%d", w, i), t0); err != nil {
						errs <- err
						return
					}
					_, err = store.Update(ctx, &rec, rev)
					if errors.Is(err, project.ErrConflict) {
						n++
						continue
					}
					if err != nil {
						errs <- err
						return
					}
					break
				}
			}
			conflicts.Store(w, n)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("writer: %v", err)
	}
	got, _, err := store.Get(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if want := 1 + writers*perWriter; got.KeyVersion != want {
		t.Errorf("counter = %d, want %d: updates were lost", got.KeyVersion, want)
	}
	if len(got.RevokedUsers) != writers*perWriter {
		t.Errorf("%d revoked users, want %d: updates were lost", len(got.RevokedUsers), writers*perWriter)
	}
	conflicts.Range(func(k, v any) bool {
		t.Logf("writer %v retried %v times on a conflict", k, v)
		return true
	})
}

func TestStoreList(t *testing.T) {
	t.Parallel()
	store, kv := newStore(t)
	ctx := testCtx(t)
	s := newSealer(t)
	if got, err := store.List(ctx); err != nil || len(got) != 0 {
		t.Fatalf("List of an empty bucket = %v, %v; want none", got, err)
	}
	revs := map[string]uint64{}
	for _, id := range []string{"proj_c", "proj_a", "proj_b", "proj_gone"} {
		r, _, err := project.New(s, id, "Shop "+id, false, nil, t0)
		if err != nil {
			t.Fatal(err)
		}
		rev, err := store.Create(ctx, &r)
		if err != nil {
			t.Fatal(err)
		}
		revs[id] = rev
	}
	// A project changed since lists at its latest revision; a deleted one
	// is not listed.
	r, rev, err := store.Get(ctx, "proj_b")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.RevokeUser("u-1", t0); err != nil {
		t.Fatal(err)
	}
	if revs["proj_b"], err = store.Update(ctx, &r, rev); err != nil {
		t.Fatal(err)
	}
	if err := kv.Delete(ctx, "proj_gone"); err != nil {
		t.Fatal(err)
	}
	got, err := store.List(ctx)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	var ids []string
	for _, e := range got {
		ids = append(ids, e.Record.ID)
		if e.Revision != revs[e.Record.ID] {
			t.Errorf("%s listed at revision %d, want %d", e.Record.ID, e.Revision, revs[e.Record.ID])
		}
	}
	if fmt.Sprint(ids) != "[proj_a proj_b proj_c]" {
		t.Errorf("List = %v, want proj_a, proj_b, proj_c", ids)
	}
	if len(got) == 3 && len(got[1].Record.Revocations()) != 1 {
		t.Errorf("proj_b listed without its revocation: %+v", got[1].Record)
	}
}
