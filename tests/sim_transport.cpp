#include <peerlink/net/sim_transport.hpp>

#include "catch.hpp"

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#if defined(ASIO_HAS_CO_AWAIT)
#include <asio/awaitable.hpp>
#include <asio/co_spawn.hpp>
#include <asio/use_awaitable.hpp>
#endif
#include <asio/use_future.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <functional>
#include <future>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

using namespace std::chrono_literals;
using peerlink::endpoint;
using peerlink::rx_slot;
using peerlink::sim_counters;
using peerlink::sim_link;
using peerlink::sim_network;
using peerlink::sim_timer;
using peerlink::sim_transport;
using peerlink::time_point;
using peerlink::tx_datagram;

static_assert(peerlink::transport_policy<peerlink::sim_transport>);

namespace {

endpoint ep(std::string_view text) {
    std::error_code ec;
    auto e = endpoint::parse(text, ec);
    REQUIRE(e);
    return *e;
}

std::vector<std::byte> bytes_of(std::string_view s) {
    std::vector<std::byte> v(s.size());
    std::memcpy(v.data(), s.data(), s.size());
    return v;
}

std::string text_of(std::span<const std::byte> b) {
    return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

rx_slot slot_for(std::span<std::byte> buffer) {
    rx_slot s;
    s.buffer = buffer;
    return s;
}

void send(sim_transport& from, const endpoint& to, std::span<const std::byte> data) {
    const tx_datagram d{data, to};
    std::error_code ec;
    REQUIRE(from.try_send({&d, 1}, ec) == 1);
    REQUIRE(!ec);
}

// A datagram whose first 8 bytes are a sequence number.
std::array<std::byte, 32> numbered(std::uint64_t seq) {
    std::array<std::byte, 32> b{};
    std::memcpy(b.data(), &seq, sizeof seq);
    return b;
}

std::uint64_t number_of(std::span<const std::byte> b) {
    std::uint64_t seq = 0;
    std::memcpy(&seq, b.data(), sizeof seq);
    return seq;
}

// Keeps one receive pending on a transport and records what arrives.
class sink {
public:
    struct arrival {
        std::vector<std::byte> bytes;
        endpoint from;
        time_point at;
        bool truncated;
    };

    explicit sink(sim_transport& t, bool keep = true) : t_(t), keep_(keep) {
        for (std::size_t i = 0; i < slots_.size(); ++i)
            slots_[i].buffer = buffers_[i];
        start();
    }

    void start() {
        t_.async_receive(slots_, [this](std::error_code ec, std::size_t n) { on_receive(ec, n); });
    }

    std::vector<arrival> got;
    std::size_t count = 0;
    std::size_t completions = 0;
    std::error_code error;

private:
    void on_receive(std::error_code ec, std::size_t n) {
        ++completions;
        if (ec) {
            error = ec;
            return;
        }
        count += n;
        if (keep_)
            for (std::size_t i = 0; i < n; ++i)
                got.push_back(
                    {{slots_[i].buffer.begin(),
                      slots_[i].buffer.begin() + static_cast<std::ptrdiff_t>(slots_[i].size)},
                     slots_[i].from,
                     t_.now(),
                     slots_[i].truncated});
        start();
    }

    sim_transport& t_;
    bool keep_;
    std::array<std::array<std::byte, 1500>, 64> buffers_{};
    std::array<rx_slot, 64> slots_{};
};

} // namespace

TEST_CASE("sim_transport delivers after exactly the link delay of virtual time", "[sim]") {
    asio::io_context io;
    sim_network net(io, 1);
    net.set_default_link({.delay = 25ms});
    sim_transport a(net, ep("10.0.0.1:1000"));
    sim_transport b(net, ep("10.0.0.2:2000"));
    const time_point t0 = net.now();
    CHECK(t0 == sim_network::start_time);
    CHECK(a.now() == t0);

    std::array<std::byte, 64> buf{};
    std::array<rx_slot, 1> slots{slot_for(buf)};
    std::optional<time_point> at;
    std::size_t got = 0;
    std::error_code got_ec = asio::error::would_block;
    b.async_receive(slots, [&](std::error_code ec, std::size_t n) {
        got_ec = ec;
        got = n;
        at = net.now();
    });
    auto hello = bytes_of("hello");
    send(a, b.local_endpoint(), hello);
    CHECK_FALSE(at);

    CHECK(net.run_for(1s) == 1);
    REQUIRE(at);
    CHECK(*at - t0 == 25ms);
    CHECK(!got_ec);
    REQUIRE(got == 1);
    CHECK(slots[0].size == 5);
    CHECK(text_of({buf.data(), slots[0].size}) == "hello");
    CHECK(slots[0].from == a.local_endpoint());
    CHECK_FALSE(slots[0].truncated);
    CHECK(net.now() - t0 == 1s);
    CHECK(net.counters().sent == 1);
    CHECK(net.counters().delivered == 1);

    SECTION("a receive that finds datagrams queued still completes outside its call") {
        send(a, b.local_endpoint(), hello);
        net.run_for(1s);
        CHECK(b.available() == 1);
        bool done = false;
        b.async_receive(slots, [&](std::error_code ec, std::size_t n) { done = !ec && n == 1; });
        CHECK_FALSE(done);
        net.run_for(0s);
        CHECK(done);
        CHECK(b.available() == 0);
    }
}

TEST_CASE("sim_transport fills a batch in order and truncates long datagrams", "[sim]") {
    asio::io_context io;
    sim_network net(io, 2);
    sim_transport a(net, ep("10.0.0.1:1000"));
    sim_transport b(net, ep("10.0.0.2:2000"));

    std::vector<std::byte> d0(10, std::byte{0xa0}), d1(100), d2(7, std::byte{0xc2});
    for (std::size_t i = 0; i < d1.size(); ++i)
        d1[i] = static_cast<std::byte>(i);
    const std::array<tx_datagram, 3> batch{
        {{d0, b.local_endpoint()}, {d1, b.local_endpoint()}, {d2, b.local_endpoint()}}};
    std::error_code ec;
    CHECK(a.try_send(batch, ec) == 3);
    CHECK(!ec);

    std::array<std::byte, 64> big0{}, small{}, big2{}, big3{};
    std::array<rx_slot, 4> slots{slot_for(big0), slot_for(std::span(small).first(50)),
                                 slot_for(big2), slot_for(big3)};
    std::size_t filled = 0;
    b.async_receive(slots, [&](std::error_code e, std::size_t n) {
        REQUIRE(!e);
        filled = n;
    });
    net.run_for(1ms);
    REQUIRE(filled == 3);
    CHECK(slots[0].size == 10);
    CHECK(std::equal(d0.begin(), d0.end(), big0.begin()));
    CHECK(slots[1].truncated);
    CHECK(slots[1].size == 50);
    CHECK(std::equal(d1.begin(), d1.begin() + 50, small.begin()));
    CHECK_FALSE(slots[2].truncated);
    CHECK(slots[2].size == 7);
    CHECK(std::equal(d2.begin(), d2.end(), big2.begin()));
}

namespace {

struct lossy_run {
    sim_counters counters;
    std::uint64_t digest = 1469598103934665603ull; // the order and times of the arrivals
    std::size_t received = 0;
};

// 100k numbered datagrams, 100 per millisecond, over a lossy, jittery link.
lossy_run run_lossy(std::uint64_t seed) {
    asio::io_context io;
    sim_network net(io, seed);
    net.set_default_link(
        {.delay = 5ms, .jitter = 2ms, .loss = 0.1, .duplicate = 0.01, .reorder = 0.01});
    sim_transport a(net, ep("10.0.0.1:1000"));
    sim_transport b(net, ep("10.0.0.2:2000"));
    sink rx(b);
    lossy_run out;
    auto fold = [&] {
        for (const auto& r : rx.got) {
            const std::uint64_t t = static_cast<std::uint64_t>(r.at.time_since_epoch().count());
            for (std::uint64_t v : {number_of(r.bytes), t})
                out.digest = (out.digest ^ v) * 1099511628211ull;
        }
        rx.got.clear(); // keeps memory flat
    };
    std::vector<std::array<std::byte, 32>> payloads(100);
    std::vector<tx_datagram> batch(100);
    std::uint64_t seq = 0;
    for (int round = 0; round < 1000; ++round) {
        for (std::size_t i = 0; i < batch.size(); ++i) {
            payloads[i] = numbered(seq++);
            batch[i] = {payloads[i], b.local_endpoint()};
        }
        std::error_code ec;
        REQUIRE(a.try_send(batch, ec) == batch.size());
        net.run_for(1ms);
        fold();
    }
    net.run_for(1s);
    fold();
    out.counters = net.counters();
    out.received = rx.count;
    return out;
}

} // namespace

TEST_CASE("sim_network loses packets at the configured rate, the same way for a seed", "[sim]") {
    const lossy_run r1 = run_lossy(7);
    const sim_counters& c = r1.counters;
    CHECK(c.sent == 100000);
    // Binomial(100000, 0.1): standard deviation 95, so +-500 is over 5 sigma.
    CHECK(c.lost > 9500);
    CHECK(c.lost < 10500);
    CHECK(c.duplicated > 700);
    CHECK(c.duplicated < 1100);
    CHECK(c.delivered + c.lost == c.sent + c.duplicated);
    CHECK(r1.received == c.delivered);

    const lossy_run r2 = run_lossy(7);
    CHECK(r2.counters == r1.counters);
    CHECK(r2.digest == r1.digest);

    const lossy_run r3 = run_lossy(8);
    CHECK(r3.counters != r1.counters);
    CHECK(r3.counters.lost != r1.counters.lost);
    CHECK(r3.digest != r1.digest);
}

TEST_CASE("sim_network duplicates and reorders datagrams", "[sim]") {
    asio::io_context io;
    sim_network net(io, 3);
    net.set_default_link({.delay = 10ms, .duplicate = 0.05, .reorder = 0.05, .reorder_delay = 5ms});
    sim_transport a(net, ep("10.0.0.1:1000"));
    sim_transport b(net, ep("10.0.0.2:2000"));
    sink rx(b);
    constexpr std::uint64_t n = 10000;
    for (std::uint64_t i = 0; i < n; ++i) {
        const auto p = numbered(i);
        send(a, b.local_endpoint(), p);
        net.run_for(1ms);
    }
    net.run_for(1s);

    const sim_counters& c = net.counters();
    CHECK(c.lost == 0);
    CHECK(c.delivered == n + c.duplicated);
    CHECK(c.duplicated > 400);
    CHECK(c.duplicated < 600);
    CHECK(c.reordered > 400);
    CHECK(c.reordered < 600);

    std::vector<int> seen(n, 0);
    std::size_t twice = 0, out_of_order = 0;
    std::uint64_t highest = 0;
    for (const auto& r : rx.got) {
        const std::uint64_t seq = number_of(r.bytes);
        REQUIRE(seq < n);
        if (++seen[seq] == 2)
            ++twice;
        else if (seq < highest)
            ++out_of_order; // a first arrival overtaken by a later datagram
        highest = std::max(highest, seq);
    }
    CHECK(rx.got.size() == c.delivered);
    CHECK(twice == c.duplicated);
    // Without jitter only a held datagram arrives late, unless its duplicate got there first.
    CHECK(out_of_order <= c.reordered);
    CHECK(out_of_order * 10 >= c.reordered * 8);
}

TEST_CASE("sim_network serializes at the link bandwidth and tail-drops at the queue limit",
          "[sim]") {
    asio::io_context io;
    sim_network net(io, 4);
    sim_transport a(net, ep("10.0.0.1:1000"));
    sim_transport b(net, ep("10.0.0.2:2000"));
    sink rx(b);
    std::vector<std::byte> kb(1000, std::byte{0x5a});
    const std::vector<tx_datagram> batch(125, tx_datagram{kb, b.local_endpoint()});
    const time_point t0 = net.now();
    std::error_code ec;

    SECTION("1 Mbit/s moves 125 kB in 1 s") {
        net.set_link(a.local_endpoint(), b.local_endpoint(),
                     {.delay = 20ms, .bandwidth_bps = 1'000'000});
        CHECK(a.try_send(batch, ec) == 125);
        net.run_for(5s);
        REQUIRE(rx.got.size() == 125);
        CHECK(rx.got.front().at - t0 == 8ms + 20ms); // 8000 bits at 1 Mbit/s, then the delay
        CHECK(rx.got.back().at - t0 == 1s + 20ms);
        CHECK(rx.got.back().bytes == kb);
        CHECK(net.counters().dropped_queue == 0);
    }
    SECTION("a 10 kB queue keeps 10 datagrams of 1000 bytes") {
        net.set_default_link({.bandwidth_bps = 1'000'000, .queue_limit_bytes = 10'000});
        CHECK(a.try_send(batch, ec) == 125);
        net.run_for(5s);
        CHECK(rx.got.size() == 10);
        CHECK(net.counters().dropped_queue == 115);
        CHECK(rx.got.back().at - t0 == 80ms);
        // The queue drained: a new burst is accepted again.
        CHECK(a.try_send(batch, ec) == 125);
        net.run_for(5s);
        CHECK(rx.got.size() == 20);
    }
}

TEST_CASE("sim_network drops and counts datagrams above the MTU or to nowhere", "[sim]") {
    asio::io_context io;
    sim_network net(io, 5);
    sim_transport a(net, ep("10.0.0.1:1000"));
    sim_transport b(net, ep("10.0.0.2:2000"));
    sink rx_a(a), rx_b(b);
    net.set_link(a.local_endpoint(), b.local_endpoint(), {.mtu = 1200});
    CHECK(net.link(a.local_endpoint(), b.local_endpoint()).mtu == 1200);
    CHECK(net.link(b.local_endpoint(), a.local_endpoint()).mtu == 65507);

    std::vector<std::byte> ok(1200), big(1201);
    send(a, b.local_endpoint(), big);
    send(a, b.local_endpoint(), ok);
    send(b, a.local_endpoint(), big); // the other direction has the default MTU
    send(a, ep("10.0.0.9:9"), ok);
    std::vector<std::byte> huge(70000);
    send(b, a.local_endpoint(), huge); // above what UDP can carry
    net.run_for(1s);
    CHECK(net.counters().dropped_mtu == 2);
    CHECK(net.counters().dropped_no_endpoint == 1);
    REQUIRE(rx_b.got.size() == 1);
    CHECK(rx_b.got[0].bytes.size() == 1200);
    REQUIRE(rx_a.got.size() == 1);
    CHECK(rx_a.got[0].bytes.size() == 1201);
}

TEST_CASE("sim_network partitions cut a link both ways, in flight too", "[sim]") {
    asio::io_context io;
    sim_network net(io, 6);
    net.set_default_link({.delay = 50ms});
    sim_transport a(net, ep("10.0.0.1:1000"));
    sim_transport b(net, ep("10.0.0.2:2000"));
    sim_transport c(net, ep("10.0.0.3:3000"));
    sink rx_a(a), rx_b(b), rx_c(c);
    const auto p = bytes_of("x");

    send(a, b.local_endpoint(), p); // in flight when the cut comes
    net.run_for(10ms);
    net.partition(a.local_endpoint(), b.local_endpoint(), true);
    CHECK(net.partitioned(b.local_endpoint(), a.local_endpoint()));
    send(b, a.local_endpoint(), p);
    send(a, c.local_endpoint(), p); // other links still work
    net.run_for(1s);
    CHECK(rx_a.count == 0);
    CHECK(rx_b.count == 0);
    CHECK(rx_c.count == 1);
    CHECK(net.counters().lost == 2);

    net.partition(a.local_endpoint(), b.local_endpoint(), false);
    send(b, a.local_endpoint(), p);
    net.run_for(1s);
    CHECK(rx_a.count == 1);
}

TEST_CASE("sim_network drops arrivals beyond a full receive queue", "[sim]") {
    asio::io_context io;
    sim_network net(io, 7);
    sim_transport a(net, ep("10.0.0.1:1000"));
    sim_transport b(net, ep("10.0.0.2:2000")); // nobody receives
    const auto p = bytes_of("q");
    const std::vector<tx_datagram> batch(sim_network::receive_queue_limit + 10,
                                         tx_datagram{p, b.local_endpoint()});
    std::error_code ec;
    CHECK(a.try_send(batch, ec) == batch.size());
    net.run_for(1s);
    CHECK(b.available() == sim_network::receive_queue_limit);
    CHECK(net.counters().dropped_receive_buffer == 10);
}

TEST_CASE("sim_timer fires in order at the right virtual time", "[sim]") {
    asio::io_context io;
    sim_network net(io, 8);
    const time_point t0 = net.now();
    sim_timer t30(net), t10(net), t20(net), t_abs(net), t_past(net);
    std::vector<std::pair<int, time_point>> fired;
    auto record = [&](int id) {
        return [&, id](std::error_code ec) {
            CHECK(!ec);
            fired.emplace_back(id, net.now());
        };
    };
    t30.expires_after(30ms);
    t10.expires_after(10ms);
    t20.expires_after(20ms);
    t_abs.expires_at(t0 + 15ms);
    t_past.expires_at(t0 - 1s);
    t30.async_wait(record(30));
    t10.async_wait(record(10));
    t20.async_wait(record(20));
    t_abs.async_wait(record(15));
    t_past.async_wait(record(0));
    CHECK(fired.empty()); // not even the expired one runs inside async_wait
    CHECK(t10.expiry() == t0 + 10ms);

    net.run_for(1s);
    REQUIRE(fired.size() == 5);
    CHECK(fired[0] == std::pair{0, t0});
    CHECK(fired[1] == std::pair{10, t0 + 10ms});
    CHECK(fired[2] == std::pair{15, t0 + 15ms});
    CHECK(fired[3] == std::pair{20, t0 + 20ms});
    CHECK(fired[4] == std::pair{30, t0 + 30ms});
}

TEST_CASE("sim_network never moves time while handlers are ready and stops at its limit", "[sim]") {
    asio::io_context io;
    sim_network net(io, 9);
    const time_point t0 = net.now();
    sim_timer timer(net);
    timer.expires_after(1ms);
    int timer_fired = 0;
    timer.async_wait([&](std::error_code) { ++timer_fired; });

    int chain = 0;
    bool time_moved = false;
    std::function<void()> step = [&] {
        time_moved = time_moved || net.now() != t0;
        if (++chain < 1000)
            asio::post(io, step);
    };
    asio::post(io, step);
    net.run_for(1s);
    CHECK(chain == 1000);
    CHECK_FALSE(time_moved);
    CHECK(timer_fired == 1);

    // A timer that re-arms itself forever: run_until must stop at its limit.
    const time_point t1 = net.now();
    std::size_t ticks = 0;
    std::function<void(std::error_code)> tick = [&](std::error_code ec) {
        if (ec)
            return;
        ++ticks;
        timer.expires_after(1ms);
        timer.async_wait(tick);
    };
    timer.expires_after(1ms);
    timer.async_wait(tick);
    CHECK(net.run_until({}, 100ms) == 100);
    CHECK(ticks == 100);
    CHECK(net.now() - t1 == 100ms);

    // ... and at done().
    const std::size_t events = net.run_until([&] { return ticks == 150; }, 1h);
    CHECK(events == 50);
    CHECK(net.now() - t1 == 150ms);
    timer.cancel();
    net.run_for(0s);
}

TEST_CASE("sim_timer cancel, new expiry and destruction give operation_aborted", "[sim]") {
    asio::io_context io;
    sim_network net(io, 10);
    const time_point t0 = net.now();
    std::vector<std::error_code> results;
    auto record = [&](std::error_code ec) {
        results.push_back(ec);
    };

    sim_timer timer(net);
    timer.expires_after(1s);
    timer.async_wait(record);
    timer.async_wait(record);
    CHECK(timer.cancel() == 2);
    CHECK(results.empty()); // posted, not inline
    net.run_for(0s);
    REQUIRE(results.size() == 2);
    CHECK(results[0] == asio::error::operation_aborted);
    CHECK(results[1] == asio::error::operation_aborted);
    CHECK(net.now() == t0);

    results.clear();
    timer.async_wait(record);
    CHECK(timer.expires_after(2s) == 1);
    timer.async_wait(record);
    {
        sim_timer doomed(net);
        doomed.expires_after(1s);
        doomed.async_wait(record);
    }
    net.run_for(10s);
    REQUIRE(results.size() == 3);
    CHECK(results[0] == asio::error::operation_aborted);
    CHECK(results[1] == asio::error::operation_aborted);
    CHECK(!results[2]); // the wait after the new expiry fired

    SECTION("per-operation cancellation aborts that wait only") {
        results.clear();
        timer.expires_after(1s);
        asio::cancellation_signal signal;
        timer.async_wait(asio::bind_cancellation_slot(signal.slot(), record));
        timer.async_wait(record);
        net.run_for(100ms);
        signal.emit(asio::cancellation_type::terminal);
        net.run_for(0s);
        REQUIRE(results.size() == 1);
        CHECK(results[0] == asio::error::operation_aborted);
        signal.emit(asio::cancellation_type::terminal); // spent: nothing happens
        net.run_for(1s);
        REQUIRE(results.size() == 2);
        CHECK(!results[1]);
    }
    SECTION("a moved timer keeps its waits") {
        results.clear();
        timer.expires_after(1s);
        timer.async_wait(record);
        sim_timer moved(std::move(timer));
        net.run_for(2s);
        REQUIRE(results.size() == 1);
        CHECK(!results[0]);
        CHECK(moved.expiry() == t0 + 10s + 1s);
    }
}

TEST_CASE("sim_transport close aborts a pending receive and unbinds", "[sim]") {
    asio::io_context io;
    sim_network net(io, 11);
    sim_transport a(net, ep("10.0.0.1:1000"));
    std::optional<sim_transport> b(std::in_place, net, ep("10.0.0.2:2000"));
    std::array<std::byte, 64> buf{};
    std::array<rx_slot, 1> slots{slot_for(buf)};
    std::vector<std::pair<std::error_code, std::size_t>> results;
    auto record = [&](std::error_code ec, std::size_t n) {
        results.emplace_back(ec, n);
    };

    b->async_receive(slots, record);
    b->async_receive(slots, record); // only one may be pending
    b->close();
    CHECK(results.empty());
    net.run_for(0s);
    REQUIRE(results.size() == 2);
    CHECK(results[0].first == peerlink::error::operation_in_progress);
    CHECK(results[1].first == asio::error::operation_aborted);
    CHECK(results[1].second == 0);
    CHECK_FALSE(b->is_open());

    results.clear();
    const auto p = bytes_of("late");
    send(a, ep("10.0.0.2:2000"), p);
    net.run_for(1s);
    CHECK(net.counters().dropped_no_endpoint == 1);
    std::error_code ec;
    CHECK(b->try_send(std::array{tx_datagram{p, a.local_endpoint()}}, ec) == 0);
    CHECK(ec == asio::error::bad_descriptor);
    b->async_receive(slots, record);
    b->async_wait_writable([&](std::error_code e) { results.emplace_back(e, 0); });
    net.run_for(0s);
    REQUIRE(results.size() == 2);
    CHECK(results[0].first == asio::error::bad_descriptor);
    CHECK(results[1].first == asio::error::bad_descriptor);

    SECTION("the address can be bound again, and destruction aborts too") {
        results.clear();
        b.reset();
        b.emplace(net, ep("10.0.0.2:2000"));
        b->async_receive(slots, record);
        b.reset();
        net.run_for(0s);
        REQUIRE(results.size() == 1);
        CHECK(results[0].first == asio::error::operation_aborted);
    }
    SECTION("per-operation cancellation aborts the receive and loses nothing") {
        results.clear();
        b.reset();
        b.emplace(net, ep("10.0.0.2:2000"));
        asio::cancellation_signal signal;
        b->async_receive(slots, asio::bind_cancellation_slot(signal.slot(), record));
        signal.emit(asio::cancellation_type::total);
        net.run_for(0s);
        REQUIRE(results.size() == 1);
        CHECK(results[0].first == asio::error::operation_aborted);
        send(a, b->local_endpoint(), p);
        net.run_for(1s);
        CHECK(b->available() == 1);
        b->async_receive(slots, record);
        net.run_for(0s);
        REQUIRE(results.size() == 2);
        CHECK(!results[1].first);
        CHECK(text_of({buf.data(), slots[0].size}) == "late");
    }
}

TEST_CASE("sim_transport reports a taken address and picks free ports", "[sim]") {
    asio::io_context io;
    sim_network net(io, 12);
    sim_transport a(net, ep("10.0.0.1:1000"));
    try {
        sim_transport again(net, ep("10.0.0.1:1000"));
        FAIL("bound twice");
    } catch (const std::system_error& e) {
        CHECK(e.code() == std::errc::address_in_use);
    }
    std::error_code ec;
    sim_transport again(net, ep("10.0.0.1:1000"), ec);
    CHECK(ec == std::errc::address_in_use);
    CHECK_FALSE(again.is_open());

    sim_transport same_port_v6(net, ep("[2001:db8::1]:1000"), ec);
    CHECK(!ec);
    sim_transport p1(net, ep("10.0.0.1:0")), p2(net, ep("10.0.0.1:0"));
    CHECK(p1.local_endpoint() == ep("10.0.0.1:49152"));
    CHECK(p2.local_endpoint() == ep("10.0.0.1:49153"));
}

#if defined(ASIO_HAS_CO_AWAIT)
namespace {

asio::awaitable<void> ping(sim_transport& t, endpoint peer, int rounds, int& completed) {
    std::array<std::byte, 128> buf{};
    std::array<rx_slot, 1> slots{slot_for(buf)};
    sim_timer pause = t.make_timer();
    for (int i = 0; i < rounds; ++i) {
        const auto msg = bytes_of("ping " + std::to_string(i));
        send(t, peer, msg);
        const std::size_t n = co_await t.async_receive(slots, asio::use_awaitable);
        REQUIRE(n == 1);
        REQUIRE(slots[0].from == peer);
        REQUIRE(text_of({buf.data(), slots[0].size}) == "pong " + std::to_string(i));
        pause.expires_after(1ms);
        co_await pause.async_wait(asio::use_awaitable);
        ++completed;
    }
    send(t, peer, bytes_of("bye"));
}

asio::awaitable<void> pong(sim_transport& t, int& answered) {
    std::array<std::byte, 128> buf{};
    std::array<rx_slot, 1> slots{slot_for(buf)};
    for (;;) {
        co_await t.async_wait_writable(asio::use_awaitable);
        co_await t.async_receive(slots, asio::use_awaitable);
        std::string text = text_of({buf.data(), slots[0].size});
        if (text == "bye")
            co_return;
        text.replace(0, 4, "pong");
        send(t, slots[0].from, bytes_of(text));
        ++answered;
    }
}

} // namespace

TEST_CASE("sim_transport works with use_awaitable coroutines over IPv6", "[sim]") {
    asio::io_context io;
    sim_network net(io, 13);
    net.set_default_link({.delay = 5ms});
    sim_transport a(net, ep("[2001:db8::1]:1000"));
    sim_transport b(net, ep("[2001:db8::2]:2000"));
    const time_point t0 = net.now();
    int completed = 0, answered = 0;
    bool ping_done = false, pong_done = false;
    asio::co_spawn(io, ping(a, b.local_endpoint(), 50, completed), [&](std::exception_ptr e) {
        CHECK(!e);
        ping_done = true;
    });
    asio::co_spawn(io, pong(b, answered), [&](std::exception_ptr e) {
        CHECK(!e);
        pong_done = true;
    });
    net.run_until([&] { return ping_done && pong_done; }, 10s);
    CHECK(ping_done);
    CHECK(pong_done);
    CHECK(completed == 50);
    CHECK(answered == 50);
    // Each round: 5 ms there, 5 ms back, 1 ms pause; then "bye" takes 5 ms.
    CHECK(net.now() - t0 == 50 * 11ms + 5ms);
}
#else
TEST_CASE("sim_transport works with use_awaitable coroutines over IPv6", "[sim]") {
    WARN("Asio's coroutine support is off for this compiler (clang with libstdc++ and "
         "Asio 1.22 needs ASIO_HAS_CO_AWAIT and ASIO_HAS_STD_COROUTINE): skipped");
}
#endif

TEST_CASE("sim_transport works with use_future", "[sim]") {
    asio::io_context io;
    sim_network net(io, 14);
    sim_transport a(net, ep("10.0.0.1:1000"));
    sim_transport b(net, ep("10.0.0.2:2000"));
    std::array<std::byte, 16> buf{};
    std::array<rx_slot, 1> slots{slot_for(buf)};
    std::future<std::size_t> received = b.async_receive(slots, asio::use_future);
    std::future<void> writable = a.async_wait_writable(asio::use_future);
    send(a, b.local_endpoint(), bytes_of("f"));
    net.run_for(1ms);
    REQUIRE(received.wait_for(0s) == std::future_status::ready);
    CHECK(received.get() == 1);
    REQUIRE(writable.wait_for(0s) == std::future_status::ready);
    CHECK_NOTHROW(writable.get());
}

TEST_CASE("sim_network runs a million packets without real waiting", "[sim][soak]") {
    asio::io_context io;
    sim_network net(io, 15);
    net.set_default_link({.delay = 20ms, .jitter = 1ms, .loss = 0.01});
    sim_transport a(net, ep("10.0.0.1:1000"));
    sim_transport b(net, ep("10.0.0.2:2000"));
    sink rx(b, false);
    constexpr std::size_t total = 1'000'000, per_tick = 100;
    std::array<std::byte, 64> payload{};
    const std::vector<tx_datagram> batch(per_tick, tx_datagram{payload, b.local_endpoint()});
    sim_timer tick = a.make_timer();
    std::size_t sent = 0;
    std::function<void(std::error_code)> on_tick = [&](std::error_code ec) {
        if (ec)
            return;
        std::error_code send_ec;
        sent += a.try_send(batch, send_ec);
        if (sent < total) {
            tick.expires_after(1ms);
            tick.async_wait(on_tick);
        }
    };
    tick.async_wait(on_tick);
    const auto real0 = std::chrono::steady_clock::now();
    net.run_until([&] { return sent == total && net.pending_events() == 0; }, 1h);
    const auto real = std::chrono::steady_clock::now() - real0;
    INFO("real time: " << std::chrono::duration<double>(real).count() << " s");
    const sim_counters& c = net.counters();
    CHECK(c.sent == total);
    CHECK(c.delivered + c.lost == total);
    CHECK(c.lost > 9000);
    CHECK(c.lost < 11000);
    CHECK(rx.count == c.delivered);
    // The last batch left at 9.999 s and arrived 20 to 21 ms later.
    CHECK(net.now() - sim_network::start_time >= 9999ms + 20ms);
    CHECK(net.now() - sim_network::start_time <= 9999ms + 21ms);
}
