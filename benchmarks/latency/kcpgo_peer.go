// kcpgo_peer: latency_peer's yardstick, the same timestamped message stream over
// kcp-go (Debian's golang-github-xtaci-kcp-dev), with the same options and the
// same RESULT / SENDER lines, so run_latency.sh can put kcp-go beside peerlink.
//
// Protos: kcpgo-fast = SetNoDelay(1, 20, 2, 0), windows 128/128 (peerlink's
// kcp_fast); kcpgo-turbo = SetNoDelay(1, 10, 2, 1), windows 256/256 (kcp_turbo).
// Both mtu 1400, no FEC, no encryption, ACKs at the flush (kcp-go's default).
// Stamps are CLOCK_MONOTONIC nanoseconds, the clock latency_peer uses. As there,
// a receiver that times out still prints its RESULT line, with complete=0 and the
// messages that never arrived counted with the time they waited (lower bounds).
//
// Built in GOPATH mode:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o kcpgo_peer kcpgo_peer.go
package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	kcp "github.com/xtaci/kcp-go"
	"golang.org/x/sys/unix"
)

func nowNs() int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

func tune(s *kcp.UDPSession, proto string) {
	s.SetMtu(1400)
	if proto == "kcpgo-turbo" {
		s.SetNoDelay(1, 10, 2, 1)
		s.SetWindowSize(256, 256)
	} else {
		s.SetNoDelay(1, 20, 2, 0)
		s.SetWindowSize(128, 128)
	}
}

func fail(format string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, "kcpgo_peer: "+format+"\n", a...)
	os.Exit(1)
}

func main() {
	role := flag.String("role", "", "send or recv")
	proto := flag.String("proto", "kcpgo-fast", "kcpgo-fast or kcpgo-turbo")
	addr := flag.String("addr", "", "receiver address")
	port := flag.Int("port", 0, "receiver port")
	count := flag.Int("count", 1000, "messages")
	size := flag.Int("size", 200, "message size")
	intervalMs := flag.Float64("interval-ms", 10, "interval between messages")
	timeoutS := flag.Float64("timeout-s", 120, "give up after")
	label := flag.String("label", "-", "copied into RESULT")
	flag.Parse()
	if (*role != "send" && *role != "recv") || *addr == "" || *port == 0 || *count < 1 ||
		*size < 12 || (*proto != "kcpgo-fast" && *proto != "kcpgo-turbo") {
		flag.Usage()
		os.Exit(2)
	}
	deadline := time.Now().Add(time.Duration(*timeoutS * float64(time.Second)))
	target := fmt.Sprintf("%s:%d", *addr, *port)

	if *role == "recv" {
		// The reader goroutine records; the main one prints, when the stream is
		// complete or at the deadline (then with complete=0: the messages that never
		// arrived count with the time they waited, as latency_peer does).
		var mu sync.Mutex
		lat := make([]float64, 0, *count)
		outOfOrder := 0
		firstStamp := int64(0)
		done := make(chan struct{})
		var s *kcp.UDPSession
		go func() {
			l, err := kcp.ListenWithOptions(target, nil, 0, 0)
			if err != nil {
				fail("listen: %v", err)
			}
			s, err = l.AcceptKCP()
			if err != nil {
				fail("accept: %v", err)
			}
			tune(s, *proto)
			buf := make([]byte, *size)
			next := uint32(0)
			for {
				if _, err := io.ReadFull(s, buf); err != nil {
					fail("read: %v", err)
				}
				seq := binary.LittleEndian.Uint32(buf)
				t := int64(binary.LittleEndian.Uint64(buf[4:]))
				mu.Lock()
				if seq != next {
					outOfOrder++
				}
				if seq == 0 {
					firstStamp = t
				}
				next = seq + 1
				lat = append(lat, float64(nowNs()-t)/1e6)
				n := len(lat)
				mu.Unlock()
				if n == *count {
					s.Write([]byte{1}) // tells the sender everything arrived
					close(done)
					return
				}
			}
		}()
		complete := 1
		select {
		case <-done:
		case <-time.After(time.Until(deadline)):
			complete = 0
			fmt.Fprintf(os.Stderr, "kcpgo_peer: recv %s: timeout\n", *proto)
		}
		mu.Lock()
		received := len(lat)
		sorted := append([]float64(nil), lat...)
		if complete == 0 && firstStamp != 0 {
			now := float64(nowNs())
			for i := received; i < *count; i++ {
				sorted = append(sorted, math.Max(0, (now-float64(firstStamp))/1e6-float64(i)**intervalMs))
			}
		}
		mu.Unlock()
		if len(sorted) == 0 {
			fail("recv %s: nothing received", *proto)
		}
		sort.Float64s(sorted)
		q := func(p float64) float64 {
			i := int(p*float64(len(sorted)-1) + 0.5)
			if i >= len(sorted) {
				i = len(sorted) - 1
			}
			return sorted[i]
		}
		mean := 0.0
		for _, x := range sorted {
			mean += x
		}
		mean /= float64(len(sorted))
		fmt.Printf("RESULT proto=%s label=%s count=%d received=%d complete=%d out_of_order=%d "+
			"p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f p999_ms=%.2f max_ms=%.2f mean_ms=%.2f\n",
			*proto, *label, *count, received, complete, outOfOrder, q(0.5), q(0.9), q(0.99),
			q(0.999), sorted[len(sorted)-1], mean)
		if complete == 0 || outOfOrder != 0 {
			os.Exit(1)
		}
		time.Sleep(2 * time.Second) // keep acknowledging while the sender drains
		s.Close()
		return
	}

	go func() {
		time.Sleep(time.Until(deadline))
		fail("%s %s: timeout", *role, *proto)
	}()
	s, err := kcp.DialWithOptions(target, nil, 0, 0)
	if err != nil {
		fail("dial: %v", err)
	}
	tune(s, *proto)
	// A pacer stamps each message at its tick; a writer hands them to kcp-go, so a
	// write that waits for the window does not delay the stamps of later messages.
	msgs := make(chan []byte, *count)
	go func() {
		interval := time.Duration(*intervalMs * float64(time.Millisecond))
		start := time.Now()
		for i := 0; i < *count; i++ {
			time.Sleep(time.Until(start.Add(time.Duration(i) * interval)))
			m := make([]byte, *size)
			binary.LittleEndian.PutUint32(m, uint32(i))
			binary.LittleEndian.PutUint64(m[4:], uint64(nowNs()))
			for k := 12; k < *size; k++ {
				m[k] = 0x5a
			}
			msgs <- m
		}
		close(msgs)
	}()
	for m := range msgs {
		if _, err := s.Write(m); err != nil {
			fail("write: %v", err)
		}
	}
	// The receiver answers one byte once it has everything.
	var done [1]byte
	s.SetReadDeadline(deadline)
	if _, err := io.ReadFull(s, done[:]); err != nil {
		fail("waiting for the receiver: %v", err)
	}
	snmp := kcp.DefaultSnmp.Copy()
	fmt.Printf("SENDER proto=%s label=%s retransmits=%d fast_retransmits=%d srtt_ms=%d\n",
		*proto, *label, atomic.LoadUint64(&snmp.RetransSegs),
		atomic.LoadUint64(&snmp.FastRetransSegs), s.GetSRTT())
	s.Close()
}
