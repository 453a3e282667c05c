package handlers

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/giobba/giobba/workers/go/worker"
)

func TestEchoPassesThePayloadThrough(t *testing.T) {
	payload := json.RawMessage(`{"b": 18446744073709551617, "a": "é"}`)
	got, err := Echo(context.Background(), &worker.Task{Payload: payload})
	if err != nil || string(got.(json.RawMessage)) != string(payload) {
		t.Errorf("Echo = %s, %v", got, err)
	}
}

func TestFail(t *testing.T) {
	_, err := Fail(context.Background(), &worker.Task{Payload: json.RawMessage(`{"message": "ошибка"}`)})
	if err == nil || err.Error() != "ошибка" || worker.IsNoRetry(err) {
		t.Errorf("Fail = %v", err)
	}
	_, err = Fail(context.Background(), &worker.Task{Payload: json.RawMessage(`{"no_retry": true}`)})
	if err == nil || err.Error() != "failed on purpose" || !worker.IsNoRetry(err) {
		t.Errorf("Fail(no_retry) = %v", err)
	}
}

func TestSleepStopsWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(&worker.Cancelled{Reason: "killed"})
	start := time.Now()
	_, err := Sleep(ctx, &worker.Task{Payload: json.RawMessage(`{"seconds": 60}`)})
	if err == nil || time.Since(start) > time.Second {
		t.Errorf("Sleep on a cancelled context = %v after %s", err, time.Since(start))
	}
}
