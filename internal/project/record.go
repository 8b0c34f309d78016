package project

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/redact"
)

// Sentinel errors callers branch on.
var (
	// ErrNotFound means no project has the id.
	ErrNotFound = errors.New("project not found")
	// ErrExists means a project with the id exists already.
	ErrExists = errors.New("project exists already")
	// ErrConflict means the project changed since it was read (compare-and-
	// set failed); read it again and retry.
	ErrConflict = errors.New("project changed concurrently")
	// ErrInvalid means the settings or the id are not acceptable; the message
	// says which and why.
	ErrInvalid = errors.New("invalid project settings")
)

// Limits on what a project holds.
const (
	// MaxNameBytes bounds a project's name.
	MaxNameBytes = 200
	// MaxOrigins bounds the allowed-origins list.
	MaxOrigins = 100
	// secretKeyRandomBytes is the randomness in a secret key.
	secretKeyRandomBytes = 32
	// appliedCommandsKept is how many applied command ids a record keeps to
	// recognise a redelivered command.
	appliedCommandsKept = 64
)

var idRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// ValidID reports whether s can be a project id (and so a KV key).
func ValidID(s string) bool { return idRE.MatchString(s) }

// NewID makes a random project id: "proj_" and 20 base32 characters.
func NewID() (string, error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("project id: %w", err)
	}
	return "proj_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b)), nil
}

// NewSecretKey makes a secret key: "sk_live_" and 32 bytes from crypto/rand
// in unpadded base64url (43 characters).
func NewSecretKey() (string, error) {
	b := make([]byte, secretKeyRandomBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("secret key: %w", err)
	}
	return redact.KeyPrefix + base64.RawURLEncoding.EncodeToString(b), nil
}

// Record is a project as stored in the KV bucket: settings in clear, keys
// sealed.
type Record struct {
	SchemaVersion int    `json:"schemaVersion"`
	ID            string `json:"projectId"`
	Name          string `json:"name"`
	RequireToken  bool   `json:"requireToken"`
	// Origins are canonical allowed-origin patterns (verifier.Pattern.String).
	Origins []string `json:"origins"`
	// KeyVersion is the current key's version.
	KeyVersion int `json:"keyVersion"`
	// Keys are the current key and previous keys still in grace.
	Keys []StoredKey `json:"keys"`
	// RevokedUsers maps a userId to the time its earlier tokens were revoked.
	RevokedUsers map[string]time.Time `json:"revokedUsers,omitempty"`
	CreatedAt    time.Time            `json:"createdAt"`
	UpdatedAt    time.Time            `json:"updatedAt"`
	// AppliedCommands are the ids of the last commands applied, newest last,
	// so a redelivered command is recognised and not applied twice.
	AppliedCommands []string `json:"appliedCommands,omitempty"`
}

// StoredKey is one key of a record, sealed.
type StoredKey struct {
	Version     int        `json:"version"`
	Sealed      string     `json:"sealed"`
	Fingerprint string     `json:"fingerprint"`
	CreatedAt   time.Time  `json:"createdAt"`
	ValidUntil  *time.Time `json:"validUntil,omitempty"`
}

// New makes a project record with its first key and returns the key in clear,
// to be shown to the admin once. origins must be validated canonical
// patterns (verifier.CanonicalPatterns).
func New(s *Sealer, id, name string, requireToken bool, origins []string, now time.Time) (Record, string, error) {
	if !ValidID(id) {
		return Record{}, "", fmt.Errorf("%w: project id %q: use 1 to 64 letters, digits, '-' or '_'", ErrInvalid, id)
	}
	if redact.String(id) != id {
		// The audit stores every string scrubbed: such a project's decisions
		// could never be found by its id.
		return Record{}, "", fmt.Errorf("%w: project id %q starts like a secret key: choose another", ErrInvalid, redact.String(id))
	}
	if strings.TrimSpace(name) == "" || len(name) > MaxNameBytes {
		return Record{}, "", fmt.Errorf("%w: a project needs a name of 1 to %d bytes", ErrInvalid, MaxNameBytes)
	}
	if len(origins) > MaxOrigins {
		return Record{}, "", fmt.Errorf("%w: %d allowed origins, at most %d", ErrInvalid, len(origins), MaxOrigins)
	}
	r := Record{
		SchemaVersion: events.SchemaVersion,
		ID:            id,
		Name:          name,
		RequireToken:  requireToken,
		Origins:       slices.Clone(origins),
		CreatedAt:     now.UTC(),
		UpdatedAt:     now.UTC(),
	}
	secret, err := r.addKey(s, now)
	if err != nil {
		return Record{}, "", err
	}
	return r, secret, nil
}

func (r *Record) addKey(s *Sealer, now time.Time) (string, error) {
	secret, err := NewSecretKey()
	if err != nil {
		return "", err
	}
	version := r.KeyVersion + 1
	sealed, err := s.Seal([]byte(secret), r.ID, version)
	if err != nil {
		return "", err
	}
	r.KeyVersion = version
	r.Keys = append([]StoredKey{{Version: version, Sealed: sealed, Fingerprint: redact.Fingerprint(secret), CreatedAt: now.UTC()}}, r.Keys...)
	return secret, nil
}

// Update changes settings: requireToken when non-nil, the origins list when
// origins is non-empty or clear is set. origins must be validated canonical
// patterns (verifier.CanonicalPatterns).
func (r *Record) Update(requireToken *bool, origins []string, clear bool, now time.Time) error {
	// Validate everything before changing anything.
	if clear && len(origins) > 0 {
		return fmt.Errorf("%w: --clear-origins and --origin together: give one or the other", ErrInvalid)
	}
	if len(origins) > MaxOrigins {
		return fmt.Errorf("%w: %d allowed origins, at most %d", ErrInvalid, len(origins), MaxOrigins)
	}
	if requireToken != nil {
		r.RequireToken = *requireToken
	}
	switch {
	case clear:
		r.Origins = nil
	case len(origins) > 0:
		r.Origins = slices.Clone(origins)
	}
	r.UpdatedAt = now.UTC()
	return nil
}

// Rotate makes a new current key and returns it in clear. With grace zero
// every previous key stops verifying at once; otherwise the key that was
// current keeps verifying until now+grace by server time. Keys whose grace
// has ended are dropped.
func (r *Record) Rotate(s *Sealer, grace time.Duration, now time.Time) (secret string, previous int, err error) {
	if grace < 0 {
		return "", 0, fmt.Errorf("%w: a grace period cannot be negative", ErrInvalid)
	}
	previous = r.KeyVersion
	kept := r.Keys[:0:0]
	for _, k := range r.Keys {
		switch {
		case grace == 0:
			// Immediate: nothing old survives, not even keys in grace.
		case k.Version == previous:
			until := now.Add(grace).UTC()
			k.ValidUntil = &until
			kept = append(kept, k)
		case k.ValidUntil != nil && now.Before(*k.ValidUntil):
			kept = append(kept, k)
		}
	}
	r.Keys = kept
	if secret, err = r.addKey(s, now); err != nil {
		return "", 0, err
	}
	r.UpdatedAt = now.UTC()
	return secret, previous, nil
}

// RevokeUser refuses the user's tokens issued before now (and its tokens
// without iat) from now on.
func (r *Record) RevokeUser(userID string, now time.Time) error {
	if userID == "" || len(userID) > events.MaxUserIDBytes {
		return fmt.Errorf("%w: a user id has 1 to %d bytes", ErrInvalid, events.MaxUserIDBytes)
	}
	if r.RevokedUsers == nil {
		r.RevokedUsers = map[string]time.Time{}
	}
	r.RevokedUsers[userID] = now.UTC()
	r.UpdatedAt = now.UTC()
	return nil
}

// UnrevokeUser lifts a user's revocation: its tokens are judged as any
// other's again. ErrInvalid when the user is not revoked.
func (r *Record) UnrevokeUser(userID string, now time.Time) error {
	if _, ok := r.RevokedUsers[userID]; !ok {
		return fmt.Errorf("%w: user %q is not revoked on project %s", ErrInvalid, userID, r.ID)
	}
	delete(r.RevokedUsers, userID)
	if len(r.RevokedUsers) == 0 {
		r.RevokedUsers = nil
	}
	r.UpdatedAt = now.UTC()
	return nil
}

// Revocations lists the revoked users and when, for admins.
func (r *Record) Revocations() map[string]time.Time { return maps.Clone(r.RevokedUsers) }

// Applied reports whether the command id was applied to this record.
func (r *Record) Applied(commandID string) bool { return slices.Contains(r.AppliedCommands, commandID) }

// MarkApplied remembers a command id (the last appliedCommandsKept of them).
func (r *Record) MarkApplied(commandID string) {
	r.AppliedCommands = append(r.AppliedCommands, commandID)
	if n := len(r.AppliedCommands); n > appliedCommandsKept {
		r.AppliedCommands = slices.Clone(r.AppliedCommands[n-appliedCommandsKept:])
	}
}

// View is the record as admins see it: no key, only fingerprints.
func (r *Record) View(revision uint64) events.ProjectView {
	v := events.ProjectView{
		ProjectID:    r.ID,
		Name:         r.Name,
		RequireToken: r.RequireToken,
		Origins:      append([]string{}, r.Origins...),
		KeyVersion:   r.KeyVersion,
		RevokedUsers: len(r.RevokedUsers),
		CreatedAt:    r.CreatedAt,
		UpdatedAt:    r.UpdatedAt,
		Revision:     revision,
	}
	for _, k := range r.Keys {
		v.Keys = append(v.Keys, events.KeyView{Version: k.Version, Fingerprint: k.Fingerprint, CreatedAt: k.CreatedAt, ValidUntil: k.ValidUntil})
	}
	return v
}

// Decode reads a stored record.
func Decode(b []byte) (Record, error) {
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return Record{}, fmt.Errorf("decode project record: %w", err)
	}
	if r.ID == "" {
		return Record{}, errors.New("decode project record: no projectId")
	}
	return r, nil
}

// Encode writes a record for storage.
func (r *Record) Encode() ([]byte, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encode project %s: %w", r.ID, err)
	}
	return b, nil
}
