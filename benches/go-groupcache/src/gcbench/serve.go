// -role serve: the contender "Go groupcache" of the Rust harness compare.
//
// compare alternates rounds between its contenders, so it cannot run this
// benchmark from start to end on its own: it starts one serving driver (which
// starts its two peers, see startCluster) and sends it one command per round,
// a JSON line on stdin; the driver runs that one measurement and answers with
// one JSON line on stdout. The first line it writes says who it is (go
// version, GOMAXPROCS, peers). It stops, with its peers, when stdin closes.
//
// A measurement is taken the way compare takes its own (benches/src/bin/
// compare/measure.rs): a warm-up, then each of `callers` goroutines does one
// Get after another until the deadline, timing groups of `batch` Gets (the
// latency recorded is a group's mean); the elapsed time runs until the last
// caller is done. Caller c asks for keys[c % len(keys)], so callers in flight
// at once ask for different keys, as compare's callers do.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/golang/groupcache"
)

type command struct {
	Op       string `json:"op"`      // "local", "remote" or "stampede"
	Size     int    `json:"size"`    // value size in bytes
	Keys     int    `json:"keys"`    // remote: how many keys the callers share
	Callers  int    `json:"callers"` // Gets in flight at once
	Batch    int    `json:"batch"`   // Gets per clock reading
	WarmupNs int64  `json:"warmup_ns"`
	RunNs    int64  `json:"run_ns"`
	Round    int    `json:"round"` // stampede: part of the fresh key's name
}

type reply struct {
	Ops        int64      `json:"ops"`
	ElapsedNs  int64      `json:"elapsed_ns"`
	Errors     int64      `json:"errors"`
	FirstError string     `json:"first_error,omitempty"`
	Latency    [][2]int64 `json:"latency"` // [ns, count] buckets
	Loads      int64      `json:"loads"`   // loader calls in the whole cluster
	Failed     string     `json:"failed,omitempty"`
}

type hello struct {
	Go         string   `json:"go"`
	GoMaxProcs int      `json:"gomaxprocs"`
	Peers      []string `json:"peers"`
}

func serve() {
	out := json.NewEncoder(os.Stdout)
	if err := out.Encode(hello{runtime.Version(), runtime.GOMAXPROCS(0), allPeers()}); err != nil {
		return
	}
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		var cmd command
		var rep reply
		if err := json.Unmarshal(in.Bytes(), &cmd); err != nil {
			rep.Failed = "bad command: " + err.Error()
		} else {
			rep = run(cmd)
		}
		if err := out.Encode(rep); err != nil {
			return
		}
	}
}

// run runs one command; a panic becomes a failed reply.
func run(cmd command) (rep reply) {
	defer func() {
		if p := recover(); p != nil {
			rep = reply{Failed: fmt.Sprint(p)}
		}
	}()
	switch cmd.Op {
	case "local":
		return serveLocal(cmd)
	case "remote":
		return serveRemote(cmd)
	case "stampede":
		return serveStampede(cmd)
	}
	return reply{Failed: "unknown op " + cmd.Op}
}

// ---------------------------------------------------------------- latencies

// histogram counts latencies rounded down to 3 significant digits: compact
// enough for a JSON line, finer than compare's own (2 digits).
type histogram map[int64]int64

func (h histogram) record(ns, n int64) {
	if ns < 1 {
		ns = 1
	}
	scale := int64(1)
	for ns/scale >= 1000 {
		scale *= 10
	}
	h[ns/scale*scale] += n
}

func (h histogram) buckets() [][2]int64 {
	out := make([][2]int64, 0, len(h))
	for ns, n := range h {
		out = append(out, [2]int64{ns, n})
	}
	return out
}

type sampler struct {
	ops, errors int64
	firstError  string
	h           histogram
}

func callerLoop(op func(caller int) error, caller, batch int, deadline time.Time, s *sampler) {
	for {
		started := time.Now()
		if !started.Before(deadline) {
			return
		}
		for j := 0; j < batch; j++ {
			if err := op(caller); err != nil {
				s.errors++
				if s.firstError == "" {
					s.firstError = err.Error()
				}
			}
		}
		s.h.record(int64(time.Since(started))/int64(batch), 1)
		s.ops += int64(batch)
	}
}

// runCallers runs `callers` caller loops at once for d; their merged sample
// and the time until the last one finished.
func runCallers(op func(int) error, callers, batch int, d time.Duration) (sampler, time.Duration) {
	parts := make([]sampler, callers)
	for i := range parts {
		parts[i].h = make(histogram, 256)
	}
	var wg sync.WaitGroup
	started := time.Now()
	deadline := started.Add(d)
	for c := range parts {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			callerLoop(op, c, batch, deadline, &parts[c])
		}(c)
	}
	wg.Wait()
	elapsed := time.Since(started)
	merged := sampler{h: histogram{}}
	for _, p := range parts {
		merged.ops += p.ops
		merged.errors += p.errors
		if merged.firstError == "" {
			merged.firstError = p.firstError
		}
		for ns, n := range p.h {
			merged.h[ns] += n
		}
	}
	return merged, elapsed
}

// measure: a warm-up of cmd.WarmupNs, then the measured run; loads() is read
// around the measured run.
func measure(cmd command, op func(int) error, loads func() int64) reply {
	callers, batch := cmd.Callers, cmd.Batch
	if callers < 1 {
		callers = 1
	}
	if batch < 1 {
		batch = 1
	}
	runtime.GC()
	runCallers(op, callers, batch, time.Duration(cmd.WarmupNs))
	before := loads()
	s, elapsed := runCallers(op, callers, batch, time.Duration(cmd.RunNs))
	return reply{
		Ops:        s.ops,
		ElapsedNs:  int64(elapsed),
		Errors:     s.errors,
		FirstError: s.firstError,
		Latency:    s.h.buckets(),
		Loads:      loads() - before,
	}
}

// clusterLoads sums one loader counter over the three processes.
func clusterLoads(pick func(stats) int64) func() int64 {
	return func() int64 {
		var sum int64
		for i := 0; i < nPeers; i++ {
			sum += pick(peerStats(i))
		}
		return sum
	}
}

// ---------------------------------------------------------------- workloads

var localKey string

// serveLocal: Gets of a 100 B value that the driver owns and holds in its
// main cache (group "bench").
func serveLocal(cmd command) reply {
	if localKey == "" {
		localKey = ownedKeys(cmd.Size, "local", 0, 1)[0]
		if err := getCheck(bench, localKey, cmd.Size); err != nil {
			panic(err)
		}
	}
	ctx := context.Background()
	want := cmd.Size
	op := func(int) error {
		var v groupcache.ByteView
		if err := bench.Get(ctx, localKey, groupcache.ByteViewSink(&v)); err != nil {
			return err
		}
		if v.Len() != want {
			return fmt.Errorf("len %d != %d", v.Len(), want)
		}
		return nil
	}
	return measure(cmd, op, clusterLoads(func(s stats) int64 { return s.BenchLoads }))
}

// remoteKeys: per value size, the keys owned by peer 1, each loaded once by
// its owner (which keeps it in its main cache).
var remoteKeys = map[int][]string{}

// serveRemote: Gets in the driver's group "remote" (no cache in the driver:
// every Get is a round trip) of values that peer 1 holds.
func serveRemote(cmd command) reply {
	keys := remoteKeys[cmd.Size]
	if len(keys) < cmd.Keys || len(keys) == 0 {
		n := cmd.Keys
		if n < 1 {
			n = 1
		}
		keys = ownedKeys(cmd.Size, "r", 1, n)
		for _, k := range keys {
			if err := getCheck(remote, k, cmd.Size); err != nil {
				panic(err)
			}
		}
		remoteKeys[cmd.Size] = keys
	}
	op := func(caller int) error { return getCheck(remote, keys[caller%len(keys)], cmd.Size) }
	return measure(cmd, op, clusterLoads(func(s stats) int64 { return s.RemoteLoads }))
}

// serveStampede: cmd.Callers Gets of one cold key owned by peer 1 at once,
// spread evenly over the three processes (as compare spreads its callers).
func serveStampede(cmd command) reply {
	tag := fmt.Sprintf("stampede-%d-%d", cmd.Round, time.Now().UnixNano())
	key := ownedKeys(cmd.Size, tag, 1, 1)[0]
	loads := clusterLoads(func(s stats) int64 { return s.StampedeLoads })
	before := loads()
	counts := make([]int, nPeers)
	for i := 0; i < cmd.Callers; i++ {
		counts[i%nPeers]++
	}
	res, elapsed := stampedeEverywhere(key, counts)
	h := histogram{}
	var errs int64
	for _, r := range res {
		errs += int64(r.Errs)
		for _, b := range r.Latency {
			h[b[0]] += b[1]
		}
	}
	rep := reply{
		Ops:       int64(cmd.Callers),
		ElapsedNs: int64(elapsed),
		Errors:    errs,
		Latency:   h.buckets(),
		Loads:     loads() - before,
	}
	if errs > 0 {
		rep.FirstError = "a Get failed or returned the wrong length"
	}
	return rep
}
