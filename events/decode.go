package events

import (
	"fmt"

	"github.com/segmentio/encoding/json"
)

// Unmarshal decodes one message of a public JSON Schema (an attempt, a
// connect request) into v, matching object keys to v's fields by their
// exact names, as the schemas, a JSON Schema validator, a WAF or another
// ingress written from the schema read them. encoding/json and the fast
// decoder's defaults match keys case-insensitively, so that
// {"PROJECTID": …} would fill projectId; here a key under another case is
// an unknown key, ignored like any other. Data after the value is an error.
func Unmarshal(b []byte, v any) error {
	rest, err := json.Parse(b, v, json.DontMatchCaseInsensitiveStructFields)
	if err == nil && len(rest) != 0 {
		return fmt.Errorf("invalid character %q after top-level value", rest[0])
	}
	return err
}
