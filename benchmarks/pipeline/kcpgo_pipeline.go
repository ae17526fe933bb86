// kcpgo_pipeline: pipeline_bench's yardstick, a bulk transfer over kcp-go (Debian's
// golang-github-xtaci-kcp-dev) with its whole pipeline on: KCP + Reed-Solomon FEC
// 10 data / 3 parity shards + salsa20 (kcp.NewSalsa20BlockCrypt, a 32-byte key from
// pbkdf2), as kcptun runs it.
//
// KCP settings equal to peerlink's kcp_turbo in pipeline_bench: SetNoDelay(1, 10, 2, 1)
// (nodelay, 10 ms interval, fast resend after 2, no congestion window), windows
// 256/256 (-wnd 4096: 4096/4096, as pipeline_bench --wnd 4096), message mode (kcp-go's
// default, as kcp_turbo's), MTU 1400 (kcp-go's MTU is the whole UDP payload, its FEC
// and crypt headers included, as peerlink's max_datagram_size), ACKs at the flush, no
// write delay, 4 MiB socket buffers.
//
//	kcpgo_pipeline -listen ADDR:PORT [-wnd W]            receives, prints JSON
//	kcpgo_pipeline -connect ADDR:PORT -bytes N [-wnd W]  sends N bytes
//
// KCP has no end of stream, so on top of it: the sender writes N as a u64
// little-endian, then N bytes (a 1 MiB block of splitmix64 output seeded with 1,
// repeated: the bytes pipeline_bench sends); the receiver answers with the 32-byte
// SHA-256 of what it received; the sender ends with one byte 'B'. Each prints one
// line of JSON:
//
//	{"role":"receiver","bytes":N,"seconds":S,"mbps":X,"sha256":"...","cpu":C,
//	 "fec":"10:3","cipher":"salsa20"}
//
// mbps is MB/s (10^6 bytes per second): the receiver's from the first payload byte to
// the last, the sender's from the first write to the digest's arrival; cpu the
// process's user + system seconds. The listener prints "kcpgo_pipeline: listening on
// ADDR:PORT" on stderr once bound (port 0 picks a free one).
//
// Built in GOPATH mode with the distribution's packages, nothing downloaded:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode GOPROXY=off CGO_ENABLED=0 \
//	    go build -o kcpgo_pipeline kcpgo_pipeline.go
//
// Exit codes: 0 success, 1 transfer failed, 2 bad usage or setup.
package main

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"

	kcp "github.com/xtaci/kcp-go"
	"golang.org/x/crypto/pbkdf2"
)

// The send and receive window (-wnd): 256 as kcp_turbo's, or 4096 as pipeline_bench --wnd 4096.
var wnd = 256

const (
	blockSize    = 1 << 20
	dataShards   = 10
	parityShards = 3
	conv         = 1
	mtu          = 1400
	sockbuf      = 4 << 20
)

func fail(code int, format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "kcpgo_pipeline: "+format+"\n", args...)
	os.Exit(code)
}

func pattern() []byte {
	b := make([]byte, blockSize)
	x := uint64(1)
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

func crypt() kcp.BlockCrypt {
	key := pbkdf2.Key([]byte("peerlink pipeline benchmark"), []byte("kcp-go"), 4096, 32, sha1.New)
	block, err := kcp.NewSalsa20BlockCrypt(key)
	if err != nil {
		fail(2, "salsa20: %v", err)
	}
	return block
}

func configure(s *kcp.UDPSession) {
	s.SetNoDelay(1, 10, 2, 1)
	s.SetWindowSize(wnd, wnd)
	if !s.SetMtu(mtu) {
		fail(2, "mtu %d refused", mtu)
	}
	s.SetStreamMode(false)
	s.SetWriteDelay(false)
	s.SetACKNoDelay(false)
}

func result(role string, n int64, d time.Duration, sum []byte) string {
	sec := d.Seconds()
	mbps := 0.0
	if sec > 0 {
		mbps = float64(n) / sec / 1e6
	}
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	cpu := float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
	return fmt.Sprintf(`{"role":"%s","bytes":%d,"seconds":%.6f,"mbps":%.3f,"sha256":"%s","cpu":%.3f,"fec":"%d:%d","cipher":"salsa20"}`,
		role, n, sec, mbps, hex.EncodeToString(sum), cpu, dataShards, parityShards)
}

func receive(addr string, deadline time.Time) error {
	l, err := kcp.ListenWithOptions(addr, crypt(), dataShards, parityShards)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	defer l.Close()
	fmt.Fprintf(os.Stderr, "kcpgo_pipeline: listening on %s\n", l.Addr())
	l.SetReadBuffer(sockbuf)
	l.SetWriteBuffer(sockbuf)
	l.SetDeadline(deadline)
	s, err := l.AcceptKCP()
	if err != nil {
		return fmt.Errorf("accept: %w", err)
	}
	defer s.Close()
	configure(s)
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
	fmt.Println(result("receiver", got, elapsed, sum))
	if _, err := s.Write(sum); err != nil {
		return fmt.Errorf("sending the digest: %w", err)
	}
	// The bye says the digest arrived; its loss costs only this wait.
	byeDeadline := time.Now().Add(5 * time.Second)
	if byeDeadline.After(deadline) {
		byeDeadline = deadline
	}
	s.SetReadDeadline(byeDeadline)
	io.ReadFull(s, make([]byte, 1))
	return nil
}

func send(addr string, bytes int64, deadline time.Time) error {
	raddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return fmt.Errorf("resolve %s: %w", addr, err)
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
	conn.SetReadBuffer(sockbuf)
	conn.SetWriteBuffer(sockbuf)
	s, err := kcp.NewConn3(conv, raddr, crypt(), dataShards, parityShards, conn)
	if err != nil {
		return fmt.Errorf("session: %w", err)
	}
	defer s.Close()
	configure(s)
	s.SetDeadline(deadline)

	block := pattern()
	h := sha256.New()
	for left := bytes; left > 0; {
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
	binary.LittleEndian.PutUint64(header[:], uint64(bytes))
	if _, err := s.Write(header[:]); err != nil {
		return fmt.Errorf("sending the length: %w", err)
	}
	const chunk = 256 << 10
	for sent := int64(0); sent < bytes; {
		off := sent % blockSize
		k := int64(chunk)
		if blockSize-off < k {
			k = blockSize - off
		}
		if bytes-sent < k {
			k = bytes - sent
		}
		if _, err := s.Write(block[off : off+k]); err != nil {
			return fmt.Errorf("after %d of %d bytes: %w", sent, bytes, err)
		}
		sent += k
	}
	got := make([]byte, sha256.Size)
	if _, err := io.ReadFull(s, got); err != nil {
		return fmt.Errorf("waiting for the receiver's digest: %w", err)
	}
	elapsed := time.Since(start)
	fmt.Println(result("sender", bytes, elapsed, want))
	s.Write([]byte{'B'})
	time.Sleep(200 * time.Millisecond) // lets the bye leave and be acknowledged
	if string(got) != string(want) {
		return errors.New("the receiver's SHA-256 differs from the data sent")
	}
	return nil
}

func main() {
	listen := flag.String("listen", "", "receive: listen on ADDR:PORT")
	connect := flag.String("connect", "", "send: connect to ADDR:PORT")
	bytes := flag.Int64("bytes", 32<<20, "bytes to send (sender)")
	flag.IntVar(&wnd, "wnd", 256, "send and receive window in segments (256: kcp_turbo's)")
	timeout := flag.Duration("timeout", 120*time.Second, "give up after this long")
	flag.Parse()
	if (*listen == "") == (*connect == "") || *bytes < 0 || wnd < 1 {
		fail(2, "give exactly one of -listen ADDR:PORT or -connect ADDR:PORT (and -bytes >= 0)")
	}
	deadline := time.Now().Add(*timeout)
	go func() { // a hard stop, whatever blocks
		time.Sleep(*timeout + 5*time.Second)
		fail(1, "timeout after %v", *timeout)
	}()
	var err error
	if *listen != "" {
		err = receive(*listen, deadline)
	} else {
		err = send(*connect, *bytes, deadline)
	}
	if err != nil {
		fail(1, "%v", err)
	}
}
