package main

import (
	"context"
	"io"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// run is what all workers share; read-only once the workers start, except stopped/abandoned.
type run struct {
	schema    *schema
	pool      [][]byte
	streams   int
	window    int
	refill    int
	keyPrefix string
	// interval between two batches of one worker (ns) in the open model; 0 = closed model.
	interval float64

	epoch    time.Time
	from, to int64 // measured period, ns since epoch: [warmup, warmup+duration)

	ctx     context.Context // carries the token; cancelled when the drain wait runs out
	stop    chan struct{}   // closed at `to`: senders stop, even those waiting for window room
	stopped atomic.Bool     // the same, cheaper to poll for every batch
	// The drain wait ran out and ctx was cancelled: the errors that follow are ours, not counted.
	abandoned atomic.Bool
}

func (r *run) now() int64 { return int64(time.Since(r.epoch)) }

// stats of one worker, merged when all are done: nothing is shared while the run goes.
type stats struct {
	batches, events, rejected, replayed uint64 // acked within the measured period
	sent, acked, ackedEvents            uint64 // the whole run, warmup and drain included
	latency                             histogram
	errors                              map[string]uint64
}

func (st *stats) fail(name string) {
	if st.errors == nil {
		st.errors = map[string]uint64{}
	}
	st.errors[name]++
}

func (r *run) failed(st *stats, err error) {
	if r.abandoned.Load() {
		return
	}
	st.fail(codeName(status.Code(err)))
}

func (r *run) acked(st *stats, a *ack, start int64) {
	now := r.now()
	measured := now >= r.from && now < r.to
	st.acked++
	if measured {
		st.batches++
		st.latency.record(now - start)
	}
	if a.replayed {
		// The stored Ack of an earlier batch with the same key: the server counted nothing.
		if measured {
			st.replayed++
		}
		return
	}
	st.ackedEvents += uint64(a.accepted)
	if measured {
		st.events += uint64(a.accepted)
		st.rejected += uint64(a.rejected)
	}
}

// source walks the batch pool for one worker. Workers start at different places so that they do
// not send the same domains in lockstep.
type source struct {
	r      *run
	worker int
	next   int
	count  uint64 // batches taken
}

func newSource(r *run, worker int) source {
	return source{r: r, worker: worker, next: worker * len(r.pool) / r.streams}
}

func (s *source) batch() []byte {
	b := s.r.pool[s.next]
	if s.next++; s.next == len(s.r.pool) {
		s.next = 0
	}
	s.count++
	if s.r.keyPrefix != "" {
		// Key numbers interleave the workers' (worker w takes w+1, w+1+n, ...): unique in the
		// run without a shared counter, and each number always goes with the same events, so
		// that a second run with the same flags and prefix replays the first one's batches
		// (replayed acks) instead of reusing their keys for other events (FAILED_PRECONDITION).
		seq := (s.count-1)*uint64(s.r.streams) + uint64(s.worker) + 1
		return s.r.schema.withKey(b, s.r.keyPrefix, seq)
	}
	return b
}

// schedule yields the due time of each batch of one worker in the open model (-rate): worker w of
// n sends batches k*n+w of a global schedule of one batch every 1/rate s, so the load is even over
// time and not bursty at each tick. It sleeps until the batch is due; a batch already due (the
// worker fell behind, waiting for acks) is sent at once, and its latency still counts from its due
// time: a server that stalls is charged for all the batches it kept waiting (wrk2's correction of
// coordinated omission). ok is false once the send period is over, or quit is closed.
type schedule struct {
	r      *run
	worker int
	k      int64
	timer  *time.Timer // reused: since Go 1.23 Reset needs no draining of the channel
}

func (s *schedule) due(quit <-chan struct{}) (due int64, ok bool) {
	r := s.r
	due = int64(float64(s.k*int64(r.streams)+int64(s.worker)) * r.interval)
	if due >= r.to || r.stopped.Load() {
		return 0, false
	}
	s.k++
	if wait := due - r.now(); wait > 0 {
		if s.timer == nil {
			s.timer = time.NewTimer(time.Duration(wait))
		} else {
			s.timer.Reset(time.Duration(wait))
		}
		select {
		case <-s.timer.C:
		case <-r.stop:
			s.timer.Stop()
			return 0, false
		case <-quit:
			s.timer.Stop()
			return 0, false
		}
	}
	return due, true
}

var publishDesc = grpc.StreamDesc{StreamName: "Publish", ServerStreams: true, ClientStreams: true}

// streamWorker keeps one Publish stream busy until the send period ends, reopening it after an
// error status, then closes its send side and reads the remaining acks.
func (r *run) streamWorker(worker int, conn *grpc.ClientConn, st *stats) {
	src := newSource(r, worker)
	sched := schedule{r: r, worker: worker}
	a := r.schema.newAck()
	backoff := time.Duration(0)
	for !r.stopped.Load() {
		if backoff > 0 {
			select {
			case <-time.After(backoff):
			case <-r.stop:
				return
			}
		}
		gotAck := r.publish(conn, st, &src, &sched, a)
		switch {
		case gotAck:
			backoff = 0
		case backoff == 0:
			backoff = 10 * time.Millisecond
		default:
			// The stream failed before any ack (server down, refusing): do not spin on it.
			backoff = min(2*backoff, time.Second)
		}
	}
}

// publish runs one Publish stream to its end; true if at least one batch was acked.
func (r *run) publish(conn *grpc.ClientConn, st *stats, src *source, sched *schedule, a *ack) bool {
	ctx, cancel := context.WithCancel(r.ctx)
	defer cancel()
	stream, err := conn.NewStream(ctx, &publishDesc, r.schema.publish)
	if err != nil {
		r.failed(st, err)
		return false
	}
	// pending carries the start times of the batches in flight, in send order (acks come in that
	// order); it never blocks, since the window lets no more batches be in flight than it holds.
	win := newWindow(r.window, r.refill)
	pending := make(chan int64, r.window)
	ended := make(chan struct{}) // the receive side is over: the sender gives up too
	var sent atomic.Uint64
	senderDone := make(chan struct{})

	go func() {
		defer close(senderDone)
		for {
			var start int64
			if r.interval > 0 {
				due, ok := sched.due(ended)
				if !ok {
					break
				}
				start = due
			} else if r.stopped.Load() {
				break
			}
			if !win.acquire(ended, r.stop) {
				break
			}
			if r.interval == 0 {
				// Closed model: latency from the send, once there was room in the window.
				if start = r.now(); start >= r.to {
					break
				}
			}
			pending <- start
			if err := stream.SendMsg(src.batch()); err != nil {
				// io.EOF: the stream is over; RecvMsg reports why. This batch was not sent.
				return
			}
			sent.Add(1)
		}
		stream.CloseSend()
	}()

	expect := uint64(1)
	gotAck := false
receive:
	for {
		err := stream.RecvMsg(a)
		if err == io.EOF {
			break // the server ended the stream after our CloseSend, every batch acked
		}
		if err != nil {
			r.failed(st, err)
			break
		}
		var start int64
		select {
		case start = <-pending:
			win.release()
		default:
			// An ack with no batch in flight: nothing more of this stream can be trusted.
			st.fail("UNEXPECTED_ACK")
			break receive
		}
		if a.batch != expect {
			st.fail("ACK_OUT_OF_ORDER")
			expect = a.batch
		}
		expect++
		gotAck = true
		r.acked(st, a, start)
	}
	close(ended)
	cancel() // unblocks a sender stuck in SendMsg (flow control) on a failed stream
	<-senderDone
	st.sent += sent.Load()
	return gotAck
}

// window bounds the batches of one stream sent and not yet acked. The sender blocks when size
// are in flight and, with refill > 1, resumes only once refill slots are free again, then sends
// them back to back: gRPC writes batches queued together in one system call (with -refill 128,
// measured 1 write for 128 batches instead of 1 for 2), and the server reads them in one go. The
// acks still come one by one (serve-grpc writes each on its own), so the client saves little;
// what changes is the load pattern the server sees, hence refill 1 by default: one batch sent
// for each ack, as scripts/bench-grpc.mjs does.
// One sender and one receiver per window: inFlight only grows in acquire, only shrinks in release.
type window struct {
	size, resume int64
	inFlight     atomic.Int64
	waiting      atomic.Bool
	wake         chan struct{}
}

func newWindow(size, refill int) *window {
	return &window{size: int64(size), resume: int64(size - min(max(refill, 1), size)), wake: make(chan struct{}, 1)}
}

// acquire takes a slot, waiting for room if need be; false if quit or stop was closed first.
func (w *window) acquire(quit, stop <-chan struct{}) bool {
	for w.inFlight.Load() >= w.size {
		// Say we wait, then look again: release may have freed room in between.
		w.waiting.Store(true)
		if w.inFlight.Load() <= w.resume {
			w.waiting.Store(false)
			break
		}
		select {
		case <-w.wake:
		case <-quit:
			return false
		case <-stop:
			return false
		}
	}
	w.inFlight.Add(1)
	return true
}

func (w *window) release() {
	if w.inFlight.Add(-1) <= w.resume && w.waiting.CompareAndSwap(true, false) {
		select {
		case w.wake <- struct{}{}:
		default: // a wake-up is already pending
		}
	}
}

// unaryWorker calls PublishOne, one call at a time, until the send period ends.
func (r *run) unaryWorker(worker int, conn *grpc.ClientConn, st *stats) {
	src := newSource(r, worker)
	sched := schedule{r: r, worker: worker}
	a := r.schema.newAck()
	backoff := time.Duration(0)
	for {
		var start int64
		if r.interval > 0 {
			due, ok := sched.due(nil)
			if !ok {
				return
			}
			start = due
		} else if start = r.now(); start >= r.to || r.stopped.Load() {
			return
		}
		st.sent++
		if err := conn.Invoke(r.ctx, r.schema.publishOne, src.batch(), a); err != nil {
			r.failed(st, err)
			if r.abandoned.Load() {
				return
			}
			// A server that refuses every call must not make this loop spin.
			backoff = min(max(2*backoff, 10*time.Millisecond), time.Second)
			select {
			case <-time.After(backoff):
			case <-r.stop:
				return
			}
			continue
		}
		backoff = 0
		r.acked(st, a, start)
	}
}

// codeName is the canonical name of a status code, as the gRPC spec and grpc-js spell it
// (codes.Code.String gives "Unavailable", "Canceled").
func codeName(c codes.Code) string {
	names := [...]string{"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
		"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",
		"OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"}
	if int(c) < len(names) {
		return names[c]
	}
	return c.String()
}
