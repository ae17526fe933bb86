#include <peerlink/proto/punch.hpp>

#include "catch.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <vector>

namespace ice = peerlink::ice;
using peerlink::endpoint;
using peerlink::ip_address;
using peerlink::time_point;
using namespace std::chrono_literals;

namespace {

endpoint ep(const char* text) {
    std::error_code ec;
    return *endpoint::parse(text, ec);
}

// A deterministic byte source for the cores.
std::function<void(std::span<std::byte>)> seeded(std::uint64_t seed) {
    auto state = std::make_shared<std::uint64_t>(seed * 0x9e3779b97f4a7c15ull + 1);
    return [state](std::span<std::byte> out) {
        for (auto& b : out) {
            *state = *state * 6364136223846793005ull + 1442695040888963407ull;
            b = static_cast<std::byte>(*state >> 56);
        }
    };
}

ice::punch_config config(bool controlling, std::uint64_t seed) {
    ice::punch_config c;
    c.controlling = controlling;
    c.random = seeded(seed);
    return c;
}

// A NAT: endpoint-independent mapping with port preservation (a cone) or a fresh random
// port per destination (symmetric); address-and-port-dependent filtering in both cases.
struct nat {
    nat(const char* address, bool sym) : symmetric(sym) {
        std::error_code ec;
        pub = *ip_address::parse(address, ec);
    }
    ip_address pub;
    bool symmetric = false;
    std::map<std::pair<endpoint, endpoint>, std::uint16_t> flows; // (private, remote) -> port
    std::map<std::uint16_t, endpoint> owner;                      // port -> private
    std::set<std::pair<std::uint16_t, endpoint>> allowed;         // (port, remote)
    std::uint64_t rng = 12345;

    std::uint16_t port_for(const endpoint& priv, const endpoint& remote) {
        const auto key = std::make_pair(priv, symmetric ? remote : endpoint{});
        if (auto f = flows.find(key); f != flows.end())
            return f->second;
        std::uint16_t port = priv.port;
        while (symmetric || owner.count(port)) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            port = static_cast<std::uint16_t>(1024 + (rng >> 33) % 64512);
            if (!owner.count(port))
                break;
        }
        flows[key] = port;
        owner[port] = priv;
        return port;
    }
};

struct packet {
    time_point at;
    int to_peer;
    endpoint to, from;
    std::vector<std::byte> bytes;
};

// Two punch cores on a virtual network: each peer has sockets at private addresses,
// optionally behind a NAT; 10 ms one-way latency.
struct network {
    struct peer {
        std::unique_ptr<ice::punch_core> core;
        std::map<ice::socket_id, endpoint> sockets;
        nat* n = nullptr;
        std::vector<ice::punch_event> events;
        std::uint16_t next_port = 50000;
    };
    peer p[2];
    std::vector<packet> wire;
    time_point now{};
    peerlink::duration latency = 10ms;
    std::uint64_t delivered = 0, dropped = 0;

    void send(int from, const ice::punch_transmit& t) {
        auto& me = p[from];
        endpoint src = me.sockets.at(t.socket);
        if (me.n) {
            const auto port = me.n->port_for(src, t.to);
            me.n->allowed.insert({port, t.to});
            src = endpoint{me.n->pub, port};
        }
        wire.push_back({now + latency, 1 - from, t.to, src, {t.data.begin(), t.data.end()}});
    }
    void deliver(const packet& k) {
        auto& them = p[k.to_peer];
        endpoint dst = k.to;
        if (them.n) {
            if (dst.address != them.n->pub || !them.n->allowed.count({dst.port, k.from}) ||
                !them.n->owner.count(dst.port)) {
                ++dropped;
                return;
            }
            dst = them.n->owner.at(dst.port);
        }
        for (auto& [id, e] : them.sockets)
            if (e == dst) {
                ++delivered;
                them.core->handle_datagram(k.bytes, k.from, id, now);
                return;
            }
        ++dropped;
    }
    void drain() {
        for (int i = 0; i < 2; ++i) {
            while (auto t = p[i].core->poll_transmit())
                send(i, *t);
            while (auto e = p[i].core->poll_event()) {
                if (auto* r = std::get_if<ice::sockets_requested>(&*e))
                    for (unsigned k = 0; k < r->count; ++k) {
                        const auto id = static_cast<ice::socket_id>(p[i].sockets.size());
                        auto base = p[i].sockets.at(0);
                        base.port = p[i].next_port++;
                        p[i].sockets[id] = base;
                        p[i].core->add_socket(id, r->family, now);
                    }
                p[i].events.push_back(*e);
            }
            while (auto t = p[i].core->poll_transmit())
                send(i, *t);
        }
    }
    bool done(int i) const {
        auto s = p[i].core->state();
        return s == ice::punch_state::connected || s == ice::punch_state::failed;
    }
    // Runs until both are done or `limit` of virtual time has passed.
    void run(peerlink::duration limit) {
        const auto end = now + limit;
        for (int steps = 0; steps < 200000 && now < end && !(done(0) && done(1)); ++steps) {
            drain();
            auto next = end;
            for (auto& x : p)
                if (auto t = x.core->poll_timeout())
                    next = std::min(next, *t);
            for (auto& k : wire)
                next = std::min(next, k.at);
            now = std::max(now, next);
            std::vector<packet> due;
            auto it = std::stable_partition(wire.begin(), wire.end(),
                                            [&](const packet& k) { return k.at > now; });
            due.assign(std::make_move_iterator(it), std::make_move_iterator(wire.end()));
            wire.erase(it, wire.end());
            for (auto& k : due)
                deliver(k);
            for (auto& x : p)
                if (auto t = x.core->poll_timeout(); t && *t <= now)
                    x.core->handle_timeout(now);
        }
        drain();
    }
};

template <class E>
const E* find_event(const std::vector<ice::punch_event>& v) {
    for (auto& e : v)
        if (auto* x = std::get_if<E>(&e))
            return x;
    return nullptr;
}

// Sets up two peers: host candidates on socket 0, server-reflexive ones when behind a NAT.
void introduce(network& net, ice::punch_config a, ice::punch_config b) {
    net.p[0].core = std::make_unique<ice::punch_core>(std::move(a));
    net.p[1].core = std::make_unique<ice::punch_core>(std::move(b));
    std::vector<ice::candidate> cands[2];
    for (int i = 0; i < 2; ++i) {
        auto& x = net.p[i];
        const auto host = x.sockets.at(0);
        cands[i].push_back(ice::make_candidate(ice::candidate_type::host, host, host));
        if (x.n) {
            const endpoint mapped{x.n->pub, x.n->port_for(host, ep("203.0.113.99:3478"))};
            x.n->allowed.insert({mapped.port, ep("203.0.113.99:3478")});
            cands[i].push_back(ice::make_candidate(ice::candidate_type::server_reflexive, mapped,
                                                   host, 0, 0, ep("203.0.113.99:3478")));
        }
        for (auto& c : cands[i])
            REQUIRE_FALSE(x.core->add_local_candidate(c, net.now));
    }
    for (int i = 0; i < 2; ++i) {
        auto& other = *net.p[1 - i].core;
        REQUIRE_FALSE(
            net.p[i].core->set_remote_credentials(other.local_ufrag(), other.local_password()));
        for (auto& c : cands[1 - i]) {
            std::error_code ec;
            auto wire = ice::candidate_from_json(ice::to_json(c), ec);
            REQUIRE(wire);
            net.p[i].core->add_remote_candidate(*wire, net.now);
        }
    }
}

} // namespace

TEST_CASE("candidate priorities follow RFC 8445 and survive JSON", "[punch][candidates]") {
    using ice::candidate_type;
    CHECK(ice::type_preference(candidate_type::host) == 126);
    CHECK(ice::type_preference(candidate_type::peer_reflexive) == 110);
    CHECK(ice::type_preference(candidate_type::server_reflexive) == 100);
    CHECK(ice::type_preference(candidate_type::relayed) == 0);
    CHECK(ice::candidate_priority(candidate_type::host, 65535) == 2130706431u);
    CHECK(ice::candidate_priority(candidate_type::relayed, 0) == 255u);
    // IPv6 ranks above IPv4, the first interface above the second.
    CHECK(ice::local_preference(ip_address::loopback_v6(), 0) >
          ice::local_preference(ip_address::loopback_v4(), 0));
    CHECK(ice::local_preference(ip_address::loopback_v4(), 0) >
          ice::local_preference(ip_address::loopback_v4(), 1));
    CHECK(ice::pair_priority(10, 20) == (10ull << 32) + 40);
    CHECK(ice::pair_priority(20, 10) == (10ull << 32) + 41);

    auto c = ice::make_candidate(candidate_type::server_reflexive, ep("198.18.1.1:40000"),
                                 ep("10.1.0.2:40000"), 0, 0, ep("198.18.0.10:3478"));
    CHECK(c.foundation.size() == 8);
    CHECK(c.foundation != ice::make_foundation(candidate_type::host, c.base.address));
    std::error_code ec;
    auto back = ice::candidate_from_json(nlohmann::json::parse(ice::to_json(c).dump()), ec);
    REQUIRE(back);
    CHECK(!ec);
    CHECK(back->type == c.type);
    CHECK(back->address == c.address);
    CHECK(back->priority == c.priority);
    CHECK(back->foundation == c.foundation);
    CHECK(back->related == c.related);
    for (const char* bad : {R"([1])", R"({"type":"host","priority":1})",
                            R"({"type":"bogus","address":"1.2.3.4:5","priority":1})",
                            R"({"type":"host","address":"1.2.3.4:5","priority":-1})",
                            R"({"type":"host","address":"nope","priority":1})"}) {
        INFO(bad);
        CHECK_FALSE(ice::candidate_from_json(nlohmann::json::parse(bad), ec));
        CHECK(ec == peerlink::condition::malformed_input);
    }
}

TEST_CASE("host candidates honour bind address, loopback and IPv6 settings",
          "[punch][candidates]") {
    std::error_code ec;
    std::vector<ice::interface_address> ifs = {
        {"lo", 1, *ip_address::parse("127.0.0.1", ec), true, true},
        {"eth0", 2, *ip_address::parse("192.0.2.2", ec), false, true},
        {"eth0", 2, *ip_address::parse("2001:db8::2", ec), false, true},
        {"eth0", 2, *ip_address::parse("fe80::2%2", ec), false, true},
        {"eth1", 3, *ip_address::parse("198.51.100.7", ec), false, false}, // down
    };
    ice::host_gather_options o;
    o.port = 4000;
    auto all = ice::gather_host_candidates(ifs, o);
    REQUIRE(all.size() == 2);
    CHECK(all[0].address == ep("192.0.2.2:4000"));
    CHECK(all[1].address == ep("[2001:db8::2]:4000"));
    CHECK(all[1].priority > all[0].priority);
    o.ipv6 = false;
    CHECK(ice::gather_host_candidates(ifs, o).size() == 1);
    o.ipv6 = true;
    o.include_loopback = true;
    CHECK(ice::gather_host_candidates(ifs, o).size() == 3);
    o.bind_address = "2001:db8::2";
    auto one = ice::gather_host_candidates(ifs, o);
    REQUIRE(one.size() == 1);
    CHECK(one[0].address == ep("[2001:db8::2]:4000"));
    o.bind_address = "0.0.0.0";
    CHECK(ice::gather_host_candidates(ifs, o).size() == 2); // 127.0.0.1 and 192.0.2.2
}

TEST_CASE("pairs are ordered by RFC 8445 pair priority", "[punch]") {
    ice::punch_core core(config(true, 1));
    const auto now = time_point{};
    auto host =
        ice::make_candidate(ice::candidate_type::host, ep("10.0.0.1:5000"), ep("10.0.0.1:5000"));
    REQUIRE_FALSE(core.add_local_candidate(host, now));
    auto r_relay = ice::make_candidate(ice::candidate_type::relayed, ep("203.0.113.5:9000"),
                                       ep("10.9.0.1:6000"));
    auto r_srflx = ice::make_candidate(ice::candidate_type::server_reflexive,
                                       ep("203.0.113.1:6000"), ep("10.9.0.1:6000"));
    auto r_host =
        ice::make_candidate(ice::candidate_type::host, ep("10.9.0.1:6000"), ep("10.9.0.1:6000"));
    for (auto* c : {&r_relay, &r_srflx, &r_host})
        REQUIRE_FALSE(core.add_remote_candidate(*c, now));
    auto v6 = ice::make_candidate(ice::candidate_type::host, ep("[2001:db8::9]:1"),
                                  ep("[2001:db8::9]:1"));
    CHECK(core.add_remote_candidate(v6, now) == peerlink::punch_error::family_mismatch);
    auto pairs = core.pairs();
    REQUIRE(pairs.size() == 3);
    CHECK(pairs[0].remote == r_host.address);
    CHECK(pairs[1].remote == r_srflx.address);
    CHECK(pairs[2].remote == r_relay.address);
    CHECK(pairs[0].priority == ice::pair_priority(host.priority, r_host.priority));
    CHECK(pairs[2].priority == ice::pair_priority(host.priority, r_relay.priority));
}

TEST_CASE("two peers punch, nominate and agree on the pair", "[punch]") {
    network net;
    nat na("198.18.1.1", false);
    nat nb("198.18.2.1", false);
    net.p[0].sockets[0] = ep("10.1.0.2:40000");
    net.p[1].sockets[0] = ep("10.2.0.2:40000");
    net.p[0].n = &na;
    net.p[1].n = &nb;
    introduce(net, config(true, 1), config(false, 2));
    const auto t0 = net.now + 100ms;
    REQUIRE_FALSE(net.p[0].core->start(t0, net.now));
    REQUIRE_FALSE(net.p[1].core->start(t0, net.now));
    net.run(10s);
    auto* ca = find_event<ice::connected>(net.p[0].events);
    auto* cb = find_event<ice::connected>(net.p[1].events);
    REQUIRE(ca);
    REQUIRE(cb);
    CHECK(ca->pair.remote == ep("198.18.2.1:40000"));
    CHECK(cb->pair.remote == ep("198.18.1.1:40000"));
    REQUIRE(ca->pair.rtt);
    CHECK(*ca->pair.rtt == 20ms); // two 10 ms hops
    CHECK(net.now - t0 < 300ms);  // punch in the first burst, nomination after 60 ms
    CHECK(net.p[0].core->stats().auth_failures == 0);
    CHECK(net.p[1].core->stats().auth_failures == 0);
}

TEST_CASE("checks with a wrong password or username are ignored and counted", "[punch]") {
    ice::punch_config cfg = config(false, 3);
    cfg.local_ufrag = "bob";
    cfg.local_password = "bob-password-0123456789";
    ice::punch_core core(cfg);
    const auto now = time_point{};
    auto host =
        ice::make_candidate(ice::candidate_type::host, ep("10.0.0.1:5000"), ep("10.0.0.1:5000"));
    core.add_local_candidate(host, now);
    REQUIRE_FALSE(core.set_remote_credentials("alice", "alice-password-012345678"));

    auto check = [&](std::string_view user, std::string_view pwd) {
        std::array<std::byte, 256> buf;
        peerlink::stun::transaction_id id{};
        id[0] = std::byte{7};
        peerlink::stun::message_writer w(buf, peerlink::stun::method::binding,
                                         peerlink::stun::message_class::request, id);
        w.add_string(peerlink::stun::attribute_type::username, user)
            .add_u32(peerlink::stun::attribute_type::priority, 1)
            .add_u64(peerlink::stun::attribute_type::ice_controlling, 1)
            .add_message_integrity(peerlink::stun::short_term_key(pwd))
            .add_fingerprint();
        std::error_code ec;
        const auto n = w.finish(ec);
        REQUIRE(n > 0);
        return std::vector<std::byte>(buf.begin(), buf.begin() + n);
    };
    auto stranger = ep("192.0.2.66:666");
    CHECK(core.handle_datagram(check("bob:alice", "guessed-password-000000"), stranger, 0, now));
    CHECK(core.handle_datagram(check("bob:mallory", "bob-password-0123456789"), stranger, 0, now));
    CHECK_FALSE(core.poll_transmit());
    CHECK(core.stats().auth_failures == 2);
    CHECK(core.stats().peer_reflexive == 0);
    CHECK(core.pairs().empty());
    // The right credentials get an answer and a peer-reflexive candidate.
    CHECK(core.handle_datagram(check("bob:alice", "bob-password-0123456789"), stranger, 0, now));
    auto t = core.poll_transmit();
    REQUIRE(t);
    CHECK(t->to == stranger);
    std::error_code ec;
    auto m = peerlink::stun::decode(t->data, ec);
    REQUIRE(m);
    CHECK(m->is_success_response());
    CHECK_FALSE(peerlink::stun::verify_integrity(
        *m, peerlink::stun::short_term_key("bob-password-0123456789")));
    CHECK(core.stats().peer_reflexive == 1);
    // Not STUN at all: left to the caller.
    std::array<std::byte, 8> junk{};
    CHECK_FALSE(core.handle_datagram(junk, stranger, 0, now));
}

TEST_CASE("a role conflict is resolved by the tie-breaker", "[punch]") {
    network net;
    net.p[0].sockets[0] = ep("198.18.5.2:1000");
    net.p[1].sockets[0] = ep("198.18.6.2:1000");
    auto a = config(true, 4);
    auto b = config(true, 5); // both think they control
    a.tie_breaker = 100;
    b.tie_breaker = 200;
    introduce(net, a, b);
    REQUIRE_FALSE(net.p[0].core->start(net.now, net.now));
    REQUIRE_FALSE(net.p[1].core->start(net.now, net.now));
    net.run(10s);
    auto* rc = find_event<ice::role_changed>(net.p[0].events);
    REQUIRE(rc);
    CHECK_FALSE(rc->controlling);
    CHECK_FALSE(net.p[0].core->controlling());
    CHECK(net.p[1].core->controlling());
    CHECK_FALSE(find_event<ice::role_changed>(net.p[1].events));
    CHECK(find_event<ice::connected>(net.p[0].events));
    CHECK(find_event<ice::connected>(net.p[1].events));
    CHECK(net.p[0].core->stats().role_conflicts + net.p[1].core->stats().role_conflicts >= 1);
}

TEST_CASE("bursts then exponential backoff, then failure at the punch timeout", "[punch]") {
    auto cfg = config(true, 6);
    ice::punch_core core(cfg);
    const time_point t0{};
    core.add_local_candidate(
        ice::make_candidate(ice::candidate_type::host, ep("10.0.0.1:1"), ep("10.0.0.1:1")), t0);
    core.set_remote_credentials("peer", "peer-password-0123456789");
    core.add_remote_candidate(
        ice::make_candidate(ice::candidate_type::host, ep("192.0.2.1:1"), ep("192.0.2.1:1")), t0);
    const auto start = t0 + 1s;
    REQUIRE_FALSE(core.start(start, t0));
    CHECK_FALSE(core.poll_transmit()); // nothing before the agreed start
    CHECK(core.poll_timeout() == start);
    std::vector<long> sent_ms;
    std::optional<ice::punch_event> last;
    auto now = t0;
    for (int i = 0; i < 100 && !last; ++i) {
        auto t = core.poll_timeout();
        REQUIRE(t);
        now = *t;
        core.handle_timeout(now);
        while (auto x = core.poll_transmit())
            sent_ms.push_back(
                std::chrono::duration_cast<std::chrono::milliseconds>(now - start).count());
        last = core.poll_event();
    }
    CHECK(sent_ms == std::vector<long>{0, 50, 100, 300, 700, 1500, 3100, 4700});
    REQUIRE(last);
    auto* f = std::get_if<ice::failed>(&*last);
    REQUIRE(f);
    CHECK(f->ec == peerlink::punch_error::timeout);
    CHECK(f->ec == peerlink::condition::nat_traversal_failed);
    CHECK(now - start == 5s);
    CHECK_FALSE(core.poll_timeout());
}

TEST_CASE("port prediction and the birthday strategy are bounded", "[punch]") {
    const time_point t0{};
    auto setup = [&](ice::punch_core& core, ice::mapping_behaviour remote) {
        auto h = ice::make_candidate(ice::candidate_type::host, ep("10.0.0.1:1"), ep("10.0.0.1:1"));
        core.add_local_candidate(h, t0);
        core.set_remote_credentials("peer", "peer-password-0123456789");
        core.add_remote_candidate(ice::make_candidate(ice::candidate_type::server_reflexive,
                                                      ep("192.0.2.1:30000"), ep("10.2.0.2:1")),
                                  t0);
        core.set_remote_nat({remote, {30000, 30002}});
    };
    SECTION("cone side sprays 2048 probes to distinct ports in about a second") {
        auto cfg = config(true, 7);
        cfg.local_nat.mapping = ice::mapping_behaviour::endpoint_independent;
        ice::punch_core core(cfg);
        setup(core, ice::mapping_behaviour::endpoint_dependent);
        REQUIRE_FALSE(core.start(t0, t0));
        CHECK(core.stats().predicted_pairs == 8); // 30004, 30006, ... 30018
        auto pairs = core.pairs();
        CHECK(std::count_if(pairs.begin(), pairs.end(),
                            [](auto& p) { return p.remote == ep("192.0.2.1:30018"); }) == 1);
        std::set<std::uint16_t> spray_ports;
        auto now = t0;
        for (int i = 0; i < 20000; ++i) {
            auto t = core.poll_timeout();
            if (!t)
                break;
            now = *t;
            core.handle_timeout(now);
            while (auto x = core.poll_transmit())
                if (x->to.address == ep("192.0.2.1:1").address && x->to.port != 30000 &&
                    (x->to.port < 30004 || x->to.port > 30018 || x->to.port % 2))
                    spray_ports.insert(x->to.port);
        }
        CHECK(core.stats().spray_sent == 2048);
        CHECK(spray_ports.size() >= 2040); // distinct (a few may hit predicted ones)
        CHECK(core.stats().checks_sent < 2048 + 9 * 8 + 10);
        CHECK(core.state() == ice::punch_state::failed); // nobody answered
    }
    SECTION("symmetric side asks for 256 sockets and checks from each") {
        auto cfg = config(true, 8);
        cfg.local_nat.mapping = ice::mapping_behaviour::endpoint_dependent;
        ice::punch_core core(cfg);
        setup(core, ice::mapping_behaviour::endpoint_independent);
        REQUIRE_FALSE(core.start(t0, t0));
        auto e = core.poll_event();
        REQUIRE(e);
        auto* r = std::get_if<ice::sockets_requested>(&*e);
        REQUIRE(r);
        CHECK(r->count == 256);
        for (ice::socket_id id = 1; id <= r->count; ++id)
            core.add_socket(id, r->family, t0);
        std::set<ice::socket_id> from;
        while (auto x = core.poll_transmit())
            from.insert(x->socket);
        CHECK(from.size() == 257);
        CHECK(core.stats().spray_sent == 0);
    }
}

TEST_CASE("birthday strategy punches a symmetric NAT against a port-restricted cone",
          "[punch][birthday]") {
    int wins = 0;
    for (std::uint64_t seed = 0; seed < 3; ++seed) {
        network net;
        std::error_code ec;
        nat sym("198.18.1.1", true);
        nat cone("198.18.2.1", false);
        sym.rng += seed * 7919;
        net.p[0].sockets[0] = ep("10.1.0.2:40000");
        net.p[1].sockets[0] = ep("10.2.0.2:40000");
        net.p[0].n = &sym;
        net.p[1].n = &cone;
        auto a = config(seed % 2 == 0, 10 + seed);
        auto b = config(seed % 2 == 1, 20 + seed);
        a.local_nat = {ice::mapping_behaviour::endpoint_dependent, {}};
        b.local_nat = {ice::mapping_behaviour::endpoint_independent, {}};
        introduce(net, a, b);
        net.p[0].core->set_remote_nat(b.local_nat);
        net.p[1].core->set_remote_nat(a.local_nat);
        REQUIRE_FALSE(net.p[0].core->start(net.now + 50ms, net.now));
        REQUIRE_FALSE(net.p[1].core->start(net.now + 50ms, net.now));
        net.run(6s);
        const bool ok = find_event<ice::connected>(net.p[0].events) &&
                        find_event<ice::connected>(net.p[1].events);
        wins += ok;
        CHECK(net.p[1].core->stats().spray_sent <= 2048);
    }
    CHECK(wins >= 2); // P(success) ~ 99.97% each
}
