package account

// Hooks for the black-box tests of package account_test.

// HashPassword and VerifyPassword are the bare argon2id functions.
var (
	HashPassword   = hashPassword
	VerifyPassword = verifyPassword
)
