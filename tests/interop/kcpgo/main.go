// kcpgo: a kcp-go peer for peerlink's interop tests and benchmarks.
//
// It speaks raw KCP (kcp-go without FEC and without encryption: block nil, 0 data
// and 0 parity shards, so every UDP datagram is one or more plain KCP segments) and
// the small bulk-transfer protocol of peerlink's kcp_bench, so either program can
// face the other:
//
//	sender (-connect)   -> receiver (-listen): u64 little-endian N, then N bytes
//	receiver            -> sender:             the 32-byte SHA-256 of the N bytes
//	sender              -> receiver:           one byte 'B' (bye), then both exit
//
// The N bytes are a 1 MiB block of splitmix64 output (seeded with the conv),
// repeated. The receiver prints one line of JSON:
//
//	{"role":"receiver","bytes":N,"seconds":S,"mbps":X,"sha256":"..."}
//
// where mbps is MB/s (10^6 bytes per second) from the first payload byte to the
// last. The sender prints the same keys (its seconds run from the first write to
// the digest's arrival) plus "verified": whether the receiver's digest matched.
// Both add "cpu": the process's CPU time so far (user + system seconds).
//
// Build with the distribution's packages, nothing downloaded:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o kcpgo tests/interop/kcpgo/main.go
//
// Exit codes: 0 success, 1 transfer failed (timeout, digest mismatch, I/O error),
// 2 bad usage or setup.
package main

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"hash"
	"io"
	"net"
	"os"
	"syscall"
	"time"

	kcp "github.com/xtaci/kcp-go"
)

// The same parameters as peerlink's kcp_normal, kcp_fast and kcp_turbo (kcp.hpp).
type mode struct {
	nodelay, interval, resend, nc int
	sndwnd, rcvwnd                int
}

var modes = map[string]mode{
	"normal": {0, 40, 0, 0, 32, 128},
	"fast":   {1, 20, 2, 0, 128, 128},
	"turbo":  {1, 10, 2, 1, 256, 256},
}

const blockSize = 1 << 20

type options struct {
	listen, connect string
	bytes           int64
	conv            uint
	mode            string
	wnd, mtu        int
	interval        int
	nocwnd, stream  bool
	timeout         time.Duration
	sockbuf         int
}

func fail(code int, format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "kcpgo: "+format+"\n", args...)
	os.Exit(code)
}

// pattern returns the 1 MiB block the sender repeats: splitmix64 seeded with conv.
func pattern(conv uint32) []byte {
	b := make([]byte, blockSize)
	x := uint64(conv)
	for i := 0; i < blockSize; i += 8 {
		x += 0x9e3779b97f4a7c15
		z := x
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
		z = (z ^ (z >> 27)) * 0x94d049bb133111eb
		z ^= z >> 31
		binary.LittleEndian.PutUint64(b[i:], z)
	}
	return b
}

func configure(s *kcp.UDPSession, o *options) {
	m := modes[o.mode]
	interval := m.interval
	if o.interval > 0 {
		interval = o.interval
	}
	nc := m.nc
	if o.nocwnd {
		nc = 1
	}
	snd, rcv := m.sndwnd, m.rcvwnd
	if o.wnd > 0 {
		snd, rcv = o.wnd, o.wnd
	}
	s.SetNoDelay(m.nodelay, interval, m.resend, nc)
	s.SetWindowSize(snd, rcv)
	if !s.SetMtu(o.mtu) {
		fail(2, "mtu %d refused (kcp-go allows at most 1500)", o.mtu)
	}
	s.SetStreamMode(o.stream)
	s.SetWriteDelay(false)
	s.SetACKNoDelay(false)
}

func result(role string, n int64, d time.Duration, sum []byte, extra string) string {
	sec := d.Seconds()
	mbps := 0.0
	if sec > 0 {
		mbps = float64(n) / sec / 1e6
	}
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	cpu := float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
	return fmt.Sprintf(`{"role":"%s","bytes":%d,"seconds":%.6f,"mbps":%.3f,"sha256":"%s","cpu":%.3f%s}`,
		role, n, sec, mbps, hex.EncodeToString(sum), cpu, extra)
}

func receive(o *options, deadline time.Time) error {
	l, err := kcp.ListenWithOptions(o.listen, nil, 0, 0)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", o.listen, err)
	}
	defer l.Close()
	fmt.Fprintf(os.Stderr, "kcpgo: listening on %s\n", l.Addr())
	l.SetReadBuffer(o.sockbuf)
	l.SetWriteBuffer(o.sockbuf)
	l.SetDeadline(deadline)
	s, err := l.AcceptKCP()
	if err != nil {
		return fmt.Errorf("accept: %w", err)
	}
	defer s.Close()
	if s.GetConv() != uint32(o.conv) {
		return fmt.Errorf("peer %s uses conv %d, expected %d", s.RemoteAddr(), s.GetConv(), o.conv)
	}
	configure(s, o)
	s.SetDeadline(deadline)

	var header [8]byte
	if _, err := io.ReadFull(s, header[:]); err != nil {
		return fmt.Errorf("reading the length: %w", err)
	}
	n := int64(binary.LittleEndian.Uint64(header[:]))
	h := sha256.New()
	buf := make([]byte, 256<<10)
	var got int64
	var start time.Time
	for got < n {
		want := int64(len(buf))
		if n-got < want {
			want = n - got
		}
		k, err := s.Read(buf[:want])
		if k > 0 && got == 0 {
			start = time.Now()
		}
		got += int64(k)
		h.Write(buf[:k])
		if err != nil {
			return fmt.Errorf("after %d of %d bytes: %w", got, n, err)
		}
	}
	elapsed := time.Since(start)
	sum := h.Sum(nil)
	fmt.Println(result("receiver", got, elapsed, sum, ""))
	if _, err := s.Write(sum); err != nil {
		return fmt.Errorf("sending the digest: %w", err)
	}
	// Wait for the bye, so that the digest is acknowledged before the socket goes.
	// Its loss costs only this wait.
	bye := make([]byte, 1)
	byeDeadline := time.Now().Add(5 * time.Second)
	if byeDeadline.After(deadline) {
		byeDeadline = deadline
	}
	s.SetReadDeadline(byeDeadline)
	io.ReadFull(s, bye)
	return nil
}

func send(o *options, deadline time.Time) error {
	raddr, err := net.ResolveUDPAddr("udp", o.connect)
	if err != nil {
		return fmt.Errorf("resolve %s: %w", o.connect, err)
	}
	network := "udp4"
	if raddr.IP.To4() == nil {
		network = "udp6"
	}
	conn, err := net.ListenUDP(network, nil)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	defer conn.Close()
	conn.SetReadBuffer(o.sockbuf)
	conn.SetWriteBuffer(o.sockbuf)
	s, err := kcp.NewConn3(uint32(o.conv), raddr, nil, 0, 0, conn)
	if err != nil {
		return fmt.Errorf("session: %w", err)
	}
	defer s.Close()
	configure(s, o)
	s.SetDeadline(deadline)

	block := pattern(uint32(o.conv))
	// The digest of what will be sent, before the clock starts.
	var h hash.Hash = sha256.New()
	for left := o.bytes; left > 0; {
		k := int64(blockSize)
		if left < k {
			k = left
		}
		h.Write(block[:k])
		left -= k
	}
	want := h.Sum(nil)

	start := time.Now()
	var header [8]byte
	binary.LittleEndian.PutUint64(header[:], uint64(o.bytes))
	if _, err := s.Write(header[:]); err != nil {
		return fmt.Errorf("sending the length: %w", err)
	}
	const chunk = 64 << 10
	for sent := int64(0); sent < o.bytes; {
		off := sent % blockSize
		k := int64(chunk)
		if blockSize-off < k {
			k = blockSize - off
		}
		if o.bytes-sent < k {
			k = o.bytes - sent
		}
		if _, err := s.Write(block[off : off+k]); err != nil {
			return fmt.Errorf("after %d of %d bytes: %w", sent, o.bytes, err)
		}
		sent += k
	}
	got := make([]byte, sha256.Size)
	if _, err := io.ReadFull(s, got); err != nil {
		return fmt.Errorf("waiting for the receiver's digest: %w", err)
	}
	elapsed := time.Since(start)
	verified := string(got) == string(want)
	fmt.Println(result("sender", o.bytes, elapsed, want, fmt.Sprintf(`,"verified":%t`, verified)))
	s.Write([]byte{'B'})
	// Let the bye leave and be acknowledged: kcp-go flushes on Write, and a
	// retransmission within a few intervals covers a loss.
	time.Sleep(200 * time.Millisecond)
	if !verified {
		return errors.New("the receiver's SHA-256 differs from the data sent")
	}
	return nil
}

func main() {
	var o options
	flag.StringVar(&o.listen, "listen", "", "receive: listen on ADDR:PORT")
	flag.StringVar(&o.connect, "connect", "", "send: connect to ADDR:PORT")
	flag.Int64Var(&o.bytes, "bytes", 32<<20, "bytes to send (sender)")
	flag.UintVar(&o.conv, "conv", 1, "KCP conversation id (both sides)")
	flag.StringVar(&o.mode, "mode", "fast", "normal|fast|turbo: peerlink's kcp_normal/kcp_fast/kcp_turbo")
	flag.IntVar(&o.wnd, "wnd", 0, "send and receive window in segments (0: the mode's)")
	flag.IntVar(&o.mtu, "mtu", 1400, "MTU: largest datagram, KCP headers included")
	flag.IntVar(&o.interval, "interval", 0, "flush interval in ms (0: the mode's; kcp-go clamps to 10..5000)")
	flag.BoolVar(&o.nocwnd, "nocwnd", false, "switch the congestion window off")
	flag.BoolVar(&o.stream, "stream", false, "stream mode (default: message mode)")
	flag.DurationVar(&o.timeout, "timeout", 60*time.Second, "give up after this long")
	flag.IntVar(&o.sockbuf, "sockbuf", 4<<20, "SO_RCVBUF and SO_SNDBUF to ask for")
	flag.Parse()

	if (o.listen == "") == (o.connect == "") {
		fail(2, "give exactly one of -listen ADDR:PORT or -connect ADDR:PORT")
	}
	if _, ok := modes[o.mode]; !ok {
		fail(2, "unknown -mode %q (normal, fast or turbo)", o.mode)
	}
	if o.bytes < 0 || o.conv > 0xffffffff || o.mtu < 50 || o.wnd < 0 || o.interval < 0 {
		fail(2, "bad -bytes, -conv, -mtu, -wnd or -interval")
	}
	deadline := time.Now().Add(o.timeout)
	// A hard stop, whatever blocks.
	go func() {
		time.Sleep(o.timeout + 5*time.Second)
		fail(1, "timeout after %v", o.timeout)
	}()

	var err error
	if o.listen != "" {
		err = receive(&o, deadline)
	} else {
		err = send(&o, deadline)
	}
	if err != nil {
		fail(1, "%v", err)
	}
}
