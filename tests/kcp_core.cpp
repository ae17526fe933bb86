#include <peerlink/proto/kcp.hpp>

#include "catch.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <functional>
#include <optional>
#include <queue>
#include <string>
#include <vector>

// Everything here runs on virtual time: two kcp_core objects joined by a
// deterministic, seeded lossy link written below (delay, jitter, loss,
// reordering, duplication). No sockets, no clock.

namespace {

using namespace std::chrono_literals;
using peerlink::kcp_command;
using peerlink::kcp_core;
using peerlink::kcp_error;
using peerlink::kcp_segment_header;
using peerlink::kcp_settings;
using peerlink::time_point;

const time_point t0 = time_point{} + 1h;

struct rng {
    std::uint64_t s;
    std::uint64_t next() { // splitmix64
        std::uint64_t z = (s += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    }
    double uniform() { return double(next() >> 11) / double(1ull << 53); }
    std::uint64_t below(std::uint64_t n) { return n ? next() % n : 0; }
};

void fill(std::span<std::byte> out, std::uint64_t seed) {
    rng r{seed};
    for (std::size_t i = 0; i < out.size(); i += 8) {
        std::uint64_t v = r.next();
        std::memcpy(out.data() + i, &v, std::min<std::size_t>(8, out.size() - i));
    }
}

std::uint64_t fnv1a(std::span<const std::byte> bytes) {
    std::uint64_t h = 0xcbf29ce484222325ull;
    for (auto b : bytes)
        h = (h ^ std::to_integer<std::uint64_t>(b)) * 0x100000001b3ull;
    return h;
}

std::vector<peerlink::kcp_segment> segments_of(std::span<const std::byte> datagram) {
    std::vector<peerlink::kcp_segment> out;
    std::error_code ec;
    while (!datagram.empty()) {
        auto s = peerlink::kcp_decode_segment(datagram, ec);
        REQUIRE(s);
        out.push_back(*s);
        datagram = datagram.subspan(s->wire_size());
    }
    return out;
}

struct link_params {
    peerlink::duration delay = 20ms;
    peerlink::duration jitter = 0ms; // uniform extra delay: reorders packets
    double loss = 0;
    double duplicate = 0;
};

// One direction of a simulated network path.
class sim_link {
public:
    sim_link(link_params p, std::uint64_t seed) : p_(p), rng_{seed} {}

    bool blocked = false; // drop everything
    std::function<void(std::span<const std::byte>, time_point)> observer;
    std::uint64_t sent = 0;
    std::uint64_t dropped = 0;

    void send(std::span<const std::byte> d, time_point now) {
        ++sent;
        if (observer)
            observer(d, now);
        if (blocked || rng_.uniform() < p_.loss) {
            ++dropped;
            return;
        }
        enqueue(d, now);
        if (rng_.uniform() < p_.duplicate)
            enqueue(d, now);
    }

    std::optional<time_point> next() const {
        if (q_.empty())
            return std::nullopt;
        return q_.top().at;
    }

    template <class F>
    void deliver(time_point now, F&& f) {
        while (!q_.empty() && q_.top().at <= now) {
            auto bytes = std::move(const_cast<packet&>(q_.top()).bytes);
            q_.pop();
            f(std::span<const std::byte>(bytes));
        }
    }

private:
    struct packet {
        time_point at;
        std::uint64_t order;
        std::vector<std::byte> bytes;
        bool operator>(const packet& o) const { return at != o.at ? at > o.at : order > o.order; }
    };

    void enqueue(std::span<const std::byte> d, time_point now) {
        auto extra = p_.jitter.count() ? peerlink::duration(rng_.below(p_.jitter.count())) : 0ms;
        q_.push(packet{now + p_.delay + extra, order_++, {d.begin(), d.end()}});
    }

    link_params p_;
    rng rng_;
    std::uint64_t order_ = 0;
    std::priority_queue<packet, std::vector<packet>, std::greater<>> q_;
};

// Two cores and two links on one virtual clock, driven like a real driver would:
// a core's handle_timeout runs only when its poll_timeout says so.
struct kcp_pair {
    kcp_pair(const kcp_settings& sa, const kcp_settings& sb, link_params p, std::uint64_t seed)
        : a(sa, t0), b(sb, t0), ab(p, seed * 2 + 1), ba(p, seed * 2 + 2) {}

    time_point now = t0;
    kcp_core a;
    kcp_core b;
    sim_link ab;
    sim_link ba;
    std::array<std::byte, 65536> buf{};
    std::uint64_t a_timeouts = 0;
    std::uint64_t b_timeouts = 0;
    std::uint64_t input_errors = 0;
    std::uint64_t steps = 0;

    void drain() {
        while (std::size_t n = a.poll_transmit(buf)) {
            REQUIRE(n <= a.settings().mtu);
            ab.send(std::span(buf.data(), n), now);
        }
        while (std::size_t n = b.poll_transmit(buf)) {
            REQUIRE(n <= b.settings().mtu);
            ba.send(std::span(buf.data(), n), now);
        }
    }

    std::optional<time_point> next_event() const {
        std::optional<time_point> t;
        for (auto c : {a.poll_timeout(), b.poll_timeout(), ab.next(), ba.next()})
            if (c && (!t || *c < *t))
                t = c;
        return t;
    }

    // Runs `app` once, then events until `done()` or nothing is scheduled or the
    // limits are reached. @returns whether done() became true.
    template <class App, class Done>
    bool run(App&& app, Done&& done, peerlink::duration limit, std::uint64_t max_steps) {
        app();
        drain();
        const time_point end = now + limit;
        while (!done()) {
            auto t = next_event();
            if (!t || *t > end || ++steps > max_steps)
                return false;
            now = std::max(now, *t);
            ab.deliver(now,
                       [&](std::span<const std::byte> d) { input_errors += !!b.input(d, now); });
            ba.deliver(now,
                       [&](std::span<const std::byte> d) { input_errors += !!a.input(d, now); });
            if (auto ta = a.poll_timeout(); ta && *ta <= now) {
                a.handle_timeout(now);
                ++a_timeouts;
            }
            if (auto tb = b.poll_timeout(); tb && *tb <= now) {
                b.handle_timeout(now);
                ++b_timeouts;
            }
            app();
            drain();
        }
        return true;
    }
};

kcp_settings with(kcp_settings s, std::uint32_t conv, bool stream) {
    s.conv = conv;
    s.stream = stream;
    return s;
}

struct transfer_result {
    bool complete = false;
    bool intact = false;
    std::size_t bytes = 0;
    std::size_t messages = 0;
    peerlink::duration elapsed{};
    peerlink::kcp_stats sender;
    std::uint64_t input_errors = 0;
    bool capacity_bounded = false;
    std::uint64_t allocations = 0; // both cores
};

bool within(const peerlink::kcp_capacity& c, const peerlink::kcp_capacity& max) {
    return c.send_slots <= max.send_slots && c.receive_slots <= max.receive_slots &&
           c.ack_slots <= max.ack_slots && c.transmit_slots <= max.transmit_slots &&
           c.bytes <= max.bytes;
}

// Buffers grow 4x at a time: a core allocates at most this many times in its life
// with windows up to 512 segments (4 buffers, two allocations per step, 5 steps).
constexpr std::uint64_t max_allocations = 40;

struct phase_result {
    bool complete = false;
    bool intact = false;
    std::size_t bytes = 0;
};

// Stream mode: `total` bytes from a to b, written as fast as send_capacity allows,
// in writes of varying size, read in reads of varying size.
phase_result stream_phase(kcp_pair& pr, std::size_t total, std::uint64_t seed) {
    std::vector<std::byte> data(total);
    fill(data, seed);
    std::vector<std::byte> got;
    got.reserve(total);
    std::size_t sent = 0;
    rng sizes{seed ^ 0x55};
    std::vector<std::byte> rbuf(70000);
    auto app = [&] {
        while (sent < total) {
            const std::size_t cap = pr.a.send_capacity();
            if (cap == 0)
                break;
            const std::size_t n = std::min({cap, total - sent, 1 + sizes.below(40000)});
            REQUIRE(!pr.a.send(std::span(data).subspan(sent, n)));
            sent += n;
        }
        std::error_code ec;
        while (pr.b.readable()) {
            const std::size_t want = 1 + sizes.below(rbuf.size());
            const std::size_t n = pr.b.receive(std::span(rbuf).first(want), ec);
            REQUIRE(!ec);
            got.insert(got.end(), rbuf.begin(), rbuf.begin() + std::ptrdiff_t(n));
        }
    };
    phase_result r;
    r.complete = pr.run(
        app, [&] { return got.size() >= total; }, 2h, 5'000'000);
    r.bytes = got.size();
    r.intact = got.size() == total && fnv1a(got) == fnv1a(data) &&
               std::equal(got.begin(), got.end(), data.begin());
    return r;
}

transfer_result stream_transfer(kcp_settings s, link_params p, std::size_t total,
                                std::uint64_t seed) {
    kcp_pair pr(with(s, 7, true), with(s, 7, true), p, seed);
    transfer_result r;
    const auto ph = stream_phase(pr, total, seed);
    r.complete = ph.complete;
    r.intact = ph.intact;
    r.bytes = ph.bytes;
    r.elapsed = pr.now - t0;
    r.sender = pr.a.stats();
    r.input_errors = pr.input_errors;
    r.capacity_bounded = within(pr.a.capacity(), pr.a.max_capacity()) &&
                         within(pr.b.capacity(), pr.b.max_capacity());
    r.allocations = pr.a.stats().buffer_allocations + pr.b.stats().buffer_allocations;
    return r;
}

// Message mode: messages of random sizes (0 to 8 segments) from a to b until
// `total` bytes; b checks every message's size and content, in order.
transfer_result message_transfer(kcp_settings s, link_params p, std::size_t total,
                                 std::uint64_t seed) {
    kcp_pair pr(with(s, 9, false), with(s, 9, false), p, seed);
    const std::size_t max_msg = std::min(pr.a.max_message_size(), 8 * pr.a.mss());
    auto size_of = [&](std::size_t i) {
        rng r{seed * 1000003 + i};
        return std::size_t(r.below(max_msg + 1));
    };
    std::vector<std::byte> msg(max_msg);
    std::vector<std::byte> expect(max_msg);
    std::vector<std::byte> rbuf(max_msg);
    std::size_t sent_msgs = 0;
    std::size_t sent_bytes = 0;
    std::size_t got_msgs = 0;
    std::size_t got_bytes = 0;
    std::size_t bad = 0;
    auto app = [&] {
        while (sent_bytes < total) {
            const std::size_t n = size_of(sent_msgs);
            if (n > pr.a.send_capacity() || (n == 0 && pr.a.send_capacity() == 0))
                break;
            fill(std::span(msg).first(n), seed + sent_msgs);
            REQUIRE(!pr.a.send(std::span(msg).first(n)));
            ++sent_msgs;
            sent_bytes += n;
        }
        std::error_code ec;
        while (pr.b.readable()) {
            const std::size_t want = size_of(got_msgs);
            if (pr.b.peek_size() != want)
                ++bad;
            const std::size_t n = pr.b.receive(rbuf, ec);
            REQUIRE(!ec);
            fill(std::span(expect).first(want), seed + got_msgs);
            if (n != want ||
                !std::equal(rbuf.begin(), rbuf.begin() + std::ptrdiff_t(n), expect.begin()))
                ++bad;
            ++got_msgs;
            got_bytes += n;
        }
    };
    transfer_result r;
    r.complete = pr.run(
        app, [&] { return sent_bytes >= total && got_msgs == sent_msgs; }, 2h, 5'000'000);
    r.bytes = got_bytes;
    r.messages = got_msgs;
    r.intact = bad == 0 && got_msgs == sent_msgs && got_bytes == sent_bytes;
    r.elapsed = pr.now - t0;
    r.sender = pr.a.stats();
    r.input_errors = pr.input_errors;
    return r;
}

kcp_segment_header push_header(std::uint32_t conv, std::uint32_t sn, std::uint32_t ts) {
    kcp_segment_header h;
    h.conv = conv;
    h.cmd = kcp_command::push;
    h.wnd = 128;
    h.sn = sn;
    h.ts = ts;
    return h;
}

std::vector<std::byte> encode(const kcp_segment_header& h, std::span<const std::byte> payload) {
    std::vector<std::byte> out(peerlink::kcp_header_size + payload.size());
    REQUIRE(peerlink::kcp_encode_segment(out, h, payload) == out.size());
    return out;
}

std::vector<std::byte> ack_for(std::uint32_t conv, std::uint32_t sn, std::uint32_t ts) {
    kcp_segment_header h;
    h.conv = conv;
    h.cmd = kcp_command::ack;
    h.wnd = 128;
    h.sn = sn;
    h.ts = ts;
    h.una = sn + 1;
    return encode(h, {});
}

// Every datagram a core has queued, decoded.
std::vector<peerlink::kcp_segment> drain_segments(kcp_core& k,
                                                  std::vector<std::vector<std::byte>>& keep) {
    std::vector<peerlink::kcp_segment> out;
    std::array<std::byte, 65536> buf{};
    while (std::size_t n = k.poll_transmit(buf)) {
        keep.emplace_back(buf.begin(), buf.begin() + std::ptrdiff_t(n));
        for (auto& s : segments_of(keep.back()))
            out.push_back(s);
    }
    return out;
}

} // namespace

// --- codec -----------------------------------------------------------------------

TEST_CASE("kcp segment: PUSH encodes to the little-endian C KCP layout", "[kcp]") {
    kcp_segment_header h;
    h.conv = 0x01020304;
    h.cmd = kcp_command::push;
    h.frg = 2;
    h.wnd = 0x0506;
    h.ts = 0x0708090a;
    h.sn = 0x0b0c0d0e;
    h.una = 0x0f101112;
    const std::array<std::byte, 3> payload{std::byte{'a'}, std::byte{'b'}, std::byte{'c'}};
    const std::vector<int> expected{0x04, 0x03, 0x02, 0x01, 81,   0x02, 0x06, 0x05, 0x0a,
                                    0x09, 0x08, 0x07, 0x0e, 0x0d, 0x0c, 0x0b, 0x12, 0x11,
                                    0x10, 0x0f, 0x03, 0x00, 0x00, 0x00, 'a',  'b',  'c'};
    std::array<std::byte, 64> out{};
    REQUIRE(peerlink::kcp_encode_segment(out, h, payload) == expected.size());
    for (std::size_t i = 0; i < expected.size(); ++i) {
        INFO("byte " << i);
        CHECK(std::to_integer<int>(out[i]) == expected[i]);
    }

    std::error_code ec;
    auto s = peerlink::kcp_decode_segment(std::span(out).first(expected.size()), ec);
    REQUIRE(s);
    CHECK(!ec);
    h.len = 3;
    CHECK(s->header == h);
    CHECK(s->payload.size() == 3);
    CHECK(s->payload.data() == out.data() + 24);
    CHECK(s->wire_size() == 27);
    CHECK(peerlink::kcp_peek_conv(out) == 0x01020304u);
}

TEST_CASE("kcp segment: every command round-trips, bad input is rejected", "[kcp]") {
    for (auto cmd : {kcp_command::push, kcp_command::ack, kcp_command::wask, kcp_command::wins}) {
        kcp_segment_header h{0xdeadbeef, cmd, 255, 65535, 0xffffffff, 0x80000000, 1, 0};
        auto bytes = encode(h, {});
        std::error_code ec;
        auto s = peerlink::kcp_decode_segment(bytes, ec);
        REQUIRE(s);
        CHECK(s->header == h);
    }
    std::error_code ec;
    auto good = encode(push_header(1, 0, 0), std::vector<std::byte>(10));
    // Shorter than a header.
    CHECK(!peerlink::kcp_decode_segment(std::span(good).first(23), ec));
    CHECK(ec == kcp_error::malformed_segment);
    CHECK(ec == peerlink::condition::malformed_input);
    // Length past the end.
    CHECK(!peerlink::kcp_decode_segment(std::span(good).first(33), ec));
    CHECK(ec == kcp_error::malformed_segment);
    // Unknown command.
    auto bad = good;
    bad[4] = std::byte{85};
    CHECK(!peerlink::kcp_decode_segment(bad, ec));
    CHECK(ec == kcp_error::unknown_command);
    // Too small an output buffer writes nothing.
    std::array<std::byte, 30> small{};
    CHECK(peerlink::kcp_encode_segment(small, push_header(1, 0, 0), std::vector<std::byte>(10)) ==
          0);
    CHECK(!peerlink::kcp_peek_conv(std::span(good).first(10)));
}

TEST_CASE("kcp: sequence comparison wraps like _itimediff", "[kcp]") {
    CHECK(peerlink::kcp_diff(0, 0xffffffffu) == 1);
    CHECK(peerlink::kcp_diff(0xffffffffu, 0) == -1);
    CHECK(peerlink::kcp_diff(5, 3) == 2);
    CHECK(peerlink::kcp_diff(0x7fffffffu, 0) == 0x7fffffff);
}

TEST_CASE("kcp: error codes map to peerlink conditions", "[kcp]") {
    using peerlink::condition;
    CHECK(std::error_code(kcp_error::dead_link) == condition::peer_unreachable);
    CHECK(std::error_code(kcp_error::conv_mismatch) == condition::malformed_input);
    CHECK(std::error_code(kcp_error::segment_too_large) == condition::malformed_input);
    CHECK(std::error_code(kcp_error::send_window_full) == std::errc::operation_would_block);
    CHECK(std::error_code(kcp_error::would_block) == std::errc::operation_would_block);
    CHECK(std::error_code(kcp_error::too_many_fragments) != condition::malformed_input);
    CHECK(std::error_code(kcp_error::dead_link).message().find("dead") != std::string::npos);
}

TEST_CASE("kcp: presets are the documented nodelay parameters", "[kcp]") {
    using peerlink::kcp_fast;
    using peerlink::kcp_normal;
    using peerlink::kcp_turbo;
    CHECK((kcp_normal.nodelay == 0 && kcp_normal.interval_ms == 40 && kcp_normal.resend == 0 &&
           !kcp_normal.no_cwnd));
    CHECK((kcp_turbo.nodelay == 1 && kcp_turbo.interval_ms == 10 && kcp_turbo.resend == 2 &&
           kcp_turbo.no_cwnd));
    CHECK((kcp_fast.nodelay == 1 && kcp_fast.interval_ms == 20 && kcp_fast.resend == 2 &&
           !kcp_fast.no_cwnd));
    CHECK(!peerlink::kcp_validate(kcp_normal));
    CHECK(!peerlink::kcp_validate(kcp_fast));
    CHECK(!peerlink::kcp_validate(kcp_turbo));
    kcp_settings bad = kcp_normal;
    bad.mtu = 30;
    CHECK(peerlink::kcp_validate(bad) == peerlink::error::invalid_config);
    kcp_core k(bad, t0); // clamped, like ikcp_setmtu's lower bound
    CHECK(k.settings().mtu == 50);
    CHECK(k.mss() == 26);
    bad = kcp_normal;
    bad.interval_ms = 1; // allowed here, unlike ikcp.c
    CHECK(!peerlink::kcp_validate(bad));
    CHECK(kcp_core(bad, t0).settings().interval_ms == 1);
}

// --- transfers -------------------------------------------------------------------

TEST_CASE("kcp: 4 MiB stream arrives intact through loss, reordering and duplication", "[kcp]") {
    for (double loss : {0.0, 0.01, 0.05, 0.20, 0.30}) {
        INFO("loss " << loss);
        link_params p{20ms, 10ms, loss, 0.02};
        auto r = stream_transfer(peerlink::kcp_turbo, p, 4 << 20, 11);
        CHECK(r.complete);
        CHECK(r.intact);
        CHECK(r.input_errors == 0);
        CHECK(r.capacity_bounded);
        CHECK(r.allocations <= 2 * max_allocations);
        if (loss > 0)
            CHECK(r.sender.lost_segments > 0);
    }
}

TEST_CASE("kcp: 4 MiB of messages keep their boundaries through loss and reordering", "[kcp]") {
    for (double loss : {0.0, 0.01, 0.05, 0.20, 0.30}) {
        INFO("loss " << loss);
        link_params p{20ms, 10ms, loss, 0.02};
        auto r = message_transfer(peerlink::kcp_turbo, p, 4 << 20, 21);
        CHECK(r.complete);
        CHECK(r.intact);
        CHECK(r.messages > 500);
        CHECK(r.input_errors == 0);
    }
}

TEST_CASE("kcp: normal and fast modes (congestion window on) deliver intact", "[kcp]") {
    SECTION("normal, 1% loss, stream") {
        auto r = stream_transfer(peerlink::kcp_normal, {20ms, 5ms, 0.01, 0.01}, 1 << 20, 31);
        CHECK(r.complete);
        CHECK(r.intact);
    }
    SECTION("normal, 5% loss, messages") {
        auto r = message_transfer(peerlink::kcp_normal, {20ms, 5ms, 0.05, 0.01}, 1 << 20, 32);
        CHECK(r.complete);
        CHECK(r.intact);
    }
    SECTION("fast, 20% loss, stream") {
        auto r = stream_transfer(peerlink::kcp_fast, {20ms, 10ms, 0.20, 0.02}, 2 << 20, 33);
        CHECK(r.complete);
        CHECK(r.intact);
        CHECK(r.sender.fast_retransmits > 0);
    }
    SECTION("a clean path needs no retransmission") {
        for (const auto& mode : {peerlink::kcp_normal, peerlink::kcp_fast, peerlink::kcp_turbo}) {
            auto r = stream_transfer(mode, {20ms, 0ms, 0, 0}, 1 << 20, 35);
            CHECK(r.intact);
            CHECK(r.sender.retransmits == 0);
            CHECK(r.sender.segments_sent == (std::size_t(1 << 20) + 1375) / 1376);
        }
    }
    SECTION("fast is faster than normal at 5% loss") {
        auto n = stream_transfer(peerlink::kcp_normal, {20ms, 5ms, 0.05, 0}, 1 << 20, 34);
        auto f = stream_transfer(peerlink::kcp_fast, {20ms, 5ms, 0.05, 0}, 1 << 20, 34);
        auto t = stream_transfer(peerlink::kcp_turbo, {20ms, 5ms, 0.05, 0}, 1 << 20, 34);
        REQUIRE((n.intact && f.intact && t.intact));
        CHECK(f.elapsed < n.elapsed);
        CHECK(t.elapsed < f.elapsed);
    }
}

// --- segments on the wire --------------------------------------------------------

TEST_CASE("kcp: a message is cut into fragments counting down to 0", "[kcp]") {
    kcp_settings s;
    s.conv = 5;
    s.mtu = 200; // mss 176
    s.rcv_wnd = 16;
    s.no_cwnd = true;
    kcp_core a(s, t0);
    kcp_core b(s, t0);
    REQUIRE(a.mss() == 176);
    REQUIRE(a.max_message_size() == 15 * 176); // rcv_wnd - 1 fragments
    std::vector<std::byte> big(15 * 176 + 1);
    CHECK(a.send(big) == kcp_error::too_many_fragments);
    CHECK(a.waiting_segments() == 0);
    kcp_core c(s, t0);
    CHECK(!c.send(std::span(big).first(15 * 176))); // the largest message fits
    CHECK(c.waiting_segments() == 15);

    std::vector<std::byte> msg(400);
    fill(msg, 1);
    REQUIRE(!a.send(msg));
    CHECK(a.waiting_segments() == 3);
    a.flush(t0);
    std::vector<std::vector<std::byte>> keep;
    auto segs = drain_segments(a, keep);
    REQUIRE(segs.size() == 3);
    const std::uint8_t frgs[] = {2, 1, 0};
    const std::uint32_t lens[] = {176, 176, 48};
    for (std::size_t i = 0; i < 3; ++i) {
        CHECK(segs[i].header.cmd == kcp_command::push);
        CHECK(segs[i].header.frg == frgs[i]);
        CHECK(segs[i].header.sn == i);
        CHECK(segs[i].header.len == lens[i]);
        CHECK(segs[i].header.wnd == 16);
    }

    // The first two fragments alone are no message.
    auto frag = [&](std::size_t i) {
        return encode(segs[i].header, segs[i].payload);
    };
    REQUIRE(!b.input(frag(0), t0 + 10ms));
    REQUIRE(!b.input(frag(1), t0 + 10ms));
    CHECK(!b.readable());
    CHECK(b.peek_size() == 0);
    std::error_code ec;
    std::array<std::byte, 1000> out{};
    CHECK(b.receive(out, ec) == 0);
    CHECK(ec == kcp_error::would_block);
    REQUIRE(!b.input(frag(2), t0 + 10ms));
    CHECK(b.readable());
    CHECK(b.peek_size() == 400);
    CHECK(b.receive(std::span(out).first(399), ec) == 0);
    CHECK(ec == peerlink::error::buffer_too_small);
    CHECK(b.receive(out, ec) == 400);
    CHECK(!ec);
    CHECK(std::equal(msg.begin(), msg.end(), out.begin()));
    CHECK(!b.readable());
}

TEST_CASE("kcp: stream mode merges small writes into one segment", "[kcp]") {
    kcp_settings s;
    s.conv = 5;
    s.stream = true;
    kcp_core a(s, t0);
    std::vector<std::byte> part(10);
    for (int i = 0; i < 3; ++i) {
        fill(part, std::uint64_t(i));
        REQUIRE(!a.send(part));
    }
    CHECK(a.waiting_segments() == 1);
    CHECK(a.send_capacity() == a.mss() * 126 + (a.mss() - 30));
    a.flush(t0);
    std::vector<std::vector<std::byte>> keep;
    auto segs = drain_segments(a, keep);
    REQUIRE(segs.size() == 1);
    CHECK(segs[0].header.len == 30);
    CHECK(segs[0].header.frg == 0);
}

TEST_CASE("kcp: ACKs are packed into datagrams up to the MTU", "[kcp]") {
    kcp_settings s;
    s.conv = 3;
    s.mtu = 100; // four 24-byte headers per datagram
    kcp_core b(s, t0);
    for (std::uint32_t sn = 0; sn < 10; ++sn)
        REQUIRE(!b.input(encode(push_header(3, sn, 100 + sn), {}), t0));
    b.flush(t0 + 1ms);
    std::array<std::byte, 200> buf{};
    std::vector<std::size_t> sizes;
    std::vector<std::uint32_t> acked;
    while (std::size_t n = b.poll_transmit(buf)) {
        sizes.push_back(n);
        for (auto& seg : segments_of(std::span(buf).first(n))) {
            CHECK(seg.header.cmd == kcp_command::ack);
            CHECK(seg.header.ts == 100 + seg.header.sn); // the PUSH's ts echoed
            CHECK(seg.header.una == 10);
            acked.push_back(seg.header.sn);
        }
    }
    CHECK(sizes == std::vector<std::size_t>{96, 96, 48});
    CHECK(acked.size() == 10);
    CHECK(b.stats().acks_sent == 10);
}

TEST_CASE("kcp: ack_nodelay sends ACKs at the end of input", "[kcp]") {
    kcp_settings s;
    s.conv = 3;
    std::array<std::byte, 2000> buf{};
    {
        kcp_core b(s, t0);
        REQUIRE(!b.input(encode(push_header(3, 0, 0), {}), t0));
        CHECK(b.poll_transmit(buf) == 0); // waits for the flush
        CHECK(b.poll_timeout() == t0);
    }
    s.ack_nodelay = true;
    kcp_core b(s, t0);
    REQUIRE(!b.input(encode(push_header(3, 0, 0), {}), t0));
    CHECK(b.poll_transmit(buf) == 24);
    CHECK(!b.poll_timeout()); // nothing else to do
}

// --- bad input -------------------------------------------------------------------

TEST_CASE("kcp: foreign conv and malformed segments are rejected, state unchanged", "[kcp]") {
    kcp_settings s;
    s.conv = 1;
    s.mtu = 200;
    kcp_core b(s, t0);
    const auto before = b.stats();
    std::array<std::byte, 1000> buf{};

    CHECK(b.input(encode(push_header(2, 0, 0), std::vector<std::byte>(5)), t0) ==
          kcp_error::conv_mismatch);
    CHECK(b.input(std::vector<std::byte>(10), t0) == kcp_error::malformed_segment);
    auto truncated = encode(push_header(1, 0, 0), std::vector<std::byte>(20));
    truncated.resize(30);
    CHECK(b.input(truncated, t0) == kcp_error::malformed_segment);
    auto unknown = encode(push_header(1, 0, 0), {});
    unknown[4] = std::byte{80};
    CHECK(b.input(unknown, t0) == kcp_error::unknown_command);
    CHECK(b.input(encode(push_header(1, 0, 0), std::vector<std::byte>(177)), t0) ==
          kcp_error::segment_too_large);
    CHECK(b.stats().segments_received == before.segments_received);
    CHECK(!b.readable());
    CHECK(!b.poll_timeout()); // no ACK owed
    b.flush(t0);
    CHECK(b.poll_transmit(buf) == 0);

    // A good segment followed by a foreign one: the good one counts.
    auto dgram = encode(push_header(1, 0, 0), std::vector<std::byte>(5));
    auto foreign = encode(push_header(2, 1, 0), std::vector<std::byte>(5));
    dgram.insert(dgram.end(), foreign.begin(), foreign.end());
    CHECK(b.input(dgram, t0) == kcp_error::conv_mismatch);
    CHECK(b.stats().segments_received == 1);
    CHECK(b.peek_size() == 5);
    b.flush(t0);
    CHECK(b.poll_transmit(buf) == 24); // one ACK, for sn 0 only
}

// --- windows, backpressure, probing ---------------------------------------------

TEST_CASE("kcp: send window full is backpressure that ACKs release", "[kcp]") {
    kcp_settings s = peerlink::kcp_turbo;
    s.conv = 4;
    s.stream = true;
    s.mtu = 200;
    s.snd_wnd = 8;
    s.send_queue = 8;
    kcp_pair pr(s, s, {10ms, 0ms, 0, 0}, 1);
    pr.ab.blocked = true;
    const std::size_t mss = pr.a.mss();
    std::vector<std::byte> data(64 * 1024);
    fill(data, 3);
    std::size_t sent = 0;

    CHECK(pr.a.send_capacity() == 8 * mss);
    REQUIRE(!pr.a.send(std::span(data).first(8 * mss)));
    sent += 8 * mss;
    CHECK(pr.a.send_capacity() == 0);
    CHECK(pr.a.send(std::span(data).subspan(sent, 1)) == kcp_error::send_window_full);
    pr.a.handle_timeout(pr.now); // 8 segments go in flight, the queue empties
    CHECK(pr.a.stats().in_flight == 8);
    CHECK(pr.a.send_capacity() == 8 * mss);
    REQUIRE(!pr.a.send(std::span(data).subspan(sent, 8 * mss)));
    sent += 8 * mss;
    pr.drain();
    // Nothing is acknowledged: the capacity stays 0 for as long as the peer is silent.
    pr.run([] {}, [] { return false; }, 2s, 100000);
    CHECK(pr.a.send_capacity() == 0);
    CHECK(pr.a.waiting_segments() == 16);
    CHECK(pr.a.send(std::span(data).subspan(sent, 1)) == kcp_error::send_window_full);

    // The path opens: ACKs drain the window and writes resume until all is there.
    pr.ab.blocked = false;
    std::vector<std::byte> got;
    std::array<std::byte, 4096> rbuf{};
    std::size_t max_capacity_seen = 0;
    bool done = pr.run(
        [&] {
            while (sent < data.size() && pr.a.send_capacity() > 0) {
                max_capacity_seen = std::max(max_capacity_seen, pr.a.send_capacity());
                std::size_t n = std::min(pr.a.send_capacity(), data.size() - sent);
                REQUIRE(!pr.a.send(std::span(data).subspan(sent, n)));
                sent += n;
            }
            std::error_code ec;
            while (pr.b.readable()) {
                std::size_t n = pr.b.receive(rbuf, ec);
                got.insert(got.end(), rbuf.begin(), rbuf.begin() + std::ptrdiff_t(n));
            }
        },
        [&] { return got.size() == data.size() && pr.a.waiting_segments() == 0; }, 60s, 1000000);
    CHECK(done);
    CHECK(got == data);
    CHECK(max_capacity_seen == 8 * mss); // the queue bound held throughout
}

TEST_CASE("kcp: a receiver that does not read closes the window; probes reopen it", "[kcp]") {
    kcp_settings s = peerlink::kcp_fast;
    s.conv = 6;
    s.stream = true;
    s.snd_wnd = 16;
    s.rcv_wnd = 16;
    kcp_pair pr(s, s, {10ms, 0ms, 0, 0}, 2);
    std::vector<time_point> wask_at;
    std::vector<time_point> wins_at;
    pr.ab.observer = [&](std::span<const std::byte> d, time_point now) {
        for (auto& seg : segments_of(d))
            if (seg.header.cmd == kcp_command::wask)
                wask_at.push_back(now);
    };
    pr.ba.observer = [&](std::span<const std::byte> d, time_point now) {
        for (auto& seg : segments_of(d))
            if (seg.header.cmd == kcp_command::wins)
                wins_at.push_back(now);
    };
    std::vector<std::byte> data(200 * 1024);
    fill(data, 9);
    std::size_t sent = 0;
    auto writer = [&] {
        while (sent < data.size() && pr.a.send_capacity() > 0) {
            std::size_t n = std::min(pr.a.send_capacity(), data.size() - sent);
            REQUIRE(!pr.a.send(std::span(data).subspan(sent, n)));
            sent += n;
        }
    };
    // b does not read: its queue fills and it advertises a zero window.
    REQUIRE(pr.run(
        writer, [&] { return pr.a.stats().remote_window == 0; }, 10s, 100000));
    const time_point closed = pr.now;
    CHECK(pr.b.peek_size() == 16 * pr.b.mss());
    CHECK(sent < data.size());

    // 20 s of stall: a probes after 7 s, then 10.5 s later; b answers each probe.
    const auto timeouts_before = pr.a_timeouts;
    pr.run(
        writer, [] { return false; }, 20s, 1000000);
    REQUIRE(wask_at.size() == 2);
    CHECK(wask_at[0] - closed >= 7000ms);
    CHECK(wask_at[0] - closed <= 7000ms + 2 * 20ms);
    CHECK(wask_at[1] - wask_at[0] == 10500ms);
    CHECK(wins_at.size() == 2);
    CHECK(pr.a.stats().window_probes == 2);
    CHECK(pr.a.stats().remote_window == 0);
    // A stalled sender wakes only to probe, not every interval.
    CHECK(pr.a_timeouts - timeouts_before <= 4);

    // b reads: its window reopens, it says so (WINS) and the transfer completes.
    std::vector<std::byte> got;
    std::array<std::byte, 4096> rbuf{};
    const auto wins_before = wins_at.size();
    bool done = pr.run(
        [&] {
            writer();
            std::error_code ec;
            while (pr.b.readable()) {
                std::size_t n = pr.b.receive(rbuf, ec);
                got.insert(got.end(), rbuf.begin(), rbuf.begin() + std::ptrdiff_t(n));
            }
        },
        [&] { return got.size() == data.size(); }, 60s, 1000000);
    CHECK(done);
    CHECK(wins_at.size() > wins_before);
    CHECK(got == data);
}

// --- timers and failure ----------------------------------------------------------

TEST_CASE("kcp: RTO estimation matches ikcp_update_ack by hand", "[kcp]") {
    std::array<std::byte, 2000> buf{};
    std::array<std::byte, 10> payload{};
    SECTION("normal: srtt, rttval, rto = srtt + max(interval, 4 rttval)") {
        kcp_settings s;
        s.conv = 8;        // minimum RTO 100
        s.interval_ms = 1; // a flush grid of 1 ms shows the exact retransmission time
        s.no_cwnd = true;
        kcp_core a(s, t0);
        struct step {
            int sent_ms, acked_ms;
            std::uint32_t srtt, rttvar, rto;
        };
        // rtt 50: first sample, 50 + max(1, 4 * 25).
        // rtt 80: rttval (3*25+30)/4, srtt (7*50+80)/8.
        // rtt 30: rttval (3*26+23)/4, srtt (7*53+30)/8.
        const step steps[] = {
            {0, 50, 50, 25, 150}, {100, 180, 53, 26, 157}, {200, 230, 50, 25, 150}};
        std::uint32_t sn = 0;
        for (const auto& st : steps) {
            REQUIRE(!a.send(payload));
            a.flush(t0 + std::chrono::milliseconds(st.sent_ms));
            while (a.poll_transmit(buf)) {
            }
            REQUIRE(!a.input(ack_for(8, sn, std::uint32_t(st.sent_ms)),
                             t0 + std::chrono::milliseconds(st.acked_ms)));
            ++sn;
            auto stt = a.stats();
            INFO("sample sent at " << st.sent_ms);
            CHECK(stt.srtt_ms == st.srtt);
            CHECK(stt.rttvar_ms == st.rttvar);
            CHECK(stt.rto_ms == st.rto);
            CHECK(stt.in_flight == 0);
        }
        // The next segment is due for retransmission after rto + rto/8 (nodelay off).
        REQUIRE(!a.send(payload));
        a.flush(t0 + 300ms);
        CHECK(a.poll_timeout() == t0 + 300ms + 150ms + 18ms);
    }
    SECTION("nodelay: the 30 ms floor and the 60 s ceiling") {
        kcp_settings s = peerlink::kcp_turbo; // interval 10, min RTO 30
        s.conv = 8;
        kcp_core a(s, t0);
        REQUIRE(!a.send(payload));
        a.flush(t0);
        REQUIRE(!a.input(ack_for(8, 0, 0), t0 + 10ms)); // 10 + max(10, 20) = 30
        CHECK(a.stats().rto_ms == 30);
        REQUIRE(!a.send(payload));
        a.flush(t0 + 20ms);
        REQUIRE(!a.input(ack_for(8, 1, 20), t0 + 24ms)); // srtt 9, rttval 5: 29 -> 30
        CHECK(a.stats().srtt_ms == 9);
        CHECK(a.stats().rto_ms == 30);

        kcp_core c(s, t0);
        REQUIRE(!c.send(payload));
        c.flush(t0);
        REQUIRE(!c.input(ack_for(8, 0, 0), t0 + 40s)); // 40000 + 80000 -> 60000
        CHECK(c.stats().rto_ms == 60000);
    }
}

TEST_CASE("kcp: a peer that never answers is a dead link after dead_link sends", "[kcp]") {
    kcp_settings s = peerlink::kcp_turbo;
    s.conv = 10;
    s.dead_link = 5;
    kcp_pair pr(s, s, {10ms, 0ms, 0, 0}, 3);
    pr.ab.blocked = true;
    std::vector<std::uint32_t> push_ts;
    pr.ab.observer = [&](std::span<const std::byte> d, time_point) {
        for (auto& seg : segments_of(d))
            if (seg.header.cmd == kcp_command::push)
                push_ts.push_back(seg.header.ts);
    };
    std::array<std::byte, 100> msg{};
    REQUIRE(!pr.a.send(msg));
    pr.run([] {}, [&] { return pr.a.is_dead(); }, 1h, 10000);
    REQUIRE(pr.a.is_dead());
    // RTO 200 (no sample yet), then +1/2 per timeout (nodelay): 200, 300, 450, 675.
    // The last one, due at 1625, waits for the 10 ms flush grid.
    CHECK(push_ts == std::vector<std::uint32_t>{0, 200, 500, 950, 1630});
    CHECK(pr.now - t0 == 1630ms);
    CHECK(pr.a.stats().retransmits == 4);
    CHECK(pr.a.stats().lost_segments == 4);
    CHECK(pr.a.error() == kcp_error::dead_link);
    CHECK(pr.a.error() == peerlink::condition::peer_unreachable);
    CHECK(pr.a.send(msg) == kcp_error::dead_link);
    CHECK(pr.a.send_capacity() == 0);
    std::error_code ec;
    std::array<std::byte, 100> out{};
    CHECK(pr.a.receive(out, ec) == 0);
    CHECK(ec == kcp_error::dead_link);
    CHECK(!pr.a.poll_timeout());
}

TEST_CASE("kcp: an idle core asks for no timer", "[kcp]") {
    kcp_settings s = peerlink::kcp_turbo;
    s.conv = 12;
    kcp_pair pr(s, s, {15ms, 0ms, 0, 0}, 4);
    CHECK(!pr.a.poll_timeout());
    CHECK(!pr.b.poll_timeout());
    std::array<std::byte, 3000> msg{};
    fill(msg, 5);
    REQUIRE(!pr.a.send(msg));
    CHECK(pr.a.poll_timeout() == t0); // due now
    bool got = false;
    std::array<std::byte, 3000> out{};
    pr.run(
        [&] {
            std::error_code ec;
            if (pr.b.readable())
                got = pr.b.receive(out, ec) == msg.size() && out == msg;
        },
        [&] {
            return got && pr.a.waiting_segments() == 0 && !pr.a.poll_timeout() &&
                   !pr.b.poll_timeout() && !pr.ab.next() && !pr.ba.next();
        },
        10s, 10000);
    CHECK(got);
    // Everything acknowledged: both cores are silent, and stay so.
    CHECK(!pr.a.poll_timeout());
    CHECK(!pr.b.poll_timeout());
    CHECK(pr.now - t0 < 100ms);
    CHECK(pr.steps < 20);
}

TEST_CASE("kcp: buffers grow with traffic up to the windows, then allocate no more", "[kcp]") {
    kcp_settings s = with(peerlink::kcp_fast, 7, true);
    kcp_core k(s, t0);
    CHECK(k.capacity() == peerlink::kcp_capacity{}); // a new core holds nothing
    CHECK(k.stats().buffer_allocations == 0);
    auto m = k.max_capacity();
    CHECK(m.send_slots == 256); // snd_wnd 128 + queue 128
    CHECK(m.receive_slots == 256);
    CHECK(m.ack_slots == 256);
    CHECK(m.transmit_slots >= s.snd_wnd);
    CHECK(m.bytes > 256 * 2 * k.mss());

    // A long lossy, reordering, duplicating transfer grows the buffers; a second one
    // of the same kind on the same pair finds them big enough: no allocation at all.
    kcp_pair pr(s, s, {20ms, 10ms, 0.05, 0.05}, 77);
    auto first = stream_phase(pr, 2 << 20, 77);
    REQUIRE(first.intact);
    const auto alloc_a = pr.a.stats().buffer_allocations;
    const auto alloc_b = pr.b.stats().buffer_allocations;
    CHECK(alloc_a > 0);
    CHECK(alloc_a <= max_allocations);
    CHECK(alloc_b <= max_allocations);
    CHECK(within(pr.a.capacity(), pr.a.max_capacity()));
    CHECK(within(pr.b.capacity(), pr.b.max_capacity()));
    CHECK(pr.a.capacity().send_slots > 16); // grew past the first steps
    auto second = stream_phase(pr, 2 << 20, 78);
    CHECK(second.intact);
    CHECK(pr.a.stats().buffer_allocations == alloc_a);
    CHECK(pr.b.stats().buffer_allocations == alloc_b);
    CHECK(pr.a.stats().allocation_failures == 0);
}

TEST_CASE("kcp: shrink_to_fit frees the empty buffers and keeps those in use", "[kcp]") {
    kcp_settings s = peerlink::kcp_turbo;
    s.conv = 13;
    kcp_pair pr(s, s, {10ms, 0ms, 0, 0}, 5);
    std::array<std::byte, 100> msg{};
    fill(msg, 6);
    REQUIRE(!pr.a.send(msg));
    CHECK(pr.a.capacity().send_slots == 4); // the first step, for one segment
    CHECK(pr.a.capacity().receive_slots == 0);
    CHECK(pr.b.capacity().bytes == 0); // nothing reached b yet

    // b receives and does not read; a's segment is acknowledged.
    REQUIRE(
        pr.run([] {}, [&] { return pr.b.readable() && pr.a.waiting_segments() == 0; }, 1s, 1000));
    const auto b_before = pr.b.capacity();
    CHECK(b_before.receive_slots > 0);
    CHECK(pr.b.shrink_to_fit() > 0); // ACK list and transmit queue: empty, freed
    CHECK(pr.b.capacity().receive_slots == b_before.receive_slots); // unread data stays
    CHECK(pr.b.capacity().ack_slots == 0);
    CHECK(pr.b.capacity().transmit_slots == 0);
    CHECK(pr.a.shrink_to_fit() > 0);
    CHECK(pr.a.capacity() == peerlink::kcp_capacity{});
    CHECK(pr.a.shrink_to_fit() == 0); // nothing left to free

    std::array<std::byte, 100> out{};
    std::error_code ec;
    REQUIRE(pr.b.receive(out, ec) == msg.size());
    CHECK(out == msg);
    CHECK(pr.b.shrink_to_fit() > 0);
    CHECK(pr.b.capacity() == peerlink::kcp_capacity{});

    // A segment in flight keeps the send ring; the transfer completes after it.
    pr.ab.blocked = true;
    fill(msg, 7);
    REQUIRE(!pr.a.send(msg));
    pr.run([] {}, [] { return false; }, 100ms, 1000);
    CHECK(pr.a.stats().in_flight == 1);
    pr.a.shrink_to_fit();
    CHECK(pr.a.capacity().send_slots == 4);
    pr.ab.blocked = false;
    bool got = false;
    REQUIRE(pr.run(
        [&] {
            if (pr.b.readable())
                got = pr.b.receive(out, ec) == msg.size() && out == msg;
        },
        [&] { return got && pr.a.waiting_segments() == 0; }, 5s, 10000));
    CHECK(got);
    CHECK(pr.a.stats().allocation_failures == 0);
    CHECK(pr.b.stats().allocation_failures == 0);
}

TEST_CASE("kcp: the receive ring grows while segments wait out of order", "[kcp]") {
    kcp_settings s;
    s.conv = 14;
    s.mtu = 100; // mss 76
    s.rcv_wnd = 128;
    kcp_core b(s, t0);
    auto payload = [](std::uint32_t sn) {
        std::vector<std::byte> p(1 + sn % 76);
        fill(p, 1000 + sn);
        return p;
    };
    // Arrival order: far ahead first, then backwards, then the rest shuffled, each
    // growth of the ring happening with segments out of order in it.
    std::vector<std::uint32_t> order = {50, 3, 120, 0, 127};
    for (std::uint32_t sn = 0; sn < 128; ++sn)
        if (std::find(order.begin(), order.end(), sn) == order.end())
            order.push_back(sn);
    rng r{99};
    for (std::size_t i = order.size() - 1; i > 5; --i) // Fisher-Yates over order[5..]
        std::swap(order[i], order[5 + r.below(i - 4)]);
    std::vector<std::size_t> ring_sizes;
    for (std::uint32_t sn : order) {
        REQUIRE(!b.input(encode(push_header(14, sn, sn), payload(sn)), t0));
        if (ring_sizes.empty() || ring_sizes.back() != b.capacity().receive_slots)
            ring_sizes.push_back(b.capacity().receive_slots);
        if (sn == 0 || sn == 3) // a duplicate changes nothing
            REQUIRE(!b.input(encode(push_header(14, sn, sn), payload(sn)), t0));
    }
    CHECK(ring_sizes.front() >= 51); // sn 50 first: the ring spans it at once
    CHECK(ring_sizes.back() <= b.max_capacity().receive_slots);
    CHECK(ring_sizes.size() <= 3);
    CHECK(b.stats().segments_received == 128);
    CHECK(b.stats().duplicate_segments == 2);
    std::array<std::byte, 100> out{};
    std::error_code ec;
    for (std::uint32_t sn = 0; sn < 128; ++sn) {
        INFO("sn " << sn);
        const auto want = payload(sn);
        REQUIRE(b.receive(out, ec) == want.size());
        CHECK(std::equal(want.begin(), want.end(), out.begin()));
    }
    CHECK(!b.readable());
    b.shrink_to_fit();
    CHECK(b.capacity().ack_slots > 0); // ACKs owed: the list stays until they leave
    std::vector<std::vector<std::byte>> keep;
    b.flush(t0);
    const auto segs = drain_segments(b, keep);
    CHECK(std::count_if(segs.begin(), segs.end(), [](const auto& g) {
              return g.header.cmd == kcp_command::ack;
          }) == 130);                                   // 128 and the two duplicates
    CHECK(segs.back().header.cmd == kcp_command::wins); // the full window reopened
    CHECK(b.shrink_to_fit() > 0);
    CHECK(b.capacity() == peerlink::kcp_capacity{});
}
