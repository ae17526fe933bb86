// Implementation of peerlink/proto/candidates.hpp.
#ifndef PEERLINK_PROTO_IMPL_CANDIDATES_HPP
#define PEERLINK_PROTO_IMPL_CANDIDATES_HPP

#include <cstdio>

namespace peerlink::ice {

inline std::string_view to_string(candidate_type t) noexcept {
    switch (t) {
    case candidate_type::host:
        return "host";
    case candidate_type::server_reflexive:
        return "srflx";
    case candidate_type::peer_reflexive:
        return "prflx";
    case candidate_type::relayed:
        return "relay";
    }
    return "host";
}

inline std::optional<candidate_type> candidate_type_from_string(std::string_view s) noexcept {
    for (auto t : {candidate_type::host, candidate_type::server_reflexive,
                   candidate_type::peer_reflexive, candidate_type::relayed})
        if (s == to_string(t))
            return t;
    return std::nullopt;
}

inline std::string make_foundation(candidate_type t, const ip_address& base,
                                   const std::optional<endpoint>& server) {
    std::uint32_t h = 2166136261u; // FNV-1a
    auto mix = [&](std::uint8_t b) {
        h = (h ^ b) * 16777619u;
    };
    mix(static_cast<std::uint8_t>(t));
    for (std::size_t i = 0; i < base.size(); ++i)
        mix(base.data()[i]);
    if (server && t != candidate_type::host) {
        for (std::size_t i = 0; i < server->address.size(); ++i)
            mix(server->address.data()[i]);
        mix(static_cast<std::uint8_t>(server->port >> 8));
        mix(static_cast<std::uint8_t>(server->port));
    }
    char text[9];
    std::snprintf(text, sizeof text, "%08x", static_cast<unsigned>(h));
    return text;
}

inline candidate make_candidate(candidate_type t, const endpoint& address, const endpoint& base,
                                unsigned rank, socket_id socket,
                                const std::optional<endpoint>& server) {
    candidate c;
    c.type = t;
    c.address = address;
    c.base = base;
    c.priority = candidate_priority(t, local_preference(base.address, rank));
    c.foundation = make_foundation(t, base.address, server);
    if (t != candidate_type::host)
        c.related = base;
    c.socket = socket;
    return c;
}

inline nlohmann::json to_json(const candidate& c) {
    nlohmann::json j = {{"type", std::string(to_string(c.type))},
                        {"address", c.address.to_string()},
                        {"priority", c.priority},
                        {"foundation", c.foundation},
                        {"component", c.component}};
    if (c.related)
        j["related"] = c.related->to_string();
    return j;
}

inline std::optional<candidate> candidate_from_json(const nlohmann::json& j, std::error_code& ec) {
    ec = make_error_code(error::malformed_packet);
    if (!j.is_object())
        return std::nullopt;
    auto type = j.find("type");
    auto addr = j.find("address");
    auto prio = j.find("priority");
    if (type == j.end() || !type->is_string() || addr == j.end() || !addr->is_string() ||
        prio == j.end() || !prio->is_number_unsigned() || prio->get<std::uint64_t>() > 0xffffffffu)
        return std::nullopt;
    auto t = candidate_type_from_string(type->get_ref<const std::string&>());
    if (!t)
        return std::nullopt;
    candidate c;
    c.type = *t;
    c.priority = prio->get<std::uint32_t>();
    if (auto f = j.find("foundation"); f != j.end()) {
        if (!f->is_string() || f->get_ref<const std::string&>().size() > 32)
            return std::nullopt;
        c.foundation = f->get<std::string>();
    }
    if (auto comp = j.find("component"); comp != j.end()) {
        if (!comp->is_number_unsigned() || comp->get<std::uint64_t>() < 1 ||
            comp->get<std::uint64_t>() > 256)
            return std::nullopt;
        c.component = comp->get<unsigned>();
    }
    auto a = endpoint::parse(addr->get_ref<const std::string&>(), ec);
    if (!a)
        return std::nullopt;
    c.address = *a;
    c.base = *a;
    if (auto r = j.find("related"); r != j.end()) {
        if (!r->is_string()) {
            ec = make_error_code(error::malformed_packet);
            return std::nullopt;
        }
        auto re = endpoint::parse(r->get_ref<const std::string&>(), ec);
        if (!re)
            return std::nullopt;
        c.related = *re;
    }
    ec.clear();
    return c;
}

inline std::vector<candidate> gather_host_candidates(std::span<const interface_address> interfaces,
                                                     const host_gather_options& o) {
    std::vector<candidate> out;
    bool want_v4 = true, want_v6 = o.ipv6;
    std::optional<ip_address> only;
    if (!o.bind_address.empty()) {
        std::error_code ec;
        auto a = ip_address::parse(o.bind_address, ec);
        if (!a)
            return out;
        if (a->is_v4())
            want_v6 = false;
        else if (!a->is_unspecified())
            want_v4 = false;
        if (a->is_v6() && !o.ipv6)
            return out;
        if (!a->is_unspecified())
            only = *a;
    }
    unsigned rank = 0;
    for (const auto& ifa : interfaces) {
        const auto& a = ifa.address;
        if (!ifa.up || (a.is_v4() && !want_v4) || (a.is_v6() && !want_v6) || a.is_unspecified())
            continue;
        if (only && a != *only)
            continue;
        if ((ifa.loopback || a.is_loopback()) && !o.include_loopback && !only)
            continue;
        const bool link_local = a.is_v6() && a.data()[0] == 0xfe && (a.data()[1] & 0xc0) == 0x80;
        if (link_local && !o.include_link_local && !only)
            continue;
        const endpoint e{a, o.port};
        out.push_back(make_candidate(candidate_type::host, e, e, rank++, o.socket));
    }
    if (out.empty() && only) {
        const endpoint e{*only, o.port};
        out.push_back(make_candidate(candidate_type::host, e, e, 0, o.socket));
    }
    return out;
}

} // namespace peerlink::ice

#endif // PEERLINK_PROTO_IMPL_CANDIDATES_HPP
