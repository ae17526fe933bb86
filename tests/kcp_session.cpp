#include <peerlink/net/kcp_session.hpp>

#include "catch.hpp"

#include <peerlink/completion_tokens.hpp>
#include <peerlink/net/sim_transport.hpp>

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/read.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/use_future.hpp>
#include <asio/write.hpp>

#include <array>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using peerlink::endpoint;

namespace {

endpoint kep(const char* text) {
    std::error_code ec;
    auto e = endpoint::parse(text, ec);
    REQUIRE(e);
    return *e;
}

std::vector<std::byte> random_bytes(std::size_t n, std::uint64_t seed) {
    std::vector<std::byte> v(n);
    std::uint64_t x = seed;
    for (std::size_t i = 0; i < n; i += 8) {
        x += 0x9e3779b97f4a7c15ull; // splitmix64
        std::uint64_t z = x;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        z ^= z >> 31;
        std::memcpy(v.data() + i, &z, std::min<std::size_t>(8, n - i));
    }
    return v;
}

peerlink::kcp_settings with_conv(peerlink::kcp_settings s, std::uint32_t conv, bool stream) {
    s.conv = conv;
    s.stream = stream;
    return s;
}

using sim_session = peerlink::kcp_session<peerlink::sim_transport>;
using udp_session = peerlink::kcp_session<peerlink::udp_transport>;

// Two sessions facing each other on a simulated network.
struct sim_kcp_pair {
    asio::io_context io;
    peerlink::sim_network net{io, 11};
    endpoint ep_a = kep("10.0.0.1:1000");
    endpoint ep_b = kep("10.0.0.2:2000");
    std::optional<sim_session> a, b;

    sim_kcp_pair(const peerlink::kcp_settings& s, peerlink::sim_link link = {},
                 bool b_listens = false) {
        net.set_default_link(link);
        a.emplace(s, ep_b, net, ep_a);
        b.emplace(s, b_listens ? std::nullopt : std::optional<endpoint>(ep_a), net, ep_b);
    }
    // The sessions' handlers hold their state until they have run: let them run
    // before the network goes.
    ~sim_kcp_pair() {
        a.reset();
        b.reset();
        net.run_for(1ms);
    }
};

// Sends `data` from `from` to `to` with asio::async_write / asio::async_read on the
// simulated network; returns the bytes received.
std::vector<std::byte> transfer(sim_kcp_pair& p, sim_session& from, sim_session& to,
                                const std::vector<std::byte>& data, std::size_t read_chunk) {
    std::vector<std::byte> got(data.size());
    std::optional<std::error_code> wrote, read;
    std::size_t written = 0;
    asio::async_write(from, asio::buffer(data), [&](std::error_code ec, std::size_t n) {
        wrote = ec;
        written = n;
    });
    // Reads in chunks of read_chunk bytes, each with asio::async_read.
    std::size_t done = 0;
    std::function<void()> next = [&] {
        const std::size_t n = std::min(read_chunk, got.size() - done);
        asio::async_read(to, asio::buffer(got.data() + done, n),
                         [&](std::error_code ec, std::size_t k) {
                             done += k;
                             if (ec || done == got.size())
                                 read = ec;
                             else
                                 next();
                         });
    };
    next();
    p.net.run_until([&] { return read.has_value(); }, 600s);
    REQUIRE(wrote);
    CHECK(!*wrote);
    CHECK(written == data.size());
    REQUIRE(read);
    CHECK(!*read);
    CHECK(done == data.size());
    return got;
}

} // namespace

TEST_CASE("kcp_session: 16 MiB intact over a simulated link with 5% loss, stream mode",
          "[kcp][sim]") {
    peerlink::sim_link link;
    link.delay = 5ms;
    link.loss = 0.05;
    sim_kcp_pair p(with_conv(peerlink::kcp_turbo, 0x1234, true), link);
    const auto data = random_bytes(16u << 20, 1);
    const auto got = transfer(p, *p.a, *p.b, data, 100000);
    CHECK(got == data);
    const auto sa = p.a->stats();
    const auto sb = p.b->stats();
    INFO("retransmits " << sa.kcp.retransmits << " lost " << p.net.counters().lost);
    CHECK(p.net.counters().lost > 500);                     // the link did lose
    CHECK(sa.kcp.retransmits >= p.net.counters().lost / 2); // and KCP repaired it
    CHECK(sb.datagrams_received > 12000);                   // 16 MiB / 1376-byte segments = 12193
    CHECK(sa.datagrams_foreign + sa.datagrams_bad_conv + sa.datagrams_malformed == 0);
    CHECK(sb.send_errors == 0);
}

TEST_CASE("kcp_session: message mode delivers the bytes in order through reads smaller than "
          "a message",
          "[kcp][sim]") {
    peerlink::sim_link link;
    link.delay = 2ms;
    link.loss = 0.05;
    link.reorder = 0.05;
    link.duplicate = 0.02;
    sim_kcp_pair p(with_conv(peerlink::kcp_fast, 77, false), link);
    const auto data = random_bytes(2u << 20, 2);
    // 1000-byte reads: every 1376-byte message is split over two reads.
    const auto got = transfer(p, *p.a, *p.b, data, 1000);
    CHECK(got == data);
    // And back, in the other direction, on the same sessions.
    const auto back = random_bytes(1u << 20, 3);
    CHECK(transfer(p, *p.b, *p.a, back, 1u << 20) == back);
}

TEST_CASE("kcp_session: a listener adopts the first peer of its conv, drops others and counts "
          "them",
          "[kcp][sim]") {
    sim_kcp_pair p(with_conv(peerlink::kcp_fast, 5, true), {}, true);
    CHECK_FALSE(p.b->remote_endpoint());

    // A stranger with another conv, and a datagram too short to be KCP.
    peerlink::sim_transport stranger(p.net, kep("10.0.0.9:9000"));
    std::array<std::byte, 24> seg{};
    peerlink::kcp_segment_header h;
    h.conv = 6;
    h.cmd = peerlink::kcp_command::push;
    peerlink::kcp_encode_header(seg, h);
    std::array<std::byte, 3> shorty{};
    std::array<peerlink::tx_datagram, 2> out{{{seg, p.ep_b}, {shorty, p.ep_b}}};
    std::error_code ec;
    CHECK(stranger.try_send(out, ec) == 2);
    p.net.run_for(10ms);
    CHECK_FALSE(p.b->remote_endpoint());
    CHECK(p.b->stats().datagrams_bad_conv == 1);
    CHECK(p.b->stats().datagrams_malformed == 1);

    const auto data = random_bytes(300000, 4);
    CHECK(transfer(p, *p.a, *p.b, data, 4096) == data);
    REQUIRE(p.b->remote_endpoint());
    CHECK(*p.b->remote_endpoint() == p.ep_a);

    // Now that it has a peer, the stranger's datagrams are foreign, whatever their conv.
    h.conv = 5;
    peerlink::kcp_encode_header(seg, h);
    CHECK(stranger.try_send(std::span(out).first(1), ec) == 1);
    p.net.run_for(10ms);
    CHECK(p.b->stats().datagrams_foreign == 1);
    // The answer goes back to the adopted peer.
    const auto back = random_bytes(50000, 5);
    CHECK(transfer(p, *p.b, *p.a, back, 50000) == back);
}

TEST_CASE("kcp_session: writes wait for send capacity (backpressure), partial writes allowed",
          "[kcp][sim]") {
    peerlink::sim_link link;
    link.delay = 50ms;
    const auto s = with_conv(peerlink::kcp_normal, 9, true);
    sim_kcp_pair p(s, link);
    const std::size_t capacity = p.a->core().send_capacity();
    const std::size_t mss = p.a->core().mss();
    REQUIRE(capacity > 0);
    const auto data = random_bytes(capacity * 4, 6);
    std::size_t accepted = 0, first = 0;
    bool done = false;
    std::function<void()> next = [&] {
        p.a->async_write_some(asio::buffer(data.data() + accepted, data.size() - accepted),
                              [&](std::error_code ec, std::size_t n) {
                                  REQUIRE(!ec);
                                  REQUIRE(n > 0);
                                  first = first ? first : n;
                                  accepted += n;
                                  if (accepted < data.size())
                                      next();
                                  else
                                      done = true;
                              });
    };
    next();
    // No ACK can come back before one round trip (100 ms): until then the session takes
    // the queue plus what the windows let into flight, and no more.
    p.net.run_for(90ms);
    CHECK(first == capacity); // a partial write: what the queue took
    CHECK(accepted >= capacity);
    CHECK(accepted <= capacity + s.snd_wnd * mss);
    CHECK_FALSE(done);
    // Reading on b frees its window; all writes complete.
    std::vector<std::byte> got(data.size());
    std::optional<std::error_code> read;
    asio::async_read(*p.b, asio::buffer(got), [&](std::error_code ec, std::size_t) { read = ec; });
    p.net.run_until([&] { return done && read; }, 60s);
    CHECK(done);
    REQUIRE(read);
    CHECK(!*read);
    CHECK(got == data);
}

TEST_CASE("kcp_session: handlers never run inside the initiating call; empty buffers complete "
          "with 0",
          "[kcp][sim]") {
    sim_kcp_pair p(with_conv(peerlink::kcp_fast, 1, true));
    bool ran_w = false, ran_r = false, ran_e = false;
    const std::string msg = "hello";
    p.a->async_write_some(asio::buffer(msg), [&](std::error_code ec, std::size_t n) {
        CHECK(!ec);
        CHECK(n == msg.size());
        ran_w = true;
    });
    CHECK_FALSE(ran_w); // capacity was there, yet it completes later
    char buf[16];
    p.b->async_read_some(asio::buffer(buf, 0), [&](std::error_code ec, std::size_t n) {
        CHECK(!ec);
        CHECK(n == 0);
        ran_e = true;
    });
    CHECK_FALSE(ran_e);
    p.net.run_for(1ms);
    CHECK(ran_w);
    CHECK(ran_e);
    p.net.run_for(100ms); // the data is in b now
    p.b->async_read_some(asio::buffer(buf), [&](std::error_code ec, std::size_t n) {
        CHECK(!ec);
        CHECK(std::string(buf, n) == msg);
        ran_r = true;
    });
    CHECK_FALSE(ran_r);
    p.net.run_for(1ms);
    CHECK(ran_r);
}

TEST_CASE("kcp_session: deferred starts on invocation; a second read is refused; cancel aborts",
          "[kcp][sim]") {
    sim_kcp_pair p(with_conv(peerlink::kcp_fast, 2, true));
    const std::string msg = "deferred";
    auto op = p.a->async_write_some(asio::buffer(msg), peerlink::deferred);
    p.net.run_for(200ms);
    CHECK(p.a->stats().datagrams_sent == 0); // not started yet
    std::optional<std::size_t> wrote;
    std::move(op)([&](std::error_code, std::size_t n) { wrote = n; });

    char buf[64];
    asio::cancellation_signal signal;
    std::optional<std::error_code> first, second;
    // Cancel the first read before anything arrives: operation_aborted, nothing lost.
    p.b->async_read_some(asio::buffer(buf),
                         asio::bind_cancellation_slot(
                             signal.slot(), [&](std::error_code ec, std::size_t) { first = ec; }));
    p.b->async_read_some(asio::buffer(buf), [&](std::error_code ec, std::size_t) { second = ec; });
    signal.emit(asio::cancellation_type::terminal);
    p.net.run_for(1ms);
    REQUIRE(first);
    REQUIRE(second);
    CHECK(*first == asio::error::operation_aborted);
    CHECK(*second == peerlink::error::operation_in_progress);

    p.net.run_for(200ms);
    CHECK(wrote == msg.size());
    std::size_t got = 0;
    p.b->async_read_some(asio::buffer(buf), [&](std::error_code, std::size_t n) { got = n; });
    p.net.run_for(1ms);
    CHECK(std::string(buf, got) == msg);

    std::optional<std::error_code> third;
    p.b->async_read_some(asio::buffer(buf), [&](std::error_code ec, std::size_t) { third = ec; });
    p.b->cancel();
    p.net.run_for(1ms);
    REQUIRE(third);
    CHECK(*third == asio::error::operation_aborted);
}

TEST_CASE("kcp_session: a peer that stops answering ends reads and writes with dead_link",
          "[kcp][sim]") {
    sim_kcp_pair p(with_conv(peerlink::kcp_turbo, 3, true));
    p.net.partition(p.ep_a, p.ep_b, true);
    char buf[16];
    std::optional<std::error_code> read, write;
    p.a->async_read_some(asio::buffer(buf), [&](std::error_code ec, std::size_t) { read = ec; });
    const std::string msg = "into the void";
    p.a->async_write_some(asio::buffer(msg), [&](std::error_code, std::size_t) {});
    p.net.run_until([&] { return p.a->core().is_dead(); }, 3600s); // RTOs 200 ms * 1.5^k
    INFO("sent " << p.a->stats().datagrams_sent << " retransmits " << p.a->stats().kcp.retransmits
                 << " rto " << p.a->stats().kcp.rto_ms);
    REQUIRE(p.a->core().is_dead());
    p.net.run_for(1ms);
    REQUIRE(read);
    CHECK(*read == peerlink::kcp_error::dead_link);
    CHECK(*read == peerlink::condition::peer_unreachable);
    p.a->async_write_some(asio::buffer(msg), [&](std::error_code ec, std::size_t) { write = ec; });
    p.net.run_for(1ms);
    REQUIRE(write);
    CHECK(*write == peerlink::kcp_error::dead_link);
}

TEST_CASE("kcp_session: destruction and close() with operations pending are clean",
          "[kcp][sim][udp]") {
    std::optional<std::error_code> read_result, write_result, after_close;
    {
        asio::io_context io;
        peerlink::udp_transport::options o;
        o.bind_address = "127.0.0.1";
        char buf[16];
        auto s = with_conv(peerlink::kcp_normal, 4, true);
        s.snd_wnd = 1;
        s.send_queue = 1;
        {
            udp_session a(s, kep("127.0.0.1:9"), io.get_executor(), o);
            a.async_read_some(asio::buffer(buf),
                              [&](std::error_code ec, std::size_t) { read_result = ec; });
            // Fill the window (1 segment, never acknowledged: the discard port) and the
            // queue (1 segment), so that the third write stays pending.
            std::vector<std::byte> big(a.core().send_capacity());
            for (int i = 0; i < 2; ++i) {
                a.async_write_some(asio::buffer(big), [](std::error_code, std::size_t) {});
                io.run_for(5ms);
            }
            a.async_write_some(asio::buffer(buf),
                               [&](std::error_code ec, std::size_t) { write_result = ec; });
            io.run_for(5ms);
            CHECK_FALSE(write_result);
        } // destroyed with both pending
        io.run_for(20ms);
    }
    REQUIRE(read_result);
    CHECK(*read_result == asio::error::operation_aborted);
    REQUIRE(write_result);
    CHECK(*write_result == asio::error::operation_aborted);

    sim_kcp_pair p(with_conv(peerlink::kcp_fast, 8, true));
    char buf[16];
    read_result.reset();
    p.b->async_read_some(asio::buffer(buf),
                         [&](std::error_code ec, std::size_t) { read_result = ec; });
    p.b->close();
    CHECK_FALSE(p.b->is_open());
    p.b->async_read_some(asio::buffer(buf),
                         [&](std::error_code ec, std::size_t) { after_close = ec; });
    p.net.run_for(1ms);
    REQUIRE(read_result);
    CHECK(*read_result == asio::error::operation_aborted);
    REQUIRE(after_close);
    CHECK(*after_close == peerlink::error::not_connected);
    p.b.reset();
    p.a.reset();
    p.net.run_for(1ms);
}

TEST_CASE("kcp_session: 16 MiB intact over loopback UDP with use_awaitable", "[kcp][udp]") {
    asio::io_context io;
    peerlink::udp_transport::options o;
    o.bind_address = "127.0.0.1";
    auto s = with_conv(peerlink::kcp_turbo, 0xabcdef, true);
    s.snd_wnd = s.rcv_wnd = 1024;
    udp_session b(s, std::nullopt, io.get_executor(), o);
    const auto b_ep = b.local_endpoint(); // 127.0.0.1:port
    udp_session a(s, b_ep, io.get_executor(), o);

    const auto data = random_bytes(16u << 20, 7);
    std::vector<std::byte> got(data.size());
    std::optional<std::size_t> sent, received;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            sent = co_await asio::async_write(a, asio::buffer(data), asio::use_awaitable);
        },
        asio::detached);
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            received = co_await asio::async_read(b, asio::buffer(got), asio::use_awaitable);
        },
        asio::detached);
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    while (!(sent && received) && std::chrono::steady_clock::now() < deadline)
        io.run_for(10ms);
    REQUIRE(sent);
    REQUIRE(received);
    CHECK(*sent == data.size());
    CHECK(*received == data.size());
    CHECK(got == data);
    CHECK(a.stats().datagrams_foreign == 0);
    CHECK(b.remote_endpoint().has_value());
}

TEST_CASE("kcp_session: message mode over loopback UDP with use_future", "[kcp][udp]") {
    asio::io_context io;
    peerlink::udp_transport::options o;
    o.bind_address = "127.0.0.1";
    const auto s = with_conv(peerlink::kcp_fast, 99, false);
    udp_session b(s, std::nullopt, io.get_executor(), o);
    const auto b_ep = b.local_endpoint(); // 127.0.0.1:port
    udp_session a(s, b_ep, io.get_executor(), o);

    auto work = asio::make_work_guard(io);
    std::thread runner([&] { io.run_for(30s); });
    const auto data = random_bytes(1u << 20, 8);
    std::vector<std::byte> got(data.size());
    // The operations start on the io_context's thread, as objects are not thread-safe.
    std::future<std::size_t> w, r;
    std::promise<void> started;
    asio::post(io, [&] {
        w = asio::async_write(a, asio::buffer(data), asio::use_future);
        r = asio::async_read(b, asio::buffer(got), asio::use_future);
        started.set_value();
    });
    started.get_future().wait();
    REQUIRE(w.wait_for(30s) == std::future_status::ready);
    REQUIRE(r.wait_for(30s) == std::future_status::ready);
    CHECK(w.get() == data.size());
    CHECK(r.get() == data.size());
    asio::post(io, [&] {
        work.reset();
        io.stop();
    });
    runner.join();
    std::size_t first_diff = 0;
    while (first_diff < got.size() && got[first_diff] == data[first_diff])
        ++first_diff;
    INFO("first difference at " << first_diff << " stats: rx " << b.stats().datagrams_received
                                << " dup " << b.stats().kcp.duplicate_segments << " retrans "
                                << a.stats().kcp.retransmits);
    CHECK(got == data);
}

TEST_CASE("kcp: flush_on_ack sends queued segments when an ACK opens the window, not at the "
          "next interval",
          "[kcp]") {
    using peerlink::kcp_core;
    const auto t0 = peerlink::time_point{} + 1h;
    for (const bool eager : {false, true}) {
        auto s = with_conv(peerlink::kcp_turbo, 21, true);
        s.interval_ms = 100;
        s.snd_wnd = 4;
        s.flush_on_ack = eager;
        kcp_core a(s, t0), b(s, t0);
        const auto data = random_bytes(8 * a.mss(), 9);
        REQUIRE(!a.send(data));
        a.handle_timeout(t0); // the first flush: 4 segments, the window
        std::array<std::byte, 1400> buf;
        int pushes = 0;
        while (const std::size_t n = a.poll_transmit(buf)) {
            REQUIRE(!b.input(std::span(buf).first(n), t0 + 1ms));
            ++pushes;
        }
        CHECK(pushes == 4);
        b.handle_timeout(t0 + 1ms); // b's flush: the ACKs
        std::vector<std::vector<std::byte>> acks;
        while (const std::size_t n = b.poll_transmit(buf))
            acks.emplace_back(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
        REQUIRE(!acks.empty());
        for (const auto& d : acks)
            REQUIRE(!a.input(d, t0 + 2ms));
        // With flush_on_ack the next 4 leave with the ACK; without, at a's next flush.
        int after = 0;
        while (a.poll_transmit(buf))
            ++after;
        CHECK(after == (eager ? 4 : 0));
        CHECK(a.stats().segments_sent == (eager ? 8u : 4u));
        REQUIRE(a.poll_timeout());
        if (!eager)
            CHECK(*a.poll_timeout() == t0 + 100ms); // the grid
    }
}
