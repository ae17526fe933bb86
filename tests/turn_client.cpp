#include <peerlink/proto/turn_client.hpp>

#include "catch.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace stun = peerlink::stun;
namespace turn = peerlink::turn;
using namespace std::chrono_literals;
using peerlink::endpoint;
using peerlink::time_point;
using peerlink::turn_error;
using stun::attribute_type;
using stun::method;

namespace {

endpoint ep(const char* text) {
    std::error_code ec;
    return *endpoint::parse(text, ec);
}

std::vector<std::byte> bytes_of(std::string_view s) {
    std::vector<std::byte> v(s.size());
    std::memcpy(v.data(), s.data(), s.size());
    return v;
}

const time_point t0 = time_point{} + 1h;

// A scripted TURN server built from the STUN codec: long-term credentials with a 401
// challenge, 438 on a stale nonce, allocations, permissions, channels, and a relay
// that records what the client sends to peers.
struct fake_server {
    endpoint address = ep("192.0.2.1:3478");
    endpoint mapped = ep("198.51.100.7:40000");
    endpoint relayed = ep("192.0.2.1:50000");
    std::string realm = "peerlink.test";
    std::string nonce = "nonce-1";
    std::string user = "alice";
    std::string password = "secret";
    unsigned max_lifetime = 3600;
    stun::framing framing = stun::framing::datagram;
    // RFC 8489 password algorithms: announce [sha256, md5] with a cookie nonce.
    bool password_algorithms = false;
    bool sign_errors = true;

    // Scripted failures.
    int stale_next = 0;                    // the next n credentialed requests get 438
    std::map<method, unsigned> errors;     // method -> error code for every request of it
    std::map<method, unsigned> error_once; // method -> error code, once

    struct request {
        method m{};
        bool credentialed = false;
        bool integrity_ok = false;
        bool fingerprint_ok = false;
        std::optional<std::uint32_t> lifetime;
        std::optional<endpoint> peer;
        std::optional<std::uint16_t> channel;
        std::optional<std::uint8_t> transport;
        std::string nonce, username, realm;
        std::optional<stun::password_algorithm> algorithm;
        bool echoed_algorithms = false;
        time_point at;
        stun::transaction_id id{};
    };
    std::vector<request> requests;
    struct relayed_data {
        endpoint peer;
        std::vector<std::byte> data;
        bool via_channel = false;
    };
    std::vector<relayed_data> to_peers;
    std::set<std::uint16_t> channel_frames_unpadded; // stream ChannelData without padding
    bool allocated = false;
    stun::transaction_id allocation_id{};
    std::map<std::uint16_t, endpoint> channels;
    std::set<peerlink::ip_address> permissions;
    std::size_t malformed = 0;

    stun::long_term_key_value key() const {
        std::error_code ec;
        auto k = stun::long_term_key(user, realm, password, ec,
                                     password_algorithms ? stun::password_algorithm::sha256
                                                         : stun::password_algorithm::md5);
        REQUIRE(k);
        return *k;
    }

    std::vector<std::byte> data_indication(const endpoint& peer, std::span<const std::byte> d,
                                           std::uint8_t id_seed = 7) const {
        std::vector<std::byte> out(d.size() + 64);
        stun::transaction_id id{};
        id.fill(std::byte{id_seed});
        stun::message_writer w(out, method::data, stun::message_class::indication, id);
        w.add_xor_address(attribute_type::xor_peer_address, peer)
            .add_bytes(attribute_type::data, d);
        std::error_code ec;
        out.resize(w.finish(ec));
        REQUIRE(!ec);
        return out;
    }

    std::vector<std::byte> channel_data(std::uint16_t ch, std::span<const std::byte> d) const {
        std::vector<std::byte> out(d.size() + 8);
        std::error_code ec;
        out.resize(stun::encode_channel_data(out, ch, d, ec, framing));
        REQUIRE(!ec);
        return out;
    }

    // The answer to one frame from the client (empty for indications and ChannelData).
    std::vector<std::byte> handle(std::span<const std::byte> in, time_point now) {
        std::error_code ec;
        if (stun::classify_packet(in) == stun::packet_kind::channel_data) {
            auto d = stun::decode_channel_data(in, ec, framing);
            REQUIRE(d);
            if (framing == stun::framing::stream && in.size() % 4 != 0)
                channel_frames_unpadded.insert(d->channel);
            auto it = channels.find(d->channel);
            REQUIRE(it != channels.end());
            to_peers.push_back({it->second, {d->data.begin(), d->data.end()}, true});
            return {};
        }
        auto m = stun::decode(in, ec);
        if (!m) {
            ++malformed;
            return {};
        }
        if (m->is_indication()) {
            REQUIRE(m->get_method() == method::send);
            auto pa = m->find(attribute_type::xor_peer_address);
            auto da = m->find(attribute_type::data);
            REQUIRE(pa);
            REQUIRE(da);
            auto peer = stun::decode_xor_address(*pa, *m, ec);
            REQUIRE(peer);
            to_peers.push_back({*peer, {da->value.begin(), da->value.end()}, false});
            return {};
        }
        REQUIRE(m->is_request());
        request r;
        r.m = m->get_method();
        r.at = now;
        r.id = m->transaction();
        r.fingerprint_ok = !stun::verify_fingerprint(*m);
        if (auto a = m->find(attribute_type::lifetime))
            r.lifetime = stun::decode_u32(*a, ec);
        if (auto a = m->find(attribute_type::xor_peer_address))
            r.peer = stun::decode_xor_address(*a, *m, ec);
        if (auto a = m->find(attribute_type::channel_number))
            r.channel = stun::decode_channel_number(*a, ec);
        if (auto a = m->find(attribute_type::requested_transport))
            r.transport = stun::decode_requested_transport(*a, ec);
        if (auto a = m->find(attribute_type::username))
            r.username = std::string(stun::decode_string(*a));
        if (auto a = m->find(attribute_type::realm))
            r.realm = std::string(stun::decode_string(*a));
        if (auto a = m->find(attribute_type::nonce))
            r.nonce = std::string(stun::decode_string(*a));
        if (auto a = m->find(attribute_type::password_algorithm))
            if (auto v = stun::decode_password_algorithm(*a, ec))
                r.algorithm = v->algorithm;
        r.echoed_algorithms = m->has(attribute_type::password_algorithms);
        r.credentialed = m->integrity_offset() != 0;
        const auto k = key();
        r.integrity_ok = r.credentialed && !stun::verify_integrity(*m, k.span());
        requests.push_back(r);

        auto respond = [&](unsigned code, bool sign, auto&& attrs) {
            std::vector<std::byte> out(1024);
            stun::message_writer w(out, r.m,
                                   code ? stun::message_class::error_response
                                        : stun::message_class::success_response,
                                   r.id);
            if (code)
                w.add_error_code(code);
            attrs(w);
            if (sign)
                w.add_message_integrity(k.span());
            w.add_fingerprint();
            out.resize(w.finish(ec));
            REQUIRE(!ec);
            return out;
        };
        auto challenge = [&](unsigned code) {
            return respond(code, false, [&](stun::message_writer& w) {
                w.add_string(attribute_type::realm, realm).add_string(attribute_type::nonce, nonce);
                if (password_algorithms) {
                    const std::array<stun::password_algorithm_entry, 2> algs{
                        stun::password_algorithm_entry{stun::password_algorithm::sha256, {}},
                        stun::password_algorithm_entry{stun::password_algorithm::md5, {}}};
                    w.add_password_algorithms(algs);
                }
            });
        };
        auto none = [](stun::message_writer&) {
        };

        if (!r.credentialed || r.username != user || !r.integrity_ok)
            return challenge(401);
        if (r.nonce != nonce || stale_next > 0) {
            if (stale_next > 0) {
                --stale_next;
                nonce = (password_algorithms ? "obMatJos2AAAB" : "nonce-") +
                        std::to_string(requests.size());
            }
            return challenge(438);
        }
        if (auto it = error_once.find(r.m); it != error_once.end()) {
            const unsigned code = it->second;
            error_once.erase(it);
            return respond(code, sign_errors, none);
        }
        if (auto it = errors.find(r.m); it != errors.end())
            return respond(it->second, sign_errors, none);

        switch (r.m) {
        case method::allocate: {
            // A retransmission of the request that made the allocation gets its answer
            // again (RFC 8656 §7.2); any other Allocate on this 5-tuple is a mismatch.
            if (allocated && r.id != allocation_id)
                return respond(437, true, none);
            allocated = true;
            allocation_id = r.id;
            const std::uint32_t life = std::min(r.lifetime.value_or(600), max_lifetime);
            return respond(0, true, [&](stun::message_writer& w) {
                w.add_xor_address(attribute_type::xor_relayed_address, relayed)
                    .add_u32(attribute_type::lifetime, life)
                    .add_xor_address(attribute_type::xor_mapped_address, mapped);
            });
        }
        case method::refresh: {
            if (!allocated)
                return respond(437, true, none);
            const std::uint32_t life = std::min(r.lifetime.value_or(600), max_lifetime);
            if (life == 0) {
                allocated = false;
                channels.clear();
                permissions.clear();
            }
            return respond(0, true, [&](stun::message_writer& w) {
                w.add_u32(attribute_type::lifetime, life);
            });
        }
        case method::create_permission:
            REQUIRE(r.peer);
            permissions.insert(r.peer->address);
            return respond(0, true, none);
        case method::channel_bind:
            REQUIRE(r.peer);
            REQUIRE(r.channel);
            if (!stun::is_valid_channel(*r.channel))
                return respond(400, false, none);
            channels[*r.channel] = *r.peer;
            permissions.insert(r.peer->address);
            return respond(0, true, none);
        default:
            return respond(400, false, none);
        }
    }

    std::size_t count(method m) const {
        return static_cast<std::size_t>(std::count_if(requests.begin(), requests.end(),
                                                      [&](const request& r) { return r.m == m; }));
    }
    std::vector<time_point> times(method m, std::optional<std::uint32_t> lifetime = {}) const {
        std::vector<time_point> out;
        for (const auto& r : requests)
            if (r.m == m && r.credentialed && (!lifetime || r.lifetime == lifetime))
                out.push_back(r.at);
        return out;
    }
};

// An event with its data copied out of the core.
struct seen {
    turn::client_event e;
    std::vector<std::byte> data;
    time_point at;
};

// Drives a client core and the fake server on virtual time.
struct harness {
    fake_server server;
    turn::client_core core;
    time_point now = t0;
    std::vector<seen> events;
    std::vector<std::vector<std::byte>> sent; // every frame the client sent
    // Return true to lose the server's answer to this request.
    std::function<bool(const fake_server::request&)> lose_answer;
    // Over TCP: the largest chunk handed to handle_stream_bytes (0: everything at once).
    std::size_t chunk = 0;
    std::vector<std::byte> stream_in; // server -> client bytes not yet given to the core

    static turn::client_config config(stun::framing f, turn::client_config c = {}) {
        c.server = ep("192.0.2.1:3478");
        c.framing = f;
        c.username = "alice";
        c.password = "secret";
        c.software = "peerlink test";
        c.random = [n = 0u](std::span<std::byte> out) mutable {
            for (auto& b : out)
                b = std::byte(static_cast<unsigned char>(n++));
        };
        return c;
    }

    explicit harness(stun::framing f = stun::framing::datagram, turn::client_config c = {})
        : core(config(f, std::move(c))) {
        server.framing = f;
    }

    void record_events() {
        while (auto e = core.poll_event()) {
            seen s{*e, {}, now};
            if (auto* d = std::get_if<turn::data_received_event>(&*e))
                s.data.assign(d->data.begin(), d->data.end());
            events.push_back(std::move(s));
        }
    }

    void deliver(std::span<const std::byte> bytes) {
        if (core.config().framing == stun::framing::datagram) {
            CHECK(core.handle_datagram(bytes, server.address, now));
            record_events();
            return;
        }
        stream_in.insert(stream_in.end(), bytes.begin(), bytes.end());
        for (int guard = 0; guard < 1000000 && !stream_in.empty(); ++guard) {
            const std::size_t take =
                chunk == 0 ? stream_in.size() : std::min(chunk, stream_in.size());
            const std::size_t n =
                core.handle_stream_bytes(std::span<const std::byte>(stream_in.data(), take), now);
            stream_in.erase(stream_in.begin(), stream_in.begin() + static_cast<std::ptrdiff_t>(n));
            record_events();
            if (n == 0)
                break;
        }
    }

    void pump() {
        for (int guard = 0; guard < 10000; ++guard) {
            record_events();
            auto t = core.poll_transmit();
            if (!t)
                return;
            CHECK(t->to == server.address);
            sent.emplace_back(t->data.begin(), t->data.end());
            const auto requests_before = server.requests.size();
            auto answer = server.handle(sent.back(), now);
            if (answer.empty())
                continue;
            if (lose_answer && server.requests.size() > requests_before &&
                lose_answer(server.requests.back()))
                continue;
            deliver(answer);
        }
        FAIL("pump did not settle");
    }

    // Runs every timer due up to `until`, then sets the clock to `until`.
    void run_until(time_point until) {
        pump();
        for (int guard = 0; guard < 100000; ++guard) {
            auto next = core.poll_timeout();
            if (!next || *next > until)
                break;
            REQUIRE(guard < 99999);
            now = std::max(now, *next);
            core.handle_timeout(now);
            pump();
        }
        now = std::max(now, until);
    }
    void run_for(peerlink::duration d) { run_until(now + d); }

    template <class E>
    std::vector<E> all() const {
        std::vector<E> out;
        for (const auto& s : events)
            if (auto* e = std::get_if<E>(&s.e))
                out.push_back(*e);
        return out;
    }
    template <class E>
    std::optional<E> last() const {
        for (auto it = events.rbegin(); it != events.rend(); ++it)
            if (auto* e = std::get_if<E>(&it->e))
                return *e;
        return std::nullopt;
    }

    // Allocates and checks it worked.
    void allocate() {
        REQUIRE(!core.allocate(now));
        pump();
        REQUIRE(core.state() == turn::client_state::allocated);
    }
};

} // namespace

TEST_CASE("turn_client: Allocate without credentials, 401, then with USERNAME/REALM/NONCE/MI",
          "[turn]") {
    harness h;
    REQUIRE(!h.core.allocate(h.now));
    CHECK(h.core.state() == turn::client_state::allocating);
    h.pump();

    REQUIRE(h.server.requests.size() == 2);
    const auto& first = h.server.requests[0];
    CHECK(first.m == method::allocate);
    CHECK_FALSE(first.credentialed);
    CHECK(first.username.empty());
    CHECK(first.transport == std::uint8_t{17});
    CHECK(first.lifetime == std::uint32_t{600});
    CHECK(first.fingerprint_ok);
    const auto& second = h.server.requests[1];
    CHECK(second.m == method::allocate);
    CHECK(second.credentialed);
    CHECK(second.integrity_ok); // MD5("alice:peerlink.test:secret") keyed HMAC-SHA1
    CHECK(second.username == "alice");
    CHECK(second.realm == "peerlink.test");
    CHECK(second.nonce == "nonce-1");
    CHECK(second.transport == std::uint8_t{17});
    CHECK(second.fingerprint_ok);
    CHECK(second.id != first.id);

    auto a = h.last<turn::allocated_event>();
    REQUIRE(a);
    CHECK(a->relayed == h.server.relayed);
    CHECK(a->mapped == h.server.mapped);
    CHECK(a->lifetime == 600s);
    CHECK(h.core.state() == turn::client_state::allocated);
    CHECK(h.core.relayed() == h.server.relayed);
    CHECK(h.core.mapped() == h.server.mapped);
    CHECK(h.core.realm() == "peerlink.test");
    CHECK(h.core.expires_at() == t0 + 600s);
    CHECK(h.core.stats().auth_challenges == 1);
    CHECK(h.core.stats().requests == 2);
    CHECK(h.core.allocate(h.now) == turn_error::already_allocated);
}

TEST_CASE("turn_client: wrong password gives turn_error::unauthorized after one retry", "[turn]") {
    turn::client_config c;
    harness h(stun::framing::datagram, c);
    h.server.password = "other"; // the server's idea of alice's password differs
    REQUIRE(!h.core.allocate(h.now));
    h.pump();
    REQUIRE(h.server.requests.size() == 2); // challenge, one credentialed retry, no more
    auto e = h.last<turn::error_event>();
    REQUIRE(e);
    CHECK(e->op == turn::operation::allocate);
    CHECK(e->ec == turn_error::unauthorized);
    CHECK(e->ec == peerlink::condition::authentication_failed);
    CHECK(e->code == 401);
    CHECK_FALSE(e->fatal);
    CHECK(e->ec.message().find("credentials") != std::string::npos);
    CHECK(h.core.state() == turn::client_state::idle);
    CHECK(!h.last<turn::allocated_event>());
    h.run_for(60s); // nothing more happens
    CHECK(h.server.requests.size() == 2);
    CHECK(!h.core.poll_timeout());
}

TEST_CASE("turn_client: no user name configured gives missing_credentials", "[turn]") {
    turn::client_config c = harness::config(stun::framing::datagram);
    c.username.clear();
    turn::client_core core(c);
    fake_server server;
    REQUIRE(!core.allocate(t0));
    auto t = core.poll_transmit();
    REQUIRE(t);
    auto answer = server.handle(t->data, t0);
    REQUIRE(core.handle_datagram(answer, server.address, t0));
    auto e = core.poll_event();
    REQUIRE(e);
    auto* err = std::get_if<turn::error_event>(&*e);
    REQUIRE(err);
    CHECK(err->ec == turn_error::missing_credentials);
    CHECK(err->ec == peerlink::condition::authentication_failed);
    CHECK(!core.poll_transmit());
}

TEST_CASE("turn_client: 438 stale nonce is retried with the new nonce, a bounded number of times",
          "[turn]") {
    SECTION("on Allocate") {
        harness h;
        h.server.stale_next = 1;
        h.allocate();
        REQUIRE(h.server.requests.size() == 3); // 401, 438, success
        CHECK(h.server.requests[1].nonce == "nonce-1");
        CHECK(h.server.requests[2].nonce == "nonce-2");
        CHECK(h.server.requests[2].integrity_ok);
        CHECK(h.core.stats().stale_nonces == 1);
    }
    SECTION("on CreatePermission and Refresh later") {
        harness h;
        h.allocate();
        h.server.stale_next = 2;
        REQUIRE(!h.core.create_permission(ep("203.0.113.5:7000"), h.now));
        h.pump();
        CHECK(h.last<turn::permission_created_event>());
        CHECK(h.server.count(method::create_permission) == 3);
        CHECK(h.server.requests.back().nonce == h.server.nonce);
        REQUIRE(!h.core.refresh(h.now));
        h.pump();
        CHECK(h.last<turn::refreshed_event>());
        CHECK(h.core.stats().stale_nonces == 2);
    }
    SECTION("a server that never accepts its nonces") {
        harness h;
        h.allocate();
        h.server.stale_next = 100;
        REQUIRE(!h.core.create_permission(ep("203.0.113.5:7000"), h.now));
        h.pump();
        auto e = h.last<turn::error_event>();
        REQUIRE(e);
        CHECK(e->op == turn::operation::create_permission);
        CHECK(e->ec == turn_error::stale_nonce);
        CHECK(e->peer == ep("203.0.113.5:7000"));
        CHECK(h.server.count(method::create_permission) == 4); // 1 + 3 retries
        CHECK_FALSE(h.core.has_permission(ep("203.0.113.5:1")));
    }
}

TEST_CASE("turn_client: requests in flight when the nonce expires are all retried", "[turn]") {
    harness h;
    h.allocate();
    // Six CreatePermissions leave with nonce-1; the server's nonce expires before it
    // reads them, so all six get a 438 naming nonce-2.
    for (int i = 0; i < 6; ++i) {
        const std::string peer = "203.0.113." + std::to_string(i + 1) + ":7000";
        REQUIRE(!h.core.create_permission(ep(peer.c_str()), h.now));
    }
    h.server.nonce = "nonce-2";
    h.pump();
    CHECK(h.all<turn::permission_created_event>().size() == 6);
    CHECK(!h.last<turn::error_event>());
    CHECK(h.server.count(method::create_permission) == 12);
    CHECK(h.core.stats().stale_nonces == 1); // one new nonce, taken once
}

TEST_CASE("turn_client: RFC 8489 PASSWORD-ALGORITHMS: picks SHA-256 and echoes both attributes",
          "[turn]") {
    harness h;
    h.server.password_algorithms = true;
    h.server.nonce = "obMatJos2AAABnonce";
    h.allocate();
    REQUIRE(h.server.requests.size() == 2);
    const auto& r = h.server.requests[1];
    CHECK(r.integrity_ok); // keyed with SHA-256("alice:peerlink.test:secret")
    CHECK(r.algorithm == stun::password_algorithm::sha256);
    CHECK(r.echoed_algorithms);
}

TEST_CASE("turn_client: Allocate errors map to turn_error and conditions", "[turn]") {
    struct row {
        unsigned code;
        turn_error want;
        peerlink::condition cond;
    };
    for (auto r :
         {row{486, turn_error::quota_reached, peerlink::condition::nat_traversal_failed},
          row{508, turn_error::insufficient_capacity, peerlink::condition::nat_traversal_failed},
          row{437, turn_error::allocation_mismatch, peerlink::condition::nat_traversal_failed},
          row{442, turn_error::unsupported_transport, peerlink::condition::nat_traversal_failed},
          row{403, turn_error::forbidden, peerlink::condition::authentication_failed},
          row{500, turn_error::request_rejected, peerlink::condition::nat_traversal_failed}}) {
        INFO(r.code);
        harness h;
        h.server.error_once[method::allocate] = r.code;
        REQUIRE(!h.core.allocate(h.now));
        h.pump();
        auto e = h.last<turn::error_event>();
        REQUIRE(e);
        CHECK(e->op == turn::operation::allocate);
        CHECK(e->code == r.code);
        CHECK(e->ec == r.want);
        CHECK(e->ec == r.cond);
        CHECK(h.core.state() == turn::client_state::idle);
        // The client may try again; this time the server grants it.
        h.allocate();
        CHECK(h.last<turn::allocated_event>());
    }
}

TEST_CASE("turn_client: an unsigned error response to a credentialed request is ignored",
          "[turn]") {
    harness h;
    h.allocate();
    h.server.sign_errors = false;
    h.server.errors[method::create_permission] = 403;
    REQUIRE(!h.core.create_permission(ep("203.0.113.5:7000"), h.now));
    h.pump();
    CHECK(!h.last<turn::error_event>()); // a forged 403 cannot end the transaction
    h.run_for(40s);
    auto e = h.last<turn::error_event>();
    REQUIRE(e);
    CHECK(e->ec == turn_error::timeout); // it ran until its timeout instead
    CHECK(e->ec == peerlink::condition::peer_unreachable);
    CHECK(h.core.stats().retransmissions == 6);
    // A signed one is taken.
    h.server.sign_errors = true;
    REQUIRE(!h.core.create_permission(ep("203.0.113.5:7000"), h.now));
    h.pump();
    e = h.last<turn::error_event>();
    REQUIRE(e);
    CHECK(e->ec == turn_error::forbidden);
    CHECK(e->code == 403);
}

TEST_CASE("turn_client: no answer at all times out after 39.5 s with 7 requests over UDP",
          "[turn]") {
    harness h;
    h.lose_answer = [](const fake_server::request&) {
        return true;
    };
    REQUIRE(!h.core.allocate(h.now));
    h.run_for(39s);
    CHECK(!h.last<turn::error_event>());
    h.run_for(1s);
    auto e = h.last<turn::error_event>();
    REQUIRE(e);
    CHECK(e->ec == turn_error::timeout);
    CHECK(e->ec == peerlink::condition::peer_unreachable);
    REQUIRE(h.server.requests.size() == 7);
    const std::array<std::chrono::milliseconds, 7> want{0ms,    500ms,   1500ms, 3500ms,
                                                        7500ms, 15500ms, 31500ms};
    for (std::size_t i = 0; i < 7; ++i)
        CHECK(h.server.requests[i].at - t0 == want[i]);
    CHECK(h.events.back().at - t0 == 39500ms);
}

TEST_CASE("turn_client: lost responses are retransmitted over UDP, never over TCP", "[turn]") {
    SECTION("UDP: the first two answers to each Allocate are lost") {
        harness h;
        std::map<stun::transaction_id, int> seen_ids;
        h.lose_answer = [&](const fake_server::request& r) {
            return ++seen_ids[r.id] <= 2;
        };
        REQUIRE(!h.core.allocate(h.now));
        h.run_for(10s);
        REQUIRE(h.last<turn::allocated_event>());
        REQUIRE(h.server.requests.size() == 6); // 3 unauthenticated, 3 authenticated
        CHECK(h.server.requests[0].id == h.server.requests[2].id);
        CHECK(h.server.requests[1].at - t0 == 500ms);
        CHECK(h.server.requests[2].at - t0 == 1500ms);
        CHECK(h.server.requests[3].at - t0 == 1500ms); // the retry with credentials, at once
        CHECK(h.server.requests[5].at - t0 == 3000ms);
        CHECK(h.core.stats().retransmissions == 4);
    }
    SECTION("TCP: one request, failure after Ti = 39.5 s") {
        harness h(stun::framing::stream);
        h.lose_answer = [](const fake_server::request&) {
            return true;
        };
        REQUIRE(!h.core.allocate(h.now));
        h.run_for(39s);
        CHECK(h.server.requests.size() == 1);
        CHECK(!h.last<turn::error_event>());
        h.run_for(1s);
        auto e = h.last<turn::error_event>();
        REQUIRE(e);
        CHECK(e->ec == turn_error::timeout);
        CHECK(h.events.back().at - t0 == 39500ms);
        CHECK(h.server.requests.size() == 1);
        CHECK(h.core.stats().retransmissions == 0);
    }
}

TEST_CASE("turn_client: refreshes at 80% of the granted lifetime, keeps the allocation for hours",
          "[turn]") {
    harness h;
    h.server.max_lifetime = 300; // the server grants less than the 600 s asked
    h.allocate();
    CHECK(h.last<turn::allocated_event>()->lifetime == 300s);
    h.run_until(t0 + 3h);
    CHECK(h.core.state() == turn::client_state::allocated);
    const auto refreshes = h.server.times(method::refresh);
    REQUIRE(refreshes.size() == static_cast<std::size_t>(3h / 240s));
    for (std::size_t i = 0; i < refreshes.size(); ++i)
        CHECK(refreshes[i] - t0 == 240s * (i + 1));
    for (const auto& r : h.server.requests)
        if (r.m == method::refresh)
            CHECK(r.lifetime == std::uint32_t{600});
    CHECK(h.core.stats().refreshes == refreshes.size());
    CHECK(h.all<turn::refreshed_event>().size() == refreshes.size());
    CHECK(h.core.expires_at() == refreshes.back() + 300s);
}

TEST_CASE("turn_client: a refresh that gets no answer is retried until the allocation expires",
          "[turn]") {
    harness h;
    h.allocate(); // 600 s, refresh at 480 s
    h.lose_answer = [](const fake_server::request& r) {
        return r.m == method::refresh;
    };
    h.run_until(t0 + 599s);
    CHECK(h.core.state() == turn::client_state::allocated);
    // Refresh transactions at 480 s and, after each 39.5 s timeout, again.
    const auto times = h.server.times(method::refresh);
    REQUIRE(times.size() >= 7 * 3);
    CHECK(times.front() - t0 == 480s);
    CHECK(std::count(times.begin(), times.end(), t0 + 480s + 39500ms) == 1);
    h.run_until(t0 + 600s);
    auto e = h.last<turn::error_event>();
    REQUIRE(e);
    CHECK(e->op == turn::operation::refresh);
    CHECK(e->ec == turn_error::allocation_expired);
    CHECK(e->ec == peerlink::condition::peer_unreachable);
    CHECK(e->fatal);
    CHECK(h.core.state() == turn::client_state::failed);
    CHECK(h.core.send(ep("203.0.113.5:7000"), bytes_of("x"), h.now) == turn_error::not_allocated);
    const auto requests = h.server.requests.size();
    h.run_for(1h);
    CHECK(h.server.requests.size() == requests);
}

TEST_CASE("turn_client: a refresh answered 500 is retried after a pause, never in a burst",
          "[turn]") {
    SECTION("the server recovers") {
        harness h;
        h.allocate();
        h.server.error_once[method::refresh] = 500;
        h.run_until(t0 + 481s);
        CHECK(h.server.times(method::refresh).size() == 1);
        h.run_until(t0 + 486s);
        const auto times = h.server.times(method::refresh);
        REQUIRE(times.size() == 2);
        CHECK(times[1] - times[0] == 5s);
        CHECK(h.last<turn::refreshed_event>());
        CHECK(!h.last<turn::error_event>());
        CHECK(h.core.expires_at() == times[1] + 600s);
    }
    SECTION("it never does") {
        harness h;
        h.allocate();
        h.server.errors[method::refresh] = 500;
        h.run_until(t0 + 601s);
        const auto times = h.server.times(method::refresh);
        REQUIRE(times.size() >= 20);
        REQUIRE(times.size() <= 30);
        for (std::size_t i = 1; i < times.size(); ++i)
            CHECK(times[i] - times[i - 1] >= 1s);
        auto e = h.last<turn::error_event>();
        REQUIRE(e);
        CHECK(e->ec == turn_error::allocation_expired);
        CHECK(h.events.back().at == t0 + 600s);
    }
}

TEST_CASE("turn_client: a refresh answered 437 loses the allocation", "[turn]") {
    harness h;
    h.allocate();
    h.server.error_once[method::refresh] = 437;
    REQUIRE(!h.core.refresh(h.now));
    h.pump();
    auto e = h.last<turn::error_event>();
    REQUIRE(e);
    CHECK(e->op == turn::operation::refresh);
    CHECK(e->ec == turn_error::allocation_mismatch);
    CHECK(e->fatal);
    CHECK(h.core.state() == turn::client_state::failed);
}

TEST_CASE("turn_client: permissions refresh every 4 min and channels every 9 min", "[turn]") {
    harness h;
    h.allocate();
    const auto peer_a = ep("203.0.113.5:7000");
    const auto peer_b = ep("203.0.113.6:7001");
    REQUIRE(!h.core.create_permission(peer_a, h.now));
    REQUIRE(!h.core.bind_channel(peer_b, h.now));
    h.pump();
    REQUIRE(h.last<turn::permission_created_event>());
    CHECK(h.last<turn::permission_created_event>()->peer == peer_a);
    auto bound = h.last<turn::channel_bound_event>();
    REQUIRE(bound);
    CHECK(bound->peer == peer_b);
    CHECK(bound->channel == 0x4000);
    CHECK(h.core.channel_of(peer_b) == std::uint16_t{0x4000});
    CHECK(h.core.has_permission(peer_a));
    CHECK(h.core.has_permission(ep("203.0.113.6:1"))); // installed by the ChannelBind

    h.run_until(t0 + 30min + 1s);
    std::vector<time_point> perm_a, perm_b;
    for (const auto& r : h.server.requests)
        if (r.m == method::create_permission)
            (r.peer->address == peer_a.address ? perm_a : perm_b).push_back(r.at);
    const auto chan = h.server.times(method::channel_bind);
    // Peer A: CreatePermission at 0, 4, 8, ... 28 min.
    REQUIRE(perm_a.size() == 8);
    for (std::size_t i = 0; i < perm_a.size(); ++i)
        CHECK(perm_a[i] - t0 == 240s * i);
    // Peer B's channel: ChannelBind at 0, 9, 18, 27 min; each refreshes B's permission, so
    // B's own CreatePermissions come 4 and 8 min after each ChannelBind.
    REQUIRE(chan.size() == 4);
    for (std::size_t i = 0; i < chan.size(); ++i)
        CHECK(chan[i] - t0 == 540s * i);
    const std::vector<peerlink::duration> want_b{240s, 480s, 780s, 1020s, 1320s, 1560s};
    REQUIRE(perm_b.size() == want_b.size());
    for (std::size_t i = 0; i < perm_b.size(); ++i)
        CHECK(perm_b[i] - t0 == want_b[i]);
    // No gap of 5 minutes without a permission refresh for either address.
    CHECK(h.all<turn::permission_created_event>().size() == 1); // only the one asked for
    CHECK(h.all<turn::channel_bound_event>().size() == 1);
    CHECK(h.core.stats().channel_refreshes == 4);
}

TEST_CASE("turn_client: data round trip, Send/Data indications then ChannelData", "[turn]") {
    for (auto f : {stun::framing::datagram, stun::framing::stream}) {
        INFO((f == stun::framing::stream ? "stream" : "datagram"));
        harness h(f);
        h.allocate();
        const auto peer = ep("203.0.113.5:7000");
        const auto other = ep("203.0.113.9:7000");

        CHECK(h.core.send(peer, bytes_of("too early"), h.now) == turn_error::no_permission);
        REQUIRE(!h.core.create_permission(peer, h.now));
        // Sent before the permission is confirmed: a Send indication (the server
        // would drop it without a permission, but the request went first).
        REQUIRE(!h.core.send(peer, bytes_of("hello"), h.now));
        h.pump();
        REQUIRE(h.server.to_peers.size() == 1);
        CHECK(h.server.to_peers[0].peer == peer);
        CHECK(h.server.to_peers[0].data == bytes_of("hello"));
        CHECK_FALSE(h.server.to_peers[0].via_channel);

        h.deliver(h.server.data_indication(peer, bytes_of("world")));
        auto d = h.all<turn::data_received_event>();
        REQUIRE(d.size() == 1);
        CHECK(d[0].peer == peer);
        CHECK(d[0].channel == 0);
        CHECK(h.events.back().data == bytes_of("world"));

        REQUIRE(!h.core.bind_channel(peer, h.now));
        h.pump();
        REQUIRE(h.core.channel_of(peer));
        const std::uint16_t ch = *h.core.channel_of(peer);
        // Odd sizes exercise the stream padding both ways.
        for (std::size_t n : {0u, 1u, 2u, 3u, 4u, 5u, 1000u, 2048u}) {
            INFO(n);
            std::vector<std::byte> payload(n);
            for (std::size_t i = 0; i < n; ++i)
                payload[i] = std::byte(static_cast<unsigned char>(i * 7 + n));
            REQUIRE(!h.core.send(peer, payload, h.now));
            h.pump();
            CHECK(h.server.to_peers.back().via_channel);
            CHECK(h.server.to_peers.back().data == payload);
            CHECK(h.sent.back().size() == 4 + (f == stun::framing::stream ? stun::padded(n) : n));
            h.deliver(h.server.channel_data(ch, payload));
            CHECK(h.events.back().data == payload);
            auto e = std::get_if<turn::data_received_event>(&h.events.back().e);
            REQUIRE(e);
            CHECK(e->peer == peer);
            CHECK(e->channel == ch);
        }
        CHECK(h.server.channel_frames_unpadded.empty());
        CHECK(h.core.send(peer, std::vector<std::byte>(2049), h.now) ==
              peerlink::error::message_too_large);
        // Data for another peer still goes as an indication once permitted.
        REQUIRE(!h.core.create_permission(other, h.now));
        h.pump();
        REQUIRE(!h.core.send(other, bytes_of("x"), h.now));
        h.pump();
        CHECK_FALSE(h.server.to_peers.back().via_channel);
        CHECK(h.core.stats().sent_channel_data == 8);
        CHECK(h.core.stats().sent_indications == 2);
        CHECK(h.core.stats().received_channel_data == 8);
        CHECK(h.core.stats().received_indications == 1);
    }
}

TEST_CASE("turn_client: TCP framing survives every split of the server's byte stream", "[turn]") {
    for (std::size_t chunk : {1u, 2u, 3u, 5u, 7u, 13u, 64u, 0u}) {
        INFO(chunk);
        harness h(stun::framing::stream);
        h.chunk = chunk;
        h.allocate(); // 401 + success: every byte of both responses a split point at chunk 1
        const auto peer = ep("203.0.113.5:7000");
        REQUIRE(!h.core.bind_channel(peer, h.now));
        h.pump();
        const std::uint16_t ch = *h.core.channel_of(peer);
        // Back-to-back frames in one write: indication, padded ChannelData, ChannelData.
        std::vector<std::byte> burst;
        std::vector<std::vector<std::byte>> payloads;
        for (std::size_t i = 0; i < 6; ++i) {
            std::vector<std::byte> p(i * 3 + 1, std::byte(static_cast<unsigned char>(0x40 + i)));
            payloads.push_back(p);
            auto frame = i % 2 ? h.server.channel_data(ch, p) : h.server.data_indication(peer, p);
            burst.insert(burst.end(), frame.begin(), frame.end());
        }
        const auto before = h.events.size();
        h.deliver(burst);
        REQUIRE(h.events.size() == before + payloads.size());
        for (std::size_t i = 0; i < payloads.size(); ++i) {
            CHECK(h.events[before + i].data == payloads[i]);
            auto e = std::get_if<turn::data_received_event>(&h.events[before + i].e);
            REQUIRE(e);
            CHECK(e->peer == peer);
            CHECK(e->channel == (i % 2 ? ch : 0));
        }
        CHECK(h.core.stats().dropped_malformed == 0);
    }
}

TEST_CASE("turn_client: a stream buffer that fills is drained through poll_event", "[turn]") {
    turn::client_config c;
    c.stream_buffer_size = 0; // clamped to the smallest working size, one largest frame
    harness h(stun::framing::stream, c);
    h.allocate();
    const auto peer = ep("203.0.113.5:7000");
    REQUIRE(!h.core.bind_channel(peer, h.now));
    h.pump();
    const std::uint16_t ch = *h.core.channel_of(peer);
    std::vector<std::byte> big;
    std::vector<std::byte> p(1999, std::byte{0x5a});
    for (int i = 0; i < 100; ++i) {
        auto f = h.server.channel_data(ch, p);
        big.insert(big.end(), f.begin(), f.end());
    }
    REQUIRE(big.size() > 65552 * 3);
    const auto before = h.events.size();
    h.deliver(big);
    CHECK(h.events.size() == before + 100);
    CHECK(h.core.stats().bytes_received == 100 * 1999);
}

TEST_CASE("turn_client: a broken or closed stream loses the allocation", "[turn]") {
    SECTION("garbage between frames") {
        harness h(stun::framing::stream);
        h.allocate();
        const std::array<std::byte, 8> junk{std::byte{0xff}, std::byte{1}, std::byte{2},
                                            std::byte{3},    std::byte{4}, std::byte{5},
                                            std::byte{6},    std::byte{7}};
        h.deliver(junk);
        auto e = h.last<turn::error_event>();
        REQUIRE(e);
        CHECK(e->op == turn::operation::connection);
        CHECK(e->ec == turn_error::connection_lost);
        CHECK(e->fatal);
        CHECK(h.core.state() == turn::client_state::failed);
        CHECK(h.core.handle_stream_bytes(junk, h.now) == 0);
    }
    SECTION("the server closes the connection") {
        harness h(stun::framing::stream);
        h.allocate();
        h.core.handle_stream_closed(h.now);
        h.record_events();
        auto e = h.last<turn::error_event>();
        REQUIRE(e);
        CHECK(e->ec == turn_error::connection_lost);
        CHECK(e->ec == peerlink::condition::peer_unreachable);
        CHECK(h.core.state() == turn::client_state::failed);
        CHECK(!h.core.poll_timeout());
    }
    SECTION("closed while deallocating: deallocated") {
        harness h(stun::framing::stream);
        h.allocate();
        h.lose_answer = [](const fake_server::request&) {
            return true;
        };
        REQUIRE(!h.core.deallocate(h.now));
        h.pump();
        h.core.handle_stream_closed(h.now);
        h.record_events();
        CHECK(h.last<turn::deallocated_event>());
        CHECK(h.core.state() == turn::client_state::closed);
    }
}

TEST_CASE("turn_client: deallocate sends Refresh LIFETIME 0; 437 counts as done", "[turn]") {
    SECTION("server confirms") {
        harness h;
        h.allocate();
        REQUIRE(!h.core.create_permission(ep("203.0.113.5:7000"), h.now));
        h.pump();
        REQUIRE(!h.core.deallocate(h.now));
        CHECK(h.core.state() == turn::client_state::deallocating);
        h.pump();
        CHECK(h.last<turn::deallocated_event>());
        CHECK(h.core.state() == turn::client_state::closed);
        CHECK(h.server.requests.back().m == method::refresh);
        CHECK(h.server.requests.back().lifetime == std::uint32_t{0});
        CHECK(h.server.requests.back().integrity_ok);
        CHECK_FALSE(h.server.allocated);
        CHECK(h.core.send(ep("203.0.113.5:7000"), bytes_of("x"), h.now) ==
              turn_error::not_allocated);
        const auto n = h.server.requests.size();
        h.run_for(1h); // no refresh of anything after
        CHECK(h.server.requests.size() == n);
    }
    SECTION("server had no allocation") {
        harness h;
        h.allocate();
        h.server.allocated = false;
        REQUIRE(!h.core.deallocate(h.now));
        h.pump();
        CHECK(h.last<turn::deallocated_event>());
        CHECK(!h.last<turn::error_event>());
    }
    SECTION("not allocated") {
        harness h;
        CHECK(h.core.deallocate(h.now) == turn_error::not_allocated);
    }
}

TEST_CASE("turn_client: what is not for it is dropped and counted", "[turn]") {
    harness h;
    h.allocate();
    const auto peer = ep("203.0.113.5:7000");
    // From another address: not the client's.
    auto ind = h.server.data_indication(peer, bytes_of("x"));
    CHECK_FALSE(h.core.handle_datagram(ind, ep("192.0.2.99:3478"), h.now));
    CHECK(h.core.stats().dropped_foreign == 1);
    // Not STUN or ChannelData.
    const std::array<std::byte, 4> other{std::byte{0xc0}, std::byte{1}, std::byte{2}, std::byte{3}};
    CHECK_FALSE(h.core.handle_datagram(other, h.server.address, h.now));
    // ChannelData on a channel nobody bound.
    auto cd = h.server.channel_data(0x4abc, bytes_of("x"));
    CHECK(h.core.handle_datagram(cd, h.server.address, h.now));
    CHECK(h.core.stats().dropped_unknown_channel == 1);
    // A Data indication without DATA.
    std::vector<std::byte> bad(64);
    stun::transaction_id id{};
    stun::message_writer w(bad, method::data, stun::message_class::indication, id);
    w.add_xor_address(attribute_type::xor_peer_address, peer);
    std::error_code ec;
    bad.resize(w.finish(ec));
    CHECK(h.core.handle_datagram(bad, h.server.address, h.now));
    CHECK(h.core.stats().dropped_malformed == 1);
    // A response to no transaction.
    std::vector<std::byte> resp(64);
    stun::message_writer w2(resp, method::refresh, stun::message_class::success_response, id);
    resp.resize(w2.finish(ec));
    CHECK(h.core.handle_datagram(resp, h.server.address, h.now));
    CHECK(h.core.stats().dropped_unexpected == 1);
    CHECK(!h.core.poll_event());
    // An undrained data event is dropped when the next datagram comes.
    CHECK(h.core.handle_datagram(ind, h.server.address, h.now));
    CHECK(h.core.handle_datagram(ind, h.server.address, h.now));
    int data_events = 0;
    while (auto e = h.core.poll_event())
        data_events += std::holds_alternative<turn::data_received_event>(*e);
    CHECK(data_events == 1);
    CHECK(h.core.stats().dropped_events == 1);
}

TEST_CASE("turn_client: limits: tables, channel numbers, transmit ring, transactions", "[turn]") {
    turn::client_config c;
    c.max_permissions = 2;
    c.max_channels = 2;
    c.transmit_slots = 3;
    c.max_transactions = 1; // requests queue for the one slot
    harness h(stun::framing::datagram, c);
    h.allocate();
    CHECK(!h.core.create_permission(ep("203.0.113.1:1"), h.now));
    CHECK(!h.core.create_permission(ep("203.0.113.2:1"), h.now));
    CHECK(h.core.create_permission(ep("203.0.113.3:1"), h.now) == turn_error::too_many_peers);
    CHECK(h.core.create_permission(ep("203.0.113.1:2"), h.now).value() == 0); // same address
    CHECK(!h.core.bind_channel(ep("203.0.113.1:1"), h.now));
    CHECK(!h.core.bind_channel(ep("203.0.113.1:2"), h.now));
    CHECK(h.core.bind_channel(ep("203.0.113.1:3"), h.now) == turn_error::too_many_peers);
    CHECK(h.core.create_permission(ep("[2001:db8::1]:1"), h.now) ==
          turn_error::peer_address_family_mismatch);
    h.pump();
    CHECK(h.all<turn::permission_created_event>().size() == 2);
    CHECK(h.all<turn::channel_bound_event>().size() == 2);
    CHECK(h.core.channel_of(ep("203.0.113.1:2")) == std::uint16_t{0x4001});
    // The ring holds 3 packets until the driver takes them.
    for (int i = 0; i < 3; ++i)
        CHECK(!h.core.send(ep("203.0.113.2:1"), bytes_of("x"), h.now));
    CHECK(h.core.send_capacity() == 0);
    CHECK(h.core.send(ep("203.0.113.2:1"), bytes_of("x"), h.now) ==
          std::errc::operation_would_block);
    CHECK(h.core.stats().dropped_send == 1);
    h.pump();
    CHECK(h.core.send_capacity() == 3);
    CHECK(h.server.to_peers.size() == 3);
}

TEST_CASE("turn_client: channel numbers run out after 4096 bindings", "[turn]") {
    turn::client_config c;
    c.max_channels = 1;
    turn::client_core core(harness::config(stun::framing::datagram, c));
    fake_server server;
    // Allocate by hand (two round trips).
    REQUIRE(!core.allocate(t0));
    for (int i = 0; i < 2; ++i) {
        auto t = core.poll_transmit();
        REQUIRE(t);
        std::vector<std::byte> req(t->data.begin(), t->data.end());
        auto a = server.handle(req, t0);
        core.handle_datagram(a, server.address, t0);
        while (core.poll_event()) {
        }
    }
    REQUIRE(core.state() == turn::client_state::allocated);
    // Each ChannelBind that fails frees the table entry but burns its number.
    server.errors[method::channel_bind] = 400;
    int bound = 0;
    std::error_code last;
    for (int i = 0; i < 5000 && !last; ++i) {
        last = core.bind_channel(ep("203.0.113.1:1"), t0);
        if (last)
            break;
        ++bound;
        auto t = core.poll_transmit();
        REQUIRE(t);
        std::vector<std::byte> req(t->data.begin(), t->data.end());
        auto a = server.handle(req, t0);
        core.handle_datagram(a, server.address, t0);
        while (core.poll_event()) {
        }
    }
    CHECK(bound == 4096);
    CHECK(last == turn_error::no_channel_available);
    CHECK(last == peerlink::condition::configuration_error);
}
