// peerlink/proto/frame.hpp: peerlink's own frames, version 1.
//
// Every peerlink packet, once FEC, cipher and disguise are undone, is one frame:
//
// @code
//  0        1        2
// +--------+--------+---------------------------+
// | version|  type  | body (depends on type)    |
// +--------+--------+---------------------------+
// @endcode
//
// Multi-byte integers are big-endian. docs/protocol.md describes every field.
//
// | type | name      | body                                                        |
// |------|-----------|-------------------------------------------------------------|
// | 0x01 | hello     | peer id (32), connection id (u64), timestamp µs (u64), echo (u64), |
// |      |           | features (u8), FEC data shards (u8), FEC parity shards (u8) |
// | 0x02 | hello_ack | same as hello; echo = the hello's timestamp                 |
// | 0x03 | data      | an unreliable application datagram (0..n bytes)             |
// | 0x04 | reliable  | bytes of the reliability layer (KCP segments)               |
// | 0x05 | ping      | timestamp µs (u64)                                          |
// | 0x06 | pong      | echo of a ping's timestamp (u64)                            |
// | 0x07 | close     | reason (u16): 0 = closed, 1 = answer to a close (acknowledges it) |
// | 0x08 | features  | sequence (u16), features (u8), FEC data (u8), FEC parity (u8): a proposal |
// | 0x09 | features_ack | the same five bytes: what the peer agreed to, for that sequence |
//
// `features` bits (hello: what the sender can do and wants; features/features_ack:
// the setting of the connection, both directions):
// | bit | hello                          | features / features_ack   |
// |-----|--------------------------------|---------------------------|
// | 0   | FEC compiled in                | -                         |
// | 1   | disguise compiled in           | -                         |
// | 2   | allows packets without cipher  | cipher off                |
// | 3   | wants FEC                      | FEC on                    |
// | 4   | wants disguise                 | disguise on               |
//
// @par Envelope (only with a cipher policy that runs a handshake)
// Before the cipher stage, one byte tells what follows: 0xC0 a handshake message
// (policy/noise_chacha20poly1305.hpp has its bytes), 0xC1 a sealed packet, 0xC2 a
// notice that our handshake message did not authenticate (nothing follows). A packet
// that starts otherwise is a plain frame (version 1) or a plain FEC packet (0xf1, 0xf2),
// accepted only while both sides agreed to switch the cipher off.
//
// The codec is a set of free functions over byte spans: no allocation, no
// exceptions. Decoding never reads past the span and reports a peerlink::error.
#ifndef PEERLINK_PROTO_FRAME_HPP
#define PEERLINK_PROTO_FRAME_HPP

#include <peerlink/error.hpp>
#include <peerlink/proto/packet_buffer.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <system_error>
#include <variant>

namespace peerlink::frame {

/// The frame format version this build speaks.
inline constexpr std::uint8_t version = 1;
/// Bytes of version and type in front of every frame.
inline constexpr std::size_t header_size = 2;

enum class frame_type : std::uint8_t {
    hello = 0x01,
    hello_ack = 0x02,
    data = 0x03,
    reliable = 0x04,
    ping = 0x05,
    pong = 0x06,
    close = 0x07,
    features = 0x08,
    features_ack = 0x09,
};

/// Opens (hello) or accepts (hello_ack) a connection, and measures the round trip.
struct hello {
    std::array<std::uint8_t, 32> peer_id{}; ///< The sender's public key.
    std::uint64_t connection_id = 0;        ///< Random per connection; a new one means a restart.
    std::uint64_t timestamp_us = 0;         ///< The sender's clock, echoed back by the receiver.
    std::uint64_t echo_us = 0;              ///< The timestamp being answered, or 0.
    std::uint8_t features = 0;              ///< feature_bits: capabilities and wishes.
    std::uint8_t fec_data = 0;              ///< The FEC ratio the sender wants (0: none).
    std::uint8_t fec_parity = 0;
    bool is_ack = false; ///< hello_ack rather than hello.
    friend bool operator==(const hello&, const hello&) = default;
};
inline constexpr std::size_t hello_body_size = 32 + 8 + 8 + 8 + 3;

/// The bits of `hello::features` and `features::flags`.
namespace feature_bits {
inline constexpr std::uint8_t fec_capable = 0x01;
inline constexpr std::uint8_t disguise_capable = 0x02;
inline constexpr std::uint8_t cipher_off = 0x04; ///< hello: allowed; features: agreed.
inline constexpr std::uint8_t fec_on = 0x08;
inline constexpr std::uint8_t disguise_on = 0x10;
} // namespace feature_bits

/// Envelope bytes in front of the cipher stage (cipher policies with a handshake).
namespace envelope {
inline constexpr std::byte handshake{0xC0};
inline constexpr std::byte sealed{0xC1};
/// A responder's notice that a handshake message failed to authenticate. Not itself
/// authenticated: the initiator only reports it when its attempt times out.
inline constexpr std::byte rejected{0xC2};
inline constexpr std::size_t size = 1;
} // namespace envelope

/// An unreliable application datagram; the view points into the decoded packet.
struct data {
    std::span<const std::byte> payload;
};

/// Bytes for the reliability layer; the view points into the decoded packet.
struct reliable {
    std::span<const std::byte> payload;
};

/// Keepalive and RTT probe.
struct ping {
    std::uint64_t timestamp_us = 0;
    friend bool operator==(const ping&, const ping&) = default;
};

/// Answer to a ping.
struct pong {
    std::uint64_t echo_us = 0;
    friend bool operator==(const pong&, const pong&) = default;
};

/// Orderly end of the connection.
struct close {
    std::uint16_t reason = 0;
    friend bool operator==(const close&, const close&) = default;
};

/// A proposal to change the connection's pipeline (`is_ack` false), or the answer
/// saying what was agreed (`is_ack` true). Sent until answered.
struct features {
    std::uint16_t sequence = 0;
    std::uint8_t flags = 0; ///< feature_bits: cipher_off, fec_on, disguise_on.
    std::uint8_t fec_data = 0;
    std::uint8_t fec_parity = 0;
    bool is_ack = false;
    friend bool operator==(const features&, const features&) = default;
};

/// A decoded frame.
using any_frame = std::variant<hello, data, reliable, ping, pong, close, features>;

/// Decodes one frame from `bytes`.
///
/// @returns the frame, or nothing with `ec` set to `error::malformed_packet` (too
/// short, or a body of the wrong size), `error::unsupported_version` or
/// `error::unknown_frame_type`. Views in the result point into `bytes`.
std::optional<any_frame> decode(std::span<const std::byte> bytes, std::error_code& ec) noexcept;

/// Prepends the header of a data or reliable frame to the payload already in `p`.
/// @returns `error::buffer_too_small` if `p` has less than `header_size` of headroom.
std::error_code prepend_header(packet_buffer& p, frame_type type) noexcept;

/// Appends a control frame (hello, ping, pong, close or features), header included, to `p`.
/// @returns `error::buffer_too_small` if `p` has too little tailroom.
std::error_code encode(packet_buffer& p, const hello& f) noexcept;
std::error_code encode(packet_buffer& p, const ping& f) noexcept;
std::error_code encode(packet_buffer& p, const pong& f) noexcept;
std::error_code encode(packet_buffer& p, const close& f) noexcept;
std::error_code encode(packet_buffer& p, const features& f) noexcept;

} // namespace peerlink::frame

#include <peerlink/proto/impl/frame.hpp>

#endif // PEERLINK_PROTO_FRAME_HPP
