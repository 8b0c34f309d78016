package auditor

// This file lends the external tests (package auditor_test) what they need
// of the package's insides. They cannot be white-box tests: they use
// stacktest, which imports stack, which imports auditor — a cycle Go refuses
// inside package auditor.

// WithCrashAfterInsert returns cfg whose auditor asks crash after each
// successful insert; true makes it return without acking, as if killed.
func WithCrashAfterInsert(cfg Config, crash func() bool) Config {
	cfg.crashAfterInsert = crash
	return cfg
}

// WithLostInsertAnswer returns cfg whose auditor asks lose after each
// successful insert; true makes it take the insert for failed after
// sending (its outcome unknown) and retry.
func WithLostInsertAnswer(cfg Config, lose func() bool) Config {
	cfg.loseInsertAnswer = lose
	return cfg
}
