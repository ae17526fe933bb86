#include <peerlink/net/turn_client.hpp>

#include "catch.hpp"

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ip/udp.hpp>
#include <asio/write.hpp>

#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using peerlink::endpoint;
using peerlink::turn_error;
namespace stun = peerlink::stun;
using stun::attribute_type;

namespace {

endpoint ep(const char* text) {
    std::error_code ec;
    return *endpoint::parse(text, ec);
}

std::span<const std::byte> bytes_of(std::string_view s) {
    return std::as_bytes(std::span<const char>(s.data(), s.size()));
}

// Runs `io` until `done` or `limit` of wall time; never longer.
template <class Pred>
void run_until(asio::io_context& io, Pred done, std::chrono::milliseconds limit = 5000ms) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (!done() && std::chrono::steady_clock::now() < end) {
        if (io.stopped())
            io.restart();
        io.run_one_for(20ms);
    }
}

// A TURN server without authentication, enough to drive the Asio client: it grants
// allocations, permissions and channels, and reflects data: a Send indication comes
// back as a Data indication from the same peer with "re:" in front, ChannelData as
// ChannelData on the same channel. `silent` makes it answer nothing.
class fake_turn_server {
public:
    fake_turn_server(asio::io_context& io, bool tcp) : udp_(io), acceptor_(io), tcp_(io) {
        if (tcp) {
            acceptor_.open(asio::ip::tcp::v4());
            acceptor_.bind({asio::ip::make_address_v4("127.0.0.1"), 0});
            acceptor_.listen();
            address = {peerlink::ip_address::loopback_v4(), acceptor_.local_endpoint().port()};
            accept();
        } else {
            udp_.open(asio::ip::udp::v4());
            udp_.bind({asio::ip::make_address_v4("127.0.0.1"), 0});
            address = peerlink::from_asio(udp_.local_endpoint());
            receive();
        }
    }

    endpoint address;
    endpoint relayed = ep("192.0.2.77:50000");
    bool silent = false;
    std::map<stun::method, int> requests;
    std::size_t data_in = 0;

    // Closes the TCP connection to the client.
    void drop_connection() {
        std::error_code ec;
        tcp_.shutdown(asio::ip::tcp::socket::shutdown_both, ec);
        tcp_.close(ec);
    }

private:
    void receive() {
        udp_.async_receive_from(
            asio::buffer(buf_), from_, [this](std::error_code ec, std::size_t n) {
                if (ec)
                    return;
                auto out =
                    answer(std::span<const std::byte>(buf_.data(), n), stun::framing::datagram);
                for (auto& o : out)
                    udp_.send_to(asio::buffer(o), from_, 0, ec);
                receive();
            });
    }

    void accept() {
        acceptor_.async_accept(tcp_, [this](std::error_code ec) {
            if (!ec)
                read();
        });
    }

    void read() {
        tcp_.async_read_some(asio::buffer(buf_), [this](std::error_code ec, std::size_t n) {
            if (ec)
                return;
            stream_.insert(stream_.end(), buf_.begin(), buf_.begin() + static_cast<long>(n));
            for (;;) {
                auto size = stun::stream_frame_size(stream_, ec);
                if (!size || *size > stream_.size())
                    break;
                auto out = answer(std::span<const std::byte>(stream_.data(), *size),
                                  stun::framing::stream);
                stream_.erase(stream_.begin(), stream_.begin() + static_cast<long>(*size));
                for (auto& o : out) {
                    auto msg = std::make_shared<std::vector<std::byte>>(std::move(o));
                    asio::async_write(tcp_, asio::buffer(*msg),
                                      [msg](std::error_code, std::size_t) {});
                }
            }
            read();
        });
    }

    std::vector<std::vector<std::byte>> answer(std::span<const std::byte> in, stun::framing f) {
        std::vector<std::vector<std::byte>> out;
        std::error_code ec;
        if (silent) {
            if (auto m = stun::decode(in, ec); m && m->is_request())
                ++requests[m->get_method()];
            return out;
        }
        if (auto cd = stun::decode_channel_data(in, ec, f)) {
            ++data_in;
            std::vector<std::byte> o(cd->data.size() + 8);
            o.resize(stun::encode_channel_data(o, cd->channel, cd->data, ec, f));
            out.push_back(std::move(o));
            return out;
        }
        auto m = stun::decode(in, ec);
        if (!m)
            return out;
        std::vector<std::byte> o(2048);
        if (m->is_indication() && m->get_method() == stun::method::send) {
            ++data_in;
            auto peer =
                stun::decode_xor_address(*m->find(attribute_type::xor_peer_address), *m, ec);
            std::vector<std::byte> data(3);
            std::memcpy(data.data(), "re:", 3);
            auto d = m->find(attribute_type::data)->value;
            data.insert(data.end(), d.begin(), d.end());
            stun::message_writer w(o, stun::method::data, stun::message_class::indication,
                                   m->transaction());
            w.add_xor_address(attribute_type::xor_peer_address, *peer)
                .add_bytes(attribute_type::data, data);
            o.resize(w.finish(ec));
            out.push_back(std::move(o));
            return out;
        }
        if (!m->is_request())
            return out;
        ++requests[m->get_method()];
        stun::message_writer w(o, m->get_method(), stun::message_class::success_response,
                               m->transaction());
        if (m->get_method() == stun::method::allocate)
            w.add_xor_address(attribute_type::xor_relayed_address, relayed)
                .add_xor_address(attribute_type::xor_mapped_address, ep("127.0.0.1:1"))
                .add_u32(attribute_type::lifetime, 600);
        if (m->get_method() == stun::method::refresh)
            w.add_u32(attribute_type::lifetime,
                      *stun::decode_u32(*m->find(attribute_type::lifetime), ec));
        w.add_fingerprint();
        o.resize(w.finish(ec));
        out.push_back(std::move(o));
        return out;
    }

    asio::ip::udp::socket udp_;
    asio::ip::udp::endpoint from_;
    asio::ip::tcp::acceptor acceptor_;
    asio::ip::tcp::socket tcp_;
    std::array<std::byte, 65536> buf_{};
    std::vector<std::byte> stream_;
};

peerlink::turn_client make_client(asio::io_context& io, bool tcp, const endpoint& server,
                                  peerlink::turn::client_config cfg = {}) {
    if (tcp)
        return peerlink::turn_client(asio::ip::tcp::socket(io), server, cfg);
    return peerlink::turn_client(asio::ip::udp::socket(io), server, cfg);
}

} // namespace

TEST_CASE("net turn_client: allocate, permission, channel, data both ways, deallocate",
          "[turn][net]") {
    for (bool tcp : {false, true}) {
        INFO((tcp ? "TCP" : "UDP"));
        asio::io_context io;
        fake_turn_server server(io, tcp);
        auto client = make_client(io, tcp, server.address);
        CHECK(client.is_tcp() == tcp);
        const auto peer = ep("203.0.113.5:7000");

        std::optional<std::error_code> aec;
        endpoint relayed;
        bool inline_call = true;
        client.async_allocate([&](std::error_code ec, endpoint r) {
            CHECK_FALSE(inline_call); // never inside the initiating call
            aec = ec;
            relayed = r;
        });
        inline_call = false;
        run_until(io, [&] { return aec.has_value(); });
        REQUIRE(aec);
        CHECK(!*aec);
        CHECK(relayed == server.relayed);
        CHECK(client.relayed_endpoint() == server.relayed);
        CHECK(client.state() == peerlink::turn::client_state::allocated);
        CHECK(client.local_endpoint().port != 0);

        CHECK(client.send_to(peer, bytes_of("early")) == turn_error::no_permission);
        std::optional<std::error_code> pec;
        client.async_create_permission(peer, [&](std::error_code ec) { pec = ec; });
        run_until(io, [&] { return pec.has_value(); });
        REQUIRE(pec);
        CHECK(!*pec);

        // Send indication out, Data indication back.
        std::array<std::byte, 64> buf{};
        std::optional<std::error_code> rec;
        std::size_t got = 0;
        endpoint from;
        auto receive = [&] {
            rec.reset();
            client.async_receive_from(asio::buffer(buf),
                                      [&](std::error_code ec, std::size_t n, endpoint f) {
                                          rec = ec;
                                          got = n;
                                          from = f;
                                      });
        };
        receive();
        REQUIRE(!client.send_to(peer, bytes_of("hello")));
        run_until(io, [&] { return rec.has_value(); });
        REQUIRE(rec);
        CHECK(!*rec);
        CHECK(from == peer);
        CHECK(std::string(reinterpret_cast<const char*>(buf.data()), got) == "re:hello");

        std::optional<std::error_code> cec;
        std::uint16_t channel = 0;
        client.async_bind_channel(peer, [&](std::error_code ec, std::uint16_t ch) {
            cec = ec;
            channel = ch;
        });
        run_until(io, [&] { return cec.has_value(); });
        REQUIRE(cec);
        CHECK(!*cec);
        CHECK(channel == 0x4000);

        // ChannelData out and back (odd size: padded over TCP). Sent before the receive
        // is started: it waits in the receive queue.
        REQUIRE(!client.send_to(peer, bytes_of("odd")));
        run_until(io, [&] { return client.stats().core.received_channel_data == 1; });
        receive();
        run_until(io, [&] { return rec.has_value(); });
        REQUIRE(rec);
        CHECK(!*rec);
        CHECK(from == peer);
        CHECK(std::string(reinterpret_cast<const char*>(buf.data()), got) == "odd");
        CHECK(client.stats().core.sent_channel_data == 1);

        // One receive at a time.
        receive();
        std::optional<std::error_code> second;
        std::array<std::byte, 2> small{};
        client.async_receive_from(asio::buffer(small),
                                  [&](std::error_code ec, std::size_t n, endpoint) {
                                      second = ec;
                                      CHECK(n == 0);
                                  });
        run_until(io, [&] { return second.has_value(); });
        CHECK(*second == peerlink::error::operation_in_progress);
        REQUIRE(!client.send_to(peer, bytes_of("abcdef")));
        run_until(io, [&] { return rec.has_value(); });
        CHECK(!*rec);
        CHECK(got == 6);

        // A datagram larger than the buffer is cut and says so.
        std::optional<std::error_code> cut;
        std::size_t cut_size = 0;
        client.async_receive_from(asio::buffer(small),
                                  [&](std::error_code ec, std::size_t n, endpoint) {
                                      cut = ec;
                                      cut_size = n;
                                  });
        REQUIRE(!client.send_to(peer, bytes_of("abcdef")));
        run_until(io, [&] { return cut.has_value(); });
        CHECK(*cut == peerlink::error::buffer_too_small);
        CHECK(cut_size == 2);
        CHECK(std::memcmp(small.data(), "ab", 2) == 0);
        CHECK(client.stats().truncated == 1);

        std::optional<std::error_code> fec;
        client.async_refresh([&](std::error_code ec) { fec = ec; });
        run_until(io, [&] { return fec.has_value(); });
        REQUIRE(fec);
        CHECK(!*fec);

        // A receive pending across the deallocation ends with not_allocated.
        receive();
        std::optional<std::error_code> dec;
        client.async_deallocate([&](std::error_code ec) { dec = ec; });
        run_until(io, [&] { return dec.has_value() && rec.has_value(); });
        REQUIRE(dec);
        CHECK(!*dec);
        REQUIRE(rec);
        CHECK(*rec == turn_error::not_allocated);
        CHECK(client.state() == peerlink::turn::client_state::closed);
        CHECK(server.requests[stun::method::refresh] == 2); // one refresh, one release
        CHECK(client.send_to(peer, bytes_of("late")) == turn_error::not_allocated);
        client.close();
        io.run_for(50ms);
    }
}

TEST_CASE("net turn_client: errors: no server over TCP, silence, lost connection", "[turn][net]") {
    SECTION("TCP connect refused") {
        asio::io_context io;
        asio::ip::tcp::acceptor a(io, {asio::ip::make_address_v4("127.0.0.1"), 0});
        const endpoint nowhere{peerlink::ip_address::loopback_v4(), a.local_endpoint().port()};
        a.close(); // nothing listens there now
        auto client = make_client(io, true, nowhere);
        std::optional<std::error_code> aec;
        client.async_allocate([&](std::error_code ec, endpoint) { aec = ec; });
        run_until(io, [&] { return aec.has_value(); });
        REQUIRE(aec);
        CHECK(*aec == asio::error::connection_refused);
    }
    SECTION("UDP server that never answers: timeout after the retransmissions") {
        asio::io_context io;
        fake_turn_server server(io, false);
        server.silent = true;
        peerlink::turn::client_config cfg;
        cfg.rto = 20ms;
        cfg.max_requests = 3;
        cfg.final_wait_factor = 2;
        auto client = make_client(io, false, server.address, cfg);
        std::optional<std::error_code> aec;
        client.async_allocate([&](std::error_code ec, endpoint) { aec = ec; });
        run_until(io, [&] { return aec.has_value(); });
        REQUIRE(aec);
        CHECK(*aec == turn_error::timeout);
        CHECK(*aec == peerlink::condition::peer_unreachable);
        CHECK(server.requests[stun::method::allocate] == 3);
        CHECK(client.state() == peerlink::turn::client_state::idle);
    }
    SECTION("the TCP connection closes: pending receive gets connection_lost") {
        asio::io_context io;
        fake_turn_server server(io, true);
        auto client = make_client(io, true, server.address);
        std::optional<std::error_code> aec;
        client.async_allocate([&](std::error_code ec, endpoint) { aec = ec; });
        run_until(io, [&] { return aec.has_value(); });
        REQUIRE(aec);
        REQUIRE(!*aec);
        std::array<std::byte, 16> buf{};
        std::optional<std::error_code> rec;
        client.async_receive_from(asio::buffer(buf),
                                  [&](std::error_code ec, std::size_t, endpoint) { rec = ec; });
        server.drop_connection();
        run_until(io, [&] { return rec.has_value(); });
        REQUIRE(rec);
        CHECK(*rec == turn_error::connection_lost);
        CHECK(*rec == peerlink::condition::peer_unreachable);
        CHECK(client.state() == peerlink::turn::client_state::failed);
        std::optional<std::error_code> pec;
        client.async_create_permission(ep("203.0.113.5:1"), [&](std::error_code ec) { pec = ec; });
        run_until(io, [&] { return pec.has_value(); });
        CHECK(*pec == turn_error::connection_lost); // later operations fail at once
    }
}

TEST_CASE("net turn_client: cancellation and close", "[turn][net]") {
    asio::io_context io;
    fake_turn_server server(io, false);
    server.silent = true;
    auto client = make_client(io, false, server.address);

    // Per-operation cancellation of a receive.
    std::array<std::byte, 16> buf{};
    asio::cancellation_signal sig;
    std::optional<std::error_code> rec;
    client.async_receive_from(
        asio::buffer(buf),
        asio::bind_cancellation_slot(sig.slot(),
                                     [&](std::error_code ec, std::size_t, endpoint) { rec = ec; }));
    io.run_for(20ms);
    CHECK(!rec);
    sig.emit(asio::cancellation_type::terminal);
    run_until(io, [&] { return rec.has_value(); });
    REQUIRE(rec);
    CHECK(*rec == asio::error::operation_aborted);

    // close() ends a pending allocate against a server that never answers.
    std::optional<std::error_code> aec;
    client.async_allocate([&](std::error_code ec, endpoint) { aec = ec; });
    io.run_for(50ms);
    CHECK(!aec);
    CHECK(client.stats().core.requests == 1);
    client.close();
    run_until(io, [&] { return aec.has_value(); });
    REQUIRE(aec);
    CHECK(*aec == asio::error::operation_aborted);
    client.close(); // idempotent
    std::optional<std::error_code> again;
    client.async_allocate([&](std::error_code ec, endpoint) { again = ec; });
    run_until(io, [&] { return again.has_value(); });
    CHECK(*again == asio::error::operation_aborted);
}
