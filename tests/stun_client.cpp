#include <peerlink/proto/stun_client.hpp>

#include "catch.hpp"

#include <array>
#include <chrono>
#include <cstring>
#include <vector>

namespace stun = peerlink::stun;
using namespace std::chrono_literals;
using peerlink::endpoint;
using peerlink::stun_error;
using peerlink::time_point;
using stun::attribute_type;

namespace {

endpoint ep(const char* text) {
    std::error_code ec;
    return *endpoint::parse(text, ec);
}

const time_point t0 = time_point{} + 1h;

// A deterministic random source: 0, 1, 2, ... in every byte.
stun::client_config deterministic(stun::client_config c = {}) {
    c.random = [n = 0u](std::span<std::byte> out) mutable {
        for (auto& b : out)
            b = std::byte(static_cast<unsigned char>(n++));
    };
    return c;
}

// Builds a response to the request `req` (as the client sent it).
std::vector<std::byte> respond(std::span<const std::byte> req, const endpoint& mapped,
                               bool fingerprint = true, unsigned error = 0,
                               std::span<const std::byte> key = {}) {
    std::error_code ec;
    auto m = stun::decode(req, ec);
    REQUIRE(m);
    std::vector<std::byte> out(512);
    stun::message_writer w(out, m->get_method(),
                           error ? stun::message_class::error_response
                                 : stun::message_class::success_response,
                           m->transaction());
    if (error)
        w.add_error_code(error);
    else
        w.add_xor_address(attribute_type::xor_mapped_address, mapped);
    if (!key.empty())
        w.add_message_integrity(key);
    if (fingerprint)
        w.add_fingerprint();
    out.resize(w.finish(ec));
    REQUIRE(!ec);
    return out;
}

struct sent {
    std::vector<std::byte> bytes;
    endpoint to;
    time_point at;
};

// Drives the client on virtual time with no answer at all until `until`,
// recording every transmission.
std::vector<sent> run_silent(stun::client_core& c, time_point now, time_point until) {
    std::vector<sent> out;
    for (int guard = 0; guard < 1000; ++guard) {
        while (auto t = c.poll_transmit())
            out.push_back({{t->data.begin(), t->data.end()}, t->to, now});
        auto next = c.poll_timeout();
        if (!next || *next > until)
            break;
        now = *next;
        c.handle_timeout(now);
    }
    return out;
}

} // namespace

TEST_CASE("stun_client: retransmits at 0, RTO, 3 RTO, ... and times out after Rm * RTO",
          "[stun][stun_client]") {
    stun::client_core c(deterministic());
    const auto server = ep("192.0.2.10:3478");
    std::error_code ec;
    auto id = c.start_binding(server, t0, ec);
    REQUIRE(id);
    auto sends = run_silent(c, t0, t0 + 60s);
    REQUIRE(sends.size() == 7);
    const std::array<std::chrono::milliseconds, 7> want{0ms,    500ms,   1500ms, 3500ms,
                                                        7500ms, 15500ms, 31500ms};
    for (std::size_t i = 0; i < 7; ++i) {
        INFO(i);
        CHECK(sends[i].at - t0 == want[i]);
        CHECK(sends[i].to == server);
        CHECK(sends[i].bytes == sends[0].bytes); // the same request each time
    }
    auto r = c.poll_event();
    REQUIRE(r);
    CHECK(r->id == *id);
    CHECK(r->ec == stun_error::transaction_timeout);
    CHECK(r->ec == peerlink::condition::peer_unreachable);
    CHECK(r->requests_sent == 7);
    CHECK(r->elapsed == 39500ms);
    CHECK(!r->response);
    CHECK(!c.poll_event());
    CHECK(!c.poll_timeout());
    CHECK(c.stats().requests_sent == 7);
    CHECK(c.stats().retransmissions == 6);
    CHECK(c.stats().timeouts == 1);
    CHECK(c.active_transactions() == 0);
}

TEST_CASE("stun_client: configurable RTO, Rc and Rm; reliable transports send once",
          "[stun][stun_client]") {
    stun::client_config cfg;
    cfg.rto = 100ms;
    cfg.max_requests = 3;
    cfg.final_wait_factor = 4;
    stun::client_core c(deterministic(cfg));
    std::error_code ec;
    REQUIRE(c.start_binding(ep("192.0.2.10:3478"), t0, ec));
    auto sends = run_silent(c, t0, t0 + 10s);
    REQUIRE(sends.size() == 3);
    CHECK(sends[1].at - t0 == 100ms);
    CHECK(sends[2].at - t0 == 300ms);
    auto r = c.poll_event();
    REQUIRE(r);
    CHECK(r->elapsed == 700ms); // 300 ms + 4 * 100 ms

    stun::client_config rel;
    rel.reliable = true;
    stun::client_core tcp(deterministic(rel));
    REQUIRE(tcp.start_binding(ep("192.0.2.10:3478"), t0, ec));
    sends = run_silent(tcp, t0, t0 + 60s);
    CHECK(sends.size() == 1);
    r = tcp.poll_event();
    REQUIRE(r);
    CHECK(r->ec == stun_error::transaction_timeout);
    CHECK(r->elapsed == 39500ms);
}

TEST_CASE("stun_client: a response completes the transaction; strangers are ignored",
          "[stun][stun_client]") {
    stun::client_core c(deterministic());
    const auto server = ep("[2001:db8::1]:3478");
    const auto mapped = ep("[2001:db8::77]:40000");
    std::error_code ec;
    stun::binding_request br;
    br.software = "test";
    auto id = c.start_binding(server, t0, ec, br);
    REQUIRE(id);
    auto t = c.poll_transmit();
    REQUIRE(t);
    std::vector<std::byte> req(t->data.begin(), t->data.end());
    auto m = stun::decode(req, ec);
    REQUIRE(m);
    CHECK(m->transaction() == *id);
    CHECK(stun::decode_string(*m->find(attribute_type::software)) == "test");
    CHECK(!stun::verify_fingerprint(*m));

    // Another transaction's response, a corrupted one, a request, garbage: ignored.
    auto other = respond(req, mapped);
    other[8] ^= std::byte{1};
    CHECK_FALSE(c.handle_datagram(other, server, t0 + 10ms));
    CHECK(c.stats().ignored_unknown == 1);
    auto bad_fp = respond(req, mapped);
    bad_fp[bad_fp.size() - 1] ^= std::byte{1};
    CHECK(c.handle_datagram(bad_fp, server, t0 + 10ms));
    CHECK(c.stats().ignored_fingerprint == 1);
    CHECK_FALSE(c.handle_datagram(req, server, t0 + 10ms)); // a request, not for a client
    const std::array<std::byte, 4> junk{};
    CHECK_FALSE(c.handle_datagram(junk, server, t0 + 10ms));
    CHECK(!c.poll_event());

    // The real one, from another address (as after CHANGE-REQUEST): accepted.
    auto good = respond(req, mapped);
    const auto from = ep("[2001:db8::2]:3479");
    CHECK(c.handle_datagram(good, from, t0 + 30ms));
    auto r = c.poll_event();
    REQUIRE(r);
    CHECK(!r->ec);
    CHECK(r->id == *id);
    CHECK(r->to == server);
    CHECK(r->from == from);
    CHECK(r->rtt == 30ms);
    CHECK(r->requests_sent == 1);
    REQUIRE(r->response);
    auto b = stun::decode_binding_response(*r->response, ec);
    REQUIRE(b);
    CHECK(b->mapped == mapped);
    CHECK(!b->other_address);
    // A duplicate of the response (the transaction is over) is not for us any more.
    CHECK_FALSE(c.handle_datagram(good, from, t0 + 40ms));
    CHECK(!c.poll_transmit());
    CHECK(!c.poll_timeout());
}

TEST_CASE("stun_client: error responses complete with the code's error", "[stun][stun_client]") {
    stun::client_core c(deterministic());
    std::error_code ec;
    auto server = ep("192.0.2.1:3478");
    stun::binding_request br;
    br.change = {true, true};
    REQUIRE(c.start_binding(server, t0, ec, br));
    auto t = c.poll_transmit();
    REQUIRE(t);
    std::vector<std::byte> req(t->data.begin(), t->data.end());
    REQUIRE(c.handle_datagram(respond(req, {}, true, 420), server, t0 + 5ms));
    auto r = c.poll_event();
    REQUIRE(r);
    CHECK(r->ec == stun_error::unknown_attribute);
    REQUIRE(r->response);
    CHECK(r->response->is_error_response());
}

TEST_CASE("stun_client: with a key, responses must carry a valid MESSAGE-INTEGRITY",
          "[stun][stun_client]") {
    stun::client_core c(deterministic());
    const auto server = ep("192.0.2.1:3478");
    const auto key = stun::short_term_key("secret");
    std::error_code ec;
    auto id = c.new_transaction_id();
    std::array<std::byte, 128> buf;
    stun::message_writer w(buf, stun::method::binding, stun::message_class::request, id);
    w.add_string(attribute_type::username, "a:b").add_message_integrity(key).add_fingerprint();
    auto n = w.finish(ec);
    stun::transaction_options opts;
    opts.integrity_key = key;
    opts.user_data = 7;
    REQUIRE(!c.start(std::span(buf.data(), n), server, t0, opts));
    auto t = c.poll_transmit();
    REQUIRE(t);
    std::vector<std::byte> req(t->data.begin(), t->data.end());

    CHECK(c.handle_datagram(respond(req, ep("192.0.2.99:1")), server, t0)); // unsigned
    CHECK(c.handle_datagram(respond(req, ep("192.0.2.99:1"), true, 0, stun::short_term_key("x")),
                            server, t0)); // wrong key
    CHECK(c.stats().ignored_integrity == 2);
    CHECK(!c.poll_event());
    CHECK(c.handle_datagram(respond(req, ep("192.0.2.99:1"), true, 0, key), server, t0));
    auto r = c.poll_event();
    REQUIRE(r);
    CHECK(!r->ec);
    CHECK(r->user_data == 7);

    // A 401 cannot be signed by the server: accepted without MESSAGE-INTEGRITY.
    auto id2 = c.new_transaction_id();
    stun::message_writer w2(buf, stun::method::binding, stun::message_class::request, id2);
    n = w2.add_message_integrity(key).finish(ec);
    opts.user_data = 0;
    REQUIRE(!c.start(std::span(buf.data(), n), server, t0, opts));
    t = c.poll_transmit();
    REQUIRE(t);
    req.assign(t->data.begin(), t->data.end());
    CHECK(c.handle_datagram(respond(req, {}, true, 401), server, t0));
    r = c.poll_event();
    REQUIRE(r);
    CHECK(r->ec == stun_error::unauthorized);
    CHECK(r->ec == peerlink::condition::authentication_failed);
}

TEST_CASE("stun_client: concurrent transactions, limits, cancel and ids", "[stun][stun_client]") {
    stun::client_config cfg;
    cfg.max_transactions = 3;
    stun::client_core c(deterministic(cfg));
    std::error_code ec;
    const auto server = ep("192.0.2.1:3478");
    auto a = c.start_binding(server, t0, ec);
    auto b = c.start_binding(server, t0, ec);
    auto d = c.start_binding(server, t0, ec);
    REQUIRE((a && b && d));
    CHECK(*a != *b);
    CHECK(*b != *d);
    CHECK_FALSE(c.start_binding(server, t0, ec));
    CHECK(ec == stun_error::too_many_transactions);
    CHECK(c.active_transactions() == 3);

    std::vector<std::vector<std::byte>> reqs;
    while (auto t = c.poll_transmit())
        reqs.emplace_back(t->data.begin(), t->data.end());
    REQUIRE(reqs.size() == 3);
    // Starting the same request again is refused while it runs.
    CHECK(c.start(reqs[0], server, t0) == stun_error::duplicate_transaction);
    // A response, not a request, cannot start a transaction.
    CHECK(c.start(respond(reqs[0], server), server, t0) == std::errc::invalid_argument);

    CHECK(c.cancel(*b));
    CHECK_FALSE(c.cancel(*b));
    CHECK_FALSE(c.handle_datagram(respond(reqs[1], server), server, t0)); // b is gone
    // Responses in the reverse order come out in the order they finished.
    REQUIRE(c.handle_datagram(respond(reqs[2], ep("192.0.2.50:2")), server, t0 + 1ms));
    REQUIRE(c.handle_datagram(respond(reqs[0], ep("192.0.2.50:1")), server, t0 + 2ms));
    auto r1 = c.poll_event();
    REQUIRE(r1);
    CHECK(r1->id == *d);
    auto r2 = c.poll_event();
    REQUIRE(r2);
    CHECK(r2->id == *a);
    CHECK(stun::decode_binding_response(*r2->response, ec)->mapped == ep("192.0.2.50:1"));
    CHECK(!c.poll_event());
    CHECK(c.active_transactions() == 0);
    CHECK(c.stats().cancelled == 1);
    CHECK(c.stats().responses == 2);

    // The random source is used as given (the last four bytes carry a counter).
    stun::client_core e(deterministic());
    auto id = e.new_transaction_id();
    CHECK(id[0] == std::byte{0});
    CHECK(id[7] == std::byte{7});
    CHECK(id[8] == std::byte{8 ^ 1});
    // OpenSSL's generator by default: two ids differ.
    stun::client_core f;
    CHECK(f.new_transaction_id() != f.new_transaction_id());
}

TEST_CASE("stun_client: decode_binding_response reads RFC 5780 and RFC 3489 addresses",
          "[stun][stun_client]") {
    std::error_code ec;
    std::array<std::byte, 256> buf;
    stun::transaction_id id{};
    stun::message_writer w(buf, stun::method::binding, stun::message_class::success_response, id);
    w.add_address(attribute_type::mapped_address, ep("192.0.2.5:5"))
        .add_address(attribute_type::source_address, ep("192.0.2.1:3478"))
        .add_address(attribute_type::changed_address, ep("192.0.2.2:3479"));
    auto m = stun::decode(std::span(buf.data(), w.finish(ec)), ec);
    REQUIRE(m);
    auto b = stun::decode_binding_response(*m, ec);
    REQUIRE(b);
    CHECK(b->mapped == ep("192.0.2.5:5"));
    CHECK(b->response_origin == ep("192.0.2.1:3478"));
    CHECK(b->other_address == ep("192.0.2.2:3479"));

    stun::message_writer w2(buf, stun::method::binding, stun::message_class::success_response, id);
    w2.add_string(attribute_type::software, "no address");
    m = stun::decode(std::span(buf.data(), w2.finish(ec)), ec);
    REQUIRE(m);
    CHECK_FALSE(stun::decode_binding_response(*m, ec));
    CHECK(ec == stun_error::attribute_missing);
}
