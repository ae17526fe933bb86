// The yardstick for kcp_sessions.cpp: memory and idle CPU per kcp-go session.
//
// Builds N kcp-go session pairs on loopback UDP, as kcp-go applications do: one
// listener, N dialled client sessions (each with its own socket and read
// goroutine, as kcp-go makes them), N accepted server sessions; KCP set like
// peerlink's kcp_fast (nodelay 1, interval 20, resend 2, congestion control on,
// windows 128/128, mtu 1400), no FEC, no encryption. Measures the same figures as
// kcp_sessions with the same methods: resident set from /proc/self/statm, CPU time
// from CLOCK_PROCESS_CPUTIME_ID, per session = delta / (2 N).
//
// Built in GOPATH mode with Debian's kcp-go package:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go run kcpgo_sessions.go -pairs 100
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"time"

	kcp "github.com/xtaci/kcp-go"
	"golang.org/x/sys/unix"
)

func rssBytes() uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	var size, resident uint64
	fmt.Sscan(string(b), &size, &resident)
	return resident * uint64(os.Getpagesize())
}

// cpuSeconds is the process's CPU time, all threads, from the scheduler's exact run
// time (as kcp_sessions measures it; getrusage is tick-sampled here).
func cpuSeconds() float64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_PROCESS_CPUTIME_ID, &ts)
	return float64(ts.Nano()) / 1e9
}

// heapBytes is what the Go runtime holds for objects and goroutine stacks, after a GC.
func heapBytes() uint64 {
	runtime.GC()
	debug.FreeOSMemory()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.StackInuse
}

func tune(s *kcp.UDPSession) {
	s.SetNoDelay(1, 20, 2, 0)
	s.SetWindowSize(128, 128)
	s.SetMtu(1400)
}

func main() {
	pairs := flag.Int("pairs", 100, "session pairs")
	idleSeconds := flag.Float64("idle-seconds", 20, "idle interval for the CPU measurement")
	bytes := flag.Int("bytes", 256*1024, "bytes each pair moves under load")
	flag.Parse()
	if *pairs < 1 || *pairs > 20000 {
		fmt.Fprintln(os.Stderr, "1 <= pairs <= 20000")
		os.Exit(2)
	}
	sessions := 2 * *pairs

	heap0 := heapBytes() // collects first, then the resident set is read
	rss0 := rssBytes()

	l, err := kcp.ListenWithOptions("127.0.0.1:0", nil, 0, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		os.Exit(1)
	}
	accepted := make(chan *kcp.UDPSession, *pairs)
	go func() {
		for {
			s, err := l.AcceptKCP()
			if err != nil {
				return
			}
			tune(s)
			accepted <- s
		}
	}()
	clients := make([]*kcp.UDPSession, 0, *pairs)
	servers := make([]*kcp.UDPSession, 0, *pairs)
	hello := []byte{1}
	deadline := time.Now().Add(60 * time.Second)
	for i := 0; i < *pairs; i++ {
		c, err := kcp.DialWithOptions(l.Addr().String(), nil, 0, 0)
		if err != nil {
			fmt.Fprintln(os.Stderr, "dial:", err)
			os.Exit(1)
		}
		tune(c)
		c.Write(hello) // the listener makes the server session on the first packet
		clients = append(clients, c)
	}
	for len(servers) < *pairs {
		select {
		case s := <-accepted:
			var b [1]byte
			s.SetReadDeadline(deadline)
			if _, err := io.ReadFull(s, b[:]); err != nil {
				fmt.Fprintln(os.Stderr, "hello:", err)
				os.Exit(1)
			}
			servers = append(servers, s)
		case <-time.After(time.Until(deadline)):
			fmt.Fprintf(os.Stderr, "only %d of %d sessions accepted\n", len(servers), *pairs)
			os.Exit(1)
		}
	}
	time.Sleep(200 * time.Millisecond)
	fmt.Printf("kcp-go (Debian golang-github-xtaci-kcp-dev, %s), fast-equivalent settings, "+
		"127.0.0.1\n", runtime.Version())
	// Memory per session now (just connected) and again after the idle period.
	memory := func(when string) (float64, float64) {
		h := heapBytes()
		r := rssBytes()
		rssPer := float64(r-rss0) / float64(sessions)
		heapPer := float64(h-heap0) / float64(sessions)
		fmt.Printf("\n%d sessions (%d pairs) %s:\n", sessions, *pairs, when)
		fmt.Printf("  resident  %10.1f KiB per session (%.1f MiB in all)\n", rssPer/1024,
			float64(r-rss0)/1048576)
		fmt.Printf("  heap      %10.1f KiB per session (Go heap in use + goroutine stacks)\n",
			heapPer/1024)
		return rssPer, heapPer
	}
	connectedRss, connectedHeap := memory("just connected")
	idleRss, idleHeap := connectedRss, connectedHeap

	cpuFraction, atOnePct := 0.0, 0.0
	if *idleSeconds > 0 {
		w0, c0 := time.Now(), cpuSeconds()
		time.Sleep(time.Duration(*idleSeconds * float64(time.Second)))
		wall, cpu := time.Since(w0).Seconds(), cpuSeconds()-c0
		cpuFraction = cpu / wall
		if cpuFraction > 0 {
			atOnePct = 0.01 / (cpuFraction / float64(sessions))
		}
		fmt.Printf("\nidle for %.1f s: %.3f s CPU = %.4f%% of one core for %d sessions\n", wall,
			cpu, 100*cpuFraction, sessions)
		fmt.Printf("  -> ~%.0f idle sessions at 1%% CPU (extrapolated linearly; "+
			"kcp-go wakes every session each interval)\n", atOnePct)
		idleRss, idleHeap = memory("after the idle period")
	}

	out := make([]byte, *bytes)
	var wg sync.WaitGroup
	var mu sync.Mutex
	done, failed := 0, 0
	// The peak while the pairs move their bytes, sampled every 20 ms.
	var peakRss, peakHeap uint64
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var m runtime.MemStats
		for {
			if r := rssBytes(); r > peakRss {
				peakRss = r
			}
			runtime.ReadMemStats(&m)
			if h := m.HeapInuse + m.StackInuse; h > peakHeap {
				peakHeap = h
			}
			select {
			case <-stopSampling:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	load0 := time.Now()
	loadDeadline := load0.Add(120 * time.Second)
	for i := 0; i < *pairs; i++ {
		wg.Add(2)
		go func(c *kcp.UDPSession) {
			defer wg.Done()
			c.SetWriteDeadline(loadDeadline)
			if _, err := c.Write(out); err != nil {
				mu.Lock()
				failed++
				mu.Unlock()
			}
		}(clients[i])
		go func(s *kcp.UDPSession) {
			defer wg.Done()
			in := make([]byte, *bytes)
			s.SetReadDeadline(loadDeadline)
			_, err := io.ReadFull(s, in)
			mu.Lock()
			if err != nil {
				failed++
			} else {
				done++
			}
			mu.Unlock()
		}(servers[i])
	}
	wg.Wait()
	close(stopSampling)
	<-sampled
	loadSeconds := time.Since(load0).Seconds()
	time.Sleep(500 * time.Millisecond)
	heapAfter := heapBytes()
	rssAfter := rssBytes()
	afterRss := float64(rssAfter-rss0) / float64(sessions)
	afterHeap := float64(heapAfter-heap0) / float64(sessions)
	fmt.Printf("\nafter each pair moved %d KiB (%d of %d pairs complete, %d errors, %.2f s):\n",
		*bytes/1024, done, *pairs, failed, loadSeconds)
	// The benchmark's own buffers (bytes per pair to read, bytes to write) are in the
	// peaks, not after.
	bench := float64((*pairs + 1) * *bytes)
	peakRssPer := (float64(peakRss-rss0) - bench) / float64(sessions)
	peakHeapPer := (float64(peakHeap-heap0) - bench) / float64(sessions)
	fmt.Printf("  resident  %10.1f KiB per session, peak %.1f KiB (peak without the "+
		"benchmark's read buffers)\n", afterRss/1024, peakRssPer/1024)
	fmt.Printf("  heap      %10.1f KiB per session, peak %.1f KiB (same)\n", afterHeap/1024,
		peakHeapPer/1024)

	fmt.Printf("\nRESULT impl=kcp-go mode=fast sessions=%d connected_rss_per_session=%.0f "+
		"connected_heap_per_session=%.0f idle_rss_per_session=%.0f "+
		"idle_heap_per_session=%.0f loaded_rss_per_session=%.0f loaded_heap_per_session=%.0f "+
		"peak_rss_per_session=%.0f peak_heap_per_session=%.0f "+
		"idle_cpu_fraction=%.6f sessions_at_1pct_cpu=%.0f transferred_pairs=%d\n",
		sessions, connectedRss, connectedHeap, idleRss, idleHeap, afterRss, afterHeap,
		peakRssPer, peakHeapPer, cpuFraction, atOnePct, done)

	for i := range clients {
		clients[i].Close()
		servers[i].Close()
	}
	l.Close()
	if done != *pairs || failed != 0 {
		os.Exit(1)
	}
}
