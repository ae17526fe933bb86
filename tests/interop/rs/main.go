// rs: prints what klauspost/reedsolomon's default code (the one kcp-go uses)
// makes of deterministic inputs, for peerlink's reed_solomon tests to compare.
//
//	rs 10:3:1400:7 4:4:1001:3 ...
//
// Each argument is one case, data:parity:size:seed. For each case it prints
//
//	case <data> <parity> <size> <seed>
//	matrix <hex of row data+p of the encoding matrix, columns 0..data-1>   (parity lines)
//	parity <hex of parity shard p of the generated input>                  (parity lines)
//
// The matrix rows come from encoding the unit vectors (data shard c holds 1 at
// byte c), since the package keeps its matrix private. Data shard i byte j is the
// top byte of a 64-bit LCG (x = x*6364136223846793005 + 1442695040888963407,
// starting at x = seed), drawn shard by shard, byte by byte.
//
// Runs on the distribution's packages, nothing downloaded:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go run tests/interop/rs/main.go 10:3:1400:7
package main

import (
	"encoding/hex"
	"fmt"
	"os"

	"github.com/klauspost/reedsolomon"
)

func fail(code int, format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "rs: "+format+"\n", args...)
	os.Exit(code)
}

func runCase(data, parity, size int, seed uint64) {
	enc, err := reedsolomon.New(data, parity)
	if err != nil {
		fail(2, "%d:%d: %v", data, parity, err)
	}
	fmt.Println("case", data, parity, size, seed)

	unit := make([][]byte, data+parity)
	for i := range unit {
		unit[i] = make([]byte, data)
		if i < data {
			unit[i][i] = 1
		}
	}
	if err := enc.Encode(unit); err != nil {
		fail(1, "encode: %v", err)
	}
	for p := 0; p < parity; p++ {
		fmt.Println("matrix", hex.EncodeToString(unit[data+p]))
	}

	shards := make([][]byte, data+parity)
	x := seed
	for i := range shards {
		shards[i] = make([]byte, size)
		if i >= data {
			continue
		}
		for j := range shards[i] {
			x = x*6364136223846793005 + 1442695040888963407
			shards[i][j] = byte(x >> 56)
		}
	}
	if err := enc.Encode(shards); err != nil {
		fail(1, "encode: %v", err)
	}
	for p := 0; p < parity; p++ {
		fmt.Println("parity", hex.EncodeToString(shards[data+p]))
	}
}

func main() {
	if len(os.Args) < 2 {
		fail(2, "usage: rs data:parity:size:seed...")
	}
	for _, arg := range os.Args[1:] {
		var data, parity, size int
		var seed uint64
		if n, err := fmt.Sscanf(arg, "%d:%d:%d:%d", &data, &parity, &size, &seed); n != 4 || err != nil {
			fail(2, "bad case %q: want data:parity:size:seed", arg)
		}
		runCase(data, parity, size, seed)
	}
}
