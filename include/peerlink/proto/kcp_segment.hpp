// peerlink/proto/kcp_segment.hpp: the KCP segment codec and the KCP error codes.
//
// A KCP segment is a 24-byte header followed by `len` bytes of payload. The
// layout is the one of the original C KCP (skywind3000/kcp, ikcp.c) and of
// kcp-go, so peerlink talks to both. All integers are little-endian:
//
// @code
//  0               4       5       6               8
// +---------------+-------+-------+---------------+
// |     conv      |  cmd  |  frg  |      wnd      |
// +---------------+-------+-------+---------------+
// |      ts       |      sn       |      una      |     (offsets 8, 12, 16)
// +---------------+---------------+---------------+
// |      len      |  payload (len bytes) ...            (offset 20, payload at 24)
// +---------------+-------------------------------
// @endcode
//
// clang-format off
// | field | size | meaning                                                                 |
// |-------|------|-------------------------------------------------------------------------|
// | conv  | u32  | conversation id; both peers use the same one                            |
// | cmd   | u8   | 81 PUSH (data), 82 ACK, 83 WASK (window probe), 84 WINS (window size)   |
// | frg   | u8   | message mode: fragments that follow this one (down to 0); stream: 0     |
// | wnd   | u16  | free slots in the sender's receive queue                                |
// | ts    | u32  | PUSH: the sender's clock in ms; ACK: the ts of the PUSH it acknowledges |
// | sn    | u32  | PUSH: sequence number; ACK: the sequence number acknowledged            |
// | una   | u32  | every sequence number below this one was received (cumulative ACK)     |
// | len   | u32  | payload bytes that follow the header                                    |
// clang-format on
//
// One datagram carries one or more segments back to back, up to the MTU.
// Sequence numbers and timestamps wrap around: compare them with `kcp_diff`.
//
// The codec is a set of free functions over byte spans: no allocation, no
// exceptions, never a read outside the span.
#ifndef PEERLINK_PROTO_KCP_SEGMENT_HPP
#define PEERLINK_PROTO_KCP_SEGMENT_HPP

#include <peerlink/detail/byte_order.hpp>
#include <peerlink/error.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <type_traits>

namespace peerlink {

/// Errors of the KCP codec (`kcp_decode_segment`) and of the KCP core (`kcp_core`).
enum class kcp_error {
    conv_mismatch = 1,  ///< A segment carries another conversation id than this core's.
    malformed_segment,  ///< A datagram is shorter than a header, or a length runs past its end.
    unknown_command,    ///< A segment's cmd is none of PUSH, ACK, WASK, WINS.
    segment_too_large,  ///< A PUSH segment is longer than this side's MSS (mtu - 24).
    too_many_fragments, ///< A message needs more fragments than the receive window holds.
    send_window_full,   ///< The send queue has no room now: wait for `send_capacity()`.
    would_block,        ///< Nothing to receive now.
    dead_link,          ///< A segment was sent `dead_link` times without an ACK: peer gone.
};

namespace detail {

class kcp_error_category_impl final : public std::error_category {
public:
    const char* name() const noexcept override { return "peerlink.kcp"; }

    std::string message(int ev) const override {
        switch (static_cast<kcp_error>(ev)) {
        case kcp_error::conv_mismatch:
            return "KCP segment for another conversation (conv mismatch)";
        case kcp_error::malformed_segment:
            return "malformed KCP segment: shorter than its 24-byte header or its length";
        case kcp_error::unknown_command:
            return "KCP segment with an unknown command (expected 81..84)";
        case kcp_error::segment_too_large:
            return "KCP segment larger than this side's MSS: set the same mtu on both peers";
        case kcp_error::too_many_fragments:
            return "KCP message needs more fragments than the receive window holds";
        case kcp_error::send_window_full:
            return "KCP send queue full: wait until send_capacity() has room";
        case kcp_error::would_block:
            return "nothing to receive yet";
        case kcp_error::dead_link:
            return "KCP dead link: a segment was retransmitted dead_link times without an ACK";
        }
        return "unknown KCP error";
    }

    std::error_condition default_error_condition(int ev) const noexcept override {
        switch (static_cast<kcp_error>(ev)) {
        case kcp_error::conv_mismatch:
        case kcp_error::malformed_segment:
        case kcp_error::unknown_command:
        case kcp_error::segment_too_large:
            return make_error_condition(condition::malformed_input);
        case kcp_error::dead_link:
            return make_error_condition(condition::peer_unreachable);
        case kcp_error::send_window_full:
        case kcp_error::would_block:
            return std::make_error_condition(std::errc::operation_would_block);
        default:
            return {ev, *this};
        }
    }
};

} // namespace detail

/// The category of `kcp_error`.
inline const std::error_category& kcp_error_category() noexcept {
    static const detail::kcp_error_category_impl instance;
    return instance;
}

inline std::error_code make_error_code(kcp_error e) noexcept {
    return {static_cast<int>(e), kcp_error_category()};
}

/// Segment commands (ikcp.c's IKCP_CMD_*).
enum class kcp_command : std::uint8_t {
    push = 81, ///< Data.
    ack = 82,  ///< Acknowledges one PUSH (sn, ts echoed).
    wask = 83, ///< Asks the peer for its window size (sent while the peer's window is 0).
    wins = 84, ///< Tells the peer this side's window size.
};

/// Bytes of the segment header (ikcp.c's IKCP_OVERHEAD).
inline constexpr std::size_t kcp_header_size = 24;

/// The fields of a segment header, in host order.
struct kcp_segment_header {
    std::uint32_t conv = 0;
    kcp_command cmd = kcp_command::push;
    std::uint8_t frg = 0;
    std::uint16_t wnd = 0;
    std::uint32_t ts = 0;
    std::uint32_t sn = 0;
    std::uint32_t una = 0;
    std::uint32_t len = 0; ///< Payload bytes; `kcp_encode_segment` sets it from the payload.
    friend bool operator==(const kcp_segment_header&, const kcp_segment_header&) = default;
};

/// A decoded segment; the payload views the decoded bytes.
struct kcp_segment {
    kcp_segment_header header;
    std::span<const std::byte> payload; ///< `header.len` bytes.

    /// Bytes the segment takes on the wire: header and payload.
    std::size_t wire_size() const noexcept { return kcp_header_size + payload.size(); }
};

/// Compares two wrapping u32 counters (sequence numbers, ms timestamps) the way
/// ikcp.c's `_itimediff` does: positive when `later` is after `earlier`.
constexpr std::int32_t kcp_diff(std::uint32_t later, std::uint32_t earlier) noexcept {
    return static_cast<std::int32_t>(later - earlier);
}

/// Reads the conversation id of the first segment, to route a datagram to its
/// core before decoding it (ikcp.c's `ikcp_getconv`).
/// @returns nothing if `datagram` is shorter than a header.
inline std::optional<std::uint32_t> kcp_peek_conv(std::span<const std::byte> datagram) noexcept {
    if (datagram.size() < kcp_header_size)
        return std::nullopt;
    return detail::load_le<std::uint32_t>(datagram.data());
}

/// Writes the 24 header bytes of `h`, `h.len` included, to the front of `out`.
/// @returns false, writing nothing, if `out` is shorter than `kcp_header_size`.
inline bool kcp_encode_header(std::span<std::byte> out, const kcp_segment_header& h) noexcept {
    if (out.size() < kcp_header_size)
        return false;
    using detail::store_le;
    std::byte* p = out.data();
    store_le<std::uint32_t>(p, h.conv);
    p[4] = static_cast<std::byte>(h.cmd);
    p[5] = static_cast<std::byte>(h.frg);
    store_le<std::uint16_t>(p + 6, h.wnd);
    store_le<std::uint32_t>(p + 8, h.ts);
    store_le<std::uint32_t>(p + 12, h.sn);
    store_le<std::uint32_t>(p + 16, h.una);
    store_le<std::uint32_t>(p + 20, h.len);
    return true;
}

/// Writes one segment, header and payload, to the front of `out`; the header's
/// `len` is set to `payload.size()`.
/// @returns the bytes written, or 0 (nothing written) if `out` is too small.
inline std::size_t kcp_encode_segment(std::span<std::byte> out, kcp_segment_header h,
                                      std::span<const std::byte> payload) noexcept {
    const std::size_t n = kcp_header_size + payload.size();
    if (out.size() < n || payload.size() > UINT32_MAX)
        return 0;
    h.len = static_cast<std::uint32_t>(payload.size());
    kcp_encode_header(out, h);
    if (!payload.empty())
        std::memcpy(out.data() + kcp_header_size, payload.data(), payload.size());
    return n;
}

/// Decodes the segment at the front of `bytes` (a datagram, or what is left of it).
///
/// The conversation id is not checked here: the core does that.
///
/// @returns the segment, whose payload views `bytes`; or nothing, with `ec` set to
/// `kcp_error::malformed_segment` (fewer than 24 bytes, or `len` runs past the
/// end of `bytes`) or `kcp_error::unknown_command`.
///
/// @par Example: every segment of a datagram
/// @code
/// for (auto rest = datagram; !rest.empty();) {
///     auto seg = peerlink::kcp_decode_segment(rest, ec);
///     if (!seg)
///         break;
///     use(*seg);
///     rest = rest.subspan(seg->wire_size());
/// }
/// @endcode
inline std::optional<kcp_segment> kcp_decode_segment(std::span<const std::byte> bytes,
                                                     std::error_code& ec) noexcept {
    using detail::load_le;
    ec.clear();
    if (bytes.size() < kcp_header_size) {
        ec = make_error_code(kcp_error::malformed_segment);
        return std::nullopt;
    }
    const std::byte* p = bytes.data();
    kcp_segment s;
    s.header.conv = load_le<std::uint32_t>(p);
    s.header.cmd = static_cast<kcp_command>(p[4]);
    s.header.frg = std::to_integer<std::uint8_t>(p[5]);
    s.header.wnd = load_le<std::uint16_t>(p + 6);
    s.header.ts = load_le<std::uint32_t>(p + 8);
    s.header.sn = load_le<std::uint32_t>(p + 12);
    s.header.una = load_le<std::uint32_t>(p + 16);
    s.header.len = load_le<std::uint32_t>(p + 20);
    if (s.header.len > bytes.size() - kcp_header_size) {
        ec = make_error_code(kcp_error::malformed_segment);
        return std::nullopt;
    }
    switch (s.header.cmd) {
    case kcp_command::push:
    case kcp_command::ack:
    case kcp_command::wask:
    case kcp_command::wins:
        break;
    default:
        ec = make_error_code(kcp_error::unknown_command);
        return std::nullopt;
    }
    s.payload = bytes.subspan(kcp_header_size, s.header.len);
    return s;
}

} // namespace peerlink

template <>
struct std::is_error_code_enum<peerlink::kcp_error> : std::true_type {};

#endif // PEERLINK_PROTO_KCP_SEGMENT_HPP
