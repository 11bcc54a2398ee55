package outbox

import (
	"bufio"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/glintdev/glint/device"
	"github.com/glintdev/glint/result"
	"github.com/glintdev/glint/sync/envelope"
)

func open(t testing.TB, path string, max, headroom int64, reg prometheus.Registerer) *Outbox {
	t.Helper()
	o, err := Open(Config{Path: path, MaxBytes: max, Headroom: headroom, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func put(t testing.TB, o *Outbox, size int) Entry {
	t.Helper()
	e, err := o.Put(func(seq uint64) (Entry, error) {
		return Entry{RecordID: fmt.Sprintf("rec-%d", seq), Envelope: make([]byte, size)}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestOrderAndReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	o := open(t, path, 1<<20, 1<<10, nil)
	for i := 1; i <= 5; i++ {
		if e := put(t, o, 100); e.Seq != uint64(i) {
			t.Fatalf("seq %d, want %d", e.Seq, i)
		}
	}
	if ok, err := o.Ack(2, "rec-2"); !ok || err != nil {
		t.Fatalf("ack: %v %v", ok, err)
	}
	if ok, _ := o.Ack(2, "rec-2"); ok {
		t.Fatal("second ack deleted something")
	}
	if ok, _ := o.Ack(3, "rec-999"); ok {
		t.Fatal("ack with another record id deleted the entry")
	}
	o.Close()

	o = open(t, path, 1<<20, 1<<10, nil)
	defer o.Close()
	st := o.Stats()
	if st.Depth != 4 || st.Bytes != 400 || st.LastSeq != 5 {
		t.Fatalf("stats after reopen %+v", st)
	}
	if e := put(t, o, 100); e.Seq != 6 {
		t.Fatalf("seq after reopen %d, want 6 (never reused)", e.Seq)
	}
	p, err := o.Pending(0, 10)
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for _, e := range p {
		seqs = append(seqs, e.Seq)
	}
	if fmt.Sprint(seqs) != "[1 3 4 5 6]" {
		t.Fatalf("pending %v", seqs)
	}
	p, _ = o.Pending(3, 2)
	if len(p) != 2 || p[0].Seq != 4 || p[1].Seq != 5 || p[0].RecordID != "rec-4" {
		t.Fatalf("pending after 3: %+v", p)
	}
	n, err := o.AckMany([]Entry{{Seq: 1, RecordID: "rec-1"}, {Seq: 3, RecordID: "rec-3"}, {Seq: 77, RecordID: "x"}})
	if n != 2 || err != nil {
		t.Fatalf("AckMany = %d, %v", n, err)
	}
}

func TestFullPolicy(t *testing.T) {
	reg := prometheus.NewRegistry()
	// 10,000 bytes with 2,000 of headroom: Admit refuses from 8,001 used,
	// Put from 10,001; the alarm is on from 8,000.
	o := open(t, filepath.Join(t.TempDir(), "o.db"), 10000, 2000, reg)
	defer o.Close()
	for i := 0; i < 7; i++ {
		put(t, o, 1000)
	}
	if err := o.Admit(); err != nil {
		t.Fatalf("admit at 70%%: %v", err)
	}
	if o.Stats().Alarm {
		t.Fatal("alarm at 70%")
	}
	put(t, o, 1000) // 8,000: 80 %
	st := o.Stats()
	if !st.Alarm || testutil.ToFloat64(o.m.alarm) != 1 {
		t.Fatalf("no alarm at 80%%: %+v", st)
	}
	if err := o.Admit(); err != nil {
		t.Fatalf("admit with exactly the headroom free: %v", err)
	}
	put(t, o, 500) // 8,500: inside the headroom
	if err := o.Admit(); !errors.Is(err, ErrFull) {
		t.Fatalf("admit at 85%% with headroom 20%%: %v", err)
	}
	// A session already admitted still gets its result stored...
	put(t, o, 1500) // 10,000 exactly
	// ...but beyond MaxBytes Put refuses, and nothing queued is dropped.
	_, err := o.Put(func(seq uint64) (Entry, error) { return Entry{RecordID: "x", Envelope: make([]byte, 1)}, nil })
	if !errors.Is(err, ErrFull) {
		t.Fatalf("put beyond max: %v", err)
	}
	st = o.Stats()
	if st.Depth != 10 || st.Bytes != 10000 || st.LastSeq != 10 {
		t.Fatalf("refused put changed the queue: %+v", st)
	}
	if got := testutil.ToFloat64(o.m.refused.WithLabelValues("put")); got != 1 {
		t.Fatalf("refused put counted %v", got)
	}
	// Acknowledged entries free space again.
	if n, _ := o.AckMany([]Entry{{Seq: 1, RecordID: "rec-1"}, {Seq: 2, RecordID: "rec-2"}, {Seq: 3, RecordID: "rec-3"}}); n != 3 {
		t.Fatal("ack failed")
	}
	if err := o.Admit(); err != nil {
		t.Fatalf("admit after acks: %v", err)
	}
	if o.Stats().Alarm {
		t.Fatal("alarm still on at 70%")
	}
}

func TestPutRecordSigns(t *testing.T) {
	k, _ := device.GenerateKey()
	o := open(t, filepath.Join(t.TempDir(), "o.db"), 1<<20, 1<<16, nil)
	defer o.Close()
	for i := 0; i < 3; i++ {
		r, _ := result.Synthetic("dev-1", "s", 0, time.Now())
		e, err := o.PutRecord(k, r)
		if err != nil {
			t.Fatal(err)
		}
		got, err := envelope.OpenRecord(e.Envelope, k.Public())
		if err != nil {
			t.Fatal(err)
		}
		if got.Seq != e.Seq || got.ID != e.RecordID || e.Seq != uint64(i+1) {
			t.Fatalf("entry %d/%s, record %d/%s", e.Seq, e.RecordID, got.Seq, got.ID)
		}
	}
	// A build failure stores nothing and does not consume a seq.
	_, err := o.Put(func(uint64) (Entry, error) { return Entry{}, errors.New("boom") })
	if err == nil || o.Stats().LastSeq != 3 {
		t.Fatalf("failed build: %v, last seq %d", err, o.Stats().LastSeq)
	}
}

// helperEnv makes the test binary act as a producer: it opens the outbox
// named by the variable, signs and queues results as fast as it can, and
// prints "told SEQ ID" after each Put returns: the moment a kiosk would be
// told the verdict.
const helperEnv = "GLINT_OUTBOX_KILL_HELPER"

func TestMain(m *testing.M) {
	if path := os.Getenv(helperEnv); path != "" {
		os.Exit(produce(path))
	}
	os.Exit(m.Run())
}

func produce(path string) int {
	k, err := device.LoadOrCreateKey(filepath.Join(filepath.Dir(path), "device.key"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	o, err := Open(Config{Path: path})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	w := bufio.NewWriter(os.Stdout)
	for {
		r, _ := result.Synthetic("dev-kill", "s", 0, time.Now())
		e, err := o.PutRecord(k, r)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Fprintf(w, "told %d %s\n", e.Seq, e.RecordID)
		w.Flush()
	}
}

// TestSurvivesKill9 runs the producer in a subprocess, kills it with
// SIGKILL at a random moment, reopens the outbox and checks that every
// result the producer reported as told is present, signed and in order,
// and that nothing half-written is visible. Repeated for several trials on
// the same file, so recovery from a killed writer is exercised repeatedly.
func TestSurvivesKill9(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "outbox.db")
	trials := 8
	if testing.Short() {
		trials = 3
	}
	told := map[uint64]string{}
	for trial := 0; trial < trials; trial++ {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), helperEnv+"="+path)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				f := strings.Fields(sc.Text())
				if len(f) == 3 && f[0] == "told" {
					seq, _ := strconv.ParseUint(f[1], 10, 64)
					told[seq] = f[2]
				}
			}
		}()
		time.Sleep(time.Duration(50+rand.IntN(200)) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-done
		_ = cmd.Wait()
		if strings.TrimSpace(stderr.String()) != "" {
			t.Fatalf("producer failed: %s", stderr.String())
		}
	}
	if len(told) == 0 {
		t.Fatal("producer never told a result")
	}
	k, err := device.LoadKey(filepath.Join(dir, "device.key"))
	if err != nil {
		t.Fatal(err)
	}
	o := open(t, path, 0, 0, nil)
	defer o.Close()
	all, err := o.Pending(0, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	stored := map[uint64]string{}
	var prev uint64
	for _, e := range all {
		if e.Seq <= prev {
			t.Fatalf("seq %d after %d", e.Seq, prev)
		}
		prev = e.Seq
		r, err := envelope.OpenRecord(e.Envelope, k.Public())
		if err != nil {
			t.Fatalf("entry %d does not verify: %v", e.Seq, err)
		}
		if r.Seq != e.Seq || r.ID != e.RecordID {
			t.Fatalf("entry %d holds record %d/%s", e.Seq, r.Seq, r.ID)
		}
		stored[e.Seq] = e.RecordID
	}
	lost := 0
	for seq, id := range told {
		if stored[seq] != id {
			lost++
		}
	}
	st := o.Stats()
	if st.Depth != int64(len(all)) {
		t.Fatalf("depth counter %d, entries %d", st.Depth, len(all))
	}
	t.Logf("kill -9 × %d: told=%d stored=%d lost=%d", trials, len(told), len(stored), lost)
	if lost != 0 {
		t.Fatalf("%d told results lost", lost)
	}
}

func BenchmarkPutRecord(b *testing.B) {
	k, _ := device.GenerateKey()
	o := open(b, filepath.Join(b.TempDir(), "o.db"), 1<<30, 1<<20, nil)
	defer o.Close()
	r, _ := result.Synthetic("dev-1", "s", 0, time.Now())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := o.PutRecord(k, r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPutNoSign isolates the bbolt commit (two fdatasyncs) from signing.
func BenchmarkPutNoSign(b *testing.B) {
	o := open(b, filepath.Join(b.TempDir(), "o.db"), 1<<30, 1<<20, nil)
	defer o.Close()
	env := make([]byte, 1100)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := o.Put(func(uint64) (Entry, error) { return Entry{RecordID: "r", Envelope: env}, nil }); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPutRecordNoSync is BenchmarkPutRecord without fsync: the
// difference is the fsync share of a Put (docs/performance.md).
func BenchmarkPutRecordNoSync(b *testing.B) {
	k, _ := device.GenerateKey()
	o, err := Open(Config{Path: filepath.Join(b.TempDir(), "o.db"), MaxBytes: 1 << 30, Headroom: 1 << 20, noSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer o.Close()
	r, _ := result.Synthetic("dev-1", "s", 0, time.Now())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := o.PutRecord(k, r); err != nil {
			b.Fatal(err)
		}
	}
}
