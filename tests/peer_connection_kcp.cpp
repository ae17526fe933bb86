// The reliable channel of peer_connection (kcp<...> policy), on the simulated
// network and on loopback UDP.
#include <peerlink/peer_connection.hpp>

#include "catch.hpp"
#include "support.hpp"

#include <peerlink/net/sim_transport.hpp>

#include <asio/io_context.hpp>
#include <asio/read.hpp>
#include <asio/write.hpp>
#include <openssl/evp.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using peerlink::endpoint;
using peerlink::state_kind;

namespace {

using peerlink_test::byte_source;
using peerlink_test::ep;
using peerlink_test::sha256;
using peerlink_test::soak_bytes;

template <class Reliability>
struct kcp_pair {
    using conn = peerlink::peer_connection<peerlink::sim_transport, Reliability>;
    asio::io_context io;
    peerlink::sim_network net;
    peerlink::config cfg;
    endpoint ep_a = ep("10.0.0.1:1000"), ep_b = ep("10.0.0.2:2000");
    std::optional<conn> a, b;

    explicit kcp_pair(peerlink::sim_link link, std::uint64_t seed = 1) : net(io, seed) {
        net.set_default_link(link);
        a.emplace(peerlink::with_transport, peerlink::identity::generate(), cfg, net, ep_a);
        b.emplace(peerlink::with_transport, peerlink::identity::generate(), cfg, net, ep_b);
        bool ca = false, cb = false;
        b->async_accept(std::nullopt, [&](std::error_code ec) { cb = !ec; });
        a->async_connect(ep_b, std::nullopt, [&](std::error_code ec) { ca = !ec; });
        net.run_until([&] { return ca && cb; }, 60s);
        REQUIRE(ca);
        REQUIRE(cb);
    }
    // Connections hand their last handlers to the executor; run them while the
    // network (whose timers they hold) still exists.
    ~kcp_pair() {
        a.reset();
        b.reset();
        net.run_for(1ms);
    }
};

struct transfer_result {
    std::size_t sent = 0, received = 0;
    std::string sent_hash, received_hash;
    std::error_code write_error, read_error;
    bool eof = false;
};

// A writes `total` bytes with asio::async_write in chunks, then closes in order;
// B reads with asio::async_read until end of stream.
template <class Pair>
transfer_result transfer(Pair& p, std::size_t total, peerlink::duration limit) {
    transfer_result r;
    sha256 hs, hr;
    byte_source src{42};
    std::vector<std::byte> out(256 * 1024), in(100 * 1000);
    std::function<void()> write_next = [&] {
        if (r.sent == total) {
            p.a->async_close([](std::error_code) {});
            return;
        }
        auto n = std::min(out.size(), total - r.sent);
        src.fill(std::span(out).first(n));
        hs.update(std::span(out).first(n));
        asio::async_write(*p.a, asio::buffer(out.data(), n),
                          [&](std::error_code ec, std::size_t w) {
                              r.sent += w;
                              if (ec) {
                                  r.write_error = ec;
                                  return;
                              }
                              write_next();
                          });
    };
    std::function<void()> read_next = [&] {
        asio::async_read(*p.b, asio::buffer(in), [&](std::error_code ec, std::size_t n) {
            hr.update(std::span(in).first(n));
            r.received += n;
            if (ec == asio::error::eof) {
                r.eof = true;
                return;
            }
            if (ec) {
                r.read_error = ec;
                return;
            }
            read_next();
        });
    };
    write_next();
    read_next();
    p.net.run_until([&] { return r.eof || r.read_error || r.write_error; }, limit);
    INFO("stopped after " << r.sent << " sent, " << r.received << " received, states "
                          << peerlink::to_string(peerlink::kind_of(p.a->state())) << "/"
                          << peerlink::to_string(peerlink::kind_of(p.b->state())));
    CHECK((r.eof || r.read_error || r.write_error));
    // The handlers above refer to this frame: let the aborted ones run now.
    p.a->close();
    p.b->close();
    p.net.run_for(1ms);
    r.sent_hash = hs.hex();
    r.received_hash = hr.hex();
    return r;
}

} // namespace

TEST_CASE("kcp channel: transfers arrive intact at 0% to 30% loss, with reordering, "
          "duplication and jitter",
          "[peer_connection][kcp][sim]") {
    auto loss = GENERATE(0.0, 0.01, 0.05, 0.20, 0.30);
    peerlink::sim_link link;
    link.delay = 10ms;
    link.jitter = 2ms;
    link.loss = loss;
    link.duplicate = loss > 0 ? 0.01 : 0;
    link.reorder = loss > 0 ? 0.02 : 0;
    link.bandwidth_bps = 200'000'000;
    link.queue_limit_bytes = 4 << 20;
    kcp_pair<peerlink::kcp<peerlink::kcp_turbo>> p(link, 1000 + static_cast<int>(loss * 100));
    auto total = soak_bytes();
    auto r = transfer(p, total, std::chrono::hours(2));
    INFO("loss " << loss << ": sent " << r.sent << " received " << r.received << " write error "
                 << r.write_error.message() << " read error " << r.read_error.message());
    CHECK(!r.write_error);
    CHECK(!r.read_error);
    CHECK(r.eof);
    CHECK(r.sent == total);
    CHECK(r.received == total);
    CHECK(r.received_hash == r.sent_hash);
    auto ks = p.a->core().reliable_stats();
    if (loss >= 0.05)
        CHECK(ks.retransmits + ks.fast_retransmits > 0);
}

TEST_CASE("kcp channel: stream mode merges writes and delivers every byte",
          "[peer_connection][kcp][sim]") {
    static constexpr peerlink::kcp_settings stream_turbo = [] {
        auto s = peerlink::kcp_turbo;
        s.stream = true;
        return s;
    }();
    peerlink::sim_link link;
    link.delay = 5ms;
    link.loss = 0.05;
    kcp_pair<peerlink::kcp<stream_turbo>> p(link);
    STATIC_REQUIRE_FALSE(decltype(p)::conn::has_messages);
    auto total = std::min<std::size_t>(soak_bytes(), 16u << 20);
    auto r = transfer(p, total, 1h);
    CHECK(r.received == total);
    CHECK(r.received_hash == r.sent_hash);
    CHECK(r.eof);
}

TEST_CASE("kcp channel: whole messages keep their boundaries, beside datagrams",
          "[peer_connection][kcp][sim]") {
    peerlink::sim_link link;
    link.delay = 5ms;
    link.loss = 0.1;
    link.reorder = 0.05;
    kcp_pair<peerlink::kcp<peerlink::kcp_fast>> p(link);
    auto max = p.a->max_message_size();
    REQUIRE(max > 100'000);

    constexpr int count = 300;
    std::vector<std::vector<std::byte>> sent;
    byte_source src{7};
    for (int i = 0; i < count; ++i) {
        std::size_t size = i == 0 ? 0 : (static_cast<std::size_t>(i) * 7919) % (max / 3);
        std::vector<std::byte> m(size);
        src.fill(m);
        sent.push_back(std::move(m));
    }
    int next_send = 0, received = 0, intact = 0, datagrams = 0;
    std::function<void()> send = [&] {
        p.a->async_send_message(asio::buffer(sent[static_cast<std::size_t>(next_send)]),
                                [&](std::error_code ec, std::size_t n) {
                                    if (ec)
                                        return;
                                    CHECK(n == sent[static_cast<std::size_t>(next_send)].size());
                                    // the unreliable path stays usable beside the channel
                                    char d[8] = "dgram";
                                    p.a->async_send(asio::buffer(d), [](auto, auto) {});
                                    if (++next_send < count)
                                        send();
                                });
    };
    std::vector<std::byte> buf(max);
    std::function<void()> receive = [&] {
        p.b->async_receive_message(asio::buffer(buf), [&](std::error_code ec, std::size_t n) {
            if (ec)
                return;
            auto& want = sent[static_cast<std::size_t>(received)];
            intact += n == want.size() && std::equal(want.begin(), want.end(), buf.begin());
            if (++received < count)
                receive();
        });
    };
    char dbuf[16];
    std::function<void()> receive_datagram = [&] {
        p.b->async_receive(asio::buffer(dbuf), [&](std::error_code ec, std::size_t) {
            if (ec)
                return;
            ++datagrams;
            receive_datagram();
        });
    };
    send();
    receive();
    receive_datagram();
    p.net.run_until([&] { return received == count; }, 10min);
    CHECK(received == count);
    CHECK(intact == count);
    CHECK(datagrams > count / 2); // unreliable: ~90% arrive

    // A too-small buffer leaves the message queued and says how large it is.
    std::vector<std::byte> big(5000);
    p.a->async_send_message(asio::buffer(big), [](auto, auto) {});
    std::optional<std::pair<std::error_code, std::size_t>> r;
    char small[10];
    p.b->async_receive_message(asio::buffer(small),
                               [&](std::error_code ec, std::size_t n) { r.emplace(ec, n); });
    p.net.run_until([&] { return r.has_value(); }, 10s);
    REQUIRE(r);
    CHECK(r->first == peerlink::error::buffer_too_small);
    CHECK(r->second == 5000);
    std::size_t got = 0;
    p.b->async_receive_message(asio::buffer(buf), [&](std::error_code, std::size_t n) { got = n; });
    p.net.run_for(100ms);
    CHECK(got == 5000);

    // Larger than max_message_size never fits.
    std::vector<std::byte> huge(max + 1);
    std::optional<std::error_code> too_big;
    p.a->async_send_message(asio::buffer(huge), [&](std::error_code ec, auto) { too_big = ec; });
    p.net.run_for(10ms);
    REQUIRE(too_big);
    CHECK(*too_big == peerlink::kcp_error::too_many_fragments);
}

TEST_CASE("kcp channel: a full window holds the writer back until the reader reads",
          "[peer_connection][kcp][sim]") {
    peerlink::sim_link link;
    link.delay = 10ms;
    kcp_pair<peerlink::kcp<peerlink::kcp_fast>> p(link);
    std::vector<std::byte> chunk(64 * 1024);
    std::size_t written = 0;
    bool blocked = false;
    std::function<void()> write = [&] {
        p.a->async_write_some(asio::buffer(chunk), [&](std::error_code ec, std::size_t n) {
            if (ec)
                return; // aborted at the end of the test
            written += n;
            write();
        });
    };
    write();
    // B reads nothing: A's writes stop once the windows and queues are full.
    p.net.run_for(20s);
    auto stalled_at = written;
    p.net.run_for(20s);
    blocked = written == stalled_at;
    CHECK(blocked);
    // Bounded: send queue + send window + receive window, in segments of mss.
    auto mss = p.a->max_message_size() / 127;
    CHECK(written <= (128 + 128 + 128 + 128) * (mss + 1));
    CHECK(written > 100 * 1000);

    // Reading frees the window; the writer moves again.
    std::vector<std::byte> in(1 << 20);
    std::size_t read = 0;
    std::function<void()> reader = [&] {
        p.b->async_read_some(asio::buffer(in), [&](std::error_code ec, std::size_t n) {
            if (ec)
                return;
            read += n;
            reader();
        });
    };
    reader();
    p.net.run_for(5s);
    CHECK(written > stalled_at + 1000 * 1000);
    CHECK(read + 400 * (mss + 1) >= written);
}

TEST_CASE("kcp channel: a dead link ends reads and writes with an error, not a hang",
          "[peer_connection][kcp][sim]") {
    peerlink::sim_link link;
    link.delay = 10ms;
    kcp_pair<peerlink::kcp<peerlink::kcp_turbo>> p(link);
    p.net.partition(p.ep_a, p.ep_b, true);
    std::vector<std::byte> out(8 << 20); // more than the windows hold: the write waits
    std::optional<std::error_code> write_result, read_result;
    asio::async_write(*p.a, asio::buffer(out),
                      [&](std::error_code ec, std::size_t) { write_result = ec; });
    char in[100];
    p.a->async_read_some(asio::buffer(in),
                         [&](std::error_code ec, std::size_t) { read_result = ec; });
    p.net.run_until([&] { return read_result.has_value(); }, 30min);
    REQUIRE(read_result);
    CHECK(*read_result == peerlink::condition::peer_unreachable);
    CHECK(peerlink::kind_of(p.a->state()) == state_kind::failed);
    p.net.run_for(1s);
    REQUIRE(write_result);
    CHECK(*write_result);
}

TEST_CASE("kcp channel: async_close waits for every byte to be acknowledged",
          "[peer_connection][kcp][sim]") {
    peerlink::sim_link link;
    link.delay = 30ms;
    link.loss = 0.1;
    kcp_pair<peerlink::kcp<peerlink::kcp_fast>> p(link);
    std::vector<std::byte> out(2 << 20);
    byte_source{3}.fill(out);
    std::optional<std::error_code> close_result;
    asio::async_write(*p.a, asio::buffer(out), [&](std::error_code ec, std::size_t n) {
        REQUIRE(!ec);
        REQUIRE(n == out.size());
        p.a->async_close([&](std::error_code cec) { close_result = cec; });
    });
    std::vector<std::byte> in(out.size() + 10);
    std::optional<std::pair<std::error_code, std::size_t>> read_result;
    asio::async_read(*p.b, asio::buffer(in),
                     [&](std::error_code ec, std::size_t n) { read_result.emplace(ec, n); });
    p.net.run_until([&] { return close_result && read_result; }, 10min);
    REQUIRE(close_result);
    CHECK(!*close_result);
    REQUIRE(read_result);
    CHECK(read_result->first == asio::error::eof);
    CHECK(read_result->second == out.size());
    CHECK(std::memcmp(in.data(), out.data(), out.size()) == 0);
    CHECK(peerlink::kind_of(p.b->state()) == state_kind::closed);

    // After the close, writes fail clearly.
    std::optional<std::error_code> late;
    p.a->async_write_some(asio::buffer(out), [&](std::error_code ec, auto) { late = ec; });
    p.net.run_for(10ms);
    REQUIRE(late);
    CHECK(*late);
}

TEST_CASE("kcp channel: a stream over loopback UDP", "[peer_connection][kcp][udp]") {
    using conn = peerlink::peer_connection<peerlink::kcp<peerlink::kcp_turbo>>;
    asio::io_context io;
    peerlink::config cfg;
    cfg.transport.bind_address = "127.0.0.1";
    conn a(io.get_executor(), peerlink::identity::generate(), cfg);
    conn b(io.get_executor(), peerlink::identity::generate(), cfg);
    std::size_t total = 8 << 20;
    std::vector<std::byte> out(total), in(total);
    byte_source{11}.fill(out);
    bool wrote = false;
    std::optional<std::pair<std::error_code, std::size_t>> got;
    b.async_accept(std::nullopt, [&](std::error_code ec) {
        REQUIRE(!ec);
        asio::async_read(b, asio::buffer(in),
                         [&](std::error_code e, std::size_t n) { got.emplace(e, n); });
    });
    a.async_connect(b.local_endpoint(), std::nullopt, [&](std::error_code ec) {
        REQUIRE(!ec);
        asio::async_write(a, asio::buffer(out),
                          [&](std::error_code e, std::size_t n) { wrote = !e && n == total; });
    });
    for (int i = 0; i < 3000 && !got; ++i)
        io.run_for(10ms);
    REQUIRE(got);
    CHECK(!got->first);
    CHECK(got->second == total);
    CHECK(wrote);
    CHECK(in == out);
}
