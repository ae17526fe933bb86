#include <peerlink/net/stun_client.hpp>

#include <peerlink/completion_tokens.hpp>
#include <peerlink/net/sim_transport.hpp>
#include <peerlink/net/stun_server.hpp>
#include <peerlink/net/udp_transport.hpp>

#include "catch.hpp"

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/udp.hpp>
#include <asio/use_future.hpp>
#if defined(ASIO_HAS_CO_AWAIT)
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/use_awaitable.hpp>
#endif

#include <chrono>
#include <optional>

using namespace std::chrono_literals;
using peerlink::endpoint;
using peerlink::stun_error;

namespace {

endpoint ep(const char* text) {
    std::error_code ec;
    return *endpoint::parse(text, ec);
}

peerlink::stun_server::options at(const char* where) {
    peerlink::stun_server::options o;
    o.primary = ep(where);
    return o;
}

// Runs `io` until `done` or `limit` of wall time; never longer.
template <class Pred>
void run_until(asio::io_context& io, Pred done, std::chrono::milliseconds limit = 5000ms) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (!done() && std::chrono::steady_clock::now() < end) {
        if (io.stopped()) // ran out of work earlier: handlers queued since need a restart
            io.restart();
        io.run_one_for(50ms);
    }
}

struct outcome {
    std::optional<std::error_code> ec;
    peerlink::stun_binding_result r;
    auto handler() {
        return [this](std::error_code e, peerlink::stun_binding_result res) {
            ec = e;
            r = res;
        };
    }
};

} // namespace

TEST_CASE("async_stun_binding: IPv4 and IPv6 over asio sockets", "[stun][net]") {
    asio::io_context io;
    for (const char* where : {"127.0.0.1:0", "[::1]:0"}) {
        INFO(where);
        peerlink::stun_server::options so;
        so.primary = ep(where);
        peerlink::stun_server server(io.get_executor(), so);
        const auto server_at = server.local_endpoint();
        REQUIRE(server_at.port != 0);

        asio::ip::udp::socket socket(io, peerlink::to_asio(endpoint{so.primary.address, 0}));
        const auto local = peerlink::from_asio(socket.local_endpoint());
        outcome o;
        bool inline_call = true;
        peerlink::async_stun_binding(socket, server_at, {},
                                     [&](std::error_code e, peerlink::stun_binding_result r) {
                                         CHECK_FALSE(inline_call);
                                         o.handler()(e, r);
                                     });
        inline_call = false;
        run_until(io, [&] { return o.ec.has_value(); });
        REQUIRE(o.ec);
        CHECK(!*o.ec);
        CHECK(o.r.mapped == local); // loopback: no NAT
        CHECK(o.r.server == server_at);
        CHECK(o.r.response_origin == server_at);
        CHECK(!o.r.other_address);
        CHECK(o.r.requests_sent == 1);
        CHECK(server.stats().core.requests == 1);
    }
}

TEST_CASE("async_stun_binding: a dual-stack socket reaches an IPv4 server", "[stun][net]") {
    asio::io_context io;
    peerlink::stun_server server(io.get_executor(), at("127.0.0.1:0"));
    asio::ip::udp::socket socket(io, asio::ip::udp::v6());
    socket.set_option(asio::ip::v6_only(false));
    socket.bind(asio::ip::udp::endpoint(asio::ip::udp::v6(), 0));
    auto f = peerlink::async_stun_binding(socket, server.local_endpoint(), asio::use_future);
    run_until(io, [&] { return f.wait_for(0s) == std::future_status::ready; });
    auto r = f.get();
    CHECK(r.mapped.address == peerlink::ip_address::loopback_v4()); // unmapped, plain IPv4
    CHECK(r.mapped.port == socket.local_endpoint().port());
}

TEST_CASE("async_stun_binding: RFC 5780 server, CHANGE-REQUEST, and errors", "[stun][net]") {
    asio::io_context io;
    peerlink::stun_server::options so;
    so.primary = ep("127.0.0.1:0");
    so.alternate = ep("127.0.0.2:0");
    peerlink::stun_server server(io.get_executor(), so);
    REQUIRE(server.rfc5780());
    asio::ip::udp::socket socket(io,
                                 asio::ip::udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));

    peerlink::stun_binding_options opt;
    opt.change = {true, true};
    opt.software = "net test";
    outcome o;
    peerlink::async_stun_binding(socket, server.local_endpoint(), opt, o.handler());
    run_until(io, [&] { return o.ec.has_value(); });
    REQUIRE(o.ec);
    CHECK(!*o.ec);
    const auto both = server.local_endpoint(peerlink::stun::server_socket::alternate_both);
    CHECK(both.address == ep("127.0.0.2:1").address);
    CHECK(o.r.server == both);
    CHECK(o.r.response_origin == both);
    CHECK(o.r.other_address == both);

    // A plain server refuses CHANGE-REQUEST with 420.
    peerlink::stun_server plain(io.get_executor(), at("127.0.0.1:0"));
    outcome p;
    peerlink::async_stun_binding(socket, plain.local_endpoint(), opt, p.handler());
    run_until(io, [&] { return p.ec.has_value(); });
    REQUIRE(p.ec);
    CHECK(*p.ec == stun_error::unknown_attribute);

    // An IPv6 server from an IPv4 socket: a send error at once, not a 39.5 s wait.
    outcome q;
    peerlink::async_stun_binding(socket, ep("[::1]:3478"), {}, q.handler());
    run_until(
        io, [&] { return q.ec.has_value(); }, 2000ms);
    REQUIRE(q.ec);
    CHECK(*q.ec);
}

TEST_CASE("async_stun_binding: cancellation and a closed socket", "[stun][net]") {
    asio::io_context io;
    asio::ip::udp::socket socket(io,
                                 asio::ip::udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    asio::ip::udp::socket silent(io,
                                 asio::ip::udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    const auto nobody = peerlink::from_asio(silent.local_endpoint()); // never answers
    asio::cancellation_signal sig;
    outcome o;
    peerlink::async_stun_binding(socket, nobody, {},
                                 asio::bind_cancellation_slot(sig.slot(), o.handler()));
    run_until(
        io, [] { return false; }, 100ms);
    CHECK(!o.ec);
    sig.emit(asio::cancellation_type::terminal);
    run_until(io, [&] { return o.ec.has_value(); });
    REQUIRE(o.ec);
    CHECK(*o.ec == asio::error::operation_aborted);

    // The socket is free again: a second operation works, and closing aborts it.
    outcome c;
    peerlink::async_stun_binding(socket, nobody, c.handler());
    run_until(
        io, [] { return false; }, 50ms);
    socket.close();
    run_until(io, [&] { return c.ec.has_value(); });
    REQUIRE(c.ec);
    CHECK(*c.ec == asio::error::operation_aborted);
}

TEST_CASE("async_stun_binding: over udp_transport and with deferred", "[stun][net]") {
    asio::io_context io;
    peerlink::stun_server server(io.get_executor(), at("127.0.0.1:0"));
    peerlink::udp_transport::options to;
    to.bind_address = "127.0.0.1";
    peerlink::udp_transport t(io.get_executor(), to);
    auto op = peerlink::async_stun_binding(t, server.local_endpoint(), {}, peerlink::deferred);
    outcome o;
    std::move(op)(o.handler());
    run_until(io, [&] { return o.ec.has_value(); });
    REQUIRE(o.ec);
    CHECK(!*o.ec);
    CHECK(o.r.mapped == t.local_endpoint());
}

#if defined(ASIO_HAS_CO_AWAIT)
TEST_CASE("async_stun_binding: in a coroutine", "[stun][net]") {
    asio::io_context io;
    peerlink::stun_server server(io.get_executor(), at("127.0.0.1:0"));
    asio::ip::udp::socket socket(io,
                                 asio::ip::udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    std::optional<peerlink::stun_binding_result> got;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            // No temporary options in the co_await expression: GCC 12 mis-destroys them.
            got = co_await peerlink::async_stun_binding(socket, server.local_endpoint(),
                                                        asio::use_awaitable);
            peerlink::stun_binding_options named;
            named.software = "named options";
            auto again = co_await peerlink::async_stun_binding(socket, server.local_endpoint(),
                                                               named, asio::use_awaitable);
            CHECK(again.mapped == got->mapped);
        },
        asio::detached);
    run_until(io, [&] { return got.has_value(); });
    REQUIRE(got);
    CHECK(got->mapped == peerlink::from_asio(socket.local_endpoint()));
}
#endif

TEST_CASE("async_stun_binding: retransmits on a lossy simulated link, times out on a dead one",
          "[stun][net][sim]") {
    asio::io_context io;
    peerlink::sim_network net(io, 7);
    peerlink::sim_link lossy;
    lossy.delay = 20ms;
    lossy.loss = 0.5;
    net.set_default_link(lossy);
    peerlink::sim_transport client(net, ep("10.0.0.2:5000"));
    peerlink::sim_transport server_t(net, ep("198.51.100.1:3478"));

    // A server on the simulated network: the sans-I/O core driven by hand.
    peerlink::stun::server_config sc;
    sc.primary = server_t.local_endpoint();
    peerlink::stun::server_core core(sc);
    std::array<std::byte, 2048> buf;
    std::array<peerlink::rx_slot, 1> slots{};
    slots[0].buffer = buf;
    std::function<void()> serve = [&] {
        server_t.async_receive(slots, [&](std::error_code ec, std::size_t n) {
            if (ec)
                return;
            if (n == 1)
                core.handle_datagram(std::span(buf.data(), slots[0].size), slots[0].from);
            while (auto t = core.poll_transmit()) {
                peerlink::tx_datagram d{t->data, t->to};
                std::error_code e;
                server_t.try_send(std::span(&d, 1), e);
            }
            serve();
        });
    };
    serve();

    int successes = 0, retransmitted = 0;
    for (int i = 0; i < 20; ++i) {
        outcome o;
        peerlink::async_stun_binding(client, server_t.local_endpoint(), {}, o.handler());
        net.run_until([&] { return o.ec.has_value(); }, 60s);
        REQUIRE(o.ec);
        if (!*o.ec) {
            ++successes;
            CHECK(o.r.mapped == client.local_endpoint());
            if (o.r.requests_sent > 1)
                ++retransmitted;
        }
    }
    // With 50 % loss each way a round trip succeeds 1 time in 4; 7 tries give 87 %.
    CHECK(successes >= 14);
    CHECK(retransmitted >= 5);

    // Nobody at the other end: the full RFC schedule on virtual time.
    net.set_default_link({});
    const auto start = net.now();
    outcome dead;
    peerlink::async_stun_binding(client, ep("198.51.100.9:3478"), {}, dead.handler());
    net.run_until([&] { return dead.ec.has_value(); }, 120s);
    REQUIRE(dead.ec);
    CHECK(*dead.ec == stun_error::transaction_timeout);
    CHECK(net.now() - start == 39500ms);
    server_t.close();
    net.run_for(1ms);
}
