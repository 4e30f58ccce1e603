// grpc-load: a load generator for `svc serve-grpc`, to it what wrk is to an HTTP server. It keeps
// Publish streams (or PublishOne callers) busy for a while and prints one JSON object of what the
// server acknowledged: events/s, batches/s, ack latency percentiles, error statuses.
//
// Why Go and not a script beside the others: on a 2-core machine the client shares the cores
// with the server it measures, and the grpc-js loop of scripts/bench-grpc.mjs used ~25 µs of CPU
// per 1-event batch (86% of a core for 34k batches/s). This client sends pre-marshalled batches
// through a pass-through codec and reads only three fields of each Ack: ~3 µs per batch at full
// load (a third of a core for 110-190k batches/s). Each batch still costs system calls and
// wake-ups, which dominate below full load. The message types come from
// proto/svc/v1/ingest.proto, parsed at start (no generated code).
//
// Build (cached in .cache/grpc-load/, rebuilt when a source is newer):
//
//	bin=$(scripts/grpc-load/build.sh)
//
// Run, e.g. 4 streams of 100-event batches for 10 s after 2 s of warmup:
//
//	$bin -target 127.0.0.1:50051 -proto proto/svc/v1/ingest.proto \
//	  -mode stream -streams 4 -batch-size 100 -duration 10s -warmup 2s
//
// Latency at a fixed load (open model, corrected for coordinated omission as wrk2 does):
//
//	$bin -target 127.0.0.1:50051 -streams 1 -batch-size 1 -rate 5000 -duration 10s
//
// There each batch is sent alone at its due time, one write(2) each: at 20k batches/s this
// client used half a core, about 25 µs a batch. For throughput, leave -rate out.
//
// Flags:
//
//	-target host:port   the daemon (required)
//	-proto path         ingest.proto (default: proto/svc/v1/ingest.proto of the project holding
//	                    the binary, else of the current directory)
//	-mode stream|unary  Publish bidi streams, or PublishOne calls
//	-streams N          concurrent streams (stream) or concurrent callers (unary)
//	-connections C      HTTP/2 connections; streams are spread over them round-robin
//	-batch-size B       events per EventBatch
//	-domains D          events go to d0.example .. d<D-1>.example, uniformly (fixed -seed)
//	-window W           stream mode: batches of one stream sent and not yet acked, at most
//	-refill F           stream mode: once the window is full, wait for F acks before sending
//	                    again (default 1: a batch for each ack)
//	-rate R             batches/s over all streams (0: as fast as the window allows)
//	-duration, -warmup  measured period, preceded by a period whose acks are not counted
//	-drain              at the end, how long to wait for the acks of batches sent
//	-token T            sends `authorization: Bearer T`
//	-key-prefix P       sets idempotency_key = P<n> on every batch, n unique in the run
//	-pool N             pre-marshalled batches to cycle through (0: enough to cover the domains)
//	-procs N            GOMAXPROCS (default 1: cheapest; 0: all cores)
//	-cpuprofile file    this client's CPU profile, to check what it costs
//
// Counting: "batches", "events", "rejected", "replayed" and the latency percentiles are those of
// the acks received in the measured period. "events" are the accepted events of acks not marked
// replayed (a batch whose idempotency_key the server had seen: it counted nothing). "unacknowledged"
// is the number of batches sent (warmup included) whose ack never came: streams that failed, or
// acks still missing after -drain. "totals" counts the whole run, warmup and drain included, to
// compare with the server's counters. "clientCpuSeconds" is this process's CPU (user + system)
// in the measured period. Exit status 1 if the target cannot be reached or nothing at all was
// acknowledged (the JSON is printed all the same).
//
// With -key-prefix, key number n always goes with the same events for the same -streams,
// -batch-size, -domains, -seed and -pool: a second run with the same prefix sends the first
// run's batches again, which the server should ack as replayed, up to where the first run
// stopped.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
)

// poolEvents bounds the pre-marshalled pool (about 20 bytes an event: 20 MiB at most).
const poolEvents = 1 << 20

type options struct {
	target, proto, mode, token, keyPrefix string
	streams, connections, batchSize       int
	domains, window, refill, pool         int
	rate                                  float64
	duration, warmup, drain               time.Duration
	seed                                  uint64
	cpuProfile                            string
	procs                                 int
}

func main() {
	var o options
	flag.StringVar(&o.target, "target", "", "`host:port` of svc serve-grpc (required)")
	flag.StringVar(&o.proto, "proto", "", "`path` of ingest.proto (default: proto/svc/v1/ingest.proto of the binary's project, else of the current directory)")
	flag.StringVar(&o.mode, "mode", "stream", "`stream` (Publish bidi streams) or unary (PublishOne calls)")
	flag.IntVar(&o.streams, "streams", 1, "concurrent streams (stream mode) or callers (unary mode)")
	flag.IntVar(&o.connections, "connections", 1, "HTTP/2 connections, streams spread over them round-robin")
	flag.IntVar(&o.batchSize, "batch-size", 1, "events per batch")
	flag.IntVar(&o.domains, "domains", 100_000, "distinct domains, d0.example .. d<N-1>.example")
	flag.IntVar(&o.window, "window", 256, "stream mode: most batches of one stream sent and not yet acked")
	flag.IntVar(&o.refill, "refill", 1, "stream mode: once the window is full, batches acked before the sender resumes")
	flag.Float64Var(&o.rate, "rate", 0, "batches/s over all streams, latency from each batch's due time (0: as fast as possible)")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "measured period")
	flag.DurationVar(&o.warmup, "warmup", 0, "period before the measured one: sent, not counted")
	flag.DurationVar(&o.drain, "drain", 10*time.Second, "at the end, longest wait for the acks of batches sent")
	flag.StringVar(&o.token, "token", "", "bearer `token`, sent as metadata authorization: Bearer <token>")
	flag.StringVar(&o.keyPrefix, "key-prefix", "", "if set, every batch gets idempotency_key = `prefix` + a number unique in the run (the same batch for the same number in a run with the same flags)")
	flag.IntVar(&o.pool, "pool", 0, "pre-marshalled batches to cycle through (0: about 2 events per domain, at most 1M events)")
	flag.Uint64Var(&o.seed, "seed", 1, "seed of the domain choice")
	flag.IntVar(&o.procs, "procs", 1, "OS threads running Go code at once (GOMAXPROCS); 0: Go's default, all cores")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write this client's CPU profile to `file` (go tool pprof), to see what it costs")
	flag.Parse()
	if err := o.check(); err != nil {
		fmt.Fprintf(os.Stderr, "grpc-load: %v\n", err)
		flag.Usage()
		os.Exit(2)
	}
	if o.procs > 0 {
		// One by default: this client spends its time waking up for small frames, and with one P
		// the Go scheduler hands goroutines over without waking (futex) and spinning other
		// threads; on 2 cores shared with the server that measured about a third less CPU a
		// batch, and one core is far more than this client needs.
		runtime.GOMAXPROCS(o.procs)
	}
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "grpc-load: %v\n", err)
			os.Exit(2)
		}
	}
	rep, err := runLoad(&o)
	pprof.StopCPUProfile()
	if rep != nil {
		out, _ := json.Marshal(rep)
		fmt.Println(string(out))
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "grpc-load: %v\n", err)
		os.Exit(1)
	}
}

func (o *options) check() error {
	switch {
	case o.target == "":
		return errors.New("-target is required")
	case o.mode != "stream" && o.mode != "unary":
		return errors.New("-mode is stream or unary")
	case o.streams < 1 || o.connections < 1 || o.batchSize < 1 || o.domains < 1 || o.window < 1:
		return errors.New("-streams, -connections, -batch-size, -domains and -window must be at least 1")
	case o.duration <= 0 || o.warmup < 0 || o.rate < 0 || o.pool < 0:
		return errors.New("-duration must be positive; -warmup, -rate and -pool not negative")
	}
	if o.proto == "" {
		o.proto = findProto()
		if o.proto == "" {
			return errors.New("no proto/svc/v1/ingest.proto found beside the binary or here: pass -proto")
		}
	}
	return nil
}

// findProto looks for the project's proto file: the binary lives in <project>/.cache/grpc-load/.
func findProto() string {
	const rel = "proto/svc/v1/ingest.proto"
	var candidates []string
	if exe, err := os.Executable(); err == nil {
		candidates = append(candidates, filepath.Join(filepath.Dir(exe), "..", "..", rel))
	}
	for _, c := range append(candidates, rel) {
		if _, err := os.Stat(c); err == nil {
			return c
		}
	}
	return ""
}

type latencyMs struct {
	P50 float64 `json:"p50"`
	P95 float64 `json:"p95"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

type totals struct {
	BatchesSent  uint64 `json:"batchesSent"`
	BatchesAcked uint64 `json:"batchesAcked"`
	EventsAcked  uint64 `json:"eventsAcked"`
}

type report struct {
	Mode             string            `json:"mode"`
	Streams          int               `json:"streams"`
	Connections      int               `json:"connections"`
	BatchSize        int               `json:"batchSize"`
	Window           int               `json:"window,omitempty"`
	Rate             float64           `json:"rate"`
	Seconds          float64           `json:"seconds"`
	Batches          uint64            `json:"batches"`
	Events           uint64            `json:"events"`
	Rejected         uint64            `json:"rejected"`
	Replayed         uint64            `json:"replayed"`
	EventsPerSecond  float64           `json:"eventsPerSecond"`
	BatchesPerSecond float64           `json:"batchesPerSecond"`
	LatencyMs        latencyMs         `json:"latencyMs"`
	Errors           map[string]uint64 `json:"errors"`
	Unacknowledged   uint64            `json:"unacknowledged"`
	Totals           totals            `json:"totals"`
	// CPU (user + system) this process used in the measured period: its share of the machine.
	ClientCPUSeconds float64 `json:"clientCpuSeconds"`
}

func runLoad(o *options) (*report, error) {
	s, err := loadSchema(o.proto)
	if err != nil {
		return nil, err
	}
	conns, err := connect(o.target, o.connections, 5*time.Second)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	if err != nil {
		return nil, err
	}

	count := o.pool
	if count == 0 {
		// Enough batches that the run covers the domains (the server's per-domain work is then
		// realistic, not a few hot keys), without marshalling more than poolEvents events.
		count = min(max(64, (2*o.domains+o.batchSize-1)/o.batchSize), max(1, poolEvents/o.batchSize))
	}
	pool := s.batchPool(count, o.batchSize, o.domains, o.seed)

	ctx, abandon := context.WithCancel(context.Background())
	defer abandon()
	if o.token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+o.token)
	}
	r := &run{
		schema: s, pool: pool, streams: o.streams, window: o.window, refill: o.refill, keyPrefix: o.keyPrefix,
		ctx: ctx, stop: make(chan struct{}),
		from: int64(o.warmup), to: int64(o.warmup + o.duration),
	}
	if o.rate > 0 {
		r.interval = 1e9 / o.rate
	}
	worker := r.streamWorker
	if o.mode == "unary" {
		worker = r.unaryWorker
	}

	all := make([]stats, o.streams)
	var wg sync.WaitGroup
	r.epoch = time.Now()
	for i := range o.streams {
		wg.Go(func() { worker(i, conns[i%len(conns)], &all[i]) })
	}
	time.Sleep(time.Until(r.epoch.Add(o.warmup)))
	cpuFrom := cpuTime()
	time.Sleep(time.Until(r.epoch.Add(o.warmup + o.duration)))
	cpu := cpuTime() - cpuFrom
	r.stopped.Store(true)
	close(r.stop)

	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(o.drain):
		// Acks still missing: give up on them (they are counted as unacknowledged).
		r.abandoned.Store(true)
		abandon()
		<-done
	}

	var sum stats
	sum.errors = map[string]uint64{}
	for i := range all {
		st := &all[i]
		sum.batches += st.batches
		sum.events += st.events
		sum.rejected += st.rejected
		sum.replayed += st.replayed
		sum.sent += st.sent
		sum.acked += st.acked
		sum.ackedEvents += st.ackedEvents
		sum.latency.merge(&st.latency)
		for name, n := range st.errors {
			sum.errors[name] += n
		}
	}
	seconds := o.duration.Seconds()
	ms := func(ns int64) float64 { return math.Round(float64(ns)/1e3) / 1e3 }
	rep := &report{
		Mode: o.mode, Streams: o.streams, Connections: o.connections, BatchSize: o.batchSize, Rate: o.rate,
		Seconds: seconds, Batches: sum.batches, Events: sum.events, Rejected: sum.rejected, Replayed: sum.replayed,
		EventsPerSecond:  math.Round(float64(sum.events) / seconds),
		BatchesPerSecond: math.Round(float64(sum.batches) / seconds),
		LatencyMs: latencyMs{
			P50: ms(sum.latency.percentile(0.50)), P95: ms(sum.latency.percentile(0.95)),
			P99: ms(sum.latency.percentile(0.99)), Max: ms(sum.latency.max),
		},
		Errors:           sum.errors,
		Unacknowledged:   sum.sent - sum.acked,
		Totals:           totals{BatchesSent: sum.sent, BatchesAcked: sum.acked, EventsAcked: sum.ackedEvents},
		ClientCPUSeconds: math.Round(cpu.Seconds()*1000) / 1000,
	}
	if o.mode == "stream" {
		rep.Window = o.window
	}
	if sum.acked == 0 {
		return rep, errors.New("no batch was acknowledged")
	}
	return rep, nil
}

// connect opens n connections and waits until all are ready, so that an unreachable target is
// reported as such rather than as a run full of UNAVAILABLE errors.
func connect(target string, n int, timeout time.Duration) ([]*grpc.ClientConn, error) {
	var conns []*grpc.ClientConn
	for range n {
		// One ClientConn per connection: gRPC multiplexes all streams of a ClientConn over one
		// HTTP/2 connection (pick_first), so separate ClientConns are how to get several.
		c, err := grpc.NewClient(target,
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			// Fixed, large receive windows: they turn off gRPC's bandwidth-delay estimation, which
			// answers data with PINGs, and make WINDOW_UPDATEs rare: fewer frames, fewer writes.
			grpc.WithInitialWindowSize(1<<24),
			grpc.WithInitialConnWindowSize(1<<24),
			grpc.WithDefaultCallOptions(grpc.ForceCodecV2(rawCodec{})))
		if err != nil {
			return conns, err
		}
		conns = append(conns, c)
		c.Connect()
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for _, c := range conns {
		for state := c.GetState(); state != connectivity.Ready; state = c.GetState() {
			// A refused connection fails at once (the bench scripts start the tool only once the
			// daemon listens); the timeout is for a target that does not answer at all.
			if state == connectivity.TransientFailure {
				return conns, fmt.Errorf("cannot connect to %s", target)
			}
			if !c.WaitForStateChange(ctx, state) {
				return conns, fmt.Errorf("cannot connect to %s within %s", target, timeout)
			}
		}
	}
	return conns, nil
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
