// Command giobba-get prints a task as JSON, its payload and result decoded into Go values
// (numbers as json.Number) and encoded again: what a Go program reads back from Giobba.
//
//	giobba-get -server 127.0.0.1:50051 TASK_ID
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	giobbav1 "github.com/giobba/giobba/workers/go/gen/giobba/v1"
)

func decode(text string) (any, error) {
	if text == "" {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(text)))
	dec.UseNumber()
	var v any
	err := dec.Decode(&v)
	return v, err
}

func run() error {
	server := os.Getenv("GIOBBA_SERVER") // as giobba-worker and the Python and Node tools
	if server == "" {
		server = "127.0.0.1:50051"
	}
	flag.StringVar(&server, "server", server, "server address HOST:PORT (env GIOBBA_SERVER)")
	flag.Parse()
	if flag.NArg() != 1 {
		return fmt.Errorf("usage: giobba-get [-server ADDR] TASK_ID")
	}
	conn, err := grpc.NewClient(server, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := giobbav1.NewTaskServiceClient(conn).GetTask(ctx, &giobbav1.GetTaskRequest{Id: flag.Arg(0)})
	if err != nil {
		return err
	}
	task := resp.GetTask()
	payload, err := decode(task.GetPayload())
	if err != nil {
		return fmt.Errorf("payload: %w", err)
	}
	result, err := decode(task.GetResult())
	if err != nil {
		return fmt.Errorf("result: %w", err)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetEscapeHTML(false)
	return enc.Encode(map[string]any{
		"id":      task.GetId(),
		"state":   task.GetState().String(),
		"payload": payload,
		"result":  result,
		"error":   task.GetError(),
	})
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "giobba-get:", err)
		os.Exit(1)
	}
}
