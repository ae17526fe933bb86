#include <peerlink/proto/nat_discovery.hpp>

#include <peerlink/proto/stun_server.hpp>

#include "catch.hpp"

#include <chrono>
#include <map>
#include <set>
#include <tuple>
#include <vector>

namespace stun = peerlink::stun;
using namespace std::chrono_literals;
using peerlink::endpoint;
using peerlink::ip_address;
using peerlink::nat_filtering;
using peerlink::nat_mapping;
using peerlink::nat_type;
using peerlink::time_point;

namespace {

endpoint ep(const char* text) {
    std::error_code ec;
    return *endpoint::parse(text, ec);
}

const time_point t0 = time_point{} + 1h;

// A NAT of RFC 4787's kinds, in front of one host, on a network without delay.
struct nat_model {
    enum class kind { nat, none, firewall, blocked };
    kind k = kind::nat;
    nat_mapping mapping = nat_mapping::endpoint_independent;
    nat_filtering filtering = nat_filtering::endpoint_independent;
    ip_address external = ip_address::v4({203, 0, 113, 1});
    std::map<std::tuple<endpoint, ip_address, std::uint16_t>, std::uint16_t> ports;
    std::map<std::uint16_t, endpoint> inside;
    std::set<std::tuple<std::uint16_t, ip_address, std::uint16_t>> sent_to;
    std::uint16_t next_port = 50000;

    // The source address a packet from `from` to `to` leaves with (nothing: dropped).
    std::optional<endpoint> out(const endpoint& from, const endpoint& to) {
        if (k == kind::blocked)
            return std::nullopt;
        if (k == kind::none)
            return from;
        std::uint16_t port = from.port;
        if (k == kind::nat) {
            auto key = std::make_tuple(
                from, mapping == nat_mapping::endpoint_independent ? ip_address{} : to.address,
                mapping == nat_mapping::address_and_port_dependent ? to.port : std::uint16_t{0});
            auto it = ports.find(key);
            if (it == ports.end())
                it = ports.emplace(key, next_port++).first;
            port = it->second;
        }
        inside[port] = from;
        sent_to.emplace(port, to.address, to.port);
        return endpoint{k == kind::nat ? external : from.address, port};
    }

    // Where a packet from `from` to `to` (an outside address) goes inside, if it passes.
    std::optional<endpoint> in(const endpoint& from, const endpoint& to) {
        if (k == kind::blocked)
            return std::nullopt;
        if (k == kind::none)
            return to;
        auto it = inside.find(to.port);
        if (it == inside.end())
            return std::nullopt;
        bool pass = filtering == nat_filtering::endpoint_independent;
        for (const auto& [port, addr, p] : sent_to)
            if (port == to.port && addr == from.address &&
                (filtering == nat_filtering::address_dependent || p == from.port))
                pass = true;
        if (!pass)
            return std::nullopt;
        return it->second;
    }
};

peerlink::nat_report discover(nat_model& nat, bool rfc5780 = true) {
    stun::server_config sc;
    sc.primary = ep("198.51.100.1:3478");
    if (rfc5780)
        sc.alternate = ep("198.51.100.2:3479");
    stun::server_core server(sc);
    const endpoint local = ep("10.0.0.2:5000");
    peerlink::nat_discovery_config cfg;
    cfg.server = sc.primary;
    cfg.local = local;
    peerlink::nat_discovery_core d(cfg);
    time_point now = t0;
    d.start(now);
    for (int guard = 0; guard < 1000 && !d.done(); ++guard) {
        bool progress = false;
        while (auto t = d.poll_transmit()) {
            progress = true;
            std::vector<std::byte> req(t->data.begin(), t->data.end());
            const endpoint to = t->to;
            auto src = nat.out(local, to);
            if (!src)
                continue;
            for (unsigned s = 0; s < (server.rfc5780() ? 4u : 1u); ++s) {
                auto sock = static_cast<stun::server_socket>(s);
                if (server.local_endpoint(sock) == to)
                    server.handle_datagram(req, *src, sock);
            }
            while (auto r = server.poll_transmit()) {
                std::vector<std::byte> resp(r->data.begin(), r->data.end());
                const endpoint from = server.local_endpoint(r->via);
                if (auto dst = nat.in(from, r->to); dst && *dst == local)
                    d.handle_datagram(resp, from, now);
            }
        }
        if (!progress && !d.done()) {
            auto next = d.poll_timeout();
            REQUIRE(next);
            now = *next;
            d.handle_timeout(now);
        }
    }
    REQUIRE(d.done());
    auto r = d.poll_event();
    REQUIRE(r);
    CHECK(!d.poll_event()); // once
    CHECK(!d.poll_timeout());
    return *r;
}

} // namespace

TEST_CASE("nat_discovery: classifies every NAT kind of RFC 4787", "[nat]") {
    struct row {
        nat_mapping m;
        nat_filtering f;
        nat_type type;
        std::chrono::milliseconds elapsed;
    };
    const std::vector<row> table{
        {nat_mapping::endpoint_independent, nat_filtering::endpoint_independent,
         nat_type::full_cone, 0ms},
        {nat_mapping::endpoint_independent, nat_filtering::address_dependent,
         nat_type::restricted_cone, 5750ms},
        {nat_mapping::endpoint_independent, nat_filtering::address_and_port_dependent,
         nat_type::port_restricted_cone, 5750ms},
        {nat_mapping::address_dependent, nat_filtering::address_dependent, nat_type::symmetric,
         5750ms},
        {nat_mapping::address_and_port_dependent, nat_filtering::address_and_port_dependent,
         nat_type::symmetric, 5750ms},
        {nat_mapping::address_and_port_dependent, nat_filtering::endpoint_independent,
         nat_type::symmetric, 0ms},
    };
    for (const auto& t : table) {
        INFO(peerlink::to_string(t.m) << " / " << peerlink::to_string(t.f));
        nat_model nat;
        nat.mapping = t.m;
        nat.filtering = t.f;
        auto r = discover(nat);
        CHECK(!r.error);
        CHECK(r.rfc5780);
        CHECK(r.behind_nat == true);
        CHECK_FALSE(r.udp_blocked);
        CHECK(r.mapping == t.m);
        CHECK(r.filtering == t.f);
        CHECK(r.type() == t.type);
        CHECK(r.elapsed == t.elapsed);
        REQUIRE(r.mapped);
        CHECK(r.mapped->address == nat.external);
        CHECK(r.other_address == ep("198.51.100.2:3479"));
        REQUIRE(r.mapped_alternate_address);
        if (t.m != nat_mapping::endpoint_independent)
            CHECK(r.mapped_alternate_both);
    }
}

TEST_CASE("nat_discovery: no NAT, a firewall, blocked UDP, no RFC 5780", "[nat]") {
    nat_model open;
    open.k = nat_model::kind::none;
    auto r = discover(open);
    CHECK(r.behind_nat == false);
    CHECK(r.mapping == nat_mapping::endpoint_independent);
    CHECK(r.filtering == nat_filtering::endpoint_independent);
    CHECK(r.type() == nat_type::open_internet);
    CHECK(r.mapped == ep("10.0.0.2:5000"));
    CHECK(!r.mapped_alternate_address); // no mapping tests without a NAT

    nat_model fw;
    fw.k = nat_model::kind::firewall;
    fw.filtering = nat_filtering::address_and_port_dependent;
    r = discover(fw);
    CHECK(r.behind_nat == false);
    CHECK(r.filtering == nat_filtering::address_and_port_dependent);
    CHECK(r.type() == nat_type::symmetric_udp_firewall);

    nat_model blocked;
    blocked.k = nat_model::kind::blocked;
    r = discover(blocked);
    CHECK(r.udp_blocked);
    CHECK(!r.mapped);
    CHECK(r.type() == nat_type::udp_blocked);
    CHECK(r.elapsed == 5750ms);
    CHECK(!r.error);

    nat_model cone;
    r = discover(cone, false);
    CHECK_FALSE(r.rfc5780);
    CHECK(r.behind_nat == true);
    CHECK(r.mapping == nat_mapping::unknown);
    CHECK(r.filtering == nat_filtering::unknown);
    CHECK(r.type() == nat_type::unknown);
    CHECK(r.mapped);
}

TEST_CASE("nat_discovery: the report as text and JSON", "[nat]") {
    nat_model nat;
    nat.filtering = nat_filtering::address_and_port_dependent;
    auto r = discover(nat);
    auto text = r.to_string();
    CHECK(text.find("NAT type:    port-restricted cone") != std::string::npos);
    CHECK(text.find("mapping:     endpoint-independent") != std::string::npos);
    CHECK(text.find("filtering:   address-and-port-dependent") != std::string::npos);
    CHECK(text.find("203.0.113.1:50000") != std::string::npos);

    nlohmann::json j = r;
    CHECK(j["nat_type"] == "port-restricted cone");
    CHECK(j["mapping"] == "endpoint-independent");
    CHECK(j["filtering"] == "address-and-port-dependent");
    CHECK(j["behind_nat"] == true);
    CHECK(j["rfc5780"] == true);
    CHECK(j["udp_blocked"] == false);
    CHECK(j["mapped"] == "203.0.113.1:50000");
    CHECK(j["server"] == "198.51.100.1:3478");
    CHECK(j["error"].is_null());
    CHECK(j["elapsed_ms"] == 5750);

    CHECK(peerlink::to_string(nat_type::udp_blocked) == "udp-blocked");
    CHECK(peerlink::to_string(nat_type::full_cone) == "full cone");
    CHECK(peerlink::to_string(nat_mapping::address_dependent) == "address-dependent");
}
