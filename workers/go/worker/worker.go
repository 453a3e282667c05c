// Package worker is a Giobba worker runtime built on nothing but the generated gRPC stubs:
// it long-polls WorkerService.LeaseTasks for as many tasks as it has free slots, runs each
// on a goroutine with a context.Context that is cancelled when the task is killed, times
// out or loses its lease, heartbeats every lease it holds, listens on WatchCancellations
// for kills, and on shutdown stops leasing, drains, and hands unfinished tasks back.
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	giobbav1 "github.com/giobba/giobba/workers/go/gen/giobba/v1"
)

// Version is reported in heartbeats.
const Version = "go/0.1.0"

// clientKeepalive pings the server every 10 s, idle or not (the server permits it), so a
// dead or unreachable server is noticed within about 20 s, as the Python worker does.
var clientKeepalive = keepalive.ClientParameters{
	Time:                10 * time.Second,
	Timeout:             10 * time.Second,
	PermitWithoutStream: true,
}

const (
	firstBeat      = time.Second // until the server says how often it wants to hear from us
	maxBackoff     = 5 * time.Second
	reportAttempts = 8
)

// Config says what a Worker serves and how.
type Config struct {
	// Server is the gRPC address, host:port.
	Server string
	// Queues to serve; empty means ["default"].
	Queues []string
	// Concurrency is the number of slots: tasks run at once (default 1).
	Concurrency int
	// Drain is how long running tasks may finish after Run's context is done before they
	// are cancelled and handed back with ReleaseTask (default 30 s).
	Drain time.Duration
	// KillGrace is how long a cancelled handler may take to return before its slot is
	// freed anyway (the goroutine is abandoned; default 5 s).
	KillGrace time.Duration
	// PollWait is the LeaseTasks long-poll wait (default 30 s).
	PollWait time.Duration
	// ID is the worker id; default "<host>-<pid>-go-<random>".
	ID string
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// DialOptions are added to the insecure-credentials default.
	DialOptions []grpc.DialOption
}

// Worker runs handlers for leased tasks. Create it with New, add handlers with Handle,
// then call Run.
type Worker struct {
	cfg      Config
	log      *slog.Logger
	conn     *grpc.ClientConn
	client   giobbav1.WorkerServiceClient
	handlers map[string]Handler
	started  time.Time

	mu      sync.Mutex
	running map[string]*run
	freed   chan struct{} // a slot was freed (buffered: a missed wake-up is kept)
	tasks   sync.WaitGroup

	completed atomic.Int64
	failed    atomic.Int64
}

type run struct {
	task   *Task
	token  string
	cancel context.CancelCauseFunc
}

// New connects lazily to cfg.Server; nothing is sent until Run.
func New(cfg Config) (*Worker, error) {
	if cfg.Server == "" {
		return nil, errors.New("worker: Config.Server is required")
	}
	if len(cfg.Queues) == 0 {
		cfg.Queues = []string{"default"}
	}
	if cfg.Concurrency < 1 {
		cfg.Concurrency = 1
	}
	if cfg.Drain <= 0 {
		cfg.Drain = 30 * time.Second
	}
	if cfg.KillGrace <= 0 {
		cfg.KillGrace = 5 * time.Second
	}
	if cfg.PollWait <= 0 {
		cfg.PollWait = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ID == "" {
		host, _ := os.Hostname()
		cfg.ID = fmt.Sprintf("%s-%d-go-%08x", host, os.Getpid(), time.Now().UnixNano()&0xffffffff)
	}
	opts := append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithKeepaliveParams(clientKeepalive),
	}, cfg.DialOptions...)
	conn, err := grpc.NewClient(cfg.Server, opts...)
	if err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}
	return &Worker{
		cfg:      cfg,
		log:      cfg.Logger,
		conn:     conn,
		client:   giobbav1.NewWorkerServiceClient(conn),
		handlers: map[string]Handler{},
		started:  time.Now(),
		running:  map[string]*run{},
		freed:    make(chan struct{}, 1),
	}, nil
}

// ID is the worker id the server knows this worker by.
func (w *Worker) ID() string { return w.cfg.ID }

// Handle registers h for tasks named name. Call before Run.
func (w *Worker) Handle(name string, h Handler) { w.handlers[name] = h }

// Run serves until ctx is done, then shuts down gracefully: no new leases, running tasks
// get Config.Drain to finish, the rest are cancelled and released back to their queue.
// To stop at once instead (leases lapse on the server), exit the process.
func (w *Worker) Run(ctx context.Context) error {
	defer w.conn.Close()
	// Heartbeats, the cancel stream and reports outlive ctx: they must go on while draining.
	bg, stopBg := context.WithCancel(context.Background())
	var loops sync.WaitGroup
	loops.Add(2)
	go func() { defer loops.Done(); w.heartbeats(bg) }()
	go func() { defer loops.Done(); w.watchCancellations(bg) }()
	w.log.Info("worker serving", "id", w.cfg.ID, "queues", w.cfg.Queues,
		"concurrency", w.cfg.Concurrency, "server", w.cfg.Server)

	w.leaseLoop(ctx, bg)
	w.drain(bg)
	stopBg()
	loops.Wait()
	w.beat(context.Background()) // so the fleet view shows this worker idle
	w.log.Info("worker stopped", "id", w.cfg.ID)
	return nil
}

func (w *Worker) free() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.cfg.Concurrency - len(w.running)
}

func (w *Worker) leaseLoop(ctx, bg context.Context) {
	delay := time.Duration(0)
	for ctx.Err() == nil {
		free := w.free()
		if free <= 0 {
			select {
			case <-w.freed:
			case <-ctx.Done():
			}
			continue
		}
		call, cancel := context.WithTimeout(ctx, w.cfg.PollWait+10*time.Second)
		resp, err := w.client.LeaseTasks(call, &giobbav1.LeaseTasksRequest{
			WorkerId: w.cfg.ID,
			Queues:   w.cfg.Queues,
			MaxTasks: int32(free),
			Wait:     durationpb.New(w.cfg.PollWait),
			Worker:   w.info(),
		})
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			delay = backoff(delay, 200*time.Millisecond, maxBackoff)
			w.log.Warn("lease failed; retrying", "code", status.Code(err).String(), "in", delay)
			sleep(ctx, delay)
			continue
		}
		delay = 0
		for _, leased := range resp.GetTasks() {
			w.start(bg, leased)
		}
	}
}

func (w *Worker) start(bg context.Context, leased *giobbav1.LeasedTask) {
	task := taskFromProto(leased.GetTask(), leased.GetAttempt())
	ctx, cancel := context.WithCancelCause(bg)
	r := &run{task: task, token: leased.GetLeaseToken(), cancel: cancel}
	w.mu.Lock()
	w.running[task.ID] = r
	w.mu.Unlock()
	w.tasks.Add(1)
	go w.execute(ctx, r, leased.GetTimeout().AsDuration())
}

func (w *Worker) execute(ctx context.Context, r *run, timeout time.Duration) {
	defer func() {
		r.cancel(nil)
		w.mu.Lock()
		delete(w.running, r.task.ID)
		w.mu.Unlock()
		select {
		case w.freed <- struct{}{}:
		default:
		}
		w.tasks.Done()
	}()
	if timeout > 0 {
		var stop context.CancelFunc
		ctx, stop = context.WithTimeoutCause(ctx, timeout, errTimeout)
		defer stop()
	}
	o := w.outcome(ctx, r.task)
	if !o.silent {
		w.report(r, o)
	}
}

// outcome runs the handler and decides what to report. A cancelled handler gets KillGrace
// to return; after that its goroutine is abandoned and its slot freed.
func (w *Worker) outcome(ctx context.Context, task *Task) outcome {
	h, ok := w.handlers[task.Name]
	if !ok {
		return outcome{err: fmt.Sprintf("no handler named %q on worker %s", task.Name, w.cfg.ID)}
	}
	done := make(chan outcome, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- outcome{err: fmt.Sprintf("handler panicked: %v", p)}
			}
		}()
		done <- judge(h(ctx, task))
	}()
	var o outcome
	select {
	case o = <-done:
	case <-ctx.Done():
		select {
		case o = <-done:
		case <-time.After(w.cfg.KillGrace):
			w.log.Warn("handler ignored cancellation; abandoned", "task", task.ID)
		}
	}
	if ctx.Err() == nil {
		return o
	}
	if errors.Is(context.Cause(ctx), errTimeout) {
		return outcome{err: "timeout"}
	}
	// Killed, lease lost or shutting down: the server has moved on (or will be told by
	// ReleaseTask); a late result would be refused.
	return outcome{silent: true}
}

func (w *Worker) report(r *run, o outcome) {
	delay := 200 * time.Millisecond
	for range reportAttempts {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		var err error
		if o.err == "" {
			_, err = w.client.CompleteTask(ctx, &giobbav1.CompleteTaskRequest{
				TaskId: r.task.ID, LeaseToken: r.token, Result: o.result,
			})
		} else {
			_, err = w.client.FailTask(ctx, &giobbav1.FailTaskRequest{
				TaskId: r.task.ID, LeaseToken: r.token, Error: o.err, NoRetry: o.noRetry,
			})
		}
		cancel()
		if o.err == "" && status.Code(err) == codes.InvalidArgument {
			// The server cannot store the result (too big, say): nothing moved and the
			// lease is still ours, so fail the attempt instead (retried per its policy).
			o = outcome{err: "result refused by the server: " + status.Convert(err).Message()}
			w.log.Warn("result refused; failing the attempt", "task", r.task.ID, "error", o.err)
			continue
		}
		switch status.Code(err) {
		case codes.OK:
			if o.err == "" {
				w.completed.Add(1)
			} else {
				w.failed.Add(1)
			}
			return
		case codes.Unavailable, codes.DeadlineExceeded:
			time.Sleep(delay)
			delay = backoff(delay, delay, maxBackoff)
			continue
		default:
			// ABORTED: the lease went stale (killed, recovered elsewhere); nothing to do.
			w.log.Warn("report refused", "task", r.task.ID, "code", status.Code(err).String(),
				"error", status.Convert(err).Message())
			return
		}
	}
	w.log.Error("gave up reporting; the lease will expire", "task", r.task.ID)
}

// drain waits up to Config.Drain for running tasks, then cancels and releases the rest.
func (w *Worker) drain(bg context.Context) {
	finished := make(chan struct{})
	go func() { w.tasks.Wait(); close(finished) }()
	w.mu.Lock()
	n := len(w.running)
	w.mu.Unlock()
	if n > 0 {
		w.log.Info("stopping: no new tasks; draining", "running", n, "for", w.cfg.Drain)
	}
	select {
	case <-finished:
		return
	case <-time.After(w.cfg.Drain):
	}
	w.mu.Lock()
	left := make([]*run, 0, len(w.running))
	for _, r := range w.running {
		left = append(left, r)
	}
	w.mu.Unlock()
	for _, r := range left {
		r.cancel(errShutdown)
		ctx, cancel := context.WithTimeout(bg, 10*time.Second)
		_, err := w.client.ReleaseTask(ctx, &giobbav1.ReleaseTaskRequest{
			TaskId: r.task.ID, LeaseToken: r.token,
		})
		cancel()
		if err != nil {
			w.log.Warn("release refused", "task", r.task.ID, "error", err)
		} else {
			w.log.Info("handed back task", "task", r.task.ID)
		}
	}
	select {
	case <-finished:
	case <-time.After(w.cfg.KillGrace):
	}
}

// cancel stops a running task's handler; unknown ids and repeats are harmless.
func (w *Worker) cancel(taskID string, reason giobbav1.CancelReason) {
	w.mu.Lock()
	r := w.running[taskID]
	w.mu.Unlock()
	if r == nil {
		return
	}
	text := map[giobbav1.CancelReason]string{
		giobbav1.CancelReason_CANCEL_REASON_KILLED:     "killed",
		giobbav1.CancelReason_CANCEL_REASON_TIMEOUT:    "timeout",
		giobbav1.CancelReason_CANCEL_REASON_LEASE_LOST: "lease lost",
	}[reason]
	if text == "" {
		text = "cancelled"
	}
	w.log.Info("task cancelled", "task", taskID, "reason", text)
	if reason == giobbav1.CancelReason_CANCEL_REASON_TIMEOUT {
		r.cancel(errTimeout)
		return
	}
	r.cancel(&Cancelled{Reason: text})
}

func (w *Worker) heartbeats(bg context.Context) {
	interval := firstBeat
	for {
		if next := w.beat(bg); next > 0 {
			interval = next
		} else {
			interval = backoff(interval, firstBeat, maxBackoff)
		}
		if !sleep(bg, interval) {
			return
		}
	}
}

// beat sends one heartbeat with every lease held and applies the answer; it returns the
// interval the server asks for (0 on error).
func (w *Worker) beat(ctx context.Context) time.Duration {
	w.mu.Lock()
	leases := make([]*giobbav1.Lease, 0, len(w.running))
	for id, r := range w.running {
		leases = append(leases, &giobbav1.Lease{TaskId: id, LeaseToken: r.token})
	}
	w.mu.Unlock()
	call, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := w.client.Heartbeat(call, &giobbav1.HeartbeatRequest{Worker: w.info(), Leases: leases})
	if err != nil {
		if ctx.Err() == nil {
			w.log.Warn("heartbeat failed", "code", status.Code(err).String())
		}
		return 0
	}
	for _, c := range resp.GetCancellations() {
		w.cancel(c.GetTaskId(), c.GetReason())
	}
	if d := resp.GetHeartbeatInterval().AsDuration(); d > 0 {
		return max(d, 50*time.Millisecond)
	}
	return firstBeat
}

// watchCancellations keeps WorkerService.WatchCancellations open, reconnecting with
// backoff. Best effort: heartbeat answers carry the same cancellations.
func (w *Worker) watchCancellations(bg context.Context) {
	delay := time.Duration(0)
	for bg.Err() == nil {
		stream, err := w.client.WatchCancellations(bg,
			&giobbav1.WatchCancellationsRequest{WorkerId: w.cfg.ID}, grpc.WaitForReady(true))
		got := false
		for err == nil {
			var msg *giobbav1.WatchCancellationsResponse
			if msg, err = stream.Recv(); err == nil {
				got = true
				w.cancel(msg.GetCancellation().GetTaskId(), msg.GetCancellation().GetReason())
			}
		}
		if got {
			delay = 0
		}
		delay = backoff(delay, 200*time.Millisecond, maxBackoff)
		sleep(bg, delay)
	}
}

func (w *Worker) info() *giobbav1.WorkerInfo {
	w.mu.Lock()
	ids := make([]string, 0, len(w.running))
	for id := range w.running {
		ids = append(ids, id)
	}
	w.mu.Unlock()
	host, _ := os.Hostname()
	return &giobbav1.WorkerInfo{
		Id:             w.cfg.ID,
		Host:           host,
		Pid:            int32(os.Getpid()),
		Queues:         w.cfg.Queues,
		Concurrency:    int32(w.cfg.Concurrency),
		RunningTaskIds: ids,
		Completed:      w.completed.Load(),
		Failed:         w.failed.Load(),
		Version:        Version,
		Kind:           giobbav1.WorkerKind_WORKER_KIND_WORKER,
		StartedAt:      timestamppb.New(w.started),
	}
}

// sleep waits d or until ctx is done; false if ctx is done.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
