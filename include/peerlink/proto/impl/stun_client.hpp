// Implementation of peerlink/proto/stun_client.hpp.
#ifndef PEERLINK_PROTO_IMPL_STUN_CLIENT_HPP
#define PEERLINK_PROTO_IMPL_STUN_CLIENT_HPP

#include <openssl/rand.h>

#include <algorithm>
#include <cstring>

namespace peerlink::stun {

inline client_core::client_core(client_config cfg) : cfg_(std::move(cfg)) {
    if (cfg_.max_requests == 0)
        cfg_.max_requests = 1;
    if (cfg_.rto <= duration::zero())
        cfg_.rto = std::chrono::milliseconds(1);
    if (cfg_.max_transactions == 0)
        cfg_.max_transactions = 1;
    cfg_.max_message_size = std::max(cfg_.max_message_size, header_size);
    slots_.resize(cfg_.max_transactions);
    for (auto& s : slots_) {
        s.buf.resize(cfg_.max_message_size);
        s.key.reserve(cfg_.max_key_size);
    }
}

inline transaction_id client_core::new_transaction_id() {
    transaction_id id{};
    if (cfg_.random) {
        cfg_.random(id);
    } else if (RAND_bytes(reinterpret_cast<unsigned char*>(id.data()),
                          static_cast<int>(id.size())) != 1) {
        // OpenSSL's generator failed (it practically never does): fall back to
        // something that at least never repeats within this core.
        std::uint64_t mix = reinterpret_cast<std::uintptr_t>(this) * 0x9e3779b97f4a7c15ull;
        std::memcpy(id.data(), &mix, sizeof mix);
    }
    // The counter in the last bytes makes ids unique within the core even when the
    // random source is poor (a test's fixed sequence).
    ++id_counter_;
    for (std::size_t i = 0; i < 4; ++i)
        id[8 + i] ^= static_cast<std::byte>(id_counter_ >> (8 * i));
    return id;
}

inline void client_core::release_delivered() noexcept {
    for (auto& s : slots_)
        if (s.state == slot_state::delivered) {
            s.state = slot_state::free;
            s.response.reset();
        }
}

inline client_core::slot* client_core::find_running(const transaction_id& id) noexcept {
    for (auto& s : slots_)
        if (s.state == slot_state::running && s.id == id)
            return &s;
    return nullptr;
}

inline std::error_code client_core::start(std::span<const std::byte> request, const endpoint& to,
                                          time_point now, const transaction_options& options) {
    release_delivered();
    std::error_code ec;
    auto m = decode(request, ec);
    if (!m || !m->is_request())
        return std::make_error_code(std::errc::invalid_argument);
    if (request.size() > cfg_.max_message_size || options.integrity_key.size() > cfg_.max_key_size)
        return make_error_code(error::message_too_large);
    const transaction_id id = m->transaction();
    if (find_running(id) != nullptr)
        return make_error_code(stun_error::duplicate_transaction);
    auto it = std::find_if(slots_.begin(), slots_.end(),
                           [](const slot& s) { return s.state == slot_state::free; });
    if (it == slots_.end())
        return make_error_code(stun_error::too_many_transactions);
    slot& s = *it;
    s.state = slot_state::running;
    s.needs_send = true;
    s.id = id;
    s.to = to;
    s.from = endpoint{};
    std::memmove(s.buf.data(), request.data(), request.size()); // start_binding encodes in place
    s.size = request.size();
    s.has_key = !options.integrity_key.empty();
    s.key.assign(options.integrity_key.begin(), options.integrity_key.end());
    s.user_data = options.user_data;
    s.sent = 0;
    s.interval = cfg_.rto;
    s.deadline = now; // poll_transmit sets the real deadline when it hands the request out
    s.first_sent = s.last_sent = now;
    s.ec.clear();
    s.response.reset();
    ++stats_.transactions;
    return {};
}

inline std::optional<transaction_id> client_core::start_binding(const endpoint& to, time_point now,
                                                                std::error_code& ec,
                                                                const binding_request& r) {
    release_delivered();
    const transaction_id id = new_transaction_id();
    // Encode into a free slot's buffer, then start from it (start copies in place).
    auto it = std::find_if(slots_.begin(), slots_.end(),
                           [](const slot& s) { return s.state == slot_state::free; });
    if (it == slots_.end()) {
        ec = make_error_code(stun_error::too_many_transactions);
        return std::nullopt;
    }
    message_writer w(it->buf, method::binding, message_class::request, id);
    if (!r.software.empty())
        w.add_string(attribute_type::software, r.software);
    if (r.change.change_ip || r.change.change_port)
        w.add_change_request(r.change);
    if (r.response_port != 0)
        w.add_response_port(r.response_port);
    if (r.padding != 0)
        w.add_padding(r.padding);
    if (r.fingerprint)
        w.add_fingerprint();
    const std::size_t n = w.finish(ec);
    if (n == 0)
        return std::nullopt;
    transaction_options o;
    o.user_data = r.user_data;
    ec = start(std::span<const std::byte>(it->buf.data(), n), to, now, o);
    if (ec)
        return std::nullopt;
    return id;
}

inline bool client_core::cancel(const transaction_id& id) noexcept {
    release_delivered();
    slot* s = find_running(id);
    if (s == nullptr)
        return false;
    s->state = slot_state::free;
    ++stats_.cancelled;
    return true;
}

inline void client_core::finish(slot& s, std::error_code ec, time_point now) noexcept {
    s.state = slot_state::done;
    s.needs_send = false;
    s.ec = ec;
    s.finished = now;
    s.done_seq = ++done_seq_;
}

inline bool client_core::handle_datagram(std::span<const std::byte> bytes, const endpoint& from,
                                         time_point now) noexcept {
    release_delivered();
    if (!is_stun_message(bytes))
        return false;
    transaction_id id;
    std::memcpy(id.data(), bytes.data() + 8, id.size());
    const auto cls = class_of(detail::load_be<std::uint16_t>(bytes.data()));
    if (cls != message_class::success_response && cls != message_class::error_response)
        return false;
    slot* s = find_running(id);
    if (s == nullptr) {
        ++stats_.ignored_unknown;
        return false;
    }
    std::error_code ec;
    auto m = decode(bytes, ec);
    if (!m || m->get_method() != method_of(detail::load_be<std::uint16_t>(s->buf.data()))) {
        ++stats_.ignored_malformed;
        return true;
    }
    if (m->fingerprint_offset() != 0 && verify_fingerprint(*m)) {
        ++stats_.ignored_fingerprint;
        return true;
    }
    std::error_code result;
    if (m->is_error_response()) {
        result = make_error_code(stun_error::error_response);
        if (auto a = m->find(attribute_type::error_code))
            if (auto code = decode_error_code(*a, ec))
                result = make_error_code(error_from_code(code->code));
    }
    if (s->has_key) {
        const bool signed_msg = m->integrity_offset() != 0 || m->integrity_sha256_offset() != 0;
        const bool unsignable =
            result == stun_error::bad_request || result == stun_error::unauthorized ||
            result == stun_error::unknown_attribute || result == stun_error::stale_nonce;
        if (signed_msg ? static_cast<bool>(verify_integrity(*m, s->key)) : !unsignable) {
            ++stats_.ignored_integrity;
            return true;
        }
    }
    if (bytes.size() > s->buf.size()) {
        ++stats_.ignored_too_large;
        return true;
    }
    std::memcpy(s->buf.data(), bytes.data(), bytes.size());
    s->size = bytes.size();
    s->response = decode(std::span<const std::byte>(s->buf.data(), s->size), ec);
    s->from = from;
    ++stats_.responses;
    finish(*s, result, now);
    return true;
}

inline void client_core::handle_timeout(time_point now) noexcept {
    release_delivered();
    for (auto& s : slots_) {
        if (s.state != slot_state::running || s.needs_send || s.deadline > now)
            continue;
        if (s.sent < cfg_.max_requests && !cfg_.reliable) {
            s.needs_send = true;
        } else {
            ++stats_.timeouts;
            finish(s, make_error_code(stun_error::transaction_timeout), now);
        }
    }
}

inline std::optional<transmit> client_core::poll_transmit() noexcept {
    for (auto& s : slots_) {
        if (s.state != slot_state::running || !s.needs_send)
            continue;
        s.needs_send = false;
        // The deadline counts from the moment the request is handed out: the next
        // retransmission one interval later (doubling), or after the last request
        // the final wait Rm * RTO (RFC 8489 §6.2.1).
        const time_point now = s.sent == 0 ? s.first_sent : s.deadline;
        ++s.sent;
        ++stats_.requests_sent;
        if (s.sent > 1)
            ++stats_.retransmissions;
        s.last_sent = now;
        if (cfg_.reliable)
            s.deadline = now + cfg_.reliable_timeout;
        else if (s.sent >= cfg_.max_requests)
            s.deadline = now + cfg_.rto * cfg_.final_wait_factor;
        else {
            s.deadline = now + s.interval;
            s.interval *= 2;
        }
        return transmit{std::span<const std::byte>(s.buf.data(), s.size), s.to};
    }
    return std::nullopt;
}

inline std::optional<time_point> client_core::poll_timeout() const noexcept {
    std::optional<time_point> next;
    for (const auto& s : slots_)
        if (s.state == slot_state::running && !s.needs_send && (!next || s.deadline < *next))
            next = s.deadline;
    return next;
}

inline std::optional<transaction_result> client_core::poll_event() noexcept {
    release_delivered();
    slot* oldest = nullptr;
    for (auto& s : slots_)
        if (s.state == slot_state::done && (oldest == nullptr || s.done_seq < oldest->done_seq))
            oldest = &s;
    if (oldest == nullptr)
        return std::nullopt;
    slot& s = *oldest;
    s.state = slot_state::delivered;
    transaction_result r;
    r.id = s.id;
    r.user_data = s.user_data;
    r.to = s.to;
    r.from = s.from;
    r.ec = s.ec;
    r.response = s.response;
    r.requests_sent = s.sent;
    r.elapsed = s.finished - s.first_sent;
    r.rtt = s.finished - s.last_sent;
    return r;
}

inline std::size_t client_core::active_transactions() const noexcept {
    return static_cast<std::size_t>(std::count_if(slots_.begin(), slots_.end(), [](const slot& s) {
        return s.state == slot_state::running || s.state == slot_state::done;
    }));
}

inline std::optional<binding_result> decode_binding_response(const message_view& m,
                                                             std::error_code& ec) noexcept {
    if (m.get_method() != method::binding || !m.is_success_response()) {
        ec = std::make_error_code(std::errc::invalid_argument);
        return std::nullopt;
    }
    binding_result r;
    if (auto a = m.find(attribute_type::xor_mapped_address)) {
        auto e = decode_xor_address(*a, m, ec);
        if (!e)
            return std::nullopt;
        r.mapped = *e;
    } else if (auto b = m.find(attribute_type::mapped_address)) {
        auto e = decode_address(*b, ec);
        if (!e)
            return std::nullopt;
        r.mapped = *e;
    } else {
        ec = make_error_code(stun_error::attribute_missing);
        return std::nullopt;
    }
    // The optional addresses: a malformed one is reported, an absent one is fine.
    auto optional_address = [&](attribute_type t, attribute_type legacy,
                                std::optional<endpoint>& out) {
        auto a = m.find(t);
        if (!a)
            a = m.find(legacy);
        if (!a)
            return true;
        out = decode_address(*a, ec);
        return out.has_value();
    };
    if (!optional_address(attribute_type::response_origin, attribute_type::source_address,
                          r.response_origin) ||
        !optional_address(attribute_type::other_address, attribute_type::changed_address,
                          r.other_address))
        return std::nullopt;
    ec.clear();
    return r;
}

} // namespace peerlink::stun

#endif // PEERLINK_PROTO_IMPL_STUN_CLIENT_HPP
