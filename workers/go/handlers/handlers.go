// Package handlers holds Giobba's reference handlers, with the same names and meaning as
// workers/python/handlers.py: the shared vocabulary of the docs and the conformance kit.
package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/giobba/giobba/workers/go/worker"
)

// Register adds every reference handler to w.
func Register(w interface {
	Handle(name string, h worker.Handler)
}) {
	w.Handle("echo", Echo)
	w.Handle("noop", Noop)
	w.Handle("sleep", Sleep)
	w.Handle("fail", Fail)
}

// Echo's result is the payload, unchanged (passed through as raw JSON, so nothing is lost
// to Go's number types or map ordering).
func Echo(_ context.Context, task *worker.Task) (any, error) {
	if len(task.Payload) == 0 {
		return nil, nil
	}
	return task.Payload, nil
}

// Noop does nothing: for throughput measurements.
func Noop(context.Context, *worker.Task) (any, error) { return nil, nil }

// Sleep waits payload `seconds` (default 1), stopping early when the task is cancelled.
func Sleep(ctx context.Context, task *worker.Task) (any, error) {
	var p struct {
		Seconds *float64 `json:"seconds"`
	}
	if err := task.Decode(&p); err != nil {
		return nil, worker.NoRetry(fmt.Errorf("payload: %w", err))
	}
	seconds := 1.0
	if p.Seconds != nil {
		seconds = *p.Seconds
	}
	t := time.NewTimer(time.Duration(seconds * float64(time.Second)))
	defer t.Stop()
	select {
	case <-t.C:
		return map[string]any{"slept": seconds}, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("cancelled after starting a %gs sleep: %w", seconds, context.Cause(ctx))
	}
}

// Fail always fails with payload `message` (default "failed on purpose"); with
// `"no_retry": true` it fails for good, whatever retries remain.
func Fail(_ context.Context, task *worker.Task) (any, error) {
	var p struct {
		Message *json.RawMessage `json:"message"`
		NoRetry bool             `json:"no_retry"`
	}
	if err := task.Decode(&p); err != nil {
		return nil, worker.NoRetry(fmt.Errorf("payload: %w", err))
	}
	message := "failed on purpose"
	if p.Message != nil {
		var s string
		if json.Unmarshal(*p.Message, &s) == nil {
			message = s
		} else {
			message = string(*p.Message) // not a string: its JSON text, like Python's str()
		}
	}
	err := errors.New(message)
	if p.NoRetry {
		return nil, worker.NoRetry(err)
	}
	return nil, err
}
