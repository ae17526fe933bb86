// kcpfec: a kcp-go echo peer with kcp-go's FEC, for peerlink's FEC interop test
// (tests/reed_solomon_fec_kcpgo.cpp).
//
//	kcpfec -listen 127.0.0.1:0 -ds 10 -ps 3 -loss 0.1 -seed 7
//
// It listens with kcp.ServeConn(nil, ds, ps, conn), prints
//
//	listening <addr:port>
//
// accepts one session (stream mode, nodelay 1/10/2/1, windows 256), reads a u64
// little-endian N, echoes the next N bytes back, waits for one byte 'B' (the
// peer got everything), prints one line of JSON and exits:
//
//	{"echoed":N,"dropped":D,"fec_recovered":R,"fec_errs":E,"fec_parity":P,"fec_short":S,
//	 "in_pkts":I,"out_pkts":O,"retrans":T}
//
// where dropped counts the outgoing datagrams it threw away on purpose (-loss is
// the probability, from a PRNG seeded with -seed), and the fec_* fields are kcp-go's
// own counters (DefaultSnmp): fec_recovered is how many of the peer's packets its
// FEC decoder rebuilt.
//
// Runs on the distribution's packages, nothing downloaded:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o kcpfec tests/interop/kcpfec/main.go
//
// Exit codes: 0 success, 1 transfer failed, 2 bad usage or setup.
package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"net"
	"os"
	"sync"
	"time"

	kcp "github.com/xtaci/kcp-go"
)

// lossyConn drops outgoing datagrams at random.
type lossyConn struct {
	net.PacketConn
	mu      sync.Mutex
	rng     *rand.Rand
	loss    float64
	dropped uint64
}

func (c *lossyConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	c.mu.Lock()
	drop := c.rng.Float64() < c.loss
	if drop {
		c.dropped++
	}
	c.mu.Unlock()
	if drop {
		return len(b), nil
	}
	return c.PacketConn.WriteTo(b, addr)
}

func fail(code int, format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "kcpfec: "+format+"\n", args...)
	os.Exit(code)
}

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	ds := flag.Int("ds", 10, "FEC data shards")
	ps := flag.Int("ps", 3, "FEC parity shards")
	loss := flag.Float64("loss", 0, "probability of dropping an outgoing datagram")
	seed := flag.Int64("seed", 1, "seed of the loss PRNG")
	timeout := flag.Duration("timeout", 60*time.Second, "give up after this long")
	flag.Parse()

	pc, err := net.ListenPacket("udp", *listen)
	if err != nil {
		fail(2, "listen: %v", err)
	}
	conn := &lossyConn{PacketConn: pc, rng: rand.New(rand.NewSource(*seed)), loss: *loss}
	ln, err := kcp.ServeConn(nil, *ds, *ps, conn)
	if err != nil {
		fail(2, "serve: %v", err)
	}
	fmt.Println("listening", pc.LocalAddr().String())

	deadline := time.Now().Add(*timeout)
	if err := ln.SetDeadline(deadline); err != nil {
		fail(2, "deadline: %v", err)
	}
	sess, err := ln.AcceptKCP()
	if err != nil {
		fail(1, "accept: %v", err)
	}
	sess.SetStreamMode(true)
	sess.SetNoDelay(1, 10, 2, 1)
	sess.SetWindowSize(256, 256)
	sess.SetACKNoDelay(true)
	if err := sess.SetDeadline(deadline); err != nil {
		fail(2, "deadline: %v", err)
	}

	var header [8]byte
	if _, err := io.ReadFull(sess, header[:]); err != nil {
		fail(1, "read length: %v", err)
	}
	n := binary.LittleEndian.Uint64(header[:])
	buf := make([]byte, 64<<10)
	var echoed uint64
	for echoed < n {
		want := uint64(len(buf))
		if n-echoed < want {
			want = n - echoed
		}
		got, err := sess.Read(buf[:want])
		if err != nil {
			fail(1, "read after %d bytes: %v", echoed, err)
		}
		if _, err := sess.Write(buf[:got]); err != nil {
			fail(1, "write: %v", err)
		}
		echoed += uint64(got)
	}
	var bye [1]byte
	if _, err := io.ReadFull(sess, bye[:]); err != nil || bye[0] != 'B' {
		fail(1, "no bye: %v", err)
	}
	s := kcp.DefaultSnmp.Copy()
	conn.mu.Lock()
	dropped := conn.dropped
	conn.mu.Unlock()
	fmt.Printf("{\"echoed\":%d,\"dropped\":%d,\"fec_recovered\":%d,\"fec_errs\":%d,"+
		"\"fec_parity\":%d,\"fec_short\":%d,\"in_pkts\":%d,\"out_pkts\":%d,\"retrans\":%d}\n",
		echoed, dropped, s.FECRecovered, s.FECErrs, s.FECParityShards, s.FECShortShards,
		s.InPkts, s.OutPkts, s.RetransSegs)
	sess.Close()
	ln.Close()
}
