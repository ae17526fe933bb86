// Implementation of peerlink/proto/frame.hpp.
#ifndef PEERLINK_PROTO_IMPL_FRAME_HPP
#define PEERLINK_PROTO_IMPL_FRAME_HPP

#include <peerlink/detail/byte_order.hpp>

#include <cstring>

namespace peerlink::frame {

namespace detail {

inline std::span<std::byte> append_header(packet_buffer& p, frame_type type,
                                          std::size_t body) noexcept {
    auto out = p.append(header_size + body);
    if (out.empty())
        return out;
    out[0] = std::byte{version};
    out[1] = static_cast<std::byte>(type);
    return out.subspan(header_size);
}

inline std::error_code encode_u64(packet_buffer& p, frame_type type, std::uint64_t v) noexcept {
    auto body = append_header(p, type, 8);
    if (body.empty())
        return make_error_code(error::buffer_too_small);
    peerlink::detail::store_be(body.data(), v);
    return {};
}

} // namespace detail

inline std::optional<any_frame> decode(std::span<const std::byte> bytes,
                                       std::error_code& ec) noexcept {
    using peerlink::detail::load_be;
    ec.clear();
    if (bytes.size() < header_size) {
        ec = make_error_code(error::malformed_packet);
        return std::nullopt;
    }
    if (std::to_integer<std::uint8_t>(bytes[0]) != version) {
        ec = make_error_code(error::unsupported_version);
        return std::nullopt;
    }
    auto body = bytes.subspan(header_size);
    auto fixed = [&](std::size_t n) {
        if (body.size() == n)
            return true;
        ec = make_error_code(error::malformed_packet);
        return false;
    };
    switch (static_cast<frame_type>(bytes[1])) {
    case frame_type::hello:
    case frame_type::hello_ack: {
        if (!fixed(hello_body_size))
            return std::nullopt;
        hello h;
        std::memcpy(h.peer_id.data(), body.data(), 32);
        h.connection_id = load_be<std::uint64_t>(body.data() + 32);
        h.timestamp_us = load_be<std::uint64_t>(body.data() + 40);
        h.echo_us = load_be<std::uint64_t>(body.data() + 48);
        h.features = std::to_integer<std::uint8_t>(body[56]);
        h.fec_data = std::to_integer<std::uint8_t>(body[57]);
        h.fec_parity = std::to_integer<std::uint8_t>(body[58]);
        h.is_ack = static_cast<frame_type>(bytes[1]) == frame_type::hello_ack;
        return h;
    }
    case frame_type::data:
        return data{body};
    case frame_type::reliable:
        return reliable{body};
    case frame_type::ping:
        if (!fixed(8))
            return std::nullopt;
        return ping{load_be<std::uint64_t>(body.data())};
    case frame_type::pong:
        if (!fixed(8))
            return std::nullopt;
        return pong{load_be<std::uint64_t>(body.data())};
    case frame_type::close:
        if (!fixed(2))
            return std::nullopt;
        return close{load_be<std::uint16_t>(body.data())};
    case frame_type::features:
    case frame_type::features_ack: {
        if (!fixed(5))
            return std::nullopt;
        features f;
        f.sequence = load_be<std::uint16_t>(body.data());
        f.flags = std::to_integer<std::uint8_t>(body[2]);
        f.fec_data = std::to_integer<std::uint8_t>(body[3]);
        f.fec_parity = std::to_integer<std::uint8_t>(body[4]);
        f.is_ack = static_cast<frame_type>(bytes[1]) == frame_type::features_ack;
        return f;
    }
    }
    ec = make_error_code(error::unknown_frame_type);
    return std::nullopt;
}

inline std::error_code prepend_header(packet_buffer& p, frame_type type) noexcept {
    auto h = p.prepend(header_size);
    if (h.empty())
        return make_error_code(error::buffer_too_small);
    h[0] = std::byte{version};
    h[1] = static_cast<std::byte>(type);
    return {};
}

inline std::error_code encode(packet_buffer& p, const hello& f) noexcept {
    auto body = detail::append_header(p, f.is_ack ? frame_type::hello_ack : frame_type::hello,
                                      hello_body_size);
    if (body.empty())
        return make_error_code(error::buffer_too_small);
    std::memcpy(body.data(), f.peer_id.data(), 32);
    peerlink::detail::store_be(body.data() + 32, f.connection_id);
    peerlink::detail::store_be(body.data() + 40, f.timestamp_us);
    peerlink::detail::store_be(body.data() + 48, f.echo_us);
    body[56] = std::byte{f.features};
    body[57] = std::byte{f.fec_data};
    body[58] = std::byte{f.fec_parity};
    return {};
}

inline std::error_code encode(packet_buffer& p, const ping& f) noexcept {
    return detail::encode_u64(p, frame_type::ping, f.timestamp_us);
}

inline std::error_code encode(packet_buffer& p, const pong& f) noexcept {
    return detail::encode_u64(p, frame_type::pong, f.echo_us);
}

inline std::error_code encode(packet_buffer& p, const close& f) noexcept {
    auto body = detail::append_header(p, frame_type::close, 2);
    if (body.empty())
        return make_error_code(error::buffer_too_small);
    peerlink::detail::store_be(body.data(), f.reason);
    return {};
}

inline std::error_code encode(packet_buffer& p, const features& f) noexcept {
    auto body =
        detail::append_header(p, f.is_ack ? frame_type::features_ack : frame_type::features, 5);
    if (body.empty())
        return make_error_code(error::buffer_too_small);
    peerlink::detail::store_be(body.data(), f.sequence);
    body[2] = std::byte{f.flags};
    body[3] = std::byte{f.fec_data};
    body[4] = std::byte{f.fec_parity};
    return {};
}

} // namespace peerlink::frame

#endif // PEERLINK_PROTO_IMPL_FRAME_HPP
