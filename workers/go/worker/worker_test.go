package worker

import (
	"context"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	giobbav1 "github.com/giobba/giobba/workers/go/gen/giobba/v1"
)

// refusingServer leases one task, then long-polls with nothing more; it refuses every
// result as too big to store and passes on the FailTask calls it gets.
type refusingServer struct {
	giobbav1.UnimplementedWorkerServiceServer
	leased    atomic.Bool
	completes atomic.Int32
	failed    chan *giobbav1.FailTaskRequest
}

func (s *refusingServer) LeaseTasks(ctx context.Context, _ *giobbav1.LeaseTasksRequest) (*giobbav1.LeaseTasksResponse, error) {
	if s.leased.CompareAndSwap(false, true) {
		return &giobbav1.LeaseTasksResponse{Tasks: []*giobbav1.LeasedTask{{
			Task:       &giobbav1.Task{Id: "t1", Name: "work", Queue: "default"},
			LeaseToken: "lease-1",
			Attempt:    1,
		}}}, nil
	}
	<-ctx.Done()
	return nil, ctx.Err()
}

func (s *refusingServer) CompleteTask(context.Context, *giobbav1.CompleteTaskRequest) (*giobbav1.CompleteTaskResponse, error) {
	s.completes.Add(1)
	return nil, status.Error(codes.InvalidArgument, "result: is 9 bytes, over the limit")
}

func (s *refusingServer) FailTask(_ context.Context, req *giobbav1.FailTaskRequest) (*giobbav1.FailTaskResponse, error) {
	s.failed <- req
	return &giobbav1.FailTaskResponse{}, nil
}

func TestRefusedResultFailsTheAttempt(t *testing.T) {
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	fake := &refusingServer{failed: make(chan *giobbav1.FailTaskRequest, 8)}
	giobbav1.RegisterWorkerServiceServer(srv, fake)
	go srv.Serve(lis)
	defer srv.Stop()

	w, err := New(Config{
		Server: "passthrough:///bufconn",
		Logger: slog.New(slog.DiscardHandler),
		DialOptions: []grpc.DialOption{grpc.WithContextDialer(
			func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) })},
	})
	if err != nil {
		t.Fatal(err)
	}
	w.Handle("work", func(context.Context, *Task) (any, error) { return map[string]string{"big": "x"}, nil })
	ctx, stop := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- w.Run(ctx) }()
	defer func() { stop(); <-ran }()

	select {
	case req := <-fake.failed:
		want := "result refused by the server: result: is 9 bytes, over the limit"
		if req.GetTaskId() != "t1" || req.GetLeaseToken() != "lease-1" || req.GetNoRetry() || req.GetError() != want {
			t.Errorf("FailTask(%v), want the same lease, no_retry false and error %q", req, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("no FailTask after the result was refused (%d CompleteTask calls)", fake.completes.Load())
	}
	if n := fake.completes.Load(); n != 1 {
		t.Errorf("CompleteTask called %d times, want 1", n)
	}
}
