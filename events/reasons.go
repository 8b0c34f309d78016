package events

// Outcome is what a decision answers: accept, unauthorized (HTTP 401) or
// origin_blocked (HTTP 403).
type Outcome string

// The three outcomes of DESIGN.md's public contract.
const (
	OutcomeAccept        Outcome = "accept"
	OutcomeUnauthorized  Outcome = "unauthorized"
	OutcomeOriginBlocked Outcome = "origin_blocked"
)

// HTTPStatus is the status code the ingress answers for the outcome.
func (o Outcome) HTTPStatus() int {
	switch o {
	case OutcomeAccept:
		return 200
	case OutcomeOriginBlocked:
		return 403
	default:
		return 401
	}
}

// Session says whether an accepted widget runs as a verified user or as an
// anonymous visitor whose identity is client-provided.
type Session string

// The two session kinds of an accept.
const (
	SessionAuthenticated Session = "authenticated"
	SessionAnonymous     Session = "anonymous"
)

// Reason is the stable code of a refusal. Integrators branch on it, so the
// values never change; DESIGN.md "Decision rules" defines each.
type Reason string

// Every refusal reason of the public contract.
const (
	ReasonUnknownProject     Reason = "unknown_project"
	ReasonOriginNotAllowed   Reason = "origin_not_allowed"
	ReasonOriginMissing      Reason = "origin_missing"
	ReasonTokenRequired      Reason = "token_required"
	ReasonTokenMalformed     Reason = "token_malformed"
	ReasonTokenAlgNotAllowed Reason = "token_alg_not_allowed"
	ReasonTokenBadSignature  Reason = "token_bad_signature"
	ReasonTokenExpired       Reason = "token_expired"
	ReasonTokenNotYetValid   Reason = "token_not_yet_valid"
	ReasonTokenMissingExp    Reason = "token_missing_exp"
	ReasonTokenInvalidClaims Reason = "token_invalid_claims"
	ReasonTokenTooLarge      Reason = "token_too_large"
	ReasonTokenRevoked       Reason = "token_revoked"
)

// Reasons lists every refusal reason, in DESIGN.md's order.
var Reasons = []Reason{
	ReasonUnknownProject,
	ReasonOriginNotAllowed,
	ReasonOriginMissing,
	ReasonTokenRequired,
	ReasonTokenMalformed,
	ReasonTokenAlgNotAllowed,
	ReasonTokenBadSignature,
	ReasonTokenExpired,
	ReasonTokenNotYetValid,
	ReasonTokenMissingExp,
	ReasonTokenInvalidClaims,
	ReasonTokenTooLarge,
	ReasonTokenRevoked,
}

// Outcome is the outcome a refusal with this reason has.
func (r Reason) Outcome() Outcome {
	switch r {
	case "":
		return OutcomeAccept
	case ReasonOriginNotAllowed, ReasonOriginMissing:
		return OutcomeOriginBlocked
	default:
		return OutcomeUnauthorized
	}
}

// Throttle says why the ingress refused a request before publishing it (429,
// or a connection closed at once): the "reason" of its JSON answer and the
// reason label of hissuno_ingress_throttled_total.
type Throttle string

// The throttle reasons.
const (
	// ThrottleIP: the client address (its /64 for IPv6) is over its rate.
	ThrottleIP Throttle = "ip_rate"
	// ThrottleProject: the project is over its rate at this ingress.
	ThrottleProject Throttle = "project_rate"
	// ThrottleUnseenProject: the projectId is one no verifier has yet
	// known at this ingress, and such projectIds together are over their
	// rate.
	ThrottleUnseenProject Throttle = "unseen_project_rate"
	// ThrottleIPConnections: the client address holds its most open
	// connections; a new one is closed at once.
	ThrottleIPConnections Throttle = "ip_connections"
	// ThrottleConnections: the ingress holds its most open connections.
	ThrottleConnections Throttle = "connections"
)

// Throttles lists every throttle reason.
var Throttles = []Throttle{ThrottleIP, ThrottleProject, ThrottleUnseenProject, ThrottleIPConnections, ThrottleConnections}
