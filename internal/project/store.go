package project

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// Store reads and writes project records in the JetStream KV bucket. Writes
// are compare-and-set: concurrent writers serialise, none is lost.
type Store struct {
	kv jetstream.KeyValue
}

// NewStore wraps the projects bucket.
func NewStore(kv jetstream.KeyValue) *Store { return &Store{kv: kv} }

// Get returns a project and the KV revision it was read at.
func (s *Store) Get(ctx context.Context, id string) (Record, uint64, error) {
	if !ValidID(id) {
		return Record{}, 0, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	e, err := s.kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Record{}, 0, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	if err != nil {
		return Record{}, 0, fmt.Errorf("get project %s: %w", id, err)
	}
	r, err := Decode(e.Value())
	if err != nil {
		return Record{}, 0, err
	}
	return r, e.Revision(), nil
}

// Create stores a new project; ErrExists when the id is taken.
func (s *Store) Create(ctx context.Context, r *Record) (uint64, error) {
	b, err := r.Encode()
	if err != nil {
		return 0, err
	}
	rev, err := s.kv.Create(ctx, r.ID, b)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return 0, fmt.Errorf("%w: %q", ErrExists, r.ID)
	}
	if err != nil {
		return 0, fmt.Errorf("create project %s: %w", r.ID, err)
	}
	return rev, nil
}

// Update stores a changed project only if it is still at revision;
// ErrConflict otherwise.
func (s *Store) Update(ctx context.Context, r *Record, revision uint64) (uint64, error) {
	b, err := r.Encode()
	if err != nil {
		return 0, err
	}
	rev, err := s.kv.Update(ctx, r.ID, b, revision)
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return 0, fmt.Errorf("%w: %s", ErrConflict, r.ID)
		}
		return 0, fmt.Errorf("update project %s: %w", r.ID, err)
	}
	return rev, nil
}

// Entry is a project with the KV revision it was read at.
type Entry struct {
	Record   Record
	Revision uint64
}

// List returns every project, ordered by id, each at its latest revision:
// one watch of the bucket delivers them all, then stops.
func (s *Store) List(ctx context.Context) ([]Entry, error) {
	w, err := s.kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("list projects: %w", err)
	}
	defer func() { _ = w.Stop() }()
	var out []Entry
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("list projects: %w", ctx.Err())
		case e, ok := <-w.Updates():
			if !ok {
				return nil, errors.New("list projects: the watch stopped before every project was read")
			}
			if e == nil {
				slices.SortFunc(out, func(a, b Entry) int { return strings.Compare(a.Record.ID, b.Record.ID) })
				return out, nil
			}
			r, err := Decode(e.Value())
			if err != nil {
				return nil, fmt.Errorf("list projects: %s: %w", e.Key(), err)
			}
			out = append(out, Entry{Record: r, Revision: e.Revision()})
		}
	}
}
