#ifndef PEERLINK_PROTO_IMPL_FEC_FRAMING_HPP
#define PEERLINK_PROTO_IMPL_FEC_FRAMING_HPP

#include <peerlink/detail/byte_order.hpp>

namespace peerlink::fec {

namespace detail {

constexpr bool is_shard_type(std::byte b) noexcept {
    return b == std::byte{0xf1} || b == std::byte{0xf2};
}

} // namespace detail

inline bool is_kcp_packet(std::span<const std::byte> packet) noexcept {
    return packet.size() >= kcp_header_size && detail::is_shard_type(packet[4]) &&
           packet[5] == std::byte{0};
}

inline std::optional<kcp_packet> decode_kcp(std::span<const std::byte> packet,
                                            std::error_code& ec) noexcept {
    namespace bo = peerlink::detail;
    ec = error::malformed_packet;
    if (!is_kcp_packet(packet))
        return std::nullopt;
    kcp_packet out;
    out.header.seqid = bo::load_le<std::uint32_t>(packet.data());
    out.header.type = static_cast<shard_type>(packet[4]);
    out.shard = packet.subspan(kcp_header_size);
    if (out.header.type == shard_type::data) {
        // The sender writes the exact length; kcp-go ignores the field on data
        // packets, but a mismatch means the packet is not what it claims.
        if (out.shard.size() < size_field_size ||
            bo::load_le<std::uint16_t>(out.shard.data()) != out.shard.size())
            return std::nullopt;
        out.payload = out.shard.subspan(size_field_size);
    }
    ec = {};
    return out;
}

inline void write_kcp_header(std::span<std::byte> out, const kcp_header& h) noexcept {
    namespace bo = peerlink::detail;
    bo::store_le<std::uint32_t>(out.data(), h.seqid);
    bo::store_le<std::uint16_t>(out.data() + 4, static_cast<std::uint16_t>(h.type));
}

inline std::error_code prepend_kcp_data(packet_buffer& p, std::uint32_t seqid) noexcept {
    if (p.size() > kcp_max_payload)
        return error::message_too_large;
    const auto shard_size = static_cast<std::uint16_t>(p.size() + size_field_size);
    auto front = p.prepend(kcp_header_size + size_field_size);
    if (front.empty())
        return error::buffer_too_small;
    write_kcp_header(front, {seqid, shard_type::data});
    peerlink::detail::store_le<std::uint16_t>(front.data() + kcp_header_size, shard_size);
    return {};
}

inline std::optional<std::span<const std::byte>>
kcp_shard_payload(std::span<const std::byte> shard) noexcept {
    if (shard.size() < size_field_size)
        return std::nullopt;
    std::size_t n = peerlink::detail::load_le<std::uint16_t>(shard.data());
    if (n < size_field_size || n > shard.size())
        return std::nullopt;
    return shard.subspan(size_field_size, n - size_field_size);
}

inline bool is_packet(std::span<const std::byte> packet) noexcept {
    return !packet.empty() && detail::is_shard_type(packet[0]);
}

inline bool valid(const header& h) noexcept {
    const unsigned total = unsigned{h.data_shards} + h.parity_shards;
    if (h.data_shards == 0 || h.parity_shards == 0 || total > max_group_shards || h.index >= total)
        return false;
    const bool is_data = h.index < h.data_shards;
    return h.type == (is_data ? shard_type::data : shard_type::parity);
}

inline std::optional<packet> decode(std::span<const std::byte> bytes,
                                    std::error_code& ec) noexcept {
    namespace bo = peerlink::detail;
    ec = error::malformed_packet;
    if (bytes.size() < header_size || !is_packet(bytes))
        return std::nullopt;
    packet out;
    out.header.type = static_cast<shard_type>(bytes[0]);
    out.header.data_shards = static_cast<std::uint8_t>(bytes[1]);
    out.header.parity_shards = static_cast<std::uint8_t>(bytes[2]);
    out.header.index = static_cast<std::uint8_t>(bytes[3]);
    out.header.group = bo::load_be<std::uint32_t>(bytes.data() + 4);
    if (!valid(out.header))
        return std::nullopt;
    out.shard = bytes.subspan(header_size);
    if (out.header.type == shard_type::data) {
        if (out.shard.size() < size_field_size ||
            bo::load_be<std::uint16_t>(out.shard.data()) + size_field_size != out.shard.size())
            return std::nullopt;
        out.payload = out.shard.subspan(size_field_size);
    }
    ec = {};
    return out;
}

inline void write_header(std::span<std::byte> out, const header& h) noexcept {
    out[0] = static_cast<std::byte>(h.type);
    out[1] = static_cast<std::byte>(h.data_shards);
    out[2] = static_cast<std::byte>(h.parity_shards);
    out[3] = static_cast<std::byte>(h.index);
    peerlink::detail::store_be<std::uint32_t>(out.data() + 4, h.group);
}

inline std::error_code prepend_data(packet_buffer& p, const header& h) noexcept {
    if (p.size() > max_payload)
        return error::message_too_large;
    const auto n = static_cast<std::uint16_t>(p.size());
    auto front = p.prepend(header_size + size_field_size);
    if (front.empty())
        return error::buffer_too_small;
    write_header(front, h);
    peerlink::detail::store_be<std::uint16_t>(front.data() + header_size, n);
    return {};
}

inline std::optional<std::span<const std::byte>>
shard_payload(std::span<const std::byte> shard) noexcept {
    if (shard.size() < size_field_size)
        return std::nullopt;
    std::size_t n = peerlink::detail::load_be<std::uint16_t>(shard.data());
    if (n + size_field_size > shard.size())
        return std::nullopt;
    return shard.subspan(size_field_size, n);
}

} // namespace peerlink::fec

#endif // PEERLINK_PROTO_IMPL_FEC_FRAMING_HPP
