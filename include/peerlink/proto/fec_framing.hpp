// peerlink/proto/fec_framing.hpp: the headers of FEC packets, in two framings.
//
// A FEC group is `data` data packets followed by `parity` parity packets. What the
// Reed-Solomon code protects is each data packet's *shard*: a 2-byte size field
// and the payload. Parity shards are as long as the group's longest data shard;
// shorter data shards count as zero-padded, and the size field lets a rebuilt
// shard drop its padding.
//
// @par kcp-go framing (`kcp_` names): byte-compatible with kcp-go's FEC
//
// @code
//  0               4       6       8
// +---------------+-------+-------+---------------------+
// | seqid (u32)   | type  | size  | payload (size - 2)  |   data   (type 0x00f1)
// +---------------+-------+-------+---------------------+
// | seqid (u32)   | type  | parity shard                |   parity (type 0x00f2)
// +---------------+-------+-----------------------------+
// @endcode
//
// All little-endian. `seqid` counts every packet, data and parity; a group is the
// `data + parity` consecutive seqids starting at a multiple of `data + parity`, so
// a packet's place in its group is `seqid % (data + parity)` and the ratio is not
// on the wire (both sides must agree on it). The sender wraps `seqid` to 0 at the
// largest multiple of `data + parity` below 2^32. `size` counts itself: payload
// length + 2. kcp-go tells a FEC packet from a plain KCP segment by bytes 4..5,
// which are a KCP segment's cmd (81..84) and frg and so never f1 00 or f2 00.
//
// @par peerlink framing: self-describing groups
//
// @code
//  0       1       2       3       4               8       10
// +-------+-------+-------+-------+---------------+-------+----------------+
// | type  | data  |parity | index | group (u32)   | size  | payload (size) |  data   (0xf1)
// +-------+-------+-------+-------+---------------+-------+----------------+
// | type  | data  |parity | index | group (u32)   | parity shard           |  parity (0xf2)
// +-------+-------+-------+-------+---------------+------------------------+
// @endcode
//
// Big-endian, like peerlink's frames. `data` and `parity` are the group's ratio
// (data >= 1, parity >= 1, data + parity <= 255), `index` the packet's place in its
// group (data packets 0..data-1, parity packets data..data+parity-1), `group` a
// counter. Every packet carries its group's ratio, so the sender may change the
// ratio between two groups without telling the receiver first, and packets of an
// old and a new ratio may arrive interleaved. `size` is the payload length.
// The first byte (0xf1/0xf2) tells a FEC packet from a peerlink frame, whose first
// byte is its version (1).
//
// The codec is free functions over byte spans: no allocation, no exceptions;
// decoding never reads past the span and reports `error::malformed_packet`.
#ifndef PEERLINK_PROTO_FEC_FRAMING_HPP
#define PEERLINK_PROTO_FEC_FRAMING_HPP

#include <peerlink/error.hpp>
#include <peerlink/proto/packet_buffer.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <system_error>

namespace peerlink::fec {

/// What a FEC packet carries (the same values in both framings).
enum class shard_type : std::uint8_t {
    data = 0xf1,   ///< A data packet: its payload, protected by the group's parity.
    parity = 0xf2, ///< A parity packet: one parity shard of its group.
};

/// Bytes of the size field in front of every data payload (both framings).
inline constexpr std::size_t size_field_size = 2;

// --- kcp-go framing -------------------------------------------------------------

/// Bytes of a kcp-go FEC header (seqid and type).
inline constexpr std::size_t kcp_header_size = 6;
/// Largest payload of a kcp-go data packet (the size field, which counts itself, is a u16).
inline constexpr std::size_t kcp_max_payload = 65535 - size_field_size;

/// A kcp-go FEC header.
struct kcp_header {
    std::uint32_t seqid = 0;
    shard_type type = shard_type::data;
    friend bool operator==(const kcp_header&, const kcp_header&) = default;
};

/// A decoded kcp-go FEC packet; the spans point into the decoded bytes.
struct kcp_packet {
    kcp_header header;
    /// What the Reed-Solomon code covers: the size field and the payload (data), or
    /// the parity shard (parity).
    std::span<const std::byte> shard;
    /// Data packets: the payload. Parity packets: empty.
    std::span<const std::byte> payload;
};

/// Whether `packet` is kcp-go FEC framed: at least 6 bytes, bytes 4..5 f1 00 or f2 00.
/// Anything else is a plain packet (kcp-go hands those to KCP as they are).
bool is_kcp_packet(std::span<const std::byte> packet) noexcept;

/// Decodes a kcp-go FEC packet.
/// @returns nothing and sets `ec` to `error::malformed_packet` if `packet` is not FEC
/// framed, is shorter than its header plus size field, or a data packet's size field
/// disagrees with its length; otherwise clears `ec`.
std::optional<kcp_packet> decode_kcp(std::span<const std::byte> packet,
                                     std::error_code& ec) noexcept;

/// Writes `h` into the first 6 bytes of `out` (which must hold them).
void write_kcp_header(std::span<std::byte> out, const kcp_header& h) noexcept;

/// Makes the payload in `p` a kcp-go data packet: prepends the header (type data) and
/// the size field, 8 bytes, into the headroom.
/// @returns `error::message_too_large` if the payload exceeds `kcp_max_payload`,
/// `error::buffer_too_small` if the headroom is under 8 bytes (`p` is then unchanged).
std::error_code prepend_kcp_data(packet_buffer& p, std::uint32_t seqid) noexcept;

/// The payload of a kcp-go data shard (size field + payload + any zero padding), as a
/// rebuilt shard is read: kcp-go accepts 2 <= size <= shard length.
/// @returns nothing if the size field is out of that range.
std::optional<std::span<const std::byte>>
kcp_shard_payload(std::span<const std::byte> shard) noexcept;

// --- peerlink framing -----------------------------------------------------------

/// Bytes of a peerlink FEC header (type, ratio, index, group).
inline constexpr std::size_t header_size = 8;
/// Largest payload of a peerlink data packet.
inline constexpr std::size_t max_payload = 65535;
/// Largest `data + parity` of a group.
inline constexpr std::size_t max_group_shards = 255;

/// A peerlink FEC header.
struct header {
    shard_type type = shard_type::data;
    std::uint8_t data_shards = 0;   ///< Data packets in the group, >= 1.
    std::uint8_t parity_shards = 0; ///< Parity packets in the group, >= 1.
    std::uint8_t index = 0;         ///< Place in the group: data first, then parity.
    std::uint32_t group = 0;        ///< The group's number; it counts up and wraps.
    friend bool operator==(const header&, const header&) = default;
};

/// A decoded peerlink FEC packet; the spans point into the decoded bytes.
struct packet {
    fec::header header;
    /// What the Reed-Solomon code covers: size field and payload (data), or the
    /// parity shard (parity).
    std::span<const std::byte> shard;
    /// Data packets: the payload. Parity packets: empty.
    std::span<const std::byte> payload;
};

/// Whether `packet` starts like a peerlink FEC packet (first byte 0xf1 or 0xf2).
bool is_packet(std::span<const std::byte> packet) noexcept;

/// Whether `h` is a header a sender may write: data >= 1, parity >= 1,
/// data + parity <= 255, index < data + parity, type data exactly when index < data.
bool valid(const header& h) noexcept;

/// Decodes a peerlink FEC packet.
/// @returns nothing and sets `ec` to `error::malformed_packet` if the packet is not
/// FEC framed, is short, its header is not `valid`, or a data packet's size field
/// disagrees with its length; otherwise clears `ec`.
std::optional<packet> decode(std::span<const std::byte> packet, std::error_code& ec) noexcept;

/// Writes `h` into the first 8 bytes of `out` (which must hold them).
void write_header(std::span<std::byte> out, const header& h) noexcept;

/// Makes the payload in `p` a peerlink data packet: prepends `h` and the size field,
/// 10 bytes, into the headroom.
/// @returns `error::message_too_large` if the payload exceeds `max_payload`,
/// `error::buffer_too_small` if the headroom is under 10 bytes (`p` is then unchanged).
std::error_code prepend_data(packet_buffer& p, const header& h) noexcept;

/// The payload of a peerlink data shard (size field + payload + any zero padding).
/// @returns nothing if the size field says more than the shard holds.
std::optional<std::span<const std::byte>> shard_payload(std::span<const std::byte> shard) noexcept;

} // namespace peerlink::fec

#include <peerlink/proto/impl/fec_framing.hpp>

#endif // PEERLINK_PROTO_FEC_FRAMING_HPP
