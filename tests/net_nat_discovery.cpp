#include <peerlink/net/nat_discovery.hpp>

#include <peerlink/net/sim_transport.hpp>
#include <peerlink/net/stun_server.hpp>

#include "catch.hpp"

#include <asio/io_context.hpp>
#include <asio/ip/udp.hpp>

#include <chrono>
#include <optional>

using namespace std::chrono_literals;
using peerlink::endpoint;
using peerlink::nat_filtering;
using peerlink::nat_mapping;
using peerlink::nat_type;

namespace {

endpoint ep(const char* text) {
    std::error_code ec;
    return *endpoint::parse(text, ec);
}

template <class Pred>
void run_until(asio::io_context& io, Pred done, std::chrono::milliseconds limit) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (!done() && std::chrono::steady_clock::now() < end) {
        if (io.stopped())
            io.restart();
        io.run_one_for(50ms);
    }
}

struct outcome {
    std::optional<std::error_code> ec;
    peerlink::nat_report r;
    auto handler() {
        return [this](std::error_code e, peerlink::nat_report res) {
            ec = e;
            r = std::move(res);
        };
    }
};

} // namespace

TEST_CASE("async_discover_nat: loopback against our RFC 5780 server finds no NAT", "[nat][net]") {
    asio::io_context io;
    peerlink::stun_server::options so;
    so.primary = ep("127.0.0.1:0");
    so.alternate = ep("127.0.0.2:0");
    peerlink::stun_server server(io.get_executor(), so);

    // A socket bound to the wildcard: the driver finds 127.0.0.1 as its source address.
    asio::ip::udp::socket socket(io, asio::ip::udp::endpoint(asio::ip::udp::v4(), 0));
    outcome o;
    peerlink::async_discover_nat(socket, server.local_endpoint(), o.handler());
    run_until(
        io, [&] { return o.ec.has_value(); }, 10000ms);
    REQUIRE(o.ec);
    CHECK(!*o.ec);
    INFO(o.r.to_string());
    CHECK(!o.r.error);
    CHECK_FALSE(o.r.udp_blocked);
    CHECK(o.r.rfc5780);
    CHECK(o.r.behind_nat == false);
    CHECK(o.r.local ==
          endpoint{peerlink::ip_address::loopback_v4(), socket.local_endpoint().port()});
    CHECK(o.r.mapped == o.r.local);
    CHECK(o.r.other_address ==
          server.local_endpoint(peerlink::stun::server_socket::alternate_both));
    CHECK(o.r.mapping == nat_mapping::endpoint_independent);
    CHECK(o.r.filtering == nat_filtering::endpoint_independent);
    CHECK(o.r.type() == nat_type::open_internet);
    CHECK(o.r.elapsed < 2s);
    // Test I, then filtering II and III: 3 requests answered.
    CHECK(server.stats().core.requests == 3);
}

TEST_CASE("async_discover_nat: a server without RFC 5780, and no server at all", "[nat][net]") {
    asio::io_context io;
    peerlink::stun_server::options so;
    so.primary = ep("127.0.0.1:0");
    peerlink::stun_server plain(io.get_executor(), so);
    asio::ip::udp::socket socket(io,
                                 asio::ip::udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    outcome o;
    peerlink::async_discover_nat(socket, plain.local_endpoint(), {}, o.handler());
    run_until(
        io, [&] { return o.ec.has_value(); }, 10000ms);
    REQUIRE(o.ec);
    CHECK(!*o.ec);
    CHECK_FALSE(o.r.rfc5780);
    CHECK(o.r.behind_nat == false);
    CHECK(o.r.filtering == nat_filtering::unknown);
    CHECK(o.r.type() == nat_type::unknown);

    // Blocked UDP on virtual time: nobody answers; the verdict after 5.75 s.
    peerlink::sim_network net(io, 1);
    peerlink::sim_transport t(net, ep("10.0.0.2:5000"));
    outcome b;
    const auto start = net.now();
    peerlink::async_discover_nat(t, ep("198.51.100.1:3478"), {}, b.handler());
    net.run_until([&] { return b.ec.has_value(); }, 60s);
    REQUIRE(b.ec);
    CHECK(!*b.ec);
    CHECK(b.r.udp_blocked);
    CHECK(b.r.type() == nat_type::udp_blocked);
    CHECK(net.now() - start == 5750ms);
}
