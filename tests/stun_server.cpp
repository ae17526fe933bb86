#include <peerlink/proto/stun_server.hpp>

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
using stun::server_socket;

namespace {

endpoint ep(const char* text) {
    std::error_code ec;
    return *endpoint::parse(text, ec);
}

const time_point t0 = time_point{} + 1h;

stun::server_config config_5780() {
    stun::server_config c;
    c.primary = ep("192.0.2.1:3478");
    c.alternate = ep("192.0.2.2:3479");
    c.software = "peerlink-test";
    return c;
}

std::vector<std::byte> binding(stun::change_request change = {}, std::uint16_t response_port = 0,
                               std::size_t padding = 0, bool fingerprint = true) {
    std::vector<std::byte> out(2048);
    stun::transaction_id id{};
    id[3] = std::byte{0x33};
    stun::message_writer w(out, stun::method::binding, stun::message_class::request, id);
    if (change.change_ip || change.change_port)
        w.add_change_request(change);
    if (response_port)
        w.add_response_port(response_port);
    if (padding)
        w.add_padding(padding);
    if (fingerprint)
        w.add_fingerprint();
    std::error_code ec;
    out.resize(w.finish(ec));
    return out;
}

struct reply {
    std::vector<std::byte> bytes;
    endpoint to;
    server_socket via;
    std::optional<stun::message_view> view() const {
        std::error_code ec;
        return stun::decode(bytes, ec, {.allow_classic = true});
    }
};

std::optional<reply> take(stun::server_core& s) {
    auto t = s.poll_transmit();
    if (!t)
        return std::nullopt;
    return reply{{t->data.begin(), t->data.end()}, t->to, t->via};
}

} // namespace

TEST_CASE("stun_server: a plain server answers Binding requests", "[stun][stun_server]") {
    stun::server_config cfg;
    cfg.primary = ep("198.51.100.1:3478");
    stun::server_core server(cfg);
    CHECK_FALSE(server.rfc5780());
    const auto client = ep("203.0.113.5:40000");
    REQUIRE(server.handle_datagram(binding(), client));
    auto r = take(server);
    REQUIRE(r);
    CHECK(!take(server));
    CHECK(r->to == client);
    CHECK(r->via == server_socket::primary);
    auto m = r->view();
    REQUIRE(m);
    CHECK(m->is_success_response());
    CHECK(m->transaction()[3] == std::byte{0x33});
    CHECK(!stun::verify_fingerprint(*m));
    std::error_code ec;
    auto b = stun::decode_binding_response(*m, ec);
    REQUIRE(b);
    CHECK(b->mapped == client);
    CHECK(stun::decode_address(*m->find(attribute_type::mapped_address), ec) == client);
    CHECK(b->response_origin == cfg.primary);
    CHECK(!b->other_address);
    CHECK(stun::decode_string(*m->find(attribute_type::software)) == "peerlink");
    CHECK(server.stats().requests == 1);

    // Bound to the wildcard address: no RESPONSE-ORIGIN, it would be a lie.
    stun::server_config any;
    any.primary = ep("0.0.0.0:3478");
    any.mapped_address = false;
    any.software = "";
    stun::server_core s2(any);
    REQUIRE(s2.handle_datagram(binding(), client));
    r = take(s2);
    REQUIRE(r);
    m = r->view();
    CHECK_FALSE(m->has(attribute_type::response_origin));
    CHECK_FALSE(m->has(attribute_type::mapped_address));
    CHECK_FALSE(m->has(attribute_type::software));
    CHECK(m->has(attribute_type::xor_mapped_address));
}

TEST_CASE("stun_server: without an alternate address CHANGE-REQUEST gets 420",
          "[stun][stun_server]") {
    stun::server_config cfg;
    cfg.primary = ep("198.51.100.1:3478");
    stun::server_core server(cfg);
    // Through the client core, as a NAT discovery client would see it.
    stun::client_core client;
    std::error_code ec;
    stun::binding_request br;
    br.change = {false, true};
    auto id = client.start_binding(cfg.primary, t0, ec, br);
    REQUIRE(id);
    auto t = client.poll_transmit();
    REQUIRE(t);
    const auto from = ep("203.0.113.5:40000");
    REQUIRE(server.handle_datagram(t->data, from));
    auto r = take(server);
    REQUIRE(r);
    REQUIRE(client.handle_datagram(r->bytes, cfg.primary, t0 + 1ms));
    auto res = client.poll_event();
    REQUIRE(res);
    CHECK(res->ec == stun_error::unknown_attribute);
    auto ua = stun::decode_unknown_attributes(
        *res->response->find(attribute_type::unknown_attributes), ec);
    REQUIRE(ua);
    CHECK(ua->size() == 1);
    CHECK((*ua)[0] == attribute_type::change_request);
    CHECK(!stun::verify_fingerprint(*res->response));
    CHECK(server.stats().unknown_attributes == 1);
}

TEST_CASE("stun_server: RFC 5780 answers from the socket CHANGE-REQUEST names",
          "[stun][stun_server]") {
    auto cfg = config_5780();
    stun::server_core server(cfg);
    REQUIRE(server.rfc5780());
    CHECK(server.local_endpoint(server_socket::primary) == ep("192.0.2.1:3478"));
    CHECK(server.local_endpoint(server_socket::alternate_port) == ep("192.0.2.1:3479"));
    CHECK(server.local_endpoint(server_socket::alternate_address) == ep("192.0.2.2:3478"));
    CHECK(server.local_endpoint(server_socket::alternate_both) == ep("192.0.2.2:3479"));
    const auto client = ep("203.0.113.5:40000");
    std::error_code ec;
    for (unsigned on = 0; on < 4; ++on)
        for (unsigned change = 0; change < 4; ++change) {
            INFO("socket " << on << " change " << change);
            const auto in = static_cast<server_socket>(on);
            REQUIRE(server.handle_datagram(binding({(change & 2) != 0, (change & 1) != 0}), client,
                                           in));
            auto r = take(server);
            REQUIRE(r);
            const auto via = static_cast<server_socket>(on ^ change);
            CHECK(r->via == via);
            CHECK(r->to == client);
            auto m = r->view();
            REQUIRE(m);
            auto b = stun::decode_binding_response(*m, ec);
            REQUIRE(b);
            CHECK(b->mapped == client);
            CHECK(b->response_origin == server.local_endpoint(via));
            CHECK(b->other_address == server.local_endpoint(static_cast<server_socket>(on ^ 3)));
        }
    CHECK(server.stats().requests == 16);
}

TEST_CASE("stun_server: RESPONSE-PORT and PADDING", "[stun][stun_server]") {
    stun::server_core server(config_5780());
    const auto client = ep("203.0.113.5:40000");
    REQUIRE(server.handle_datagram(binding({}, 5555), client));
    auto r = take(server);
    REQUIRE(r);
    CHECK(r->to == ep("203.0.113.5:5555"));
    CHECK(r->view()->is_success_response());

    // The response is padded to the request's size.
    auto req = binding({}, 0, 500);
    REQUIRE(server.handle_datagram(req, client));
    r = take(server);
    REQUIRE(r);
    CHECK(r->bytes.size() == req.size());
    CHECK(r->view()->has(attribute_type::padding));
    CHECK(!stun::verify_fingerprint(*r->view()));
    // A tiny PADDING does not make the response larger than the request.
    req = binding({}, 0, 4);
    REQUIRE(server.handle_datagram(req, client));
    r = take(server);
    REQUIRE(r);
    CHECK(r->bytes.size() <= 132);

    // Both together: 400.
    REQUIRE(server.handle_datagram(binding({}, 5555, 8), client));
    r = take(server);
    REQUIRE(r);
    CHECK(r->to == client);
    std::error_code ec;
    auto code = stun::decode_error_code(*r->view()->find(attribute_type::error_code), ec);
    REQUIRE(code);
    CHECK(code->code == 400);
}

TEST_CASE("stun_server: unknown attributes, bad requests and what is dropped",
          "[stun][stun_server]") {
    stun::server_core server(config_5780());
    const auto client = ep("203.0.113.5:40000");
    std::error_code ec;
    stun::transaction_id id{};
    std::array<std::byte, 256> buf;

    // Unknown comprehension-required (0x7777, twice) -> 420 listing it once;
    // unknown comprehension-optional (0xc0de) -> ignored.
    {
        stun::message_writer w(buf, stun::method::binding, stun::message_class::request, id);
        const std::array<std::byte, 4> v{};
        w.add_bytes(static_cast<attribute_type>(0x7777), v)
            .add_bytes(static_cast<attribute_type>(0xc0de), v)
            .add_bytes(static_cast<attribute_type>(0x7777), v)
            .add_bytes(attribute_type::requested_transport, v);
        REQUIRE(server.handle_datagram(std::span(buf.data(), w.finish(ec)), client));
        auto r = take(server);
        REQUIRE(r);
        auto m = r->view();
        REQUIRE(m->is_error_response());
        CHECK(stun::decode_error_code(*m->find(attribute_type::error_code), ec)->code == 420);
        auto ua = stun::decode_unknown_attributes(*m->find(attribute_type::unknown_attributes), ec);
        REQUIRE(ua);
        CHECK(ua->size() == 2);
        CHECK(ua->contains(static_cast<attribute_type>(0x7777)));
        CHECK(ua->contains(attribute_type::requested_transport));
        CHECK_FALSE(ua->contains(static_cast<attribute_type>(0xc0de)));
    }
    {
        stun::message_writer w(buf, stun::method::binding, stun::message_class::request, id);
        const std::array<std::byte, 4> v{};
        w.add_bytes(static_cast<attribute_type>(0xc0de), v)
            .add_string(attribute_type::username, "user")
            .add_u32(attribute_type::priority, 1)
            .add_message_integrity(stun::short_term_key("pw"));
        REQUIRE(server.handle_datagram(std::span(buf.data(), w.finish(ec)), client));
        auto r = take(server);
        REQUIRE(r);
        CHECK(r->view()->is_success_response());
    }
    // Another method: 400.
    {
        stun::message_writer w(buf, stun::method::allocate, stun::message_class::request, id);
        w.add_requested_transport();
        REQUIRE(server.handle_datagram(std::span(buf.data(), w.finish(ec)), client));
        auto r = take(server);
        REQUIRE(r);
        auto m = r->view();
        CHECK(m->get_method() == stun::method::allocate);
        CHECK(stun::decode_error_code(*m->find(attribute_type::error_code), ec)->code == 400);
    }
    // Malformed attributes behind a sound header: 400. A bad CHANGE-REQUEST: 400.
    {
        auto req = binding({}, 0, 8, false);
        req[22] = std::byte{0x10}; // PADDING's length runs past the end
        REQUIRE(server.handle_datagram(req, client));
        auto r = take(server);
        REQUIRE(r);
        CHECK(stun::decode_error_code(*r->view()->find(attribute_type::error_code), ec)->code ==
              400);
        stun::message_writer w(buf, stun::method::binding, stun::message_class::request, id);
        const std::array<std::byte, 2> two{};
        w.add_bytes(attribute_type::change_request, two);
        REQUIRE(server.handle_datagram(std::span(buf.data(), w.finish(ec)), client));
        r = take(server);
        REQUIRE(r);
        CHECK(stun::decode_error_code(*r->view()->find(attribute_type::error_code), ec)->code ==
              400);
    }
    CHECK(server.stats().bad_requests == 3);
    CHECK(server.stats().unknown_attributes == 1);

    // Dropped: truncated, a response, an indication, a bad fingerprint; not STUN at all.
    auto req = binding();
    CHECK(server.handle_datagram(std::span(req.data(), req.size() - 4), client));
    auto fp = req;
    fp.back() ^= std::byte{1};
    CHECK(server.handle_datagram(fp, client));
    {
        stun::message_writer w(buf, stun::method::binding, stun::message_class::success_response,
                               id);
        CHECK(server.handle_datagram(std::span(buf.data(), w.finish(ec)), client));
        stun::message_writer w2(buf, stun::method::binding, stun::message_class::indication, id);
        CHECK(server.handle_datagram(std::span(buf.data(), w2.finish(ec)), client));
    }
    const std::array<std::byte, 24> junk{std::byte{0xc1}};
    CHECK_FALSE(server.handle_datagram(junk, client));
    CHECK(!take(server));
    CHECK(server.stats().dropped_malformed == 1);
    CHECK(server.stats().dropped_fingerprint == 1);
    CHECK(server.stats().dropped_not_request == 1);
    CHECK(server.stats().indications == 1);
}

TEST_CASE("stun_server: RFC 3489 requests get RFC 3489 answers", "[stun][stun_server]") {
    stun::server_core server(config_5780());
    const auto client = ep("203.0.113.5:40000");
    std::array<std::byte, 16> classic_id;
    for (std::size_t i = 0; i < 16; ++i)
        classic_id[i] = std::byte(static_cast<unsigned char>(0xa0 + i));
    std::array<std::byte, 64> buf;
    stun::message_writer w(buf, 0x0001, classic_id);
    w.add_change_request({true, false});
    std::error_code ec;
    REQUIRE(server.handle_datagram(std::span(buf.data(), w.finish(ec)), client));
    auto r = take(server);
    REQUIRE(r);
    CHECK(r->via == server_socket::alternate_address);
    auto m = r->view();
    REQUIRE(m);
    CHECK(m->is_classic());
    CHECK(std::equal(classic_id.begin(), classic_id.end(), m->classic_transaction().begin()));
    CHECK_FALSE(m->has(attribute_type::xor_mapped_address));
    CHECK_FALSE(m->has(attribute_type::fingerprint));
    auto b = stun::decode_binding_response(*m, ec);
    REQUIRE(b);
    CHECK(b->mapped == client);
    CHECK(b->response_origin == ep("192.0.2.2:3478"));
    CHECK(b->other_address == ep("192.0.2.2:3479"));

    auto strict = config_5780();
    strict.answer_classic = false;
    stun::server_core s2(strict);
    CHECK_FALSE(s2.handle_datagram(std::span(buf.data(), w.size()), client));
    CHECK(!take(s2));
}

TEST_CASE("stun_server: IPv6, a full queue, and invalid configurations", "[stun][stun_server]") {
    stun::server_config cfg;
    cfg.primary = ep("[2001:db8::1]:3478");
    cfg.alternate = ep("[2001:db8::2]:3479");
    cfg.transmit_slots = 2;
    stun::server_core server(cfg);
    REQUIRE(server.rfc5780());
    const auto client = ep("[2001:db8:1::5]:40000");
    for (int i = 0; i < 3; ++i)
        REQUIRE(server.handle_datagram(binding({true, true}), client));
    CHECK(server.pending() == 2);
    CHECK(server.stats().dropped_queue_full == 1);
    auto r = take(server);
    REQUIRE(r);
    std::error_code ec;
    auto b = stun::decode_binding_response(*r->view(), ec);
    REQUIRE(b);
    CHECK(b->mapped == client);
    CHECK(b->response_origin == ep("[2001:db8::2]:3479"));
    CHECK(r->via == server_socket::alternate_both);

    auto bad = [](const char* p, const char* a) {
        stun::server_config c;
        c.primary = ep(p);
        c.alternate = ep(a);
        return stun::server_core::check_config(c);
    };
    CHECK(bad("192.0.2.1:3478", "[2001:db8::2]:3479") == peerlink::error::invalid_config);
    CHECK(bad("192.0.2.1:3478", "192.0.2.1:3479") == peerlink::error::invalid_config);
    CHECK(bad("192.0.2.1:3478", "192.0.2.2:3478") == peerlink::error::invalid_config);
    CHECK(bad("0.0.0.0:3478", "192.0.2.2:3479") == peerlink::error::invalid_config);
    CHECK(!bad("192.0.2.1:3478", "192.0.2.2:3479"));
    stun::server_config c;
    c.primary = ep("192.0.2.1:3478");
    c.alternate = ep("192.0.2.1:3479");
    stun::server_core degraded(c);
    CHECK_FALSE(degraded.rfc5780());
}
