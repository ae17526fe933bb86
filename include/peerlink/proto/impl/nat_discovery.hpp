// Implementation of peerlink/proto/nat_discovery.hpp.
#ifndef PEERLINK_PROTO_IMPL_NAT_DISCOVERY_HPP
#define PEERLINK_PROTO_IMPL_NAT_DISCOVERY_HPP

#include <utility>

namespace peerlink {

inline std::string_view to_string(nat_mapping m) noexcept {
    switch (m) {
    case nat_mapping::endpoint_independent:
        return "endpoint-independent";
    case nat_mapping::address_dependent:
        return "address-dependent";
    case nat_mapping::address_and_port_dependent:
        return "address-and-port-dependent";
    default:
        return "unknown";
    }
}

inline std::string_view to_string(nat_filtering f) noexcept {
    switch (f) {
    case nat_filtering::endpoint_independent:
        return "endpoint-independent";
    case nat_filtering::address_dependent:
        return "address-dependent";
    case nat_filtering::address_and_port_dependent:
        return "address-and-port-dependent";
    default:
        return "unknown";
    }
}

inline std::string_view to_string(nat_type t) noexcept {
    switch (t) {
    case nat_type::udp_blocked:
        return "udp-blocked";
    case nat_type::open_internet:
        return "open internet";
    case nat_type::symmetric_udp_firewall:
        return "symmetric udp firewall";
    case nat_type::full_cone:
        return "full cone";
    case nat_type::restricted_cone:
        return "restricted cone";
    case nat_type::port_restricted_cone:
        return "port-restricted cone";
    case nat_type::symmetric:
        return "symmetric";
    default:
        return "unknown";
    }
}

inline nat_type nat_report::type() const noexcept {
    if (udp_blocked)
        return nat_type::udp_blocked;
    if (behind_nat == false) {
        if (filtering == nat_filtering::endpoint_independent)
            return nat_type::open_internet;
        if (filtering == nat_filtering::unknown)
            return nat_type::unknown;
        return nat_type::symmetric_udp_firewall;
    }
    switch (mapping) {
    case nat_mapping::address_dependent:
    case nat_mapping::address_and_port_dependent:
        return nat_type::symmetric;
    case nat_mapping::endpoint_independent:
        switch (filtering) {
        case nat_filtering::endpoint_independent:
            return nat_type::full_cone;
        case nat_filtering::address_dependent:
            return nat_type::restricted_cone;
        case nat_filtering::address_and_port_dependent:
            return nat_type::port_restricted_cone;
        default:
            return nat_type::unknown;
        }
    default:
        return nat_type::unknown;
    }
}

inline std::string nat_report::to_string() const {
    auto opt = [](const std::optional<endpoint>& e) {
        return e ? e->to_string() : std::string("-");
    };
    std::string s;
    s += "NAT type:    " + std::string(peerlink::to_string(type())) + "\n";
    s += "behind NAT:  " + std::string(!behind_nat ? "unknown" : *behind_nat ? "yes" : "no") + "\n";
    s += "mapping:     " + std::string(peerlink::to_string(mapping)) + "\n";
    s += "filtering:   " + std::string(peerlink::to_string(filtering)) + "\n";
    s += "local:       " + local.to_string() + "\n";
    s += "mapped:      " + opt(mapped);
    if (mapped_alternate_address)
        s += " (to alternate address: " + opt(mapped_alternate_address) +
             ", to alternate address and port: " + opt(mapped_alternate_both) + ")";
    s += "\n";
    s += "server:      " + server.to_string() + " (alternate " + opt(other_address) +
         (rfc5780 ? ", RFC 5780)" : ", no RFC 5780 support)") + "\n";
    if (error)
        s += "error:       " + error.message() + "\n";
    s += "elapsed:     " +
         std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count()) +
         " ms\n";
    return s;
}

inline void to_json(nlohmann::json& j, const nat_report& r) {
    auto opt = [](const std::optional<endpoint>& e) -> nlohmann::json {
        if (!e)
            return nullptr;
        return e->to_string();
    };
    j = nlohmann::json::object();
    j["nat_type"] = std::string(to_string(r.type()));
    j["udp_blocked"] = r.udp_blocked;
    j["behind_nat"] = r.behind_nat ? nlohmann::json(*r.behind_nat) : nlohmann::json(nullptr);
    j["rfc5780"] = r.rfc5780;
    j["mapping"] = std::string(to_string(r.mapping));
    j["filtering"] = std::string(to_string(r.filtering));
    j["local"] = r.local.to_string();
    j["server"] = r.server.to_string();
    j["other_address"] = opt(r.other_address);
    j["mapped"] = opt(r.mapped);
    j["mapped_alternate_address"] = opt(r.mapped_alternate_address);
    j["mapped_alternate_both"] = opt(r.mapped_alternate_both);
    j["error"] = r.error ? nlohmann::json(r.error.message()) : nlohmann::json(nullptr);
    j["elapsed_ms"] = std::chrono::duration_cast<std::chrono::milliseconds>(r.elapsed).count();
}

inline nat_discovery_core::nat_discovery_core(nat_discovery_config cfg)
    : cfg_(std::move(cfg)), client_(cfg_.stun) {
    report_.local = cfg_.local;
    report_.server = cfg_.server;
}

inline void nat_discovery_core::start(time_point now) {
    if (phase_ != phase::idle)
        return;
    started_ = now;
    phase_ = phase::test1;
    send(test_1, cfg_.server, {}, now);
}

inline void nat_discovery_core::send(test t, const endpoint& to, stun::change_request change,
                                     time_point now) noexcept {
    stun::binding_request r;
    r.change = change;
    r.software = cfg_.software;
    r.user_data = t;
    std::error_code ec;
    ids_[t] = client_.start_binding(to, now, ec, r);
    if (!ids_[t]) {
        // Only a configuration too small for the request gets here.
        results_[t].finished = true;
        results_[t].ec = ec;
    }
}

inline bool nat_discovery_core::handle_datagram(std::span<const std::byte> bytes,
                                                const endpoint& from, time_point now) noexcept {
    const bool mine = client_.handle_datagram(bytes, from, now);
    run(now);
    return mine;
}

inline void nat_discovery_core::handle_timeout(time_point now) noexcept {
    client_.handle_timeout(now);
    run(now);
}

// Collects finished tests, then moves the phase on when the tests it waits for are in.
inline void nat_discovery_core::run(time_point now) noexcept {
    while (auto r = client_.poll_event()) {
        if (r->user_data == 0 || r->user_data >= count)
            continue;
        auto& o = results_[r->user_data];
        o.finished = true;
        o.ec = r->ec;
        o.from = r->from;
        if (!r->ec && r->response) {
            std::error_code ec;
            o.binding = stun::decode_binding_response(*r->response, ec);
            if (!o.binding)
                o.ec = ec;
        }
    }
    switch (phase_) {
    case phase::test1:
        if (results_[test_1].finished)
            on_test1(now);
        break;
    case phase::filtering:
        if (results_[filter_2].finished && results_[filter_3].finished)
            on_filtering(now);
        break;
    case phase::mapping:
        if (results_[map_2].finished) // test III is needed only when II's mapping differs
            on_mapping(now);
        break;
    default:
        break;
    }
}

inline void nat_discovery_core::on_test1(time_point now) noexcept {
    const auto& o = results_[test_1];
    if (o.ec == stun_error::transaction_timeout) {
        report_.udp_blocked = true;
        return finish(now);
    }
    if (o.ec) {
        report_.error = o.ec;
        return finish(now);
    }
    report_.mapped = o.binding->mapped;
    if (!cfg_.local.address.is_unspecified())
        report_.behind_nat = o.binding->mapped != cfg_.local;
    if (report_.behind_nat == false)
        report_.mapping = nat_mapping::endpoint_independent; // RFC 5780 §4.3: no NAT
    const auto& other = o.binding->other_address;
    report_.other_address = other;
    report_.rfc5780 = other && other->address.get_family() == cfg_.server.address.get_family() &&
                      other->address != cfg_.server.address && other->port != cfg_.server.port;
    if (!report_.rfc5780)
        return finish(now);
    if (cfg_.filtering)
        start_filtering(now);
    else
        start_mapping(now);
}

inline void nat_discovery_core::start_filtering(time_point now) noexcept {
    phase_ = phase::filtering;
    send(filter_2, cfg_.server, {true, true}, now);
    send(filter_3, cfg_.server, {false, true}, now);
    run(now); // a failed send is already finished
}

inline void nat_discovery_core::on_filtering(time_point now) noexcept {
    const auto& f2 = results_[filter_2];
    const auto& f3 = results_[filter_3];
    const endpoint other = *report_.other_address;
    const endpoint alt_port{cfg_.server.address, other.port};
    // An answer counts only from the address that was asked for.
    const bool got2 = !f2.ec && f2.from == other;
    const bool got3 = !f3.ec && f3.from == alt_port;
    const auto refused = [](const outcome& o) {
        return o.ec && o.ec != stun_error::transaction_timeout;
    };
    if (got2)
        report_.filtering = nat_filtering::endpoint_independent;
    else if (refused(f2) || refused(f3))
        report_.error = refused(f2) ? f2.ec : f3.ec; // e.g. 420: no CHANGE-REQUEST after all
    else if (got3)
        report_.filtering = nat_filtering::address_dependent;
    else if (!f2.ec || !f3.ec)
        report_.error = make_error_code(stun_error::bad_attribute_value); // wrong source
    else
        report_.filtering = nat_filtering::address_and_port_dependent;
    start_mapping(now);
}

inline void nat_discovery_core::start_mapping(time_point now) noexcept {
    if (!cfg_.mapping || report_.behind_nat == false)
        return finish(now);
    phase_ = phase::mapping;
    const endpoint other = *report_.other_address;
    send(map_2, endpoint{other.address, cfg_.server.port}, {}, now);
    send(map_3, other, {}, now);
    run(now);
}

inline void nat_discovery_core::on_mapping(time_point now) noexcept {
    const auto& m2 = results_[map_2];
    const auto& m3 = results_[map_3];
    if (m2.ec) {
        if (m2.ec != stun_error::transaction_timeout)
            report_.error = m2.ec;
        return finish(now); // the alternate address cannot be reached: mapping unknown
    }
    report_.mapped_alternate_address = m2.binding->mapped;
    if (m2.binding->mapped == *report_.mapped) {
        report_.mapping = nat_mapping::endpoint_independent;
        if (m3.finished && !m3.ec)
            report_.mapped_alternate_both = m3.binding->mapped;
        return finish(now);
    }
    if (!m3.finished)
        return;
    if (m3.ec) {
        if (m3.ec != stun_error::transaction_timeout)
            report_.error = m3.ec;
        return finish(now);
    }
    report_.mapped_alternate_both = m3.binding->mapped;
    report_.mapping = m3.binding->mapped == m2.binding->mapped
                          ? nat_mapping::address_dependent
                          : nat_mapping::address_and_port_dependent;
    finish(now);
}

inline void nat_discovery_core::finish(time_point now) noexcept {
    phase_ = phase::done;
    report_.elapsed = now - started_;
    // A test still running (mapping test III after an early verdict) is of no use.
    for (const auto& id : ids_)
        if (id)
            client_.cancel(*id);
}

inline std::optional<nat_report> nat_discovery_core::poll_event() {
    if (phase_ != phase::done || reported_)
        return std::nullopt;
    reported_ = true;
    return report_;
}

} // namespace peerlink

#endif // PEERLINK_PROTO_IMPL_NAT_DISCOVERY_HPP
