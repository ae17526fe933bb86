// Implementation of peerlink/proto/turn_client.hpp.
#ifndef PEERLINK_PROTO_IMPL_TURN_CLIENT_HPP
#define PEERLINK_PROTO_IMPL_TURN_CLIENT_HPP

#include <algorithm>
#include <cstring>
#include <string_view>

namespace peerlink {

namespace detail {

class turn_error_category_impl final : public std::error_category {
public:
    const char* name() const noexcept override { return "peerlink.turn"; }

    std::string message(int ev) const override {
        switch (static_cast<turn_error>(ev)) {
        case turn_error::unauthorized:
            return "TURN server rejected the credentials (401 after a retry with user name, "
                   "realm and nonce): check the user name and password";
        case turn_error::missing_credentials:
            return "TURN server requires credentials (401) and no user name is configured";
        case turn_error::forbidden:
            return "TURN server refused the request (403 Forbidden), e.g. a denied peer address";
        case turn_error::wrong_credentials:
            return "TURN request used other credentials than the allocation (441)";
        case turn_error::stale_nonce:
            return "TURN server kept answering 438 (stale nonce) to fresh nonces";
        case turn_error::allocation_mismatch:
            return "TURN server has no such allocation, or already has one (437)";
        case turn_error::quota_reached:
            return "TURN server: allocation quota reached for this user (486)";
        case turn_error::insufficient_capacity:
            return "TURN server has no relay port left (508)";
        case turn_error::unsupported_transport:
            return "TURN server does not relay the requested transport (442)";
        case turn_error::address_family_not_supported:
            return "TURN server does not support the requested address family (440)";
        case turn_error::peer_address_family_mismatch:
            return "peer address family differs from the relayed address's (443)";
        case turn_error::request_rejected:
            return "TURN server rejected the request (see its error code)";
        case turn_error::bad_response:
            return "TURN server's response lacks a required attribute";
        case turn_error::timeout:
            return "TURN server did not answer";
        case turn_error::allocation_expired:
            return "TURN allocation expired before a refresh succeeded";
        case turn_error::connection_lost:
            return "TCP connection to the TURN server closed or its stream broke";
        case turn_error::not_allocated:
            return "no TURN allocation";
        case turn_error::already_allocated:
            return "a TURN allocation exists or is being made";
        case turn_error::no_permission:
            return "no TURN permission or channel for this peer: create a permission first";
        case turn_error::too_many_peers:
            return "TURN client's permission or channel table is full";
        case turn_error::no_channel_available:
            return "every TURN channel number has been used";
        }
        return "unknown TURN error";
    }

    std::error_condition default_error_condition(int ev) const noexcept override {
        switch (static_cast<turn_error>(ev)) {
        case turn_error::unauthorized:
        case turn_error::missing_credentials:
        case turn_error::forbidden:
        case turn_error::wrong_credentials:
            return make_error_condition(condition::authentication_failed);
        case turn_error::timeout:
        case turn_error::allocation_expired:
        case turn_error::connection_lost:
            return make_error_condition(condition::peer_unreachable);
        case turn_error::stale_nonce:
        case turn_error::allocation_mismatch:
        case turn_error::quota_reached:
        case turn_error::insufficient_capacity:
        case turn_error::unsupported_transport:
        case turn_error::address_family_not_supported:
        case turn_error::peer_address_family_mismatch:
        case turn_error::request_rejected:
            return make_error_condition(condition::nat_traversal_failed);
        case turn_error::bad_response:
            return make_error_condition(condition::malformed_input);
        case turn_error::too_many_peers:
        case turn_error::no_channel_available:
            return make_error_condition(condition::configuration_error);
        default:
            return {ev, *this};
        }
    }
};

// The turn_error for a transaction's outcome (an error response's code, a timeout).
inline std::error_code turn_error_from(std::error_code ec) noexcept {
    if (ec.category() != stun_error_category())
        return ec;
    switch (static_cast<stun_error>(ec.value())) {
    case stun_error::unauthorized:
        return make_error_code(turn_error::unauthorized);
    case stun_error::forbidden:
        return make_error_code(turn_error::forbidden);
    case stun_error::wrong_credentials:
        return make_error_code(turn_error::wrong_credentials);
    case stun_error::stale_nonce:
        return make_error_code(turn_error::stale_nonce);
    case stun_error::allocation_mismatch:
        return make_error_code(turn_error::allocation_mismatch);
    case stun_error::allocation_quota_reached:
        return make_error_code(turn_error::quota_reached);
    case stun_error::insufficient_capacity:
        return make_error_code(turn_error::insufficient_capacity);
    case stun_error::unsupported_transport:
        return make_error_code(turn_error::unsupported_transport);
    case stun_error::address_family_not_supported:
        return make_error_code(turn_error::address_family_not_supported);
    case stun_error::peer_address_family_mismatch:
        return make_error_code(turn_error::peer_address_family_mismatch);
    case stun_error::transaction_timeout:
        return make_error_code(turn_error::timeout);
    default:
        return make_error_code(turn_error::request_rejected);
    }
}

} // namespace detail

inline const std::error_category& turn_error_category() noexcept {
    static const detail::turn_error_category_impl instance;
    return instance;
}

namespace turn {

namespace detail {

// The largest STUN message (20 + 65532) or stream-framed ChannelData (4 + 65536).
inline constexpr std::size_t max_stream_frame = 65552;
// Send indication around the data: header, XOR-PEER-ADDRESS (IPv6), DATA header.
inline constexpr std::size_t indication_overhead = 20 + 4 + 20 + 4;
// Requests hold at most USERNAME, REALM, NONCE and SOFTWARE of their RFC sizes.
inline constexpr std::size_t max_request_size = 4096;

inline client_config sanitized(client_config c) {
    c.refresh_percent = std::clamp(c.refresh_percent, 1u, 99u);
    c.max_data_size = std::clamp<std::size_t>(c.max_data_size, 1, 65535);
    c.max_permissions = std::clamp<std::size_t>(c.max_permissions, 1, 65535);
    c.max_channels = std::clamp<std::size_t>(c.max_channels, 1, 4096);
    c.max_transactions = std::max<std::size_t>(c.max_transactions, 1);
    c.transmit_slots = std::max<std::size_t>(c.transmit_slots, 1);
    c.event_slots = std::max<std::size_t>(c.event_slots, 4);
    c.stream_buffer_size = std::max(c.stream_buffer_size, max_stream_frame);
    if (c.permission_refresh <= duration::zero())
        c.permission_refresh = std::chrono::seconds(240);
    if (c.channel_refresh <= duration::zero())
        c.channel_refresh = std::chrono::seconds(540);
    return c;
}

inline stun::client_config stun_config(const client_config& c) {
    stun::client_config s;
    s.rto = c.rto;
    s.max_requests = c.max_requests;
    s.final_wait_factor = c.final_wait_factor;
    s.reliable = c.framing == stun::framing::stream;
    s.reliable_timeout = c.reliable_timeout;
    s.max_transactions = c.max_transactions;
    s.max_message_size = max_request_size;
    s.max_key_size = 32;
    s.random = c.random;
    return s;
}

inline unsigned error_code_of(const stun::transaction_result& r) noexcept {
    if (!r.response || !r.response->is_error_response())
        return 0;
    std::error_code ec;
    if (auto a = r.response->find(stun::attribute_type::error_code))
        if (auto v = stun::decode_error_code(*a, ec))
            return v->code;
    return 0;
}

} // namespace detail

inline client_core::client_core(client_config cfg)
    : cfg_(detail::sanitized(std::move(cfg))), stun_(detail::stun_config(cfg_)),
      permissions_(cfg_.max_permissions), channels_(cfg_.max_channels),
      request_(detail::max_request_size),
      tx_slot_size_(stun::padded(cfg_.max_data_size) + detail::indication_overhead),
      tx_slots_(cfg_.transmit_slots), events_(cfg_.event_slots) {
    realm_.reserve(763);
    nonce_.reserve(763);
    password_algorithms_.reserve(64);
    tx_storage_.resize(tx_slot_size_ * tx_slots_);
    tx_sizes_.resize(tx_slots_);
    if (cfg_.framing == stun::framing::stream)
        stream_.resize(cfg_.stream_buffer_size);
    indication_id_ = stun_.new_transaction_id();
}

inline const client_stats& client_core::stats() const noexcept {
    stats_.retransmissions = stun_.stats().retransmissions;
    return stats_;
}

// user_data of a transaction: kind (7 bits), credentialed (1), table index (16), the
// generation of what it is for (32), and the generation of the nonce it carried (8).
inline std::uint64_t client_core::user_data(kind k, std::size_t index, std::uint32_t gen,
                                            bool credentialed) const noexcept {
    return static_cast<std::uint64_t>(k) | (credentialed ? 0x80u : 0u) |
           (static_cast<std::uint64_t>(index & 0xffff) << 8) |
           (static_cast<std::uint64_t>(gen) << 24) | (static_cast<std::uint64_t>(nonce_gen_) << 56);
}

// --- tables ---------------------------------------------------------------------------

inline client_core::permission_entry* client_core::find_permission(const ip_address& a) noexcept {
    for (auto& p : permissions_)
        if (p.state != entry_state::unused && p.peer.address == a)
            return &p;
    return nullptr;
}
inline const client_core::permission_entry*
client_core::find_permission(const ip_address& a) const noexcept {
    return const_cast<client_core*>(this)->find_permission(a);
}
inline client_core::channel_entry* client_core::find_channel(const endpoint& e) noexcept {
    for (auto& c : channels_)
        if (c.state != entry_state::unused && c.peer == e)
            return &c;
    return nullptr;
}
inline const client_core::channel_entry*
client_core::find_channel(const endpoint& e) const noexcept {
    return const_cast<client_core*>(this)->find_channel(e);
}

inline client_core::permission_entry* client_core::add_permission(const endpoint& peer) noexcept {
    for (auto& p : permissions_)
        if (p.state == entry_state::unused) {
            p = permission_entry{
                entry_state::pending, false, false, false, p.gen + 1, peer, {}, {}};
            return &p;
        }
    return nullptr;
}

inline std::optional<std::uint16_t> client_core::channel_of(const endpoint& peer) const noexcept {
    const channel_entry* c = find_channel(peer);
    if (c == nullptr || c->state != entry_state::active)
        return std::nullopt;
    return c->number;
}

inline bool client_core::has_permission(const endpoint& peer) const noexcept {
    const permission_entry* p = find_permission(peer.address);
    return p != nullptr && p->state == entry_state::active;
}

inline void client_core::reset_tables() noexcept {
    for (auto& p : permissions_) {
        p.state = entry_state::unused;
        p.in_flight = p.want_send = p.notify = false;
        ++p.gen;
    }
    for (auto& c : channels_) {
        c.state = entry_state::unused;
        c.in_flight = c.want_send = c.notify = false;
        ++c.gen;
    }
    tx_count_ = 0;
    tx_returned_ = false;
}

inline void client_core::cancel_transactions() noexcept {
    if (alloc_in_flight_)
        stun_.cancel(alloc_id_);
    alloc_in_flight_ = false;
    want_alloc_op_ = false;
    for (auto& p : permissions_)
        if (p.in_flight)
            stun_.cancel(p.id);
    for (auto& c : channels_)
        if (c.in_flight)
            stun_.cancel(c.id);
}

// --- operations -----------------------------------------------------------------------

inline std::error_code client_core::allocate(time_point now) {
    if (state_ != client_state::idle)
        return make_error_code(turn_error::already_allocated);
    state_ = client_state::allocating;
    ++alloc_gen_;
    stale_retries_ = 0;
    want_alloc_op_ = true;
    pump_requests(now);
    return {};
}

inline std::error_code client_core::refresh(time_point now) {
    if (state_ != client_state::allocated)
        return make_error_code(turn_error::not_allocated);
    if (!alloc_in_flight_)
        want_alloc_op_ = true;
    pump_requests(now);
    return {};
}

inline std::error_code client_core::create_permission(const endpoint& peer, time_point now) {
    if (state_ != client_state::allocated)
        return make_error_code(turn_error::not_allocated);
    if (peer.address.get_family() != relayed_.address.get_family())
        return make_error_code(turn_error::peer_address_family_mismatch);
    permission_entry* p = find_permission(peer.address);
    if (p == nullptr)
        p = add_permission(peer);
    if (p == nullptr)
        return make_error_code(turn_error::too_many_peers);
    p->peer = peer;
    p->notify = true;
    if (!p->in_flight)
        p->want_send = true;
    pump_requests(now);
    return {};
}

inline std::error_code client_core::bind_channel(const endpoint& peer, time_point now) {
    if (state_ != client_state::allocated)
        return make_error_code(turn_error::not_allocated);
    if (peer.address.get_family() != relayed_.address.get_family())
        return make_error_code(turn_error::peer_address_family_mismatch);
    channel_entry* c = find_channel(peer);
    if (c == nullptr) {
        auto it = std::find_if(channels_.begin(), channels_.end(), [](const channel_entry& e) {
            return e.state == entry_state::unused;
        });
        if (it == channels_.end())
            return make_error_code(turn_error::too_many_peers);
        // A number is never reused: RFC 8656 §12 forbids rebinding one to another peer
        // within 5 minutes of its expiry, and the core does not track expiries.
        if (next_channel_ > 0x4fff)
            return make_error_code(turn_error::no_channel_available);
        c = &*it;
        *c = channel_entry{entry_state::pending,
                           false,
                           false,
                           false,
                           c->gen + 1,
                           static_cast<std::uint16_t>(next_channel_++),
                           peer,
                           {},
                           {}};
    }
    c->notify = true;
    if (!c->in_flight)
        c->want_send = true;
    pump_requests(now);
    return {};
}

inline std::error_code client_core::deallocate(time_point now) {
    if (state_ != client_state::allocated)
        return make_error_code(turn_error::not_allocated);
    cancel_transactions();
    reset_tables();
    ++alloc_gen_;
    state_ = client_state::deallocating;
    want_alloc_op_ = true;
    pump_requests(now);
    return {};
}

inline void client_core::release_transmit() noexcept {
    if (!tx_returned_)
        return;
    tx_returned_ = false;
    tx_head_ = (tx_head_ + 1) % tx_slots_;
    --tx_count_;
}

inline std::error_code client_core::send(const endpoint& peer, std::span<const std::byte> data,
                                         time_point) noexcept {
    release_transmit();
    if (state_ != client_state::allocated)
        return make_error_code(turn_error::not_allocated);
    if (data.size() > cfg_.max_data_size)
        return make_error_code(error::message_too_large);
    const channel_entry* c = find_channel(peer);
    if (c != nullptr && c->state != entry_state::active)
        c = nullptr;
    if (c == nullptr && find_permission(peer.address) == nullptr)
        return make_error_code(turn_error::no_permission);
    if (tx_count_ == tx_slots_) {
        ++stats_.dropped_send;
        return std::make_error_code(std::errc::operation_would_block);
    }
    const std::size_t slot = (tx_head_ + tx_count_) % tx_slots_;
    std::span<std::byte> out(tx_storage_.data() + slot * tx_slot_size_, tx_slot_size_);
    std::error_code ec;
    std::size_t n = 0;
    if (c != nullptr) {
        n = stun::encode_channel_data(out, c->number, data, ec, cfg_.framing);
        if (n != 0)
            ++stats_.sent_channel_data;
    } else {
        // Indications need unique ids, not unpredictable ones: a counter over a random base.
        stun::transaction_id id = indication_id_;
        const std::uint64_t count = ++indication_counter_;
        for (std::size_t i = 0; i < 8; ++i)
            id[i] ^= static_cast<std::byte>(count >> (8 * i));
        stun::message_writer w(out, stun::method::send, stun::message_class::indication, id);
        w.add_xor_address(stun::attribute_type::xor_peer_address, peer)
            .add_bytes(stun::attribute_type::data, data);
        n = w.finish(ec);
        if (n != 0)
            ++stats_.sent_indications;
    }
    if (n == 0)
        return ec;
    tx_sizes_[slot] = n;
    ++tx_count_;
    stats_.bytes_sent += data.size();
    return {};
}

// --- requests -------------------------------------------------------------------------

inline void client_core::pump_requests(time_point now) noexcept {
    if (want_alloc_op_ && !alloc_in_flight_) {
        const kind k = state_ == client_state::allocating     ? kind::allocate
                       : state_ == client_state::deallocating ? kind::deallocate
                                                              : kind::refresh;
        if (state_ == client_state::allocating || state_ == client_state::allocated ||
            state_ == client_state::deallocating) {
            if (!start_request(k, 0, now))
                return; // no free transaction: retried when one finishes
        } else {
            want_alloc_op_ = false;
        }
    }
    if (state_ != client_state::allocated)
        return;
    for (std::size_t i = 0; i < permissions_.size(); ++i) {
        auto& p = permissions_[i];
        if (p.state != entry_state::unused && p.want_send && !p.in_flight &&
            !start_request(kind::permission, i, now))
            return;
    }
    for (std::size_t i = 0; i < channels_.size(); ++i) {
        auto& c = channels_[i];
        if (c.state != entry_state::unused && c.want_send && !c.in_flight &&
            !start_request(kind::channel, i, now))
            return;
    }
}

// Encodes and starts the request of `k`. Returns false only when every transaction
// slot is busy (the request stays wanted); any other failure ends the operation.
inline bool client_core::start_request(kind k, std::size_t index, time_point now) noexcept {
    using stun::attribute_type;
    const stun::transaction_id id = stun_.new_transaction_id();
    stun::method m = stun::method::refresh;
    std::uint32_t gen = alloc_gen_;
    switch (k) {
    case kind::allocate:
        m = stun::method::allocate;
        break;
    case kind::permission:
        m = stun::method::create_permission;
        gen = permissions_[index].gen;
        break;
    case kind::channel:
        m = stun::method::channel_bind;
        gen = channels_[index].gen;
        break;
    default:
        break;
    }
    stun::message_writer w(request_, m, stun::message_class::request, id);
    const auto lifetime = static_cast<std::uint32_t>(cfg_.lifetime.count());
    switch (k) {
    case kind::allocate:
        w.add_requested_transport(17);
        if (cfg_.relay_family)
            w.add_address_family(attribute_type::requested_address_family, *cfg_.relay_family);
        if (lifetime != 0)
            w.add_u32(attribute_type::lifetime, lifetime);
        break;
    case kind::refresh:
        if (lifetime != 0)
            w.add_u32(attribute_type::lifetime, lifetime);
        break;
    case kind::deallocate:
        w.add_u32(attribute_type::lifetime, 0);
        break;
    case kind::permission:
        w.add_xor_address(attribute_type::xor_peer_address, permissions_[index].peer);
        break;
    case kind::channel:
        w.add_channel_number(channels_[index].number)
            .add_xor_address(attribute_type::xor_peer_address, channels_[index].peer);
        break;
    }
    if (!cfg_.software.empty())
        w.add_string(attribute_type::software, cfg_.software);
    const bool cred = has_credentials();
    if (cred) {
        w.add_string(attribute_type::username, cfg_.username)
            .add_string(attribute_type::realm, realm_)
            .add_string(attribute_type::nonce, nonce_);
        if (algorithm_)
            w.add_bytes(attribute_type::password_algorithms, password_algorithms_)
                .add_password_algorithm({*algorithm_, {}});
        w.add_message_integrity(key_.span());
    }
    if (cfg_.fingerprint)
        w.add_fingerprint();
    std::error_code ec;
    const std::size_t n = w.finish(ec);
    if (n != 0) {
        stun::transaction_options o;
        if (cred)
            o.integrity_key = key_.span();
        o.user_data = user_data(k, index, gen, cred);
        ec = stun_.start(std::span<const std::byte>(request_.data(), n), cfg_.server, now, o);
        if (ec == stun_error::too_many_transactions)
            return false;
    }
    if (ec) {
        // An encoding failure (a user name too long, no MD5/HMAC in OpenSSL) is final.
        stun::transaction_result r;
        r.user_data = user_data(k, index, gen, cred);
        r.ec = ec;
        on_result(r, now);
        return true;
    }
    ++stats_.requests;
    switch (k) {
    case kind::permission:
        permissions_[index].in_flight = true;
        permissions_[index].want_send = false;
        permissions_[index].id = id;
        break;
    case kind::channel:
        channels_[index].in_flight = true;
        channels_[index].want_send = false;
        channels_[index].id = id;
        break;
    default:
        alloc_in_flight_ = true;
        want_alloc_op_ = false;
        alloc_id_ = id;
        break;
    }
    return true;
}

inline void client_core::collect(time_point now) noexcept {
    while (auto r = stun_.poll_event())
        on_result(*r, now);
    pump_requests(now);
}

// Takes REALM, NONCE (and PASSWORD-ALGORITHMS) from a 401 or 438 and derives the key.
inline bool client_core::take_challenge(const stun::message_view& m) noexcept {
    using stun::attribute_type;
    const auto nonce = m.find(attribute_type::nonce);
    const auto realm = m.find(attribute_type::realm);
    if (!nonce || (!realm && realm_.empty()))
        return false;
    const std::string_view nonce_text = stun::decode_string(*nonce);
    std::optional<stun::password_algorithm> alg;
    std::span<const std::byte> algs;
    // RFC 8489 §9.2.4: a nonce starting with the cookie "obMatJos2" announces the
    // security features; with PASSWORD-ALGORITHMS the client picks one and echoes both.
    if (nonce_text.substr(0, 9) == "obMatJos2")
        if (auto a = m.find(attribute_type::password_algorithms)) {
            std::error_code ec;
            auto list = stun::decode_password_algorithms(*a, ec);
            if (!list)
                return false;
            for (std::size_t i = 0; i < list->count && !alg; ++i)
                if (list->entries[i].algorithm == stun::password_algorithm::md5 ||
                    list->entries[i].algorithm == stun::password_algorithm::sha256)
                    alg = list->entries[i].algorithm;
            if (!alg)
                return false;
            algs = a->value;
        }
    bool rekey = !has_credentials() || alg != algorithm_;
    if (realm) {
        const std::string_view realm_text = stun::decode_string(*realm);
        if (realm_text.empty())
            return false;
        rekey = rekey || realm_text != realm_;
        realm_.assign(realm_text);
    }
    if (nonce_text != nonce_)
        ++nonce_gen_;
    nonce_.assign(nonce_text);
    password_algorithms_.assign(algs.begin(), algs.end());
    algorithm_ = alg;
    if (rekey) {
        std::error_code ec;
        auto k = stun::long_term_key(cfg_.username, realm_, cfg_.password, ec,
                                     alg.value_or(stun::password_algorithm::md5));
        if (!k) {
            key_.size = 0;
            return false;
        }
        key_ = *k;
    }
    return true;
}

inline void client_core::on_result(const stun::transaction_result& r, time_point now) noexcept {
    const auto k = static_cast<kind>(r.user_data & 0x7f);
    const bool cred = (r.user_data & 0x80) != 0;
    const std::size_t index = (r.user_data >> 8) & 0xffff;
    const auto gen = static_cast<std::uint32_t>(r.user_data >> 24);
    const unsigned code = detail::error_code_of(r);

    // Whose result it is; a result for something since reset is dropped.
    permission_entry* perm = nullptr;
    channel_entry* chan = nullptr;
    switch (k) {
    case kind::allocate:
    case kind::refresh:
    case kind::deallocate:
        if (gen != alloc_gen_)
            return;
        alloc_in_flight_ = false;
        break;
    case kind::permission:
        if (index >= permissions_.size() || permissions_[index].gen != gen ||
            permissions_[index].state == entry_state::unused)
            return;
        perm = &permissions_[index];
        perm->in_flight = false;
        break;
    case kind::channel:
        if (index >= channels_.size() || channels_[index].gen != gen ||
            channels_[index].state == entry_state::unused)
            return;
        chan = &channels_[index];
        chan->in_flight = false;
        break;
    default:
        return;
    }

    auto ask_again = [&] {
        if (perm != nullptr)
            perm->want_send = true;
        else if (chan != nullptr)
            chan->want_send = true;
        else
            want_alloc_op_ = true;
    };
    auto fail = [&](std::error_code ec) {
        ec = peerlink::detail::turn_error_from(ec);
        switch (k) {
        case kind::allocate:
            state_ = client_state::idle;
            ++alloc_gen_;
            push_event(error_event{operation::allocate, ec, {}, code, false});
            break;
        case kind::refresh:
            // A lost refresh is tried again at once while the allocation lives; one the
            // server failed (500) after a pause, so a failing server is not flooded.
            if (ec == turn_error::timeout && now < expires_at_) {
                want_alloc_op_ = true;
                break;
            }
            if (code == 500 && now < expires_at_) {
                refresh_at_ =
                    now + std::clamp<duration>((expires_at_ - now) / 2, std::chrono::seconds(1),
                                               std::chrono::seconds(5));
                break;
            }
            fail_allocation(operation::refresh, ec, code, now);
            break;
        case kind::deallocate:
            state_ = client_state::closed;
            ++alloc_gen_;
            if (code == 437) // the server has no allocation: deallocated all the same
                push_event(deallocated_event{});
            else
                push_event(error_event{operation::deallocate, ec, {}, code, false});
            break;
        case kind::permission:
            perm->state = entry_state::unused;
            perm->want_send = perm->notify = false;
            ++perm->gen;
            push_event(error_event{operation::create_permission, ec, perm->peer, code, false});
            break;
        case kind::channel:
            chan->state = entry_state::unused;
            chan->want_send = chan->notify = false;
            ++chan->gen;
            push_event(error_event{operation::channel_bind, ec, chan->peer, code, false});
            break;
        }
    };

    if (r.ec) {
        if (r.ec == stun_error::unauthorized && !cred && r.response) {
            // The challenge of the long-term mechanism (RFC 8489 §9.2.3).
            if (cfg_.username.empty())
                return fail(make_error_code(turn_error::missing_credentials));
            if (!take_challenge(*r.response))
                return fail(make_error_code(turn_error::bad_response));
            ++stats_.auth_challenges;
            return ask_again();
        }
        if (r.ec == stun_error::stale_nonce && r.response) {
            // Requests in flight when the nonce expires all get a 438; only one that
            // carried the current nonce says something new (and counts as a retry).
            if (static_cast<std::uint8_t>(r.user_data >> 56) == nonce_gen_ || !cred) {
                if (++stale_retries_ > cfg_.max_stale_nonce_retries || cfg_.username.empty())
                    return fail(r.ec);
                if (!take_challenge(*r.response))
                    return fail(make_error_code(turn_error::bad_response));
                ++stats_.stale_nonces;
            }
            return ask_again();
        }
        return fail(r.ec);
    }
    stale_retries_ = 0;

    const stun::message_view& m = *r.response;
    std::error_code ec;
    auto granted = [&]() -> duration {
        if (auto a = m.find(stun::attribute_type::lifetime))
            if (auto v = stun::decode_u32(*a, ec))
                return std::chrono::seconds(*v);
        return cfg_.lifetime.count() > 0 ? duration(cfg_.lifetime) : std::chrono::seconds(600);
    };
    auto schedule = [&](duration lifetime) {
        expires_at_ = now + lifetime;
        refresh_at_ = now + lifetime * cfg_.refresh_percent / 100;
    };
    switch (k) {
    case kind::allocate: {
        auto relayed = m.find(stun::attribute_type::xor_relayed_address);
        std::optional<endpoint> rel;
        if (relayed)
            rel = stun::decode_xor_address(*relayed, m, ec);
        if (!rel)
            return fail(make_error_code(turn_error::bad_response));
        relayed_ = *rel;
        if (auto a = m.find(stun::attribute_type::xor_mapped_address))
            if (auto e = stun::decode_xor_address(*a, m, ec))
                mapped_ = *e;
        const duration lifetime = granted();
        schedule(lifetime);
        state_ = client_state::allocated;
        push_event(allocated_event{relayed_, mapped_, lifetime});
        break;
    }
    case kind::refresh: {
        const duration lifetime = granted();
        if (lifetime == duration::zero())
            return fail_allocation(operation::refresh,
                                   make_error_code(turn_error::allocation_expired), 0, now);
        schedule(lifetime);
        ++stats_.refreshes;
        push_event(refreshed_event{lifetime});
        break;
    }
    case kind::deallocate:
        state_ = client_state::closed;
        ++alloc_gen_;
        push_event(deallocated_event{});
        break;
    case kind::permission:
        perm->state = entry_state::active;
        perm->refresh_at = now + cfg_.permission_refresh;
        ++stats_.permission_refreshes;
        if (perm->notify) {
            perm->notify = false;
            push_event(permission_created_event{perm->peer});
        }
        break;
    case kind::channel: {
        chan->state = entry_state::active;
        chan->refresh_at = now + cfg_.channel_refresh;
        ++stats_.channel_refreshes;
        // The binding installed a permission for the peer's address too (RFC 8656
        // §12.2); it lasts 5 minutes, less than the binding, so it is refreshed on its
        // own. Without room for it, the channel is refreshed as often instead.
        permission_entry* p = find_permission(chan->peer.address);
        if (p == nullptr)
            p = add_permission(chan->peer);
        if (p != nullptr) {
            if (!p->in_flight && !p->want_send) {
                p->state = entry_state::active;
                p->refresh_at = now + cfg_.permission_refresh;
            }
        } else {
            chan->refresh_at = now + std::min(cfg_.channel_refresh, cfg_.permission_refresh);
        }
        if (chan->notify) {
            chan->notify = false;
            push_event(channel_bound_event{chan->peer, chan->number});
        }
        break;
    }
    }
}

inline void client_core::fail_allocation(operation op, std::error_code ec, unsigned code,
                                         time_point) noexcept {
    cancel_transactions();
    reset_tables();
    ++alloc_gen_;
    state_ = client_state::failed;
    push_event(error_event{op, ec, {}, code, true});
}

// --- input ----------------------------------------------------------------------------

inline void client_core::push_event(client_event e) noexcept {
    if (ev_count_ == events_.size()) {
        ++stats_.dropped_events;
        return;
    }
    events_[(ev_head_ + ev_count_) % events_.size()] = e;
    ++ev_count_;
}

inline bool client_core::process_frame(std::span<const std::byte> frame, time_point now) noexcept {
    using stun::attribute_type;
    const bool receiving =
        state_ == client_state::allocated || state_ == client_state::deallocating;
    switch (stun::classify_packet(frame)) {
    case stun::packet_kind::stun: {
        if (!stun::is_stun_message(frame)) {
            ++stats_.dropped_malformed;
            return true;
        }
        const auto type = peerlink::detail::load_be<std::uint16_t>(frame.data());
        const auto cls = stun::class_of(type);
        if (cls == stun::message_class::success_response ||
            cls == stun::message_class::error_response) {
            if (!stun_.handle_datagram(frame, cfg_.server, now))
                ++stats_.dropped_unexpected;
            collect(now);
            return true;
        }
        if (cls != stun::message_class::indication || stun::method_of(type) != stun::method::data ||
            !receiving) {
            ++stats_.dropped_unexpected;
            return true;
        }
        std::error_code ec;
        auto m = stun::decode(frame, ec);
        std::optional<stun::attribute> peer_attr, data_attr;
        if (m) {
            peer_attr = m->find(attribute_type::xor_peer_address);
            data_attr = m->find(attribute_type::data);
        }
        std::optional<endpoint> peer;
        if (peer_attr)
            peer = stun::decode_xor_address(*peer_attr, *m, ec);
        if (!peer || !data_attr) {
            ++stats_.dropped_malformed;
            return true;
        }
        ++stats_.received_indications;
        stats_.bytes_received += data_attr->value.size();
        push_event(data_received_event{*peer, data_attr->value, 0});
        return true;
    }
    case stun::packet_kind::channel_data: {
        std::error_code ec;
        auto d = stun::decode_channel_data(frame, ec, cfg_.framing);
        if (!d) {
            ++stats_.dropped_malformed;
            return true;
        }
        const channel_entry* c = nullptr;
        if (receiving)
            for (const auto& e : channels_)
                if (e.state != entry_state::unused && e.number == d->channel) {
                    c = &e; // a pending binding too: the server may have bound it already
                    break;
                }
        if (c == nullptr) {
            ++stats_.dropped_unknown_channel;
            return true;
        }
        ++stats_.received_channel_data;
        stats_.bytes_received += d->data.size();
        push_event(data_received_event{c->peer, d->data, d->channel});
        return true;
    }
    default:
        return false;
    }
}

// Data events not drained before the next datagram view a buffer the caller has
// likely reused: they go, counted, rather than hand out stale bytes.
inline void client_core::drop_stale_data() noexcept {
    std::size_t kept = 0;
    for (std::size_t i = 0; i < ev_count_; ++i) {
        client_event& e = events_[(ev_head_ + i) % events_.size()];
        if (std::holds_alternative<data_received_event>(e)) {
            ++stats_.dropped_events;
            continue;
        }
        if (kept != i)
            events_[(ev_head_ + kept) % events_.size()] = e;
        ++kept;
    }
    ev_count_ = kept;
}

inline bool client_core::handle_datagram(std::span<const std::byte> bytes, const endpoint& from,
                                         time_point now) noexcept {
    if (cfg_.framing != stun::framing::datagram)
        return false;
    if (from != cfg_.server) {
        ++stats_.dropped_foreign;
        return false;
    }
    if (ev_count_ != 0)
        drop_stale_data();
    return process_frame(bytes, now);
}

inline std::size_t client_core::handle_stream_bytes(std::span<const std::byte> bytes,
                                                    time_point now) noexcept {
    if (cfg_.framing != stun::framing::stream || stream_broken_)
        return 0;
    // Frames before stream_begin_ were handed out as events; their views end here.
    if (stream_begin_ != 0) {
        std::memmove(stream_.data(), stream_.data() + stream_begin_, stream_end_ - stream_begin_);
        stream_end_ -= stream_begin_;
        stream_begin_ = 0;
    }
    const std::size_t n = std::min(bytes.size(), stream_.size() - stream_end_);
    if (n != 0)
        std::memcpy(stream_.data() + stream_end_, bytes.data(), n);
    stream_end_ += n;
    stream_now_ = now;
    return n;
}

inline void client_core::handle_stream_closed(time_point now) noexcept {
    if (cfg_.framing != stun::framing::stream)
        return;
    stream_broken_ = true;
    if (state_ == client_state::deallocating) {
        // The server frees an allocation whose TCP connection closes (RFC 8656 §3.1).
        cancel_transactions();
        ++alloc_gen_;
        state_ = client_state::closed;
        push_event(deallocated_event{});
        return;
    }
    if (state_ == client_state::closed || state_ == client_state::failed)
        return;
    fail_allocation(operation::connection, make_error_code(turn_error::connection_lost), 0, now);
}

inline void client_core::handle_timeout(time_point now) noexcept {
    stun_.handle_timeout(now);
    collect(now);
    if (state_ != client_state::allocated)
        return;
    if (now >= expires_at_)
        return fail_allocation(operation::refresh, make_error_code(turn_error::allocation_expired),
                               0, now);
    if (now >= refresh_at_ && !alloc_in_flight_) {
        want_alloc_op_ = true;
        refresh_at_ = time_point::max();
    }
    for (auto& p : permissions_)
        if (p.state == entry_state::active && !p.in_flight && now >= p.refresh_at)
            p.want_send = true;
    for (auto& c : channels_)
        if (c.state == entry_state::active && !c.in_flight && now >= c.refresh_at)
            c.want_send = true;
    pump_requests(now);
}

// --- output ---------------------------------------------------------------------------

inline std::optional<client_event> client_core::poll_event() noexcept {
    // Over TCP, frames are taken from the stream only when the previous events are
    // out, so the stream never produces more events than the ring holds.
    while (ev_count_ == 0 && cfg_.framing == stun::framing::stream && !stream_broken_) {
        const std::span<const std::byte> avail(stream_.data() + stream_begin_,
                                               stream_end_ - stream_begin_);
        std::error_code ec;
        const auto size = stun::stream_frame_size(avail, ec);
        if (ec) {
            stream_broken_ = true;
            if (state_ != client_state::closed && state_ != client_state::failed)
                fail_allocation(operation::connection, make_error_code(turn_error::connection_lost),
                                0, stream_now_);
            break;
        }
        if (!size || *size > avail.size())
            break;
        stream_begin_ += *size;
        if (!process_frame(avail.first(*size), stream_now_))
            ++stats_.dropped_unexpected;
    }
    if (ev_count_ == 0)
        return std::nullopt;
    client_event e = events_[ev_head_];
    ev_head_ = (ev_head_ + 1) % events_.size();
    --ev_count_;
    return e;
}

inline std::optional<transmit> client_core::poll_transmit() noexcept {
    release_transmit();
    if (auto t = stun_.poll_transmit())
        return t;
    if (tx_count_ == 0)
        return std::nullopt;
    tx_returned_ = true;
    return transmit{std::span<const std::byte>(tx_storage_.data() + tx_head_ * tx_slot_size_,
                                               tx_sizes_[tx_head_]),
                    cfg_.server};
}

inline std::optional<time_point> client_core::poll_timeout() const noexcept {
    std::optional<time_point> next = stun_.poll_timeout();
    auto consider = [&](time_point t) {
        if (!next || t < *next)
            next = t;
    };
    if (state_ == client_state::allocated) {
        consider(expires_at_);
        if (!alloc_in_flight_ && !want_alloc_op_)
            consider(refresh_at_);
        for (const auto& p : permissions_)
            if (p.state == entry_state::active && !p.in_flight && !p.want_send)
                consider(p.refresh_at);
        for (const auto& c : channels_)
            if (c.state == entry_state::active && !c.in_flight && !c.want_send)
                consider(c.refresh_at);
    }
    return next;
}

} // namespace turn
} // namespace peerlink

#endif // PEERLINK_PROTO_IMPL_TURN_CLIENT_HPP
