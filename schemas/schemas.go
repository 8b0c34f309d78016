// Package schemas holds the public JSON Schemas (draft 2020-12) of every
// message Hissuno widget authentication sends over NATS, one
// <name>.schema.json file per event type of package events, and validates
// JSON documents against them. The schemas are the contract for anyone who
// publishes or reads these messages without this code, such as an edge
// gateway that publishes attempts itself.
//
// The schemas are embedded in the binary and compiled from there only: the
// package never loads a schema from the network or the file system, and it
// talks to nothing.
package schemas

import (
	"bytes"
	"embed"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// The names of the schemas; each is the file <name>.schema.json.
const (
	// Attempt describes events.Attempt (hissuno.attempts).
	Attempt = "attempt"
	// Decision describes events.Decision (hissuno.decisions, and the
	// verifier's reply on hissuno.reply.*).
	Decision = "decision"
	// Command describes events.Command (hissuno.admin.command.*).
	Command = "command"
	// CommandResult describes events.CommandResult, with its ProjectView
	// and KeyView (the command's reply inbox).
	CommandResult = "command-result"
	// AdminEvent describes events.AdminEvent (hissuno.admin.event.*).
	AdminEvent = "admin-event"
	// Invalidation describes events.Invalidation (hissuno.invalidate).
	Invalidation = "invalidation"
	// SyncRequest describes events.SyncRequest
	// (hissuno.verifier.<instance>.sync).
	SyncRequest = "sync-request"
	// SyncReply describes events.SyncReply (the sync request's inbox).
	SyncReply = "sync-reply"
	// Heartbeat describes events.Heartbeat (hissuno.verifier.heartbeat).
	Heartbeat = "heartbeat"
	// Throttled describes events.Throttled (hissuno.throttled.<ingress>).
	Throttled = "throttled"
)

// BaseURL starts every schema's $id: BaseURL + name + ".schema.json".
const BaseURL = "https://hissuno.dev/schemas/"

//go:embed *.schema.json
var files embed.FS

// Names lists the name of every schema, sorted.
func Names() []string {
	entries, err := files.ReadDir(".")
	if err != nil {
		return nil
	}
	var names []string
	for _, e := range entries {
		if name, ok := nameOf(e.Name()); ok {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// Source returns the text of the named schema.
func Source(name string) ([]byte, error) {
	b, err := files.ReadFile(fileOf(name))
	if err != nil {
		return nil, fmt.Errorf("schemas: no schema %q", name)
	}
	return b, nil
}

// ID is the $id of the named schema.
func ID(name string) string { return BaseURL + fileOf(name) }

// Compile compiles the named schema, with formats such as date-time
// asserted. It compiles every schema once and returns the same *Schema to
// every caller; a *Schema is safe for concurrent use.
func Compile(name string) (*jsonschema.Schema, error) {
	all, err := compiled()
	if err != nil {
		return nil, err
	}
	s, ok := all[name]
	if !ok {
		return nil, fmt.Errorf("schemas: no schema %q", name)
	}
	return s, nil
}

// Validate checks that doc is one JSON value valid against the named
// schema. The error says where and why it is not; a
// *jsonschema.ValidationError is wrapped in it.
func Validate(name string, doc []byte) error {
	s, err := Compile(name)
	if err != nil {
		return err
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return fmt.Errorf("schemas: %s: not JSON: %w", name, err)
	}
	if err := s.Validate(v); err != nil {
		return fmt.Errorf("schemas: %s: %w", name, err)
	}
	return nil
}

// compiled compiles every embedded schema, once.
var compiled = sync.OnceValues(func() (map[string]*jsonschema.Schema, error) {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	c.UseLoader(noLoader{})
	names := Names()
	for _, name := range names {
		b, err := Source(name)
		if err != nil {
			return nil, err
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("schemas: %s: %w", fileOf(name), err)
		}
		if err := c.AddResource(ID(name), doc); err != nil {
			return nil, fmt.Errorf("schemas: %s: %w", fileOf(name), err)
		}
	}
	out := make(map[string]*jsonschema.Schema, len(names))
	for _, name := range names {
		s, err := c.Compile(ID(name))
		if err != nil {
			return nil, fmt.Errorf("schemas: %s: %w", fileOf(name), err)
		}
		out[name] = s
	}
	return out, nil
})

// noLoader refuses every URL the embedded schemas do not define: a schema
// never fetches another from the network or the disk.
type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("schemas: %s is not an embedded schema", url)
}

const suffix = ".schema.json"

func fileOf(name string) string { return name + suffix }

func nameOf(file string) (string, bool) {
	name, ok := strings.CutSuffix(file, suffix)
	return name, ok && name != ""
}
