// Implementation of peerlink/proto/stun_server.hpp.
#ifndef PEERLINK_PROTO_IMPL_STUN_SERVER_HPP
#define PEERLINK_PROTO_IMPL_STUN_SERVER_HPP

#include <algorithm>
#include <array>
#include <cstring>

namespace peerlink::stun {

inline std::error_code server_core::check_config(const server_config& cfg) noexcept {
    if (!cfg.alternate)
        return {};
    const endpoint& p = cfg.primary;
    const endpoint& a = *cfg.alternate;
    if (p.address.get_family() != a.address.get_family() || p.address.is_unspecified() ||
        a.address.is_unspecified() || p.address == a.address || p.port == a.port || p.port == 0 ||
        a.port == 0)
        return make_error_code(error::invalid_config);
    return {};
}

inline server_core::server_core(server_config cfg) : cfg_(std::move(cfg)) {
    rfc5780_ = cfg_.alternate.has_value() && !check_config(cfg_);
    cfg_.max_message_size = std::max(cfg_.max_message_size, std::size_t{256});
    ring_.resize(std::max(cfg_.transmit_slots, std::size_t{1}));
    for (auto& s : ring_)
        s.buf.resize(cfg_.max_message_size);
}

inline endpoint server_core::local_endpoint(server_socket s) const noexcept {
    if (!rfc5780_)
        return cfg_.primary;
    const auto bits = static_cast<unsigned>(s);
    return endpoint{(bits & 2) ? cfg_.alternate->address : cfg_.primary.address,
                    (bits & 1) ? cfg_.alternate->port : cfg_.primary.port};
}

inline server_core::slot* server_core::push() noexcept {
    if (count_ == ring_.size()) {
        ++stats_.dropped_queue_full;
        return nullptr;
    }
    slot& s = ring_[(head_ + count_) % ring_.size()];
    ++count_;
    return &s;
}

inline std::optional<server_transmit> server_core::poll_transmit() noexcept {
    if (count_ == 0)
        return std::nullopt;
    slot& s = ring_[head_];
    head_ = (head_ + 1) % ring_.size();
    --count_;
    return server_transmit{std::span<const std::byte>(s.buf.data(), s.size), s.to, s.via};
}

inline bool server_core::handle_datagram(std::span<const std::byte> bytes, const endpoint& from,
                                         server_socket on) noexcept {
    std::error_code ec;
    auto h = decode_header(bytes, ec);
    if (!h)
        return false;
    if (!rfc5780_)
        on = server_socket::primary;
    const bool classic = h->cookie != magic_cookie;
    if (classic && !cfg_.answer_classic)
        return false; // without the cookie it may well be another protocol
    auto m = decode(bytes, ec, {.allow_classic = cfg_.answer_classic});
    const auto cls = class_of(h->type);
    if (!m) {
        // A request whose header is sound but whose attributes are not still has a
        // transaction id to answer to.
        const bool attributes_bad =
            ec == stun_error::attribute_overrun || ec == stun_error::bad_padding ||
            ec == stun_error::fingerprint_not_last || ec == stun_error::bad_attribute_value;
        if (cls == message_class::request && attributes_bad &&
            header_size + h->length == bytes.size()) {
            answer_error(*h, from, on, 400, {}, classic,
                         std::span<const std::byte, 16>(bytes.data() + 4, 16));
            return true;
        }
        ++stats_.dropped_malformed;
        return !classic; // a cookie-less non-message is likely not STUN at all
    }
    if (cls == message_class::success_response || cls == message_class::error_response) {
        ++stats_.dropped_not_request;
        return true;
    }
    if (m->fingerprint_offset() != 0 && verify_fingerprint(*m)) {
        ++stats_.dropped_fingerprint;
        return true;
    }
    if (cls == message_class::indication) {
        ++stats_.indications;
        return true;
    }
    if (m->get_method() != method::binding) {
        answer_error(*h, from, on, 400, {}, classic, m->classic_transaction());
        return true;
    }
    // Comprehension-required attributes this server does not act on.
    std::array<attribute_type, 16> unknown{};
    std::size_t n_unknown = 0;
    for (const auto& a : *m) {
        if (!is_comprehension_required(a.type))
            continue;
        switch (a.type) {
        case attribute_type::change_request:
            if (rfc5780_)
                continue;
            break;
        case attribute_type::response_port:
        case attribute_type::padding:
        case attribute_type::username:
        case attribute_type::userhash:
        case attribute_type::message_integrity:
        case attribute_type::message_integrity_sha256:
        case attribute_type::priority:
        case attribute_type::use_candidate:
            continue; // understood (credentials and ICE hints need no action here)
        default:
            break;
        }
        if (n_unknown < unknown.size() &&
            std::find(unknown.begin(), unknown.begin() + static_cast<std::ptrdiff_t>(n_unknown),
                      a.type) == unknown.begin() + static_cast<std::ptrdiff_t>(n_unknown))
            unknown[n_unknown++] = a.type;
    }
    if (n_unknown != 0) {
        answer_error(*h, from, on, 420, std::span(unknown.data(), n_unknown), classic,
                     m->classic_transaction());
        return true;
    }
    answer(*m, from, on);
    return true;
}

inline void server_core::answer_error(const header& h, const endpoint& from, server_socket on,
                                      unsigned code, std::span<const attribute_type> unknown,
                                      bool classic,
                                      std::span<const std::byte, 16> classic_id) noexcept {
    if (code == 400)
        ++stats_.bad_requests;
    else
        ++stats_.unknown_attributes;
    slot* s = push();
    if (s == nullptr)
        return;
    const auto type = message_type(method_of(h.type), message_class::error_response);
    std::error_code ec;
    auto fill = [&](message_writer& w) {
        w.add_error_code(code);
        if (!unknown.empty())
            w.add_unknown_attributes(unknown);
        if (!cfg_.software.empty())
            w.add_string(attribute_type::software, cfg_.software);
        if (!classic)
            w.add_fingerprint();
        return w.finish(ec);
    };
    std::size_t n = 0;
    if (classic) {
        message_writer w(s->buf, type, classic_id);
        n = fill(w);
    } else {
        message_writer w(s->buf, type, h.transaction);
        n = fill(w);
    }
    if (n == 0) { // only a SOFTWARE longer than max_message_size gets here
        --count_;
        return;
    }
    s->size = n;
    s->to = from;
    s->via = on;
}

inline void server_core::answer(const message_view& m, const endpoint& from,
                                server_socket on) noexcept {
    std::error_code ec;
    change_request change{};
    std::uint16_t response_port = 0;
    bool padding = false;
    if (auto a = m.find(attribute_type::change_request)) {
        auto c = decode_change_request(*a, ec);
        if (!c)
            return answer_error({m.type(), 0, 0, m.transaction()}, from, on, 400, {},
                                m.is_classic(), m.classic_transaction());
        change = *c;
    }
    if (auto a = m.find(attribute_type::response_port)) {
        auto p = decode_response_port(*a, ec);
        if (!p || *p == 0)
            return answer_error({m.type(), 0, 0, m.transaction()}, from, on, 400, {},
                                m.is_classic(), m.classic_transaction());
        response_port = *p;
    }
    padding = m.has(attribute_type::padding);
    if (padding && response_port != 0) // RFC 5780 §7.6: not both
        return answer_error({m.type(), 0, 0, m.transaction()}, from, on, 400, {}, m.is_classic(),
                            m.classic_transaction());

    const auto out = static_cast<server_socket>(
        static_cast<unsigned>(on) ^ (change.change_ip ? 2u : 0u) ^ (change.change_port ? 1u : 0u));
    const endpoint origin = local_endpoint(out);
    const endpoint other =
        local_endpoint(static_cast<server_socket>(static_cast<unsigned>(on) ^ 3u));
    slot* s = push();
    if (s == nullptr)
        return;
    const auto type = message_type(method::binding, message_class::success_response);
    std::size_t n = 0;
    if (m.is_classic()) {
        message_writer w(s->buf, type, m.classic_transaction());
        w.add_address(attribute_type::mapped_address, from);
        if (!origin.address.is_unspecified())
            w.add_address(attribute_type::source_address, origin);
        if (rfc5780_)
            w.add_address(attribute_type::changed_address, other);
        if (!cfg_.software.empty())
            w.add_string(attribute_type::software, cfg_.software);
        n = w.finish(ec);
    } else {
        message_writer w(s->buf, type, m.transaction());
        w.add_xor_address(attribute_type::xor_mapped_address, from);
        if (cfg_.mapped_address)
            w.add_address(attribute_type::mapped_address, from);
        if (!origin.address.is_unspecified())
            w.add_address(attribute_type::response_origin, origin);
        if (rfc5780_)
            w.add_address(attribute_type::other_address, other);
        if (!cfg_.software.empty())
            w.add_string(attribute_type::software, cfg_.software);
        if (padding) {
            // As large as the request, never larger (and within the slot).
            const std::size_t now = w.size() + attribute_header_size + 8; // + PADDING, FINGERPRINT
            const std::size_t target = std::min(m.size(), s->buf.size());
            if (target > now)
                w.add_padding((target - now) & ~std::size_t{3});
        }
        w.add_fingerprint();
        n = w.finish(ec);
    }
    if (n == 0) {
        --count_;
        return;
    }
    ++stats_.requests;
    s->size = n;
    s->to = response_port != 0 ? endpoint{from.address, response_port} : from;
    s->via = out;
}

} // namespace peerlink::stun

#endif // PEERLINK_PROTO_IMPL_STUN_SERVER_HPP
