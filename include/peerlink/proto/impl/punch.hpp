// Implementation of peerlink/proto/punch.hpp.
#ifndef PEERLINK_PROTO_IMPL_PUNCH_HPP
#define PEERLINK_PROTO_IMPL_PUNCH_HPP

#include <openssl/rand.h>

#include <algorithm>
#include <cstring>

namespace peerlink {

namespace detail {
class punch_error_category_impl final : public std::error_category {
public:
    const char* name() const noexcept override { return "peerlink.punch"; }
    std::string message(int ev) const override {
        switch (static_cast<punch_error>(ev)) {
        case punch_error::timeout:
            return "hole punching found no direct path within the punch timeout";
        case punch_error::bad_credentials:
            return "ICE credentials rejected: ufrag must be 1..64 and password 22..128 "
                   "printable characters";
        case punch_error::no_remote_credentials:
            return "punching started before the peer's ufrag and password were set";
        case punch_error::too_many_pairs:
            return "too many candidate pairs (punch_config::max_pairs)";
        case punch_error::family_mismatch:
            return "candidate of an address family no local socket has";
        }
        return "unknown punch error";
    }
    std::error_condition default_error_condition(int ev) const noexcept override {
        switch (static_cast<punch_error>(ev)) {
        case punch_error::timeout:
            return make_error_condition(condition::nat_traversal_failed);
        case punch_error::bad_credentials:
        case punch_error::no_remote_credentials:
        case punch_error::too_many_pairs:
        case punch_error::family_mismatch:
            return make_error_condition(condition::configuration_error);
        }
        return {ev, *this};
    }
};
} // namespace detail

inline const std::error_category& punch_error_category() noexcept {
    static const detail::punch_error_category_impl instance;
    return instance;
}

namespace ice {

inline nlohmann::json to_json(const nat_info& n) {
    const char* m = n.mapping == mapping_behaviour::endpoint_independent ? "independent"
                    : n.mapping == mapping_behaviour::endpoint_dependent ? "dependent"
                                                                         : "unknown";
    return {{"mapping", m}, {"ports", n.mapped_ports}};
}

inline std::optional<nat_info> nat_info_from_json(const nlohmann::json& j, std::error_code& ec) {
    ec = make_error_code(error::malformed_packet);
    if (!j.is_object())
        return std::nullopt;
    nat_info n;
    auto m = j.find("mapping");
    if (m == j.end() || !m->is_string())
        return std::nullopt;
    const auto& s = m->get_ref<const std::string&>();
    if (s == "independent")
        n.mapping = mapping_behaviour::endpoint_independent;
    else if (s == "dependent")
        n.mapping = mapping_behaviour::endpoint_dependent;
    else if (s != "unknown")
        return std::nullopt;
    if (auto p = j.find("ports"); p != j.end()) {
        if (!p->is_array() || p->size() > 16)
            return std::nullopt;
        for (const auto& v : *p) {
            if (!v.is_number_unsigned() || v.get<std::uint64_t>() > 65535)
                return std::nullopt;
            n.mapped_ports.push_back(v.get<std::uint16_t>());
        }
    }
    ec.clear();
    return n;
}

namespace detail {
inline constexpr std::uint32_t spray_index = 0xffffffffu;
inline constexpr std::size_t npos = static_cast<std::size_t>(-1);
inline constexpr std::size_t response_slots = 64;

inline bool valid_credential(std::string_view s, std::size_t min, std::size_t max) noexcept {
    if (s.size() < min || s.size() > max)
        return false;
    for (char c : s)
        if (static_cast<unsigned char>(c) < 0x21 || static_cast<unsigned char>(c) > 0x7e ||
            c == ':')
            return false;
    return true;
}
} // namespace detail

inline punch_core::punch_core(punch_config cfg) : cfg_(std::move(cfg)) {
    cfg_.burst_size = std::max(cfg_.burst_size, 1u);
    cfg_.spray_batch = std::max(cfg_.spray_batch, 1u);
    if (cfg_.burst_interval <= duration::zero())
        cfg_.burst_interval = std::chrono::milliseconds(1);
    if (cfg_.backoff_initial <= duration::zero())
        cfg_.backoff_initial = cfg_.burst_interval;
    cfg_.backoff_max = std::max(cfg_.backoff_max, cfg_.backoff_initial);
    if (cfg_.spray_interval <= duration::zero())
        cfg_.spray_interval = std::chrono::milliseconds(1);
    std::array<std::byte, 8> seed{};
    fill_random(seed);
    std::memcpy(&rng_, seed.data(), 8);
    rng_ |= 1;
    fill_random(tag_);
    static constexpr char alphabet[] =
        "abcdefghijklmnopqrstuvwxyz234567ABCDEFGHIJKLMNOPQRSTUVWXYZ+/";
    auto random_text = [&](std::size_t n) {
        std::string s(n, 'a');
        for (auto& c : s)
            c = alphabet[next_random() % (sizeof alphabet - 1)];
        return s;
    };
    if (!detail::valid_credential(cfg_.local_ufrag, 1, 64))
        cfg_.local_ufrag = random_text(8);
    if (!detail::valid_credential(cfg_.local_password, 22, 128))
        cfg_.local_password = random_text(24);
    while (cfg_.tie_breaker == 0)
        cfg_.tie_breaker = next_random();
    responses_.resize(detail::response_slots);
    scratch_.resize(512);
    pairs_.reserve(cfg_.max_pairs);
    events_.reserve(16);
}

inline void punch_core::fill_random(std::span<std::byte> out) noexcept {
    if (cfg_.random) {
        cfg_.random(out);
        return;
    }
    if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(out.size())) !=
        1) {
        // OpenSSL failed (practically never): fall back to the generator.
        for (auto& b : out)
            b = static_cast<std::byte>(next_random());
    }
}

inline std::uint64_t punch_core::next_random() noexcept {
    // xorshift64*: only for ports and local text, never for anything an attacker
    // must not guess (transaction ids carry no security; MESSAGE-INTEGRITY does).
    rng_ ^= rng_ >> 12;
    rng_ ^= rng_ << 25;
    rng_ ^= rng_ >> 27;
    return rng_ * 0x2545F4914F6CDD1Dull;
}

inline std::error_code punch_core::set_remote_credentials(std::string_view ufrag,
                                                          std::string_view password) {
    if (!detail::valid_credential(ufrag, 1, 64) || !detail::valid_credential(password, 22, 128))
        return make_error_code(punch_error::bad_credentials);
    remote_ufrag_ = ufrag;
    remote_password_ = password;
    username_out_ = remote_ufrag_ + ":" + cfg_.local_ufrag;
    username_in_ = cfg_.local_ufrag + ":" + remote_ufrag_;
    return {};
}

inline void punch_core::set_remote_nat(const nat_info& n) {
    remote_nat_ = n;
}

inline std::size_t punch_core::find_socket(socket_id id) const noexcept {
    for (std::size_t i = 0; i < sockets_.size(); ++i)
        if (sockets_[i].id == id)
            return i;
    return detail::npos;
}

inline std::size_t punch_core::find_pair(std::size_t sock, const endpoint& remote) const noexcept {
    for (std::size_t i = 0; i < pairs_.size(); ++i)
        if (pairs_[i].sock == sock && pairs_[i].remote == remote)
            return i;
    return detail::npos;
}

inline std::uint64_t punch_core::priority_of(const check_pair& p) const noexcept {
    const auto local = sockets_[p.sock].priority;
    return cfg_.controlling ? pair_priority(local, p.remote_priority)
                            : pair_priority(p.remote_priority, local);
}

inline pair_info punch_core::info_of(const check_pair& p) const {
    pair_info i;
    i.socket = sockets_[p.sock].id;
    i.remote = p.remote;
    i.priority = priority_of(p);
    i.local_type = sockets_[p.sock].type;
    i.remote_type = p.remote_type;
    i.mapped = p.mapped;
    i.rtt = p.rtt;
    return i;
}

inline std::vector<pair_info> punch_core::pairs() const {
    std::vector<pair_info> out;
    for (const auto& p : pairs_)
        out.push_back(info_of(p));
    std::stable_sort(out.begin(), out.end(), [](const pair_info& a, const pair_info& b) {
        return a.priority > b.priority;
    });
    return out;
}

inline std::error_code punch_core::add_pair(std::size_t sock, const endpoint& remote,
                                            std::uint32_t prio, candidate_type type, time_point now,
                                            std::size_t& index) {
    index = find_pair(sock, remote);
    if (index != detail::npos) {
        pairs_[index].remote_priority = std::max(pairs_[index].remote_priority, prio);
        return {};
    }
    if (pairs_.size() >= cfg_.max_pairs)
        return make_error_code(punch_error::too_many_pairs);
    check_pair p;
    p.sock = sock;
    p.remote = remote;
    p.remote_priority = prio;
    p.remote_type = type;
    p.next_send = now;
    p.due = state_ == punch_state::checking;
    any_due_ = any_due_ || p.due;
    index = pairs_.size();
    pairs_.push_back(p);
    return {};
}

inline void punch_core::pair_remote_with_socket(std::size_t sock, time_point now) {
    const bool extra = sockets_[sock].type == candidate_type::peer_reflexive;
    for (const auto& r : remote_candidates_) {
        if (r.address.address.get_family() != sockets_[sock].family)
            continue;
        // Birthday sockets only reach the peer's public side: its host addresses are
        // behind its own NAT, and 256 sockets x every host address would be waste.
        if (extra && r.type == candidate_type::host)
            continue;
        std::size_t i;
        if (add_pair(sock, r.address, r.priority, r.type, now, i))
            return;
    }
}

inline std::error_code punch_core::add_local_candidate(const candidate& c, time_point now) {
    now_ = std::max(now_, now);
    auto s = find_socket(c.socket);
    if (s != detail::npos) {
        if (sockets_[s].family == c.base.address.get_family() &&
            c.priority > sockets_[s].priority) {
            sockets_[s].priority = c.priority;
            sockets_[s].type = c.type;
        }
        return {};
    }
    local_socket ls;
    ls.id = c.socket;
    ls.family = c.base.address.get_family();
    // A reflexive candidate is checked from its base (RFC 8445 §6.1.2.4): the socket
    // ranks as the host candidate would.
    ls.type = c.type == candidate_type::relayed ? candidate_type::relayed : candidate_type::host;
    ls.priority = c.type == candidate_type::server_reflexive
                      ? candidate_priority(candidate_type::host, (c.priority >> 8) & 0xffff)
                      : c.priority;
    sockets_.push_back(ls);
    const auto before = pairs_.size();
    pair_remote_with_socket(sockets_.size() - 1, now);
    (void)before;
    return {};
}

inline void punch_core::add_socket(socket_id id, ip_address::family f, time_point now) {
    now_ = std::max(now_, now);
    if (find_socket(id) != detail::npos)
        return;
    local_socket ls;
    ls.id = id;
    ls.family = f;
    ls.type = candidate_type::peer_reflexive;
    ls.priority = candidate_priority(candidate_type::peer_reflexive, 0);
    sockets_.push_back(ls);
    pair_remote_with_socket(sockets_.size() - 1, now);
}

inline std::error_code punch_core::add_remote_candidate(const candidate& c, time_point now) {
    now_ = std::max(now_, now);
    bool known = false;
    for (auto& r : remote_candidates_)
        if (r.address == c.address) {
            r.priority = std::max(r.priority, c.priority);
            known = true;
        }
    if (!known)
        remote_candidates_.push_back(c);
    if (!spray_targets_.empty() || spray_left_ > 0)
        if (c.type == candidate_type::server_reflexive &&
            std::find(spray_targets_.begin(), spray_targets_.end(), c.address.address) ==
                spray_targets_.end())
            spray_targets_.push_back(c.address.address);
    bool paired = false;
    for (std::size_t s = 0; s < sockets_.size(); ++s) {
        if (sockets_[s].family != c.address.address.get_family())
            continue;
        if (sockets_[s].type == candidate_type::peer_reflexive && c.type == candidate_type::host)
            continue;
        std::size_t i;
        if (auto ec = add_pair(s, c.address, c.priority, c.type, now, i))
            return ec;
        paired = true;
    }
    return paired ? std::error_code{} : make_error_code(punch_error::family_mismatch);
}

inline std::error_code punch_core::start(time_point at, time_point now) {
    if (remote_password_.empty())
        return make_error_code(punch_error::no_remote_credentials);
    if (state_ != punch_state::idle)
        return {};
    start_ = at;
    now_ = std::max(now_, now);
    state_ = punch_state::waiting;
    start_strategies(now);
    handle_timeout(now);
    return {};
}

inline void punch_core::start_strategies(time_point now) {
    using mb = mapping_behaviour;
    const bool local_dep = cfg_.local_nat.mapping == mb::endpoint_dependent;
    const bool remote_dep = remote_nat_.mapping == mb::endpoint_dependent;
    const auto family = sockets_.empty() ? ip_address::family::v4 : sockets_[0].family;
    if (local_dep && remote_nat_.mapping == mb::endpoint_independent && cfg_.birthday_sockets > 0 &&
        !sockets_asked_) {
        sockets_asked_ = true;
        events_.push_back(sockets_requested{cfg_.birthday_sockets, family});
    }
    if (!remote_dep || sockets_.empty())
        return;
    // The socket our server-reflexive candidate came from, else the first.
    std::size_t main = 0;
    for (std::size_t s = 0; s < sockets_.size(); ++s)
        if (sockets_[s].id == 0)
            main = s;
    const auto& ports = remote_nat_.mapped_ports;
    if (ports.size() >= 2 && cfg_.prediction_ports > 0) {
        const int delta = int{ports[ports.size() - 1]} - int{ports[ports.size() - 2]};
        if (delta != 0)
            for (const auto& r : std::vector<candidate>(remote_candidates_)) {
                if (r.type != candidate_type::server_reflexive ||
                    r.address.address.get_family() != sockets_[main].family)
                    continue;
                for (unsigned k = 1; k <= cfg_.prediction_ports; ++k) {
                    const long port = long{ports.back()} + long{delta} * long(k);
                    if (port < 1 || port > 65535)
                        break;
                    std::size_t i;
                    const auto before = pairs_.size();
                    if (add_pair(main,
                                 endpoint{r.address.address, static_cast<std::uint16_t>(port)},
                                 candidate_priority(candidate_type::server_reflexive, 0),
                                 candidate_type::server_reflexive, now, i))
                        break;
                    if (pairs_.size() > before)
                        ++stats_.predicted_pairs;
                }
            }
    }
    if (!local_dep && cfg_.birthday_probes > 0) {
        spray_sock_ = main;
        for (const auto& r : remote_candidates_)
            if (r.type == candidate_type::server_reflexive &&
                r.address.address.get_family() == sockets_[main].family &&
                std::find(spray_targets_.begin(), spray_targets_.end(), r.address.address) ==
                    spray_targets_.end())
                spray_targets_.push_back(r.address.address);
        spray_left_ = cfg_.birthday_probes;
        spray_used_.assign(65536 / 64, 0);
        spray_next_ = start_ + cfg_.spray_delay;
    }
}

inline duration punch_core::interval_after(unsigned sent) const noexcept {
    if (sent < cfg_.burst_size)
        return cfg_.burst_interval;
    auto d = cfg_.backoff_initial;
    for (unsigned i = cfg_.burst_size; i < sent && d < cfg_.backoff_max; ++i)
        d *= 2;
    return std::min(d, cfg_.backoff_max);
}

inline std::uint32_t punch_core::us_since_start(time_point t) const noexcept {
    if (t <= start_)
        return 0;
    return static_cast<std::uint32_t>(
               std::chrono::duration_cast<std::chrono::microseconds>(t - start_).count()) &
           0x7fffffffu;
}

inline bool punch_core::handle_datagram(std::span<const std::byte> bytes, const endpoint& from,
                                        socket_id socket, time_point now) noexcept {
    now_ = std::max(now_, now);
    if (!stun::is_stun_message(bytes))
        return false;
    std::error_code ec;
    auto m = stun::decode(bytes, ec);
    if (!m) {
        ++stats_.malformed;
        return true;
    }
    if (m->get_method() != stun::method::binding)
        return false;
    const auto sock = find_socket(socket);
    if (sock == detail::npos)
        return false;
    if (m->is_request()) {
        handle_request(*m, from, sock, now);
        return true;
    }
    if (m->is_response()) {
        const auto id = m->transaction();
        if (std::memcmp(id.data(), tag_.data(), tag_.size()) != 0)
            return false;
        handle_response(*m, from, sock, now);
        return true;
    }
    return true; // a Binding indication (keepalive): nothing to do
}

inline void punch_core::handle_request(const stun::message_view& m, const endpoint& from,
                                       std::size_t sock, time_point now) noexcept {
    std::error_code ec;
    auto user = m.find(stun::attribute_type::username);
    const auto name = user ? stun::decode_string(*user) : std::string_view{};
    const bool name_ok =
        user && (remote_ufrag_.empty()
                     ? name.size() > cfg_.local_ufrag.size() &&
                           name.substr(0, cfg_.local_ufrag.size() + 1) == cfg_.local_ufrag + ":"
                     : name == username_in_);
    if (!name_ok || stun::verify_fingerprint(m) ||
        stun::verify_integrity(m, stun::short_term_key(cfg_.local_password),
                               stun::integrity_kind::sha1)) {
        ++stats_.auth_failures;
        return;
    }
    ++stats_.requests_received;
    // Role conflicts, RFC 8445 §7.3.1.1.
    if (auto a = m.find(stun::attribute_type::ice_controlling); a && cfg_.controlling) {
        const auto theirs = stun::decode_u64(*a, ec).value_or(0);
        ++stats_.role_conflicts;
        if (cfg_.tie_breaker >= theirs) {
            queue_response(m, from, sockets_[sock].id, 487);
            return;
        }
        switch_role();
    } else if (auto b = m.find(stun::attribute_type::ice_controlled); b && !cfg_.controlling) {
        const auto theirs = stun::decode_u64(*b, ec).value_or(0);
        ++stats_.role_conflicts;
        if (cfg_.tie_breaker >= theirs) {
            switch_role();
        } else {
            queue_response(m, from, sockets_[sock].id, 487);
            return;
        }
    }
    queue_response(m, from, sockets_[sock].id, 0);
    if (state_ == punch_state::connected || state_ == punch_state::failed)
        return;

    std::uint32_t prio = candidate_priority(candidate_type::peer_reflexive, 0);
    if (auto p = m.find(stun::attribute_type::priority))
        prio = stun::decode_u32(*p, ec).value_or(prio);
    auto index = find_pair(sock, from);
    if (index == detail::npos) {
        bool known = false;
        for (const auto& r : remote_candidates_)
            known = known || r.address == from;
        if (!known && remote_candidates_.size() < cfg_.max_pairs) {
            candidate c;
            c.type = candidate_type::peer_reflexive;
            c.address = from;
            c.base = from;
            c.priority = prio;
            remote_candidates_.push_back(c);
            ++stats_.peer_reflexive;
        }
        if (add_pair(sock, from, prio,
                     known ? candidate_type::server_reflexive : candidate_type::peer_reflexive, now,
                     index))
            return;
    }
    auto& p = pairs_[index];
    if (m.has(stun::attribute_type::use_candidate) && !cfg_.controlling) {
        // The controlling side nominates only pairs whose check it saw answered: the
        // path works both ways.
        p.state = pair_state::succeeded;
        if (state_ == punch_state::checking || state_ == punch_state::waiting)
            select(index, now);
        return;
    }
    if (p.state != pair_state::succeeded && !remote_password_.empty() &&
        state_ == punch_state::checking) {
        // Triggered check (RFC 8445 §7.3.1.4): the peer's packet just opened our NAT's
        // filter towards it, so check back at once.
        p.due = true;
        p.next_send = now;
        any_due_ = true;
        cursor_ = 0;
    }
}

inline void punch_core::handle_response(const stun::message_view& m, const endpoint& from,
                                        std::size_t sock, time_point now) noexcept {
    if (remote_password_.empty() || stun::verify_fingerprint(m) ||
        stun::verify_integrity(m, stun::short_term_key(remote_password_),
                               stun::integrity_kind::sha1)) {
        ++stats_.auth_failures;
        return;
    }
    ++stats_.responses_received;
    const auto id = m.transaction();
    const auto stamp = peerlink::detail::load_be<std::uint32_t>(id.data() + 4);
    const auto sent_us = stamp & 0x7fffffffu;
    const bool sent_controlling = (stamp & 0x80000000u) != 0;
    const auto idx = peerlink::detail::load_be<std::uint32_t>(id.data() + 8);
    std::error_code ec;
    if (m.is_error_response()) {
        auto e = m.find(stun::attribute_type::error_code);
        auto v = e ? stun::decode_error_code(*e, ec) : std::nullopt;
        if (v && v->code == 487) {
            ++stats_.role_conflicts;
            if (cfg_.controlling == sent_controlling)
                switch_role();
            if (idx < pairs_.size() && state_ == punch_state::checking) {
                pairs_[idx].due = true;
                pairs_[idx].next_send = now;
                any_due_ = true;
                cursor_ = 0;
            }
        }
        return;
    }
    std::optional<endpoint> mapped;
    if (auto a = m.find(stun::attribute_type::xor_mapped_address))
        mapped = stun::decode_xor_address(*a, m, ec);
    std::size_t index = idx;
    if (idx == detail::spray_index) {
        if (state_ != punch_state::checking)
            return;
        if (add_pair(sock, from, candidate_priority(candidate_type::peer_reflexive, 0),
                     candidate_type::peer_reflexive, now, index))
            return;
        pairs_[index].due = false;
    } else if (idx >= pairs_.size() || pairs_[idx].remote != from || pairs_[idx].sock != sock) {
        return; // not from where the check went (RFC 8445 §7.2.5.2.1)
    }
    auto& p = pairs_[index];
    const auto sent_at = start_ + std::chrono::microseconds(sent_us);
    if (now >= sent_at) {
        const duration sample = now - sent_at;
        p.rtt = p.rtt ? (*p.rtt * 7 + sample) / 8 : sample;
    }
    p.state = pair_state::succeeded;
    p.mapped = mapped;
    // A working pair makes the birthday spray pointless: stop it (it only loads NATs).
    spray_left_ = 0;
    if (state_ != punch_state::checking || !cfg_.controlling)
        return;
    if (nominated_ && *nominated_ == index && p.nominating && sent_us >= p.nominate_from_us) {
        select(index, now);
        return;
    }
    if (!nominated_ && !nominate_at_) {
        nominate_at_ = now + cfg_.nomination_delay;
        std::uint64_t top = 0;
        for (const auto& q : pairs_)
            top = std::max(top, priority_of(q));
        if (priority_of(p) == top)
            nominate_at_ = now;
    }
    maybe_nominate(now);
}

inline void punch_core::maybe_nominate(time_point now) noexcept {
    if (!cfg_.controlling || state_ != punch_state::checking || nominated_ || !nominate_at_ ||
        now < *nominate_at_)
        return;
    std::size_t best = detail::npos, fastest = detail::npos;
    for (std::size_t i = 0; i < pairs_.size(); ++i) {
        const auto& p = pairs_[i];
        if (p.state != pair_state::succeeded)
            continue;
        if (best == detail::npos || priority_of(p) > priority_of(pairs_[best]))
            best = i;
        if (p.rtt && (fastest == detail::npos || *p.rtt < *pairs_[fastest].rtt))
            fastest = i;
    }
    if (best == detail::npos)
        return;
    if (fastest != detail::npos && fastest != best && pairs_[best].rtt) {
        const auto fr = *pairs_[fastest].rtt, br = *pairs_[best].rtt;
        if (fr + cfg_.rtt_margin < br && fr * 2 < br)
            best = fastest;
    }
    auto& p = pairs_[best];
    nominated_ = best;
    p.nominating = true;
    p.nominate_from_us = us_since_start(now);
    p.sent = 0;
    p.next_send = now;
    p.due = true;
    any_due_ = true;
    cursor_ = 0;
}

inline void punch_core::select(std::size_t index, time_point) {
    state_ = punch_state::connected;
    selected_ = info_of(pairs_[index]);
    events_.push_back(connected{*selected_});
}

inline void punch_core::switch_role() noexcept {
    cfg_.controlling = !cfg_.controlling;
    if (nominated_)
        pairs_[*nominated_].nominating = false;
    nominated_.reset();
    nominate_at_.reset();
    if (cfg_.controlling)
        for (const auto& p : pairs_)
            if (p.state == pair_state::succeeded) {
                nominate_at_ = now_ + cfg_.nomination_delay;
                break;
            }
    events_.push_back(role_changed{cfg_.controlling});
}

inline void punch_core::queue_response(const stun::message_view& req, const endpoint& to,
                                       socket_id socket, unsigned error_code) noexcept {
    if (resp_count_ == responses_.size()) {
        ++stats_.dropped_responses;
        return;
    }
    auto& s = responses_[(resp_head_ + resp_count_) % responses_.size()];
    stun::message_writer w(s.buf, stun::method::binding,
                           error_code ? stun::message_class::error_response
                                      : stun::message_class::success_response,
                           req.transaction());
    if (error_code)
        w.add_error_code(error_code);
    else
        w.add_xor_address(stun::attribute_type::xor_mapped_address, to);
    w.add_message_integrity(stun::short_term_key(cfg_.local_password)).add_fingerprint();
    std::error_code ec;
    s.size = w.finish(ec);
    if (ec)
        return;
    s.to = to;
    s.socket = socket;
    ++resp_count_;
}

inline std::size_t punch_core::encode_check(std::span<std::byte> out, const check_pair& p,
                                            std::size_t index, bool use_candidate, const endpoint&,
                                            socket_id) noexcept {
    stun::transaction_id id{};
    std::memcpy(id.data(), tag_.data(), 4);
    // Bit 31: the role the check claimed, for a 487 answer (RFC 8445 §7.2.5.1).
    peerlink::detail::store_be<std::uint32_t>(
        id.data() + 4, (us_since_start(now_) & 0x7fffffffu) | (cfg_.controlling ? 0x80000000u : 0));
    peerlink::detail::store_be<std::uint32_t>(id.data() + 8, static_cast<std::uint32_t>(index));
    stun::message_writer w(out, stun::method::binding, stun::message_class::request, id);
    // PRIORITY: what a peer-reflexive candidate of ours would get (RFC 8445 §7.1.1).
    const auto prio = (type_preference(candidate_type::peer_reflexive) << 24) |
                      (sockets_[p.sock].priority & 0xffffff);
    w.add_string(stun::attribute_type::username, username_out_)
        .add_u32(stun::attribute_type::priority, prio)
        .add_u64(cfg_.controlling ? stun::attribute_type::ice_controlling
                                  : stun::attribute_type::ice_controlled,
                 cfg_.tie_breaker);
    if (use_candidate)
        w.add_empty(stun::attribute_type::use_candidate);
    w.add_message_integrity(stun::short_term_key(remote_password_)).add_fingerprint();
    std::error_code ec;
    return w.finish(ec);
}

inline std::optional<punch_transmit> punch_core::poll_transmit() noexcept {
    if (resp_count_ > 0) {
        auto& s = responses_[resp_head_];
        resp_head_ = (resp_head_ + 1) % responses_.size();
        --resp_count_;
        ++stats_.responses_sent;
        return punch_transmit{{s.buf.data(), s.size}, s.to, s.socket};
    }
    if (state_ != punch_state::checking)
        return std::nullopt;
    if (any_due_) {
        for (; cursor_ < pairs_.size(); ++cursor_) {
            auto& p = pairs_[cursor_];
            if (!p.due)
                continue;
            p.due = false;
            const auto n =
                encode_check(scratch_, p, cursor_, p.nominating, p.remote, sockets_[p.sock].id);
            ++p.sent;
            p.next_send = now_ + interval_after(p.sent);
            ++cursor_;
            if (n == 0)
                continue;
            ++stats_.checks_sent;
            return punch_transmit{{scratch_.data(), n}, p.remote, sockets_[p.sock].id};
        }
        any_due_ = false;
        cursor_ = 0;
    }
    if (spray_batch_left_ > 0 && spray_left_ > 0 && !spray_targets_.empty() &&
        spray_sock_ < sockets_.size()) {
        std::uint16_t port = 0;
        for (int tries = 0; tries < 64 && port == 0; ++tries) {
            const auto cand = static_cast<std::uint16_t>(1024 + next_random() % (65536 - 1024));
            auto& word = spray_used_[cand / 64];
            if (!(word & (std::uint64_t{1} << (cand % 64)))) {
                word |= std::uint64_t{1} << (cand % 64);
                port = cand;
            }
        }
        --spray_batch_left_;
        --spray_left_;
        if (port == 0)
            return std::nullopt;
        const endpoint to{spray_targets_[spray_left_ % spray_targets_.size()], port};
        check_pair probe;
        probe.sock = spray_sock_;
        probe.remote = to;
        const auto n =
            encode_check(scratch_, probe, detail::spray_index, false, to, sockets_[spray_sock_].id);
        if (n == 0)
            return std::nullopt;
        ++stats_.checks_sent;
        ++stats_.spray_sent;
        return punch_transmit{{scratch_.data(), n}, to, sockets_[spray_sock_].id};
    }
    return std::nullopt;
}

inline void punch_core::handle_timeout(time_point now) noexcept {
    now_ = std::max(now_, now);
    if (state_ == punch_state::waiting && now >= start_) {
        state_ = punch_state::checking;
        for (auto& p : pairs_) {
            p.next_send = now;
            p.due = true;
        }
        any_due_ = !pairs_.empty();
        cursor_ = 0;
    }
    if (state_ != punch_state::checking)
        return;
    if (now >= start_ + cfg_.punch_timeout) {
        state_ = punch_state::failed;
        spray_left_ = 0;
        events_.push_back(failed{make_error_code(punch_error::timeout)});
        return;
    }
    for (auto& p : pairs_)
        if ((p.state == pair_state::waiting || p.nominating) && !p.due && p.next_send <= now) {
            p.due = true;
            any_due_ = true;
        }
    if (any_due_)
        cursor_ = 0;
    if (spray_left_ > 0 && now >= spray_next_) {
        spray_batch_left_ = cfg_.spray_batch;
        spray_next_ += cfg_.spray_interval;
        if (spray_next_ <= now)
            spray_next_ = now + cfg_.spray_interval;
    }
    maybe_nominate(now);
}

inline std::optional<time_point> punch_core::poll_timeout() const noexcept {
    if (state_ == punch_state::waiting)
        return start_;
    if (state_ != punch_state::checking)
        return std::nullopt;
    auto t = start_ + cfg_.punch_timeout;
    for (const auto& p : pairs_)
        if (p.state == pair_state::waiting || p.nominating)
            t = std::min(t, p.next_send);
    if (spray_left_ > 0)
        t = std::min(t, spray_next_);
    if (nominate_at_ && !nominated_ && cfg_.controlling)
        t = std::min(t, *nominate_at_);
    return t;
}

inline std::optional<punch_event> punch_core::poll_event() noexcept {
    if (event_head_ < events_.size())
        return events_[event_head_++];
    events_.clear();
    event_head_ = 0;
    return std::nullopt;
}

} // namespace ice
} // namespace peerlink

#endif // PEERLINK_PROTO_IMPL_PUNCH_HPP
