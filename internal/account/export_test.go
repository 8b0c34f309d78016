package account

// Hooks for the black-box tests of package account_test.

// ArgonRuns is how many argon2id hashes and verifications the store ran.
func (s *Store) ArgonRuns() int64 { return s.argonRuns.Load() }

// HashPassword and VerifyPassword are the bare argon2id functions.
var (
	HashPassword   = hashPassword
	VerifyPassword = verifyPassword
)

// DummyHash is what a sign-in for an unknown email verifies against.
func (s *Store) DummyHash() string { return s.dummyHash }

// SessionKey is the sessions bucket's key of a session secret.
var SessionKey = sessionKey

// TokenParts returns the id and secret bytes inside a well-formed token.
var TokenParts = parseToken

// TokenChecksum is the checksum of a token's payload digits.
var TokenChecksum = tokenChecksum

// TokenID is the public id of a token's id bytes.
var TokenID = tokenID

// FormatToken writes a token of the id and secret bytes given.
func FormatToken(id [12]byte, secret [32]byte) string { return formatToken(id, secret) }

// AccountThrottleKey and AddressThrottleKey are the throttle bucket's keys.
var (
	AccountThrottleKey = accountThrottleKey
	AddressThrottleKey = addressThrottleKey
	AddressGroup       = addressGroup
)
