package verifier

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/hissuno/widgetauth/internal/authz"
	"github.com/hissuno/widgetauth/internal/origin"
	"github.com/hissuno/widgetauth/internal/project"
)

// view is a verifier's in-memory copy of every project, loaded from the KV
// bucket at start and kept current by a KV watch: no KV lookup per request.
type view struct {
	sealer *project.Sealer
	log    zerolog.Logger
	// onChange is called after a project's keys may have changed.
	onChange func(projectID string)

	mu       sync.RWMutex
	projects map[string]viewEntry
	// required holds, per project, a KV revision an invalidation announced
	// that the watch has not delivered yet: until it has, the project is
	// stale and no decision is made for it.
	required map[string]uint64
	// changed is closed and replaced whenever the view moves on.
	changed chan struct{}

	ready   atomic.Bool
	lastRev atomic.Uint64
}

type viewEntry struct {
	project  *authz.Project
	revision uint64
}

func newView(sealer *project.Sealer, log zerolog.Logger, onChange func(string)) *view {
	return &view{
		sealer:   sealer,
		log:      log,
		onChange: onChange,
		projects: make(map[string]viewEntry),
		required: make(map[string]uint64),
		changed:  make(chan struct{}),
	}
}

// lookup returns the project (nil when unknown) and whether the view knows
// it is behind for this project.
func (v *view) lookup(id string) (p *authz.Project, stale bool) {
	v.mu.RLock()
	e := v.projects[id]
	req, pending := v.required[id]
	v.mu.RUnlock()
	return e.project, pending && req > e.revision
}

// revision is the KV revision the view holds for a project (0 if none).
func (v *view) revision(id string) uint64 {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.projects[id].revision
}

// require marks a project stale until the view holds revision rev of it.
func (v *view) require(id string, rev uint64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.projects[id].revision >= rev || v.lastRev.Load() >= rev {
		return
	}
	if v.required[id] < rev {
		v.required[id] = rev
	}
}

// waitFor blocks until the view has applied KV revision rev (of any key,
// which covers the project's) or ctx ends.
func (v *view) waitFor(ctx context.Context, rev uint64) bool {
	for {
		v.mu.RLock()
		ch := v.changed
		v.mu.RUnlock()
		if v.lastRev.Load() >= rev {
			return true
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return v.lastRev.Load() >= rev
		}
	}
}

// waitReady waits until the view holds every project the bucket had when
// the watch began; false when ctx ended first.
func (v *view) waitReady(ctx context.Context) bool {
	for !v.ready.Load() {
		v.mu.RLock()
		ch := v.changed
		v.mu.RUnlock()
		if v.ready.Load() {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-ch:
		}
	}
	return true
}

func (v *view) size() int {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return len(v.projects)
}

// apply takes one KV entry into the view.
func (v *view) apply(e jetstream.KeyValueEntry) {
	id := e.Key()
	var entry viewEntry
	remove := e.Operation() != jetstream.KeyValuePut
	if !remove {
		r, err := project.Decode(e.Value())
		var p *authz.Project
		if err == nil {
			p, err = compile(&r, v.sealer)
		}
		if err != nil {
			// A project that cannot be read is treated as unknown: refusing
			// is safe, accepting with stale keys is not.
			v.log.Error().Err(err).Str("project", id).Uint64("revision", e.Revision()).Msg("project record unusable; refusing its attempts")
			remove = true
		} else {
			entry = viewEntry{project: p, revision: e.Revision()}
		}
	}
	v.mu.Lock()
	if remove {
		delete(v.projects, id)
	} else {
		v.projects[id] = entry
	}
	if req, ok := v.required[id]; ok && e.Revision() >= req {
		delete(v.required, id)
	}
	if e.Revision() > v.lastRev.Load() {
		v.lastRev.Store(e.Revision())
	}
	close(v.changed)
	v.changed = make(chan struct{})
	v.mu.Unlock()
	if v.onChange != nil {
		v.onChange(id)
	}
}

// compile turns a stored record into what the decision needs: patterns
// parsed, keys opened.
func compile(r *project.Record, s *project.Sealer) (*authz.Project, error) {
	origins, err := origin.ParsePatterns(r.Origins)
	if err != nil {
		return nil, fmt.Errorf("project %s: stored origins: %w", r.ID, err)
	}
	p := &authz.Project{ID: r.ID, RequireToken: r.RequireToken, Origins: origins}
	for _, k := range r.Keys {
		secret, err := s.Open(k.Sealed, r.ID, k.Version)
		if err != nil {
			return nil, err
		}
		key := authz.Key{Version: k.Version, Secret: secret}
		if k.ValidUntil != nil {
			key.ValidUntil = *k.ValidUntil
		}
		p.Keys = append(p.Keys, key)
	}
	if len(r.RevokedUsers) > 0 {
		p.RevokedBefore = maps.Clone(r.RevokedUsers)
	}
	return p, nil
}

// watch loads every project, marks the view ready once the initial values
// are in, then follows changes until ctx ends or the watch fails. A signal
// on restart replaces the watch with a new one, which delivers every project
// again: the way out when the watch's consumer is stuck (it lived on a
// cluster node that went away, say) while the bucket moved on.
func (v *view) watch(ctx context.Context, kv jetstream.KeyValue, restart <-chan struct{}) error {
	for {
		w, err := kv.WatchAll(ctx)
		if err != nil {
			return err
		}
		restarted, err := v.follow(ctx, w, restart)
		_ = w.Stop()
		if !restarted || err != nil {
			return err
		}
		v.log.Warn().Uint64("revision", v.lastRev.Load()).Msg("project watch behind the bucket; watching again")
	}
}

func (v *view) follow(ctx context.Context, w jetstream.KeyWatcher, restart <-chan struct{}) (restarted bool, err error) {
	for {
		select {
		case <-ctx.Done():
			return false, nil
		case <-restart:
			return true, nil
		case e, ok := <-w.Updates():
			if !ok {
				return false, nil
			}
			if e == nil {
				v.mu.Lock()
				first := !v.ready.Swap(true)
				close(v.changed)
				v.changed = make(chan struct{})
				v.mu.Unlock()
				if first {
					v.log.Info().Int("projects", v.size()).Uint64("revision", v.lastRev.Load()).Msg("project view complete")
				}
				continue
			}
			v.apply(e)
		}
	}
}
