#include <peerlink/policy/reed_solomon_fec.hpp>

#include "catch.hpp"

#include <algorithm>
#include <array>
#include <map>
#include <random>
#include <set>
#include <vector>

using peerlink::error;
using peerlink::fec_config;
using peerlink::fec_error;
using peerlink::fec_framing;
using peerlink::fec_ratio;
using peerlink::packet_buffer;
using peerlink::reed_solomon_fec;
namespace fec = peerlink::fec;

namespace {

using bytes = std::vector<std::byte>;
const peerlink::time_point t0{};
constexpr std::size_t headroom = 64;

// A payload that no framing mistakes for a FEC packet: byte 0 is 1 (like a peerlink
// frame's version), bytes 1..4 the sequence number, byte 5 nonzero (so bytes 4..5
// are never f1 00 / f2 00), then random bytes.
bytes make_payload(std::uint32_t seq, std::size_t size, std::mt19937& rng) {
    bytes b(std::max<std::size_t>(size, 6));
    b[0] = std::byte{1};
    b[1] = static_cast<std::byte>(seq >> 24);
    b[2] = static_cast<std::byte>(seq >> 16);
    b[3] = static_cast<std::byte>(seq >> 8);
    b[4] = static_cast<std::byte>(seq);
    b[5] = std::byte{0x5a};
    for (std::size_t i = 6; i < b.size(); ++i)
        b[i] = static_cast<std::byte>(rng());
    return b;
}

std::uint32_t seq_of(const bytes& b) {
    return (std::to_integer<std::uint32_t>(b[1]) << 24) |
           (std::to_integer<std::uint32_t>(b[2]) << 16) |
           (std::to_integer<std::uint32_t>(b[3]) << 8) | std::to_integer<std::uint32_t>(b[4]);
}

bytes to_bytes(std::span<const std::byte> s) {
    return bytes(s.begin(), s.end());
}

fec_config enabled_config(std::uint8_t k, std::uint8_t m) {
    fec_config c;
    c.enabled = true;
    c.data_shards = k;
    c.parity_shards = m;
    return c;
}

// Runs `payload` through the sender: the data packet, then any parity packets.
template <class Fec>
std::vector<bytes> send(Fec& tx, const bytes& payload) {
    std::vector<bytes> out;
    std::array<std::byte, 2048> storage{};
    packet_buffer p(storage, headroom);
    REQUIRE(p.append(payload));
    REQUIRE(!tx.encode(p, t0));
    out.push_back(to_bytes(p.data()));
    while (true) {
        std::array<std::byte, 2048> ps{};
        packet_buffer q(ps, headroom);
        if (!tx.poll_parity(q))
            break;
        out.push_back(to_bytes(q.data()));
    }
    return out;
}

// Feeds one wire packet to the receiver; returns what it passes on.
template <class Fec>
std::vector<bytes> receive(Fec& rx, const bytes& wire) {
    std::vector<bytes> out;
    bytes copy = wire;
    packet_buffer p(copy, 0);
    p.resize(copy.size());
    auto ec = rx.decode(p, t0);
    REQUIRE(!ec);
    if (!p.empty())
        out.push_back(to_bytes(p.data()));
    while (rx.poll_recovered(p))
        out.push_back(to_bytes(p.data()));
    return out;
}

// Sends `count` payloads of random sizes; returns the payloads and the wire packets
// with, for each, the group it belongs to (by order of sending).
struct traffic {
    std::vector<bytes> payloads;
    std::vector<bytes> wire;
};

template <class Fec>
traffic make_traffic(Fec& tx, std::size_t count, std::size_t max_size, std::mt19937& rng) {
    traffic t;
    for (std::size_t i = 0; i < count; ++i) {
        auto payload = make_payload(static_cast<std::uint32_t>(i), 6 + rng() % (max_size - 5), rng);
        t.payloads.push_back(payload);
        for (auto& w : send(tx, payload))
            t.wire.push_back(std::move(w));
    }
    return t;
}

// Checks what arrived: no payload twice, each one intact.
void check_delivered(const std::vector<bytes>& delivered, const std::vector<bytes>& sent,
                     std::set<std::uint32_t>& seen) {
    for (const auto& d : delivered) {
        REQUIRE(d.size() >= 6);
        auto seq = seq_of(d);
        REQUIRE(seq < sent.size());
        REQUIRE(d == sent[seq]);
        REQUIRE(seen.insert(seq).second); // never twice
    }
}

} // namespace

TEST_CASE("reed_solomon_fec: is a fec policy in both framings", "[fec]") {
    STATIC_REQUIRE(peerlink::fec_policy<reed_solomon_fec<>>);
    STATIC_REQUIRE(peerlink::fec_policy<reed_solomon_fec<fec_framing::kcp_go>>);
    STATIC_REQUIRE(reed_solomon_fec<>::max_overhead == 10);
    STATIC_REQUIRE(reed_solomon_fec<fec_framing::kcp_go>::max_overhead == 8);
    reed_solomon_fec<> fec;
    CHECK(!fec.enabled());
    CHECK(fec.ratio() == fec_ratio{10, 3});
}

TEST_CASE("reed_solomon_fec: switched off, packets pass through unchanged", "[fec]") {
    reed_solomon_fec<> fec;
    std::mt19937 rng(1);
    auto payload = make_payload(7, 100, rng);
    auto wire = send(fec, payload);
    REQUIRE(wire.size() == 1);
    CHECK(wire[0] == payload);
    auto got = receive(fec, wire[0]);
    REQUIRE(got.size() == 1);
    CHECK(got[0] == payload);
    CHECK(fec.stats().plain_received == 1);
    CHECK(fec.stats().data_sent == 0);
}

TEST_CASE("reed_solomon_fec: bad configurations are refused", "[fec]") {
    std::error_code ec;
    fec_config c = enabled_config(0, 3);
    reed_solomon_fec<> a(c, ec);
    CHECK(ec == fec_error::invalid_shard_count);
    CHECK(a.ratio() == fec_ratio{10, 3}); // kept the defaults
    c = enabled_config(200, 56);
    CHECK(reed_solomon_fec<>::validate(c) == fec_error::invalid_shard_count);
    c = enabled_config(10, 3);
    c.window = 0;
    CHECK(reed_solomon_fec<>::validate(c) == error::invalid_config);
    c.window = 3;
    c.max_payload = 65534;
    CHECK(!reed_solomon_fec<>::validate(c));
    CHECK(reed_solomon_fec<fec_framing::kcp_go>::validate(c) == error::invalid_config);
    CHECK(a.set_ratio({4, 0}) == fec_error::invalid_shard_count);
    CHECK(a.set_peer_ratio({0, 4}) == fec_error::invalid_shard_count);
}

TEST_CASE("reed_solomon_fec: peerlink framing bytes of data and parity packets", "[fec]") {
    std::error_code ec;
    reed_solomon_fec<> tx(enabled_config(2, 1), ec);
    REQUIRE(!ec);
    std::mt19937 rng(2);
    auto p0 = make_payload(0, 20, rng), p1 = make_payload(1, 7, rng);
    auto w0 = send(tx, p0);
    REQUIRE(w0.size() == 1);
    REQUIRE(w0[0].size() == 10 + 20);
    const bytes head0 = {std::byte{0xf1}, std::byte{2}, std::byte{1}, std::byte{0}, std::byte{0},
                         std::byte{0},    std::byte{0}, std::byte{0}, std::byte{0}, std::byte{20}};
    CHECK(bytes(w0[0].begin(), w0[0].begin() + 10) == head0);
    auto w1 = send(tx, p1);
    REQUIRE(w1.size() == 2); // the group is complete: its parity follows
    CHECK(w1[0][3] == std::byte{1});
    const auto& parity = w1[1];
    REQUIRE(parity.size() == 8 + 22); // header + the longest shard (2 + 20)
    CHECK(parity[0] == std::byte{0xf2});
    CHECK(parity[3] == std::byte{2}); // index data + 0
    // The parity shard is the code's parity of the two shards (size field and
    // payload), the shorter one padded with zeros.
    bytes shard0(w0[0].begin() + 8, w0[0].end()), shard1(w1[0].begin() + 8, w1[0].end());
    shard1.resize(shard0.size());
    peerlink::reed_solomon rs;
    REQUIRE(!rs.init(2, 1));
    bytes want(shard0.size());
    const std::byte* data[] = {shard0.data(), shard1.data()};
    std::byte* out[] = {want.data()};
    REQUIRE(!rs.encode(data, out, want.size()));
    CHECK(bytes(parity.begin() + 8, parity.end()) == want);
    auto w2 = send(tx, p0);
    CHECK(w2[0][7] == std::byte{1}); // next group
    CHECK(tx.stats().groups_sent == 1);
    CHECK(tx.stats().parity_sent == 1);
}

TEST_CASE("reed_solomon_fec: kcp-go framing bytes and seqids", "[fec]") {
    std::error_code ec;
    reed_solomon_fec<fec_framing::kcp_go> tx(enabled_config(10, 3), ec);
    REQUIRE(!ec);
    std::mt19937 rng(3);
    std::vector<bytes> wire;
    auto seqids = [&] {
        std::vector<std::uint32_t> out;
        for (auto& w : wire) {
            std::error_code dec;
            auto pk = fec::decode_kcp(w, dec);
            REQUIRE(pk);
            out.push_back(pk->header.seqid);
        }
        return out;
    };
    for (std::uint32_t i = 0; i < 23; ++i)
        for (auto& w : send(tx, make_payload(i, 30 + i, rng)))
            wire.push_back(w);
    REQUIRE(wire.size() == 23 + 2 * 3);
    auto ids = seqids();
    for (std::uint32_t i = 0; i < wire.size(); ++i) {
        CHECK(ids[i] == i); // data 0..9, parity 10..12, data 13..22, parity 23..25, ...
        std::error_code dec;
        bool parity = i % 13 >= 10;
        CHECK(fec::decode_kcp(wire[i], dec)->header.type ==
              (parity ? fec::shard_type::parity : fec::shard_type::data));
        if (parity && i < 13)
            CHECK(wire[i].size() == 6 + 2 + 39); // the group's longest payload: 39 bytes
        if (!parity)                             // size field: payload + 2, little-endian
            CHECK(std::to_integer<std::size_t>(wire[i][6]) == wire[i].size() - 6);
    }
    CHECK(std::to_integer<int>(wire[0][4]) == 0xf1);
    CHECK(std::to_integer<int>(wire[10][4]) == 0xf2);
    CHECK(std::to_integer<int>(wire[10][5]) == 0);
    // A ratio change waits for the open group (seqids 26..38), then starts the next
    // group at a multiple of its own size: 4:4 at 40, not 39.
    REQUIRE(!tx.set_ratio({4, 4}));
    CHECK(tx.ratio() == fec_ratio{10, 3});
    wire.clear();
    for (std::uint32_t i = 23; i < 34; ++i)
        for (auto& w : send(tx, make_payload(i, 30, rng)))
            wire.push_back(w);
    const std::vector<std::uint32_t> want = {29, 30, 31, 32, 33, 34, 35, 36, 37,
                                             38, 40, 41, 42, 43, 44, 45, 46, 47};
    CHECK(seqids() == want);
    CHECK(tx.ratio() == fec_ratio{4, 4});
}

TEST_CASE("reed_solomon_fec: no loss, every payload once, in order", "[fec]") {
    std::error_code ec;
    reed_solomon_fec<> tx(enabled_config(10, 3), ec), rx(enabled_config(10, 3), ec);
    std::mt19937 rng(4);
    auto t = make_traffic(tx, 200, 1500, rng);
    CHECK(t.wire.size() == 200 + 20 * 3);
    std::vector<bytes> delivered;
    for (auto& w : t.wire)
        for (auto& d : receive(rx, w))
            delivered.push_back(d);
    CHECK(delivered == t.payloads);
    CHECK(rx.stats().recovered == 0);
    CHECK(rx.stats().groups_complete == 20);
    CHECK(rx.stats().parity_received == 60);
    CHECK(rx.stats().duplicates == 0);
}

TEST_CASE("reed_solomon_fec: random loss is recovered up to the parity count", "[fec]") {
    for (auto [k, m] : {std::pair<std::uint8_t, std::uint8_t>{10, 3}, {4, 4}, {3, 5}, {8, 2}}) {
        std::error_code ec;
        reed_solomon_fec<> tx(enabled_config(k, m), ec), rx(enabled_config(k, m), ec);
        std::mt19937 rng(5 + k);
        const std::size_t groups = 150, total = k + m;
        auto t = make_traffic(tx, groups * k, 1400, rng);
        REQUIRE(t.wire.size() == groups * total);
        std::bernoulli_distribution lose(0.12);
        std::set<std::uint32_t> seen;
        std::size_t recoverable_groups = 0, lost_data_in_bad_groups = 0;
        for (std::size_t g = 0; g < groups; ++g) {
            std::vector<bool> lost(total);
            std::size_t n_lost = 0, data_lost = 0;
            for (std::size_t i = 0; i < total; ++i)
                if (lose(rng)) {
                    lost[i] = true;
                    ++n_lost;
                    data_lost += i < k ? 1 : 0;
                }
            for (std::size_t i = 0; i < total; ++i)
                if (!lost[i]) {
                    auto got = receive(rx, t.wire[g * total + i]);
                    check_delivered(got, t.payloads, seen);
                }
            if (n_lost <= m) {
                ++recoverable_groups;
                for (std::size_t i = 0; i < k; ++i) // the whole group is through
                    REQUIRE(seen.count(static_cast<std::uint32_t>(g * k + i)) == 1);
            } else {
                lost_data_in_bad_groups += data_lost;
            }
        }
        INFO(int(k) << ":" << int(m) << " recoverable groups " << recoverable_groups);
        CHECK(recoverable_groups > groups / 2);
        CHECK(seen.size() + lost_data_in_bad_groups == groups * k);
        CHECK(rx.stats().recovered > 0);
        CHECK(rx.stats().duplicates == 0);
    }
}

TEST_CASE("reed_solomon_fec: every loss pattern of a 4:4 group", "[fec]") {
    std::error_code ec;
    reed_solomon_fec<> tx(enabled_config(4, 4), ec), rx(enabled_config(4, 4), ec);
    std::mt19937 rng(6);
    std::size_t patterns = 0;
    for (unsigned lost = 0; lost < 256; ++lost) {
        traffic t = make_traffic(tx, 4, 300, rng);
        REQUIRE(t.wire.size() == 8);
        std::vector<bytes> delivered;
        for (std::size_t i = 0; i < 8; ++i)
            if (!(lost & (1u << i)))
                for (auto& d : receive(rx, t.wire[i]))
                    delivered.push_back(d);
        std::size_t data_arrived = 0;
        for (std::size_t i = 0; i < 4; ++i)
            data_arrived += (lost & (1u << i)) ? 0 : 1;
        const auto n_lost = static_cast<std::size_t>(__builtin_popcount(lost));
        INFO("lost mask " << lost);
        REQUIRE(delivered.size() == (n_lost <= 4 ? 4 : data_arrived));
        std::sort(delivered.begin(), delivered.end(),
                  [](const bytes& a, const bytes& b) { return seq_of(a) < seq_of(b); });
        for (auto& d : delivered)
            REQUIRE(std::find(t.payloads.begin(), t.payloads.end(), d) != t.payloads.end());
        if (n_lost <= 4)
            ++patterns;
    }
    CHECK(patterns == 1 + 8 + 28 + 56 + 70);
}

TEST_CASE("reed_solomon_fec: reordering and duplicates across groups", "[fec]") {
    std::error_code ec;
    reed_solomon_fec<> tx(enabled_config(10, 3), ec), rx(enabled_config(10, 3), ec);
    std::mt19937 rng(7);
    auto t = make_traffic(tx, 400, 1200, rng);
    // Lose ~8%, duplicate ~10%, and shuffle within a sliding window of 20 packets
    // (packets of neighbouring groups interleave).
    std::vector<bytes> link;
    std::bernoulli_distribution lose(0.08), dup(0.10);
    for (auto& w : t.wire) {
        if (lose(rng))
            continue;
        link.push_back(w);
        if (dup(rng))
            link.push_back(w);
    }
    for (std::size_t i = 0; i + 20 < link.size(); i += 7)
        std::shuffle(link.begin() + static_cast<std::ptrdiff_t>(i),
                     link.begin() + static_cast<std::ptrdiff_t>(i + 20), rng);
    std::set<std::uint32_t> seen;
    for (auto& w : link)
        check_delivered(receive(rx, w), t.payloads, seen);
    CHECK(rx.stats().duplicates > 0);
    CHECK(rx.stats().recovered > 0);
    // With 3 parity per 13 and 8% loss nearly every group recovers.
    CHECK(seen.size() >= 390);
}

TEST_CASE("reed_solomon_fec: groups that never complete stay bounded", "[fec]") {
    std::error_code ec;
    reed_solomon_fec<> tx(enabled_config(10, 3), ec), rx(enabled_config(10, 3), ec);
    std::mt19937 rng(8);
    const auto memory = rx.memory_bytes();
    // Receiver: 39 shards of 1502 bytes, 3 for rebuilt packets, bookkeeping;
    // sender: 13 shards.
    CHECK(memory < 100 * 1024);
    // Each group loses 5 of its 13 packets: it never has 10 and never completes.
    std::set<std::uint32_t> seen;
    const std::size_t groups = 2000;
    auto t = make_traffic(tx, groups * 10, 200, rng);
    for (std::size_t g = 0; g < groups; ++g)
        for (std::size_t i = 0; i < 13; ++i)
            if (i % 3 != 0 || i == 12) // lose 0, 3, 6, 9 and keep 12: 9 arrive
                check_delivered(receive(rx, t.wire[g * 13 + i]), t.payloads, seen);
    CHECK(rx.memory_bytes() == memory);
    CHECK(rx.pending_groups() <= 39);
    CHECK(rx.stats().groups_evicted >= groups - 39);
    CHECK(rx.stats().data_lost == rx.stats().groups_evicted * 4);
    CHECK(rx.stats().recovered == 0);
    CHECK(seen.size() == groups * 6);
    // Loss measured on closed groups: 4 of 13.
    REQUIRE(rx.stats().shards_expected > 0);
    CHECK(rx.stats().shards_lost * 13 == rx.stats().shards_expected * 4);
}

TEST_CASE("reed_solomon_fec: packets far older than the window are passed on, not kept", "[fec]") {
    std::error_code ec;
    reed_solomon_fec<> tx(enabled_config(10, 3), ec), rx(enabled_config(10, 3), ec);
    std::mt19937 rng(9);
    auto t = make_traffic(tx, 100 * 10, 100, rng);
    std::set<std::uint32_t> seen;
    // Group 0 loses its first packet; then groups 1..99 arrive whole; then group 0's
    // packets straggle in: far too old to keep, but the data is still passed on.
    for (std::size_t i = 13; i < t.wire.size(); ++i)
        check_delivered(receive(rx, t.wire[i]), t.payloads, seen);
    const auto late_before = rx.stats().late;
    for (std::size_t i = 1; i < 13; ++i)
        check_delivered(receive(rx, t.wire[i]), t.payloads, seen);
    CHECK(rx.stats().late - late_before == 12);
    CHECK(seen.size() == 1000 - 1);
    CHECK(rx.stats().recovered == 0);
}

TEST_CASE("reed_solomon_fec: ratio changes between groups, receiver follows", "[fec]") {
    std::error_code ec;
    reed_solomon_fec<> tx(enabled_config(10, 3), ec), rx(enabled_config(10, 3), ec);
    std::mt19937 rng(10);
    std::vector<bytes> payloads, wire;
    std::uint32_t seq = 0;
    auto push = [&](std::size_t n) {
        for (std::size_t i = 0; i < n; ++i) {
            payloads.push_back(make_payload(seq++, 50 + rng() % 900, rng));
            for (auto& w : send(tx, payloads.back()))
                wire.push_back(w);
        }
    };
    push(15); // one group of 10:3 and half of the next
    REQUIRE(tx.group_open());
    REQUIRE(!tx.set_ratio({4, 4}));
    CHECK(tx.ratio() == fec_ratio{10, 3}); // waits for the open group
    CHECK(tx.next_ratio() == fec_ratio{4, 4});
    push(5); // closes the 10:3 group
    push(8); // two 4:4 groups
    CHECK(tx.ratio() == fec_ratio{4, 4});
    REQUIRE(!tx.set_ratio({3, 5}));
    CHECK(tx.ratio() == fec_ratio{3, 5}); // no group open: at once
    push(9);
    REQUIRE(payloads.size() == 37);
    REQUIRE(wire.size() == 37 + 2 * 3 + 2 * 4 + 3 * 5);
    // Lose data packets of every group (within each group's parity), and deliver the
    // rest with the last 4:4 group's packets before the first one's.
    std::set<std::uint32_t> seen;
    std::vector<std::size_t> order;
    for (std::size_t i = 0; i < wire.size(); ++i)
        order.push_back(i);
    std::reverse(order.begin() + 26, order.begin() + 42);
    const std::set<std::size_t> lost = {0, 1, 2, 13, 14, 26, 27, 34, 42, 43, 44, 50, 58};
    for (auto i : order)
        if (!lost.count(i))
            check_delivered(receive(rx, wire[i]), payloads, seen);
    CHECK(seen.size() == 37);
    // Reversed, the 4:4 groups' parity arrives first and rebuilds all their data;
    // the data packets that arrive afterwards are duplicates.
    CHECK(rx.stats().recovered == 3 + 2 + 4 + 4 + 3 + 1 + 1);
    CHECK(rx.stats().duplicates == 2 + 3);
    CHECK(rx.stats().inconsistent == 0);
}

TEST_CASE("reed_solomon_fec: kcp-go framing round trip with loss", "[fec]") {
    using kcp_fec = reed_solomon_fec<fec_framing::kcp_go>;
    std::error_code ec;
    kcp_fec tx(enabled_config(10, 3), ec), rx(enabled_config(10, 3), ec);
    std::mt19937 rng(11);
    auto t = make_traffic(tx, 500, 1376, rng);
    std::bernoulli_distribution lose(0.1);
    std::set<std::uint32_t> seen;
    for (auto& w : t.wire)
        if (!lose(rng))
            check_delivered(receive(rx, w), t.payloads, seen);
    CHECK(rx.stats().recovered > 10);
    CHECK(seen.size() > 480);
    // The receiver must be told a new peer ratio: with the wrong one, types
    // contradict places and nothing is rebuilt, but data is still passed on.
    REQUIRE(!tx.set_ratio({4, 4}));
    auto t2 = make_traffic(tx, 40, 500, rng);
    const auto mismatches = rx.stats().ratio_mismatch;
    const auto recovered_before = rx.stats().recovered;
    std::set<std::uint32_t> seen2;
    for (auto& w : t2.wire)
        check_delivered(receive(rx, w), t2.payloads, seen2);
    CHECK(rx.stats().ratio_mismatch > mismatches);
    CHECK(rx.stats().recovered == recovered_before);
    CHECK(seen2.size() == 40);
    REQUIRE(!rx.set_peer_ratio({4, 4}));
    auto t3 = make_traffic(tx, 40, 500, rng);
    std::set<std::uint32_t> seen3;
    const auto recovered = rx.stats().recovered;
    for (std::size_t i = 0; i < t3.wire.size(); ++i)
        if (i % 8 != 0) // first data packet of each 4:4 group lost
            check_delivered(receive(rx, t3.wire[i]), t3.payloads, seen3);
    CHECK(seen3.size() == 40);
    CHECK(rx.stats().recovered - recovered == 10);
}

TEST_CASE("reed_solomon_fec: malformed and inconsistent packets", "[fec]") {
    std::error_code ec;
    reed_solomon_fec<> rx(enabled_config(10, 3), ec);
    auto decode = [&](bytes b) {
        packet_buffer p(b, 0);
        p.resize(b.size());
        return rx.decode(p, t0);
    };
    // Index 13 in a 10:3 group; a truncated header; a size field that lies.
    CHECK(decode({std::byte{0xf2}, std::byte{10}, std::byte{3}, std::byte{13}, std::byte{0},
                  std::byte{0}, std::byte{0}, std::byte{0}, std::byte{0}, std::byte{0}}) ==
          error::malformed_packet);
    CHECK(decode({std::byte{0xf1}, std::byte{10}}) == error::malformed_packet);
    CHECK(decode({std::byte{0xf1}, std::byte{10}, std::byte{3}, std::byte{0}, std::byte{0},
                  std::byte{0}, std::byte{0}, std::byte{0}, std::byte{0}, std::byte{5},
                  std::byte{1}}) == error::malformed_packet);
    CHECK(rx.stats().malformed == 3);
    // Two parity packets of one group with different lengths.
    bytes a = {std::byte{0xf2}, std::byte{2}, std::byte{2}, std::byte{2},
               std::byte{0},    std::byte{0}, std::byte{0}, std::byte{9},
               std::byte{0},    std::byte{3}, std::byte{7}};
    bytes b = a;
    b[3] = std::byte{3};
    b.push_back(std::byte{1});
    CHECK(!decode(a));
    CHECK(!decode(b));
    CHECK(rx.stats().inconsistent == 1);
    // Same group number, another ratio.
    bytes c = a;
    c[1] = std::byte{3};
    c[3] = std::byte{3};
    CHECK(!decode(c));
    CHECK(rx.stats().inconsistent == 2);
}

TEST_CASE("reed_solomon_fec: parity needs room and is dropped if not polled", "[fec]") {
    std::error_code ec;
    reed_solomon_fec<> tx(enabled_config(2, 2), ec);
    std::mt19937 rng(12);
    std::array<std::byte, 2048> storage{};
    auto enc = [&](std::size_t size) {
        packet_buffer p(storage, headroom);
        REQUIRE(p.append(make_payload(0, size, rng)));
        REQUIRE(!tx.encode(p, t0));
    };
    enc(100);
    enc(300);
    // Room: max_overhead in front, the longest payload (300) behind.
    std::array<std::byte, 2048> ps{};
    packet_buffer small{std::span<std::byte>(ps).first(10 + 299), 10};
    CHECK(!tx.poll_parity(small));
    CHECK(tx.stats().parity_dropped == 1);
    packet_buffer fits{std::span<std::byte>(ps).first(10 + 300), 10};
    REQUIRE(tx.poll_parity(fits));
    CHECK(fits.data().data() == ps.data());
    CHECK(fits.size() == 8 + 302);
    // Next group completes before anyone polled: nothing left to drop (both used).
    enc(50);
    enc(60);
    enc(70);
    enc(80); // third group completes; the second group's 2 parity were never polled
    CHECK(tx.stats().parity_dropped == 1 + 2);
    // Headroom too small for the header: refused, group unchanged.
    packet_buffer tight(storage, 4);
    REQUIRE(tight.append(make_payload(1, 20, rng)));
    CHECK(tx.encode(tight, t0) == error::buffer_too_small);
    CHECK(tight.size() == 20);
    CHECK(tx.stats().data_sent == 6);
}

TEST_CASE("reed_solomon_fec: payloads over max_payload go out unprotected", "[fec]") {
    fec_config c = enabled_config(4, 2);
    c.max_payload = 100;
    std::error_code ec;
    reed_solomon_fec<> tx(c, ec), rx(c, ec);
    REQUIRE(!ec);
    std::mt19937 rng(13);
    auto big = make_payload(0, 101, rng);
    auto wire = send(tx, big);
    REQUIRE(wire.size() == 1);
    CHECK(wire[0] == big);
    CHECK(tx.stats().unprotected_sent == 1);
    auto got = receive(rx, wire[0]);
    REQUIRE(got.size() == 1);
    CHECK(got[0] == big);
}

TEST_CASE("reed_solomon_fec: switching off mid-group abandons it", "[fec]") {
    std::error_code ec;
    reed_solomon_fec<> tx(enabled_config(4, 2), ec), rx(enabled_config(4, 2), ec);
    std::mt19937 rng(14);
    std::vector<bytes> payloads;
    std::vector<bytes> wire;
    for (std::uint32_t i = 0; i < 2; ++i) {
        payloads.push_back(make_payload(i, 40, rng));
        for (auto& w : send(tx, payloads.back()))
            wire.push_back(w);
    }
    tx.set_enabled(false);
    CHECK(!tx.group_open());
    payloads.push_back(make_payload(2, 40, rng));
    auto plain = send(tx, payloads.back());
    REQUIRE(plain.size() == 1);
    CHECK(plain[0] == payloads.back());
    tx.set_enabled(true);
    for (std::uint32_t i = 3; i < 7; ++i) {
        payloads.push_back(make_payload(i, 40, rng));
        for (auto& w : send(tx, payloads.back()))
            wire.push_back(w);
    }
    REQUIRE(wire.size() == 2 + 4 + 2);
    std::error_code dec;
    CHECK(fec::decode(wire[2], dec)->header.group == 1); // a new group after the gap
    std::set<std::uint32_t> seen;
    for (std::size_t i = 0; i < wire.size(); ++i)
        if (i != 3) // one loss in the new group
            check_delivered(receive(rx, wire[i]), payloads, seen);
    CHECK(seen.size() == 6);
    CHECK(rx.pending_groups() == 1); // the abandoned group waits, bounded, until evicted
}

TEST_CASE("reed_solomon_fec: group numbers wrap around", "[fec]") {
    // Groups built by hand with the codec and the framing functions, numbered
    // across 2^32, decoded by the policy.
    std::error_code ec;
    reed_solomon_fec<> rx(enabled_config(3, 2), ec);
    peerlink::reed_solomon rs;
    REQUIRE(!rs.init(3, 2));
    std::mt19937 rng(15);
    std::set<std::uint32_t> seen;
    std::vector<bytes> payloads;
    std::uint32_t seq = 0;
    for (std::uint32_t group : {0xfffffffdu, 0xfffffffeu, 0xffffffffu, 0u, 1u}) {
        std::vector<bytes> shards, wire;
        std::size_t longest = 0;
        for (std::uint8_t i = 0; i < 3; ++i) {
            payloads.push_back(make_payload(seq++, 10 + rng() % 50, rng));
            std::array<std::byte, 256> st{};
            packet_buffer p(st, 16);
            REQUIRE(p.append(payloads.back()));
            REQUIRE(!fec::prepend_data(p, {fec::shard_type::data, 3, 2, i, group}));
            wire.push_back(to_bytes(p.data()));
            shards.push_back(bytes(wire.back().begin() + 8, wire.back().end()));
            longest = std::max(longest, shards.back().size());
        }
        std::vector<const std::byte*> d;
        for (auto& s : shards) {
            s.resize(longest);
            d.push_back(s.data());
        }
        std::vector<bytes> par(2, bytes(longest));
        std::vector<std::byte*> pp = {par[0].data(), par[1].data()};
        REQUIRE(!rs.encode(d, pp, longest));
        for (std::uint8_t j = 0; j < 2; ++j) {
            bytes w(8 + longest);
            fec::write_header(
                w, {fec::shard_type::parity, 3, 2, static_cast<std::uint8_t>(3 + j), group});
            std::copy(par[j].begin(), par[j].end(), w.begin() + 8);
            wire.push_back(w);
        }
        // Lose two data packets of every group.
        for (std::size_t i : {std::size_t{2}, std::size_t{3}, std::size_t{4}})
            check_delivered(receive(rx, wire[i]), payloads, seen);
    }
    CHECK(seen.size() == 15);
    CHECK(rx.stats().recovered == 5 * 2);
    CHECK(rx.stats().late == 0);
}
