package stacktest

// Strings a client can get into the audit (a userId, a projectId, an
// admin's reason) that would forge a row or rewrite a terminal printed raw:
// the tests of everything that shows the audit use them.

// HostileProjectID is a projectId (at most 64 bytes) that would forge a row
// and colour the terminal.
const HostileProjectID = "x\nproj_demo  accept  authenticated  ceo\u001b[31m\u202e"

// HostileUserID draws a fake "authenticated ceo" row on a terminal that
// prints it raw, and turns the rest of the screen red.
const HostileUserID = "x\n2026-12-02 00:00:00.000  proj_demo  accept … authenticated  ceo …\u001b[31m"

// HostileValues are strings a client can get into the audit.
var HostileValues = []string{
	HostileUserID,
	"ops\n\x1b[2J",
	"\x1b[31mred\u202eevil",
	"a\rb",
	"tab\there",
	"del\x7f",
	"nul\x00",
	"csi\u009b31m",
	"bidi \u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069",
	"line\u2028para\u2029",
	`back\slash \n`,
}
