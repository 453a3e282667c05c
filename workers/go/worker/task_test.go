package worker

import (
	"encoding/json"
	"errors"
	"testing"
)

func TestEncodeResult(t *testing.T) {
	cases := []struct {
		in   any
		want string
		bad  bool
	}{
		{nil, "{}", false},
		{map[string]any{"a": "<é>"}, `{"a":"<é>"}`, false},
		{json.RawMessage(`{"big": 18446744073709551617}`), `{"big": 18446744073709551617}`, false},
		{json.RawMessage(`[1]`), "", true},
		{"text", "", true},
		{map[string]any{"f": func() {}}, "", true},
	}
	for _, c := range cases {
		got, err := encodeResult(c.in)
		if (err != nil) != c.bad || got != c.want {
			t.Errorf("encodeResult(%v) = %q, %v", c.in, got, err)
		}
	}
}

func TestJudge(t *testing.T) {
	if o := judge(nil, errors.New("boom")); o.err != "boom" || o.noRetry {
		t.Errorf("retryable failure: %+v", o)
	}
	if o := judge(nil, NoRetry(errors.New("bad input"))); o.err != "bad input" || !o.noRetry {
		t.Errorf("permanent failure: %+v", o)
	}
	if o := judge("not an object", nil); o.err == "" || !o.noRetry {
		t.Errorf("a non-object result fails for good: %+v", o)
	}
	if o := judge(map[string]int{"n": 1}, nil); o.result != `{"n":1}` {
		t.Errorf("result: %+v", o)
	}
}

func TestDecodeKeepsBigIntegers(t *testing.T) {
	task := &Task{Payload: json.RawMessage(`{"n": 9007199254740993, "f": 0.1}`)}
	var v map[string]any
	if err := task.Decode(&v); err != nil {
		t.Fatal(err)
	}
	if v["n"].(json.Number).String() != "9007199254740993" || v["f"].(json.Number).String() != "0.1" {
		t.Errorf("decoded %v", v)
	}
	if err := (&Task{}).Decode(&v); err != nil {
		t.Errorf("empty payload is {}: %v", err)
	}
}
