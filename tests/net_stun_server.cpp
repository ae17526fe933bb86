#include <peerlink/net/stun_server.hpp>

#include <peerlink/proto/stun_client.hpp>

#include "catch.hpp"

#include <asio/io_context.hpp>
#include <asio/ip/udp.hpp>

#include <array>
#include <chrono>
#include <set>

using namespace std::chrono_literals;
using peerlink::endpoint;
namespace stun = peerlink::stun;
using stun::server_socket;

namespace {

endpoint ep(const char* text) {
    std::error_code ec;
    return *endpoint::parse(text, ec);
}

template <class Pred>
void run_until(asio::io_context& io, Pred done, std::chrono::milliseconds limit = 5000ms) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (!done() && std::chrono::steady_clock::now() < end) {
        if (io.stopped())
            io.restart();
        io.run_one_for(50ms);
    }
}

} // namespace

TEST_CASE("stun_server: four sockets answer CHANGE-REQUEST from the right address", "[stun][net]") {
    asio::io_context io;
    peerlink::stun_server::options o;
    o.primary = ep("127.0.0.1:0");
    o.alternate = ep("127.0.0.2:0");
    o.software = "lab";
    peerlink::stun_server server(io.get_executor(), o);
    REQUIRE(server.is_open());
    REQUIRE(server.rfc5780());
    const auto pp = server.local_endpoint(server_socket::primary);
    const auto pa = server.local_endpoint(server_socket::alternate_port);
    const auto ap = server.local_endpoint(server_socket::alternate_address);
    const auto both = server.local_endpoint(server_socket::alternate_both);
    CHECK(pp.address == ep("127.0.0.1:1").address);
    CHECK(ap.address == ep("127.0.0.2:1").address);
    CHECK(pp.port != pa.port);
    CHECK(pp.port == ap.port);
    CHECK(pa.port == both.port);
    CHECK(both.address == ap.address);

    asio::ip::udp::socket client(io,
                                 asio::ip::udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    const auto local = peerlink::from_asio(client.local_endpoint());
    std::set<std::pair<std::string, std::string>> seen;
    for (unsigned to = 0; to < 4; ++to)
        for (unsigned change = 0; change < 4; ++change) {
            INFO("to " << to << " change " << change);
            const auto dst = server.local_endpoint(static_cast<server_socket>(to));
            std::array<std::byte, 128> req;
            stun::transaction_id id{};
            id[0] = std::byte(static_cast<unsigned char>(to * 4 + change));
            stun::message_writer w(req, stun::method::binding, stun::message_class::request, id);
            w.add_change_request({(change & 2) != 0, (change & 1) != 0}).add_fingerprint();
            std::error_code ec;
            const auto n = w.finish(ec);
            client.send_to(asio::buffer(req.data(), n), peerlink::to_asio(dst));

            std::array<std::byte, 2048> resp;
            asio::ip::udp::endpoint from;
            std::size_t got = 0;
            bool done = false;
            client.async_receive_from(asio::buffer(resp), from,
                                      [&](std::error_code e, std::size_t k) {
                                          REQUIRE(!e);
                                          got = k;
                                          done = true;
                                      });
            run_until(io, [&] { return done; });
            REQUIRE(done);
            auto m = stun::decode(std::span(resp.data(), got), ec);
            REQUIRE(m);
            CHECK(m->transaction() == id);
            const auto expect = server.local_endpoint(static_cast<server_socket>(to ^ change));
            CHECK(peerlink::from_asio(from) == expect);
            auto b = stun::decode_binding_response(*m, ec);
            REQUIRE(b);
            CHECK(b->mapped == local);
            CHECK(b->response_origin == expect);
            CHECK(b->other_address == server.local_endpoint(static_cast<server_socket>(to ^ 3)));
            CHECK(stun::decode_string(*m->find(stun::attribute_type::software)) == "lab");
            seen.emplace(peerlink::from_asio(from).to_string(), b->response_origin->to_string());
        }
    CHECK(seen.size() == 4); // every socket answered
    auto st = server.stats();
    CHECK(st.core.requests == 16);
    CHECK(st.received == 16);
    CHECK(st.sent == 16);

    // stop() leaves nothing behind: the io_context runs out of work.
    server.stop();
    CHECK_FALSE(server.is_open());
    client.close();
    io.restart();
    const auto t = std::chrono::steady_clock::now();
    io.run_for(2s);
    CHECK(std::chrono::steady_clock::now() - t < 1s);
}

TEST_CASE("stun_server: configuration errors", "[stun][net]") {
    asio::io_context io;
    peerlink::stun_server server(io.get_executor());
    std::error_code ec;
    peerlink::stun_server::options o;
    o.primary = ep("127.0.0.1:0");
    o.alternate = ep("127.0.0.1:0"); // the same address twice
    server.open(o, ec);
    CHECK(ec == peerlink::error::invalid_config);
    o.alternate = ep("[::1]:0"); // another family
    server.open(o, ec);
    CHECK(ec == peerlink::error::invalid_config);
    CHECK_FALSE(server.is_open());

    o.alternate.reset();
    server.open(o, ec);
    REQUIRE(!ec);
    server.open(o, ec);
    CHECK(ec == asio::error::already_open);
    // The same port again: in use.
    peerlink::stun_server second(io.get_executor());
    o.primary = server.local_endpoint();
    second.open(o, ec);
    CHECK(ec);
    CHECK_FALSE(second.is_open());
    CHECK_THROWS_AS(peerlink::stun_server(io.get_executor(), o), std::system_error);
}
