package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	giobbav1 "github.com/giobba/giobba/workers/go/gen/giobba/v1"
)

// Task is one attempt of a task, as a handler sees it.
type Task struct {
	ID       string
	Name     string
	Queue    string
	Priority int32
	// Attempt is 1 for the first run.
	Attempt int32
	// Payload is the task's JSON object text, exactly as submitted.
	Payload json.RawMessage
	// Proto is the full record, for fields this type does not copy.
	Proto *giobbav1.Task
}

// Decode unmarshals the payload into v. Numbers decoded into interface values become
// json.Number, so integers beyond 2^53 and the int/float distinction survive.
func (t *Task) Decode(v any) error {
	dec := json.NewDecoder(bytes.NewReader(t.payloadOrEmpty()))
	dec.UseNumber()
	return dec.Decode(v)
}

func (t *Task) payloadOrEmpty() []byte {
	if len(bytes.TrimSpace(t.Payload)) == 0 {
		return []byte("{}")
	}
	return t.Payload
}

// Handler runs one task. Its context is cancelled when the task is killed, times out, its
// lease is lost, or the worker shuts down; context.Cause tells which (a *Cancelled).
//
// The result must encode to a JSON object: a map, a struct, json.RawMessage holding an
// object (passed through byte for byte), or nil for {}. A non-nil error fails the attempt
// with err.Error() as the task's error; it is retried while retries remain unless wrapped
// with NoRetry.
type Handler func(ctx context.Context, task *Task) (any, error)

// Cancelled is the cause of a handler context cancelled by the worker runtime.
type Cancelled struct {
	// Reason is "killed", "timeout", "lease lost" or "shutdown".
	Reason string
}

func (c *Cancelled) Error() string { return "cancelled: " + c.Reason }

var (
	errTimeout  = &Cancelled{Reason: "timeout"}
	errShutdown = &Cancelled{Reason: "shutdown"}
)

type noRetry struct{ err error }

func (n noRetry) Error() string { return n.err.Error() }
func (n noRetry) Unwrap() error { return n.err }

// NoRetry marks err as permanent: the task ends FAILED now, whatever retries remain.
func NoRetry(err error) error { return noRetry{err} }

// IsNoRetry reports whether err (or anything it wraps) was marked with NoRetry.
func IsNoRetry(err error) bool {
	var n noRetry
	return errors.As(err, &n)
}

// outcome is what to tell the server about one attempt.
type outcome struct {
	result  string // set: CompleteTask
	err     string // set (and result empty): FailTask
	noRetry bool
	silent  bool // tell nothing: the server already moved the task on
}

func judge(value any, err error) outcome {
	if err != nil {
		text := err.Error()
		if text == "" {
			text = "failed"
		}
		return outcome{err: text, noRetry: IsNoRetry(err)}
	}
	text, err := encodeResult(value)
	if err != nil {
		return outcome{err: err.Error(), noRetry: true}
	}
	return outcome{result: text}
}

// encodeResult turns a handler's value into JSON object text.
func encodeResult(value any) (string, error) {
	var raw []byte
	switch v := value.(type) {
	case nil:
		return "{}", nil
	case json.RawMessage:
		raw = v
	default:
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			return "", fmt.Errorf("result is not JSON: %w", err)
		}
		raw = bytes.TrimSpace(buf.Bytes())
	}
	if !json.Valid(raw) {
		return "", errors.New("result is not valid JSON")
	}
	if trimmed := bytes.TrimSpace(raw); len(trimmed) == 0 || trimmed[0] != '{' {
		return "", fmt.Errorf("result must be a JSON object, got %.40s", trimmed)
	}
	return string(raw), nil
}

func taskFromProto(p *giobbav1.Task, attempt int32) *Task {
	return &Task{
		ID:       p.GetId(),
		Name:     p.GetName(),
		Queue:    p.GetQueue(),
		Priority: p.GetPriority(),
		Attempt:  attempt,
		Payload:  json.RawMessage(p.GetPayload()),
		Proto:    p,
	}
}

// backoff doubles d within [min, max].
func backoff(d, lo, hi time.Duration) time.Duration {
	return min(max(d*2, lo), hi)
}
