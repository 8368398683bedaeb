package spool

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkAppend measures parallel appends through the Go API (32
// appenders, one record per call, each acknowledged after its fsync) and,
// in the same run and directory, the floor: a plain loop writing the same
// records to a file with one fsync per batch, the batch being the mean
// group-commit size the spool reached. It reports both rates and their
// ratio.
func BenchmarkAppend(b *testing.B) {
	for _, size := range []int{200, 4096} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) { benchAppend(b, size) })
	}
}

func benchAppend(b *testing.B, size int) {
	var fsyncs atomic.Int64
	dir := b.TempDir()
	s, _, err := Open(Options{
		Dir: filepath.Join(dir, "spool"), MaxBytes: 512 << 20,
		fsyncHook: func() { fsyncs.Add(1) },
	})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	rec := bytes.Repeat([]byte("t"), size)
	mustAppendB(b, s, rec)
	fsyncs.Store(0)

	b.SetBytes(int64(size))
	b.SetParallelism(16)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, _, err := s.Append(context.Background(), "bench", rec); err != nil {
				b.Error(err)
				return
			}
		}
	})
	elapsed := time.Since(start)
	b.StopTimer()

	batch := max(1, int(int64(b.N)/max(1, fsyncs.Load())))
	floor := floorRate(b, dir, size, b.N, batch)
	rate := float64(b.N) / elapsed.Seconds()
	b.ReportMetric(rate, "appends/s")
	b.ReportMetric(floor, "floor_appends/s")
	b.ReportMetric(rate/floor, "ratio")
	b.ReportMetric(float64(batch), "records/fsync")
}

// mustAppendB appends one record or stops the benchmark.
func mustAppendB(b *testing.B, s *Spool, rec []byte) {
	if _, _, err := s.Append(context.Background(), "bench", rec); err != nil {
		b.Fatal(err)
	}
}

// floorRate writes n records of size bytes (plus the spool's header, so
// the bytes match) in batches of batch records, one write and one fsync
// per batch, and returns records per second.
func floorRate(b *testing.B, dir string, size, n, batch int) float64 {
	f, err := os.Create(filepath.Join(dir, "floor"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := bytes.Repeat([]byte("f"), (size+headerSize)*batch)

	start := time.Now()
	for done := 0; done < n; done += batch {
		if _, err := f.Write(buf); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
	}
	return float64(n) / time.Since(start).Seconds()
}

// BenchmarkHTTPAppend measures single-record POSTs from 32 parallel
// clients over loopback, each answered after its fsync.
func BenchmarkHTTPAppend(b *testing.B) {
	s, _, err := Open(Options{Dir: b.TempDir(), MaxBytes: 512 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	srv := httptest.NewServer(NewHandler(s, HandlerOptions{}))
	defer srv.Close()
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	rec := bytes.Repeat([]byte("h"), 200)

	b.SetBytes(200)
	b.SetParallelism(16)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Post(srv.URL+"/v1/streams/bench", "application/octet-stream", bytes.NewReader(rec))
			if err != nil {
				b.Error(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "appends/s")
}

// BenchmarkBacklogMemory fills a spool with 1 GiB of 64 KiB records,
// reopens it (recovery reads every segment), reads the head of the
// backlog as a forwarder would, and reports the process's resident memory
// then: it must stay bounded whatever the backlog (goal: under 100 MiB).
func BenchmarkBacklogMemory(b *testing.B) {
	const backlog, size = 1 << 30, 64 << 10
	dir := filepath.Join(b.TempDir(), "spool")
	s, _, err := Open(Options{Dir: dir, MaxBytes: 2 * backlog})
	if err != nil {
		b.Fatal(err)
	}
	rec := bytes.Repeat([]byte("m"), size)
	batch := make([][]byte, 16)
	for i := range batch {
		batch[i] = rec
	}
	for written := 0; written < backlog; written += size * len(batch) {
		if _, _, err := s.Append(context.Background(), "backlog", batch...); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	runtime.GC()

	b.ResetTimer()
	for range b.N {
		began := time.Now()
		s, _, err := Open(Options{Dir: dir, MaxBytes: 2 * backlog})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(time.Since(began).Seconds(), "open_s")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if _, err := s.NewReader().Next(ctx, 100); err != nil {
			b.Fatal(err)
		}
		cancel()
		b.ReportMetric(float64(residentBytes())/(1<<20), "rss_MiB")
		s.Close()
	}
}

// residentBytes reads VmRSS of this process.
func residentBytes() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return -1
}
