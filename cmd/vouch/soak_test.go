package main

// Soak under faults (issue 8, item 9): `vouch serve` under open-loop load while its registry
// cycles through healthy, slow, 429, 5xx and down.
//
//   - BenchmarkServeSoak: 200 req/s for 5 minutes, 30 s per phase (two full cycles), then the
//     registry healthy again until vouch has recovered, then a healthy tail. VOUCH_SOAK_RATE,
//     VOUCH_SOAK_DURATION and VOUCH_SOAK_PHASE change rate, duration and phase length. `make soak`.
//   - TestServeSoakBrief: the same soak at 40 req/s with 2 s phases (one cycle), so that the soak
//     and its checks run on every `go test`.
//
// The world: one hostile registry (fixture.StartHostile) holding a signed and an unsigned image,
// both referenced by TAG, so that every admission resolves the tag at the registry (a HEAD) and
// a fault matters even when the verification is cached. Two ClusterPolicies, both Enforce,
// key-only, mutateDigest: verify-strict (failurePolicy: Fail) matches namespace strict,
// verify-lenient (failurePolicy: Ignore) matches namespace lenient. The requests (AdmissionReview
// v1 CREATE Pod on /mutate?timeout=2s, as the API server sends them; vouch's budget is then
// 2 s − 500 ms) rotate through strict/signed, strict/unsigned, lenient/signed and
// lenient/unsigned.
//
// What a registry fault prescribes (internal/engine Decide): the tag cannot be resolved, the
// image is "could not verify image …" (undecided, never "unsigned"); failurePolicy Fail denies,
// Ignore admits without a pin and with the could-not-verify message as a warning. When the
// registry answers, the signed image is admitted with its verified digest pinned and the
// unsigned one is denied ("failed to verify image …") under both policies.
//
// Every response is checked against that, by the registry's mode when the request was sent and
// when its answer came (phase boundaries are racy):
//
//	exact       both healthy, and the last fault ended at least soakRecovery earlier (or none
//	            came yet): the registry's answer decides — signed pinned, unsigned failed
//	fault       both in a fault mode: undecided — strict denied "could not verify", lenient
//	            admitted unpinned with a "could not verify" warning
//	boundary    send and answer in different modes, and
//	recovering  both healthy within soakRecovery of a fault: vouch's circuit breaker stays open
//	            up to its cooldown (10 s) after a fault, so either of the above is right
//
// and on every response: answered (HTTP 200, a well-formed AdmissionReview with the request's
// UID) within the ?timeout= the API server would have waited, and nothing unverified admitted
// (no strict admission without the verified digest pinned, no lenient admission without that
// pin or, outside an exact window, the could-not-verify warning).
//
// The server's goroutines (go_goroutines on /metrics) and RSS (/proc/<pid>/status) are sampled
// throughout; flatness is judged idle (no request in flight, client connections closed) before
// and after, and under the same healthy load at the start and at the end.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vouchproject/vouch/internal/fixture"
	"github.com/vouchproject/vouch/internal/registry"
)

const (
	// soakTimeout is the ?timeout= of every request, as the API server sends its
	// timeoutSeconds; vouch's budget is 1.5 s of it (internal/webhook budget).
	soakTimeout = 2 * time.Second
	// soakSlowDelay is the slow registry's delay: longer than the whole timeout, so that every
	// resolution started in the slow phase runs into vouch's budget.
	soakSlowDelay = 3 * time.Second
	// soakRecovery is how long after a fault a healthy registry may still get "could not
	// verify": the circuit breaker's cooldown (the probe that closes it comes at most that long
	// after the last failure), plus one timeout for the probe and the requests in flight, plus
	// a second.
	soakRecovery = registry.DefaultBreakerCooldown + soakTimeout + time.Second
)

// Flatness bounds, at the end against the start, idle and under the same healthy load. Measured
// (brief, 1- and 5-minute runs, 2-core machine): goroutines 13–17 idle at both ends, 14–17
// under load; RSS 60–90 MiB at both ends (+3 to +6 MiB from start to end), 78–104 MiB at the
// peak (the slow phase: ~300 admissions in flight, ~690 goroutines). A leak of one goroutine or 1 KiB per timed-out or rejected admission
// (thousands per phase) crosses them; the noise of idle keep-alive connections does not.
const (
	soakGoroutineFactor = 1.5
	soakGoroutineSlack  = 25
	soakRSSFactor       = 1.5
	soakRSSSlackMiB     = 16
)

// soakCycle is the registry's cycle of modes; the phase driver repeats it.
var soakCycle = []string{fixture.Healthy, fixture.Slow, fixture.RateLimited, fixture.ServerError, fixture.Down}

func soakFault(mode string) bool { return mode != fixture.Healthy && mode != "" }

// soakConfig is one soak's shape.
type soakConfig struct {
	rate     float64       // requests per second, open loop
	duration time.Duration // the faulted run
	phase    time.Duration // each mode of soakCycle
	warmup   time.Duration // healthy load before the run (checked exactly)
	tail     time.Duration // healthy load once vouch has recovered (checked exactly)
	sample   time.Duration // goroutines and RSS sampling interval
	slack    time.Duration // latency allowed past soakTimeout
	// flatness bounds: idle and under-load goroutines at the end at most start×goroutineFactor
	// + goroutineSlack, RSS at most start×rssFactor + rssSlack
	goroutineFactor float64
	goroutineSlack  float64
	rssFactor       float64
	rssSlack        float64
}

// ---- the world ----

// soakKind is one of the four requests.
type soakKind int

const (
	strictSigned soakKind = iota
	strictUnsigned
	lenientSigned
	lenientUnsigned
	soakKindCount
)

func (k soakKind) String() string {
	return [...]string{"strict/signed", "strict/unsigned", "lenient/signed", "lenient/unsigned"}[k]
}
func (k soakKind) strict() bool { return k == strictSigned || k == strictUnsigned }
func (k soakKind) signed() bool { return k == strictSigned || k == lenientSigned }

// soakWorld is the hostile registry with its two images and the two policy files.
type soakWorld struct {
	h        *fixture.Hostile
	signed   string // <host>/soak/signed:v1
	unsigned string // <host>/soak/unsigned:v1
	pin      string // what a verified pin of the signed image writes: <host>/soak/signed:v1@<digest>
	policies []string
	bodies   [soakKindCount]func(uid string) []byte
}

func newSoakWorld(tb testing.TB) *soakWorld {
	tb.Helper()
	h := fixture.StartHostile(nil)
	tb.Cleanup(h.Close)
	h.SlowDelay = soakSlowDelay
	h.SetMode(fixture.Healthy)
	key, err := fixture.NewKey()
	if err != nil {
		tb.Fatal(err)
	}
	reg := &fixture.Registry{Host: h.Host} // Push and Sign only use Host: the hostile's plain names
	ctx := context.Background()
	digest, err := reg.Push(ctx, "soak/signed:v1")
	if err != nil {
		tb.Fatal(err)
	}
	if err := reg.Sign(ctx, "soak/signed", digest, key.Private, nil, ""); err != nil {
		tb.Fatal(err)
	}
	if _, err := reg.Push(ctx, "soak/unsigned:v1"); err != nil {
		tb.Fatal(err)
	}
	w := &soakWorld{h: h, signed: h.Host + "/soak/signed:v1", unsigned: h.Host + "/soak/unsigned:v1"}
	w.pin = w.signed + "@" + digest
	dir := tb.TempDir()
	for _, p := range []struct{ name, namespace, failurePolicy string }{
		{"verify-strict", "strict", "Fail"},
		{"verify-lenient", "lenient", "Ignore"},
	} {
		pol := `apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: ` + p.name + `}
spec:
  validationFailureAction: Enforce
  failurePolicy: ` + p.failurePolicy + `
  background: false
  rules:
  - name: check-signature
    match: {any: [{resources: {kinds: [Pod], namespaces: [` + p.namespace + `]}}]}
    verifyImages:
    - imageReferences: ["` + h.Host + `/*"]
      mutateDigest: true
      verifyDigest: true
      required: true
      attestors:
      - entries:
        - keys:
            rekor: {ignoreTlog: true}
            ctlog: {ignoreSCT: true}
            publicKeys: |-
              ` + indentLines(key.PEM, "              ") + "\n"
		path := filepath.Join(dir, p.name+".yaml")
		if err := os.WriteFile(path, []byte(pol), 0o600); err != nil {
			tb.Fatal(err)
		}
		w.policies = append(w.policies, path)
	}
	for k := soakKind(0); k < soakKindCount; k++ {
		image, ns := w.unsigned, "lenient"
		if k.signed() {
			image = w.signed
		}
		if k.strict() {
			ns = "strict"
		}
		w.bodies[k] = podReviewIn(ns, image)
	}
	return w
}

// podReviewIn is podReview with the Pod and the request in namespace ns.
func podReviewIn(ns string, images ...string) func(uid string) []byte {
	body := podReview(images...)
	from, to := []byte(`"namespace":"default"`), []byte(`"namespace":"`+ns+`"`)
	return func(uid string) []byte { return bytes.ReplaceAll(body(uid), from, to) }
}

// ---- outcomes ----

// What an answer says.
const (
	outPinned    = "pinned"    // allowed, the signed image's verified digest pinned
	outWarned    = "warned"    // allowed, nothing pinned, a "could not verify" warning
	outFailed    = "failed"    // denied, "failed to verify image": the registry answered
	outUndecided = "undecided" // denied, "could not verify image": it did not
	outOther     = "other"     // anything else: a violation whatever the phase
	outNoAnswer  = "no-answer" // transport error, client timeout or HTTP status other than 200
)

// soakReply is what the soak reads of an AdmissionReview response.
type soakReply struct {
	Response *struct {
		UID      string   `json:"uid"`
		Allowed  bool     `json:"allowed"`
		Patch    []byte   `json:"patch"`
		Warnings []string `json:"warnings"`
		Status   *struct {
			Message string `json:"message"`
		} `json:"status"`
	} `json:"response"`
}

// classify returns what the answer to a request of kind k says, whether it admitted, and a
// description of anything unexpected.
func (w *soakWorld) classify(k soakKind, uid string, body []byte) (outcome string, allowed bool, detail string) {
	var r soakReply
	if err := json.Unmarshal(body, &r); err != nil || r.Response == nil {
		return outOther, false, fmt.Sprintf("not an AdmissionReview response (%v): %.300s", err, body)
	}
	resp := r.Response
	if resp.UID != uid {
		return outOther, resp.Allowed, fmt.Sprintf("UID %q, want %q", resp.UID, uid)
	}
	const couldNot, failedTo = "could not verify image ", "failed to verify image "
	if resp.Allowed {
		var ops []struct {
			Op    string `json:"op"`
			Path  string `json:"path"`
			Value any    `json:"value"`
		}
		if len(resp.Patch) > 0 {
			if err := json.Unmarshal(resp.Patch, &ops); err != nil {
				return outOther, true, fmt.Sprintf("allowed with a patch that is not a JSON patch (%v): %s", err, resp.Patch)
			}
		}
		var image []any
		for _, op := range ops {
			if op.Path == "/spec/containers/0/image" || strings.HasPrefix(op.Path, "/spec/containers") {
				image = append(image, op.Value)
			}
		}
		patch := string(resp.Patch)
		switch {
		case len(image) == 1 && image[0] == w.pin && k.signed():
			return outPinned, true, ""
		case len(image) > 0:
			return outOther, true, "allowed with a patch of the containers that is not the verified pin: " + patch
		}
		for _, wr := range resp.Warnings {
			if strings.Contains(wr, couldNot) {
				return outWarned, true, wr
			}
		}
		return outOther, true, fmt.Sprintf("allowed without a pin or a could-not-verify warning: warnings %q patch %s", resp.Warnings, patch)
	}
	msg := ""
	if resp.Status != nil {
		msg = resp.Status.Message
	}
	switch {
	case strings.Contains(msg, couldNot) && !strings.Contains(msg, failedTo):
		return outUndecided, false, msg
	case strings.Contains(msg, failedTo) && !strings.Contains(msg, couldNot):
		return outFailed, false, msg
	}
	return outOther, false, "denied: " + msg
}

// soakExpected are the outcomes right for a request of kind k in a window of class c.
func soakExpected(k soakKind, c string) []string {
	verified := outFailed // the registry answered
	if k.signed() {
		verified = outPinned
	}
	undecided := outWarned // failurePolicy decides
	if k.strict() {
		undecided = outUndecided
	}
	switch c {
	case "exact":
		return []string{verified}
	case "fault":
		return []string{undecided}
	}
	return []string{verified, undecided}
}

// ---- one load run ----

// soakRecord is one request of a run.
type soakRecord struct {
	kind     soakKind
	sent     time.Time
	sendMode string
	answered bool
	recvMode string
	latency  time.Duration // from send to the answer read and classified
	outcome  string
	allowed  bool
	detail   string
	class    string // exact, fault, boundary, recovering (see the top of the file)
}

// phaseMark is a change of the registry's mode, timed just after it took effect.
type phaseMark struct {
	at   time.Time
	mode string
}

// soakRun is one runLoad call whose requests are recorded one by one.
type soakRun struct {
	name  string
	w     *soakWorld
	exact bool // the registry is healthy and vouch has recovered throughout
	recs  []soakRecord
	res   loadResult
}

func soakIndex(uid string) int {
	i, _ := strconv.Atoi(strings.TrimPrefix(uid, "load-"))
	return i
}

// body is runLoad's body function: called when request uid is sent.
func (r *soakRun) body(uid string) []byte {
	i := soakIndex(uid)
	k := soakKind(i % int(soakKindCount))
	r.recs[i] = soakRecord{kind: k, sent: time.Now(), sendMode: r.w.h.Mode()}
	return r.w.bodies[k](uid)
}

// check is runLoad's check function: called when the answer to uid has been read.
func (r *soakRun) check(uid string, body []byte) error {
	rec := &r.recs[soakIndex(uid)]
	rec.latency = time.Since(rec.sent)
	rec.recvMode = r.w.h.Mode()
	rec.answered = true
	rec.outcome, rec.allowed, rec.detail = r.w.classify(rec.kind, uid, body)
	return nil
}

// run sends the run's requests (runLoad: open loop, a goroutine per request).
func (r *soakRun) run(client *http.Client, url string, rate float64, d time.Duration) {
	r.recs = make([]soakRecord, int(rate*d.Seconds()))
	r.res = runLoad(client, url, r.body, r.check, rate, d)
}

// classifyAll sets each record's class from the modes it saw and the phase marks.
func (r *soakRun) classifyAll(marks []phaseMark) {
	for i := range r.recs {
		rec := &r.recs[i]
		if !rec.answered {
			rec.outcome = outNoAnswer
		}
		switch {
		case r.exact:
			rec.class = "exact"
		case soakFault(rec.sendMode) && (soakFault(rec.recvMode) || !rec.answered):
			rec.class = "fault"
		case rec.sendMode != rec.recvMode && rec.answered:
			rec.class = "boundary"
		case soakSinceFault(marks, rec.sent) < soakRecovery:
			rec.class = "recovering"
		default:
			rec.class = "exact"
		}
	}
}

// soakSinceFault is how long before t the last fault phase begun before t ended (negative when
// it had not, hours when there was none).
func soakSinceFault(marks []phaseMark, t time.Time) time.Duration {
	since := 24 * time.Hour
	for i, m := range marks {
		if m.at.After(t) {
			break
		}
		if soakFault(m.mode) {
			since = -time.Nanosecond
			if i+1 < len(marks) {
				since = t.Sub(marks[i+1].at)
			}
		}
	}
	return since
}

// ---- goroutines and memory ----

type soakSample struct {
	at         time.Time
	stage      string // warm-up, run, recovery, tail, idle-before, idle-after
	mode       string
	goroutines float64
	rssMiB     float64
	heapMiB    float64
}

// soakSampler reads the server's go_goroutines and heap from /metrics and its RSS from /proc.
type soakSampler struct {
	t      *loadTarget
	client *http.Client
	stage  atomic.Pointer[string]
	mode   func() string

	mu      sync.Mutex
	samples []soakSample
}

func (s *soakSampler) setStage(stage string) { s.stage.Store(&stage) }

func (s *soakSampler) take() (soakSample, error) {
	smp := soakSample{at: time.Now(), stage: *s.stage.Load(), mode: s.mode()}
	resp, err := s.client.Get("https://" + s.t.addr + "/metrics")
	if err != nil {
		return smp, err
	}
	text, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return smp, err
	}
	var rssBytes float64
	for _, line := range strings.Split(string(text), "\n") {
		name, value, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			continue
		}
		switch name {
		case "go_goroutines":
			smp.goroutines = v
		case "go_memstats_heap_inuse_bytes":
			smp.heapMiB = v / (1 << 20)
		case "process_resident_memory_bytes":
			rssBytes = v
		}
	}
	if rss := vmRSS(strconv.Itoa(s.t.pid)); rss > 0 {
		rssBytes = float64(rss)
	}
	smp.rssMiB = rssBytes / (1 << 20)
	if smp.goroutines == 0 {
		return smp, fmt.Errorf("no go_goroutines in /metrics")
	}
	s.mu.Lock()
	s.samples = append(s.samples, smp)
	s.mu.Unlock()
	return smp, nil
}

// loop samples every interval until stop is closed.
func (s *soakSampler) loop(interval time.Duration, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			_, _ = s.take()
		}
	}
}

// stats returns the median and the maximum of f over the samples that keep accepts.
func (s *soakSampler) stats(keep func(soakSample) bool, f func(soakSample) float64) (median, maximum float64, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var v []float64
	for _, smp := range s.samples {
		if keep(smp) {
			v = append(v, f(smp))
		}
	}
	if len(v) == 0 {
		return 0, 0, 0
	}
	slices.Sort(v)
	return v[len(v)/2], v[len(v)-1], len(v)
}

// ---- the soak ----

// soakSummary is what a soak measured.
type soakSummary struct {
	requests, answered         int
	violations, unverified     int
	late, unanswered           int
	elapsed                    time.Duration // of the faulted run
	sent                       int           // requests of the faulted run
	achieved                   float64       // answered requests per second in the faulted run
	cpu                        cpuUsage      // of the faulted run (zero when unknown)
	maxLatency                 time.Duration
	p50Healthy, p99Healthy     time.Duration
	p50Fault, p99Fault         time.Duration
	recovery                   time.Duration // from healthy again to the first decided answer
	gIdleStart, gIdleEnd       float64
	gLoadStart, gLoadEnd, gMax float64
	rssIdleStart, rssIdleEnd   float64
	rssLoadStart, rssLoadEnd   float64
	rssMax                     float64
	heapIdleStart, heapIdleEnd float64
}

// runSoak runs a soak as cfg says, checks every answer and the flatness, and logs the tables.
func runSoak(tb testing.TB, cfg soakConfig) soakSummary {
	tb.Helper()
	w := newSoakWorld(tb)
	args := []string{}
	for _, p := range w.policies {
		args = append(args, "--policies", p)
	}
	vouch := startVouchServe(tb, args...)
	client := vouch.client()
	client.Timeout = soakTimeout + time.Second // a late answer is seen (and counted) up to 1 s late
	defer client.CloseIdleConnections()
	url := "https://" + vouch.addr + "/mutate?timeout=" + soakTimeout.String()

	// Each kind once, in order: the verifications are cached (the unsigned failure for 30 s).
	for k := soakKind(0); k < soakKindCount; k++ {
		uid := "prime-" + strconv.Itoa(int(k))
		err := postReview(context.Background(), client, url, uid, w.bodies[k](uid), func(uid string, body []byte) error {
			if got, _, detail := w.classify(k, uid, body); got != soakExpected(k, "exact")[0] {
				return fmt.Errorf("%s: %s, want %s %s", k, got, soakExpected(k, "exact")[0], detail)
			}
			return nil
		})
		if err != nil {
			tb.Fatalf("priming with a healthy registry: %v", err)
		}
	}

	sampler := &soakSampler{t: vouch, client: vouch.client(), mode: w.h.Mode}
	defer sampler.client.CloseIdleConnections()
	idle := func(stage string) soakSample {
		client.CloseIdleConnections()
		time.Sleep(time.Second) // the server notices the closed connections, work in flight ends
		sampler.setStage(stage)
		smp, err := sampler.take()
		if err != nil {
			tb.Fatalf("sampling %s: %v", stage, err)
		}
		return smp
	}
	stopSampling, sampled := make(chan struct{}), make(chan struct{})
	sampler.setStage("warm-up")
	go sampler.loop(cfg.sample, stopSampling, sampled)
	defer func() {
		select {
		case <-stopSampling:
		default:
			close(stopSampling)
			<-sampled
		}
	}()

	var runs []*soakRun
	warm := &soakRun{name: "warm-up", w: w, exact: true}
	warm.run(client, url, cfg.rate, cfg.warmup)
	runs = append(runs, warm)
	idleStart := idle("idle-before")

	// The faulted run: the phase driver sets the registry's mode on schedule.
	var (
		marksMu sync.Mutex
		marks   []phaseMark
	)
	mark := func(mode string) {
		w.h.SetMode(mode)
		marksMu.Lock()
		marks = append(marks, phaseMark{time.Now(), mode})
		marksMu.Unlock()
	}
	before := map[string]int64{}
	for _, m := range soakCycle {
		before[m] = w.h.Requests(m)
	}
	stopPhases, phasesDone := make(chan struct{}), make(chan struct{})
	sampler.setStage("run")
	start := time.Now()
	go func() {
		defer close(phasesDone)
		for k := 0; ; k++ {
			mark(soakCycle[k%len(soakCycle)])
			t := time.NewTimer(time.Until(start.Add(time.Duration(k+1) * cfg.phase)))
			select {
			case <-t.C:
			case <-stopPhases:
				t.Stop()
				return
			}
		}
	}()
	main := &soakRun{name: "faulted run", w: w}
	cpu0 := readCPU(vouch.pid)
	main.run(client, url, cfg.rate, cfg.duration)
	cpu, cpuOK := cpuUse(cpu0, readCPU(vouch.pid), main.res.sent)
	close(stopPhases)
	<-phasesDone
	mark(fixture.Healthy)
	healthyAgain := time.Now()
	runs = append(runs, main)

	// Recovery: the registry is healthy; wait until vouch decides again (a lenient/unsigned
	// request denied "failed to verify": the tag resolved, so the circuit is closed).
	sampler.setStage("recovery")
	recovery := time.Duration(-1)
	for i := 0; time.Since(healthyAgain) < soakRecovery+5*time.Second; i++ {
		uid := "recover-" + strconv.Itoa(i)
		var got string
		_ = postReview(context.Background(), client, url, uid, w.bodies[lenientUnsigned](uid), func(uid string, body []byte) error {
			got, _, _ = w.classify(lenientUnsigned, uid, body)
			return nil
		})
		if got == outFailed {
			recovery = time.Since(healthyAgain)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if recovery < 0 {
		tb.Errorf("vouch did not decide again within %v of the registry's recovery", soakRecovery+5*time.Second)
	}
	registryRequests := map[string]int64{}
	for _, m := range soakCycle {
		registryRequests[m] = w.h.Requests(m) - before[m]
	}

	sampler.setStage("tail")
	client.CloseIdleConnections() // the tail starts with few connections, as the warm-up did
	tail := &soakRun{name: "tail", w: w, exact: true}
	tail.run(client, url, cfg.rate, cfg.tail)
	runs = append(runs, tail)
	close(stopSampling)
	<-sampled
	idleEnd := idle("idle-after")

	// ---- judge every request ----
	var sum soakSummary
	sum.elapsed, sum.sent = main.res.elapsed, main.res.sent
	sum.achieved = float64(main.res.sent-main.res.errors) / main.res.elapsed.Seconds()
	rows := []string{"warm-up", "healthy", "healthy, recovering", "slow", "429", "5xx", "down", "boundary", "tail"}
	type cell map[string]int
	table := map[string]*[soakKindCount]cell{}
	lat := map[string][]time.Duration{}
	reasons := map[string]map[string]int{}
	var healthyLat, faultLat []time.Duration
	shown := 0
	report := func(run string, i int, rec *soakRecord, what string) {
		sum.violations++
		if shown++; shown <= 20 {
			tb.Errorf("%s request %d (%s, sent %s, answered %s after %v, %s): %s", run, i, rec.kind, rec.sendMode, rec.recvMode,
				rec.latency.Round(time.Millisecond), rec.class, what)
		}
	}
	for _, r := range runs {
		marksMu.Lock()
		r.classifyAll(marks)
		marksMu.Unlock()
		for i := range r.recs {
			rec := &r.recs[i]
			row := r.name
			if r == main {
				switch rec.class {
				case "exact":
					row = "healthy"
				case "recovering":
					row = "healthy, recovering"
				case "fault":
					row = rec.sendMode
				default:
					row = "boundary"
				}
			}
			if table[row] == nil {
				table[row] = &[soakKindCount]cell{{}, {}, {}, {}}
			}
			table[row][rec.kind][rec.outcome]++
			sum.requests++
			if !rec.answered {
				sum.unanswered++
				report(r.name, i, rec, "no answer (transport error, HTTP status other than 200, or no answer within "+client.Timeout.String()+")")
				continue
			}
			sum.answered++
			if reason := soakReason(w, rec.detail); reason != "" {
				if reasons[row] == nil {
					reasons[row] = map[string]int{}
				}
				reasons[row][reason]++
			}
			lat[row] = append(lat[row], rec.latency)
			if r == main {
				if soakFault(rec.sendMode) {
					faultLat = append(faultLat, rec.latency)
				} else {
					healthyLat = append(healthyLat, rec.latency)
				}
			}
			sum.maxLatency = max(sum.maxLatency, rec.latency)
			if rec.latency > soakTimeout+cfg.slack {
				sum.late++
				report(r.name, i, rec, fmt.Sprintf("answered after %v, past the %v timeout", rec.latency.Round(time.Millisecond), soakTimeout+cfg.slack))
			}
			if rec.allowed && rec.outcome != outPinned && (rec.kind.strict() || rec.class == "exact" || rec.outcome != outWarned) {
				sum.unverified++
				report(r.name, i, rec, "UNVERIFIED ADMITTED: "+rec.outcome+" "+rec.detail)
				continue
			}
			if want := soakExpected(rec.kind, rec.class); !slices.Contains(want, rec.outcome) {
				report(r.name, i, rec, fmt.Sprintf("%s, want %s %s", rec.outcome, strings.Join(want, " or "), rec.detail))
			}
		}
	}
	if sum.violations > 0 {
		tb.Errorf("%d violations in %d requests: %d unverified admitted, %d late, %d unanswered", sum.violations, sum.requests, sum.unverified, sum.late, sum.unanswered)
	}
	if warm.res.errors+main.res.errors+tail.res.errors > 0 {
		tb.Logf("first transport error: %v %v %v", warm.res.firstErr, main.res.firstErr, tail.res.firstErr)
	}
	q := func(l []time.Duration, p float64) time.Duration {
		slices.Sort(l)
		return loadResult{latencies: l}.quantile(p)
	}
	sum.p50Healthy, sum.p99Healthy = q(healthyLat, 0.5), q(healthyLat, 0.99)
	sum.p50Fault, sum.p99Fault = q(faultLat, 0.5), q(faultLat, 0.99)
	sum.recovery = recovery

	// ---- flatness ----
	firstFault := start.Add(cfg.phase)
	loadStart := func(s soakSample) bool {
		return s.stage == "warm-up" || s.stage == "run" && s.mode == fixture.Healthy && s.at.Before(firstFault)
	}
	inTail := func(s soakSample) bool { return s.stage == "tail" }
	goroutines := func(s soakSample) float64 { return s.goroutines }
	rss := func(s soakSample) float64 { return s.rssMiB }
	all := func(soakSample) bool { return true }
	sum.gIdleStart, sum.gIdleEnd = idleStart.goroutines, idleEnd.goroutines
	sum.rssIdleStart, sum.rssIdleEnd = idleStart.rssMiB, idleEnd.rssMiB
	sum.heapIdleStart, sum.heapIdleEnd = idleStart.heapMiB, idleEnd.heapMiB
	sum.gLoadStart, _, _ = sampler.stats(loadStart, goroutines)
	sum.gLoadEnd, _, _ = sampler.stats(inTail, goroutines)
	_, sum.gMax, _ = sampler.stats(all, goroutines)
	sum.rssLoadStart, _, _ = sampler.stats(loadStart, rss)
	sum.rssLoadEnd, _, _ = sampler.stats(inTail, rss)
	_, sum.rssMax, _ = sampler.stats(all, rss)
	gBound := func(start float64) float64 { return start*cfg.goroutineFactor + cfg.goroutineSlack }
	rssBound := func(start float64) float64 { return start*cfg.rssFactor + cfg.rssSlack }
	if sum.gIdleEnd > gBound(sum.gIdleStart) {
		tb.Errorf("goroutines idle: %.0f at the end, %.0f at the start: more than the bound %.0f", sum.gIdleEnd, sum.gIdleStart, gBound(sum.gIdleStart))
	}
	if sum.gLoadStart > 0 && sum.gLoadEnd > gBound(sum.gLoadStart) {
		tb.Errorf("goroutines under healthy load: median %.0f at the end, %.0f at the start: more than the bound %.0f", sum.gLoadEnd, sum.gLoadStart, gBound(sum.gLoadStart))
	}
	if sum.rssIdleStart > 0 && sum.rssIdleEnd > rssBound(sum.rssIdleStart) {
		tb.Errorf("RSS idle: %.1f MiB at the end, %.1f MiB at the start: more than the bound %.1f MiB", sum.rssIdleEnd, sum.rssIdleStart, rssBound(sum.rssIdleStart))
	}
	if sum.rssLoadStart > 0 && sum.rssLoadEnd > rssBound(sum.rssLoadStart) {
		tb.Errorf("RSS under healthy load: %.1f MiB at the end, %.1f MiB at the start: more than the bound %.1f MiB", sum.rssLoadEnd, sum.rssLoadStart, rssBound(sum.rssLoadStart))
	}

	// ---- tables ----
	var out strings.Builder
	fmt.Fprintf(&out, "soak: %.0f req/s open loop, %v faulted (%v per phase: %s; slow = %v), ?timeout=%v (vouch's budget %v), warm-up %v, tail %v\n",
		cfg.rate, cfg.duration, cfg.phase, strings.Join(soakCycle, " → "), soakSlowDelay, soakTimeout, soakTimeout-500*time.Millisecond, cfg.warmup, cfg.tail)
	fmt.Fprintf(&out, "%-20s %8s %9s %9s %9s", "row (mode at send)", "requests", "p50", "p99", "max")
	for k := soakKind(0); k < soakKindCount; k++ {
		fmt.Fprintf(&out, "  %-24s", k)
	}
	out.WriteString("\n")
	for _, row := range rows {
		cells := table[row]
		if cells == nil {
			continue
		}
		l := lat[row]
		slices.Sort(l)
		n := 0
		for _, c := range cells {
			for _, v := range c {
				n += v
			}
		}
		mx := time.Duration(0)
		if len(l) > 0 {
			mx = l[len(l)-1]
		}
		fmt.Fprintf(&out, "%-20s %8d %9s %9s %9s", row, n, soakMs(q(l, 0.5)), soakMs(q(l, 0.99)), soakMs(mx))
		for _, c := range cells {
			var parts []string
			for _, o := range []string{outPinned, outWarned, outFailed, outUndecided, outOther, outNoAnswer} {
				if c[o] > 0 {
					parts = append(parts, fmt.Sprintf("%s %d", o, c[o]))
				}
			}
			fmt.Fprintf(&out, "  %-24s", strings.Join(parts, ", "))
		}
		out.WriteString("\n")
	}
	out.WriteString("reasons (messages and warnings, most frequent first; numbers elided):\n")
	for _, row := range rows {
		byCount := make([]string, 0, len(reasons[row]))
		for r := range reasons[row] {
			byCount = append(byCount, r)
		}
		slices.SortFunc(byCount, func(a, b string) int { return reasons[row][b] - reasons[row][a] })
		for i, r := range byCount {
			if i == 6 {
				fmt.Fprintf(&out, "  %-20s … %d more\n", row, len(byCount)-i)
				break
			}
			fmt.Fprintf(&out, "  %-20s %6d  %s\n", row, reasons[row][r], r)
		}
	}
	fmt.Fprintf(&out, "answered %d of %d; violations %d (unverified admitted %d, late %d, unanswered %d); max latency %v; achieved %.1f answered req/s in the faulted run; generator lag max %v\n",
		sum.answered, sum.requests, sum.violations, sum.unverified, sum.late, sum.unanswered, sum.maxLatency.Round(time.Millisecond),
		sum.achieved, main.res.lagMax.Round(time.Millisecond))
	if cpuOK {
		sum.cpu = cpu
		fmt.Fprintf(&out, "CPU in the faulted run: server %.0fµs per request, generator+registry %.0fµs; machine busy %.0f%%, other processes %.0f%%\n",
			micros(cpu.server), micros(cpu.harness), 100*cpu.busy, 100*cpu.others)
	}
	fmt.Fprintf(&out, "registry requests in the faulted run by mode: %v; vouch decided again %v after the registry recovered\n", registryRequests, recovery.Round(time.Millisecond))
	fmt.Fprintf(&out, "goroutines: idle %.0f → %.0f, healthy load (median) %.0f → %.0f, max %.0f (bound: ×%.1f + %.0f)\n",
		sum.gIdleStart, sum.gIdleEnd, sum.gLoadStart, sum.gLoadEnd, sum.gMax, cfg.goroutineFactor, cfg.goroutineSlack)
	fmt.Fprintf(&out, "RSS MiB: idle %.1f → %.1f, healthy load (median) %.1f → %.1f, max %.1f (bound: ×%.1f + %.0f); heap in use idle %.1f → %.1f MiB\n",
		sum.rssIdleStart, sum.rssIdleEnd, sum.rssLoadStart, sum.rssLoadEnd, sum.rssMax, cfg.rssFactor, cfg.rssSlack, sum.heapIdleStart, sum.heapIdleEnd)
	out.WriteString("per phase (goroutines max / RSS max MiB):")
	for p := 0; p*int(cfg.phase) < int(cfg.duration); p++ {
		from, to := start.Add(time.Duration(p)*cfg.phase), start.Add(time.Duration(p+1)*cfg.phase)
		in := func(s soakSample) bool { return s.stage == "run" && !s.at.Before(from) && s.at.Before(to) }
		_, gm, n := sampler.stats(in, goroutines)
		_, rm, _ := sampler.stats(in, rss)
		if n > 0 {
			fmt.Fprintf(&out, " %s %.0f/%.0f", soakCycle[p%len(soakCycle)], gm, rm)
		}
	}
	tb.Log(out.String())
	return sum
}

// soakNumbers are the durations and counts in vouch's messages, elided to group them.
var soakNumbers = regexp.MustCompile(`[0-9]+(\.[0-9]+)?(ms|µs|s)?\b`)

// soakReason is the could-not-verify or failed-to-verify part of a message or warning, with the
// registry's address and the numbers elided; "" when it has none.
func soakReason(w *soakWorld, text string) string {
	i := strings.Index(text, "could not verify image ")
	if j := strings.Index(text, "failed to verify image "); i < 0 || j >= 0 && j < i {
		i = j
	}
	if i < 0 {
		return ""
	}
	text = strings.Join(strings.Fields(text[i:]), " ") // a denial's YAML folds long messages
	text = strings.ReplaceAll(strings.TrimRight(text, `'"`), w.h.Host, "<registry>")
	return soakNumbers.ReplaceAllString(text, "N$2")
}

func soakMs(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d.Microseconds())/1e3) }

// soakEnvDuration and soakEnvRate read a positive duration or number from the environment,
// def when unset.
func soakEnvDuration(tb testing.TB, name string, def time.Duration) time.Duration {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		tb.Fatalf("%s=%q: want a positive duration", name, s)
	}
	return d
}

func soakEnvRate(tb testing.TB, name string, def float64) float64 {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	r, err := strconv.ParseFloat(s, 64)
	if err != nil || r <= 0 {
		tb.Fatalf("%s=%q: want a positive number", name, s)
	}
	return r
}

// BenchmarkServeSoak is the soak under faults of issue 8: `vouch serve` at VOUCH_SOAK_RATE
// (200) req/s for VOUCH_SOAK_DURATION (5m) while the registry cycles through healthy, slow
// (3 s), 429, 5xx and down, VOUCH_SOAK_PHASE (30s) each, then healthy until vouch decides
// again, then 20 s of healthy tail. Run it with -benchtime=1x (`make soak`): the soak runs once
// whatever b.N is. ns/op is the faulted run's wall time per request.
func BenchmarkServeSoak(b *testing.B) {
	cfg := soakConfig{
		rate:     soakEnvRate(b, "VOUCH_SOAK_RATE", 200),
		duration: soakEnvDuration(b, "VOUCH_SOAK_DURATION", 5*time.Minute),
		phase:    soakEnvDuration(b, "VOUCH_SOAK_PHASE", 30*time.Second),
		warmup:   5 * time.Second,
		tail:     20 * time.Second,
		sample:   2 * time.Second,
		slack:    0,

		goroutineFactor: soakGoroutineFactor, goroutineSlack: soakGoroutineSlack,
		rssFactor: soakRSSFactor, rssSlack: soakRSSSlackMiB,
	}
	b.ResetTimer()
	s := runSoak(b, cfg)
	b.StopTimer()
	b.ReportMetric(float64(s.elapsed.Nanoseconds())/float64(max(s.sent, 1)), "ns/op")
	b.ReportMetric(float64(s.requests), "requests")
	b.ReportMetric(s.achieved, "answered-req/s")
	b.ReportMetric(float64(s.violations), "violations")
	b.ReportMetric(float64(s.unverified), "unverified-admitted")
	b.ReportMetric(float64(s.late+s.unanswered), "late-or-unanswered")
	b.ReportMetric(float64(s.maxLatency.Microseconds())/1e3, "max-ms")
	b.ReportMetric(float64(s.p50Healthy.Microseconds())/1e3, "p50-healthy-ms")
	b.ReportMetric(float64(s.p99Healthy.Microseconds())/1e3, "p99-healthy-ms")
	b.ReportMetric(float64(s.p50Fault.Microseconds())/1e3, "p50-fault-ms")
	b.ReportMetric(float64(s.p99Fault.Microseconds())/1e3, "p99-fault-ms")
	b.ReportMetric(s.recovery.Seconds(), "recovery-s")
	b.ReportMetric(micros(s.cpu.server), "server-cpu-µs/req")
	b.ReportMetric(100*s.cpu.others, "other-procs-cpu-%")
	b.ReportMetric(s.gIdleStart, "goroutines-idle-start")
	b.ReportMetric(s.gIdleEnd, "goroutines-idle-end")
	b.ReportMetric(s.gMax, "goroutines-max")
	b.ReportMetric(s.rssIdleStart, "rss-MiB-idle-start")
	b.ReportMetric(s.rssIdleEnd, "rss-MiB-idle-end")
	b.ReportMetric(s.rssMax, "rss-MiB-max")
}

// TestServeSoakBrief runs the soak of BenchmarkServeSoak briefly — 40 req/s, one cycle of 2 s
// phases, then the recovery and a 2 s tail (about 20 s) — so that its checks run with every
// `go test`.
func TestServeSoakBrief(t *testing.T) {
	if testing.Short() {
		t.Skip("the brief soak takes about 20 s")
	}
	runSoak(t, soakConfig{
		rate:     40,
		duration: time.Duration(len(soakCycle)) * 2 * time.Second,
		phase:    2 * time.Second,
		warmup:   time.Second,
		tail:     2 * time.Second,
		sample:   250 * time.Millisecond,
		slack:    0,

		goroutineFactor: soakGoroutineFactor, goroutineSlack: soakGoroutineSlack,
		rssFactor: soakRSSFactor, rssSlack: soakRSSSlackMiB,
	})
}
