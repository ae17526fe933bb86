// peerlink/proto/stun.hpp: the STUN message codec (RFC 8489), with the attributes of
// NAT behaviour discovery (RFC 5780), TURN (RFC 8656) and ICE (RFC 8445), and TURN's
// ChannelData framing.
//
// A STUN message is a 20-byte header followed by attributes, each a type, a length
// and a value padded to a multiple of four bytes:
//
// @code
//  0                   1                   2                   3
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |0 0|     STUN Message Type     |         Message Length        |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |                  Magic Cookie (0x2112A442)                    |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |                  Transaction ID (96 bits)                     |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |         Type                  |            Length             |  attribute
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |                  Value (padded to 4 bytes) ...                |
// @endcode
//
// The codec is a set of free functions over byte spans:
//
// - `stun::decode` checks a message's structure and returns a `stun::message_view`:
//   the header fields and a lookup/iteration over the attributes, all pointing into
//   the caller's bytes. It allocates nothing and never reads outside the span.
// - `stun::decode_address`, `decode_xor_address`, `decode_error_code`, ... read one
//   attribute's value.
// - `stun::message_writer` builds a message into a caller-owned span or at the back
//   of a `packet_buffer`, attribute by attribute, and ends it with
//   MESSAGE-INTEGRITY, MESSAGE-INTEGRITY-SHA256 and FINGERPRINT as asked.
// - `stun::verify_integrity`, `verify_fingerprint` check a decoded message;
//   `long_term_key`, `short_term_key`, `userhash` make the keys (RFC 8489 §9).
// - `stun::decode_channel_data` / `encode_channel_data` frame TURN ChannelData
//   (RFC 8656 §12.4), `classify_packet` demultiplexes a socket shared by STUN,
//   ChannelData and other protocols (RFC 7983), and `stream_frame_size` cuts a TCP
//   byte stream into STUN and ChannelData frames (RFC 8656 §12.5).
//
// Cryptography is OpenSSL 3's: HMAC through `EVP_MAC`, MD5 and SHA-256 through
// `EVP_Digest*`. FINGERPRINT's CRC-32 (not a cryptographic primitive) is a table.
// Decoding, reading attributes, the fingerprint and ChannelData never allocate;
// computing or checking an HMAC makes one short-lived OpenSSL context.
//
// Not done here: SASLprep / OpaqueString processing of user names and passwords
// (RFC 8265). Pass them already prepared; ASCII text without control characters,
// what ICE and most TURN deployments use, is unchanged by that processing.
//
// @par Example: a Binding request and its response
// @code
// namespace stun = peerlink::stun;
// std::array<std::byte, 512> buf;
// stun::transaction_id id = ...;                        // 12 random bytes
// stun::message_writer w(buf, stun::method::binding, stun::message_class::request, id);
// w.add_string(stun::attribute_type::software, "peerlink").add_fingerprint();
// std::error_code ec;
// std::size_t n = w.finish(ec);                         // send buf[0..n)
//
// auto m = stun::decode(datagram, ec);                  // a response
// if (m && m->transaction() == id && m->is_success_response())
//     if (auto a = m->find(stun::attribute_type::xor_mapped_address))
//         auto mapped = stun::decode_xor_address(*a, *m, ec);   // peerlink::endpoint
// @endcode
#ifndef PEERLINK_PROTO_STUN_HPP
#define PEERLINK_PROTO_STUN_HPP

#include <peerlink/detail/byte_order.hpp>
#include <peerlink/endpoint.hpp>
#include <peerlink/error.hpp>
#include <peerlink/proto/packet_buffer.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>

namespace peerlink {

/// Errors of the STUN codec, the STUN client and server, and STUN error responses.
///
/// Decoding errors map onto `condition::malformed_input`; integrity failures and the
/// credential error responses (401, 403, 441) onto `condition::authentication_failed`;
/// a transaction without an answer onto `condition::peer_unreachable`.
enum class stun_error {
    // Decoding a message.
    truncated = 1,        ///< Shorter than the 20-byte header, or than its length field says.
    not_stun,             ///< The first two bits are not zero: not a STUN message.
    bad_magic_cookie,     ///< The magic cookie is not 0x2112A442 (an RFC 3489 message?).
    bad_length,           ///< The length is not a multiple of 4 or disagrees with the size.
    attribute_overrun,    ///< An attribute's length runs past the end of the message.
    bad_padding,          ///< The last attribute (or ChannelData on a stream) lacks its padding.
    fingerprint_not_last, ///< An attribute follows FINGERPRINT.
    bad_attribute_value,  ///< An attribute's value has the wrong size or an invalid field.
    attribute_missing,    ///< A message lacks an attribute it needs.
    // Checking a message.
    fingerprint_missing,  ///< The message has no FINGERPRINT attribute.
    fingerprint_mismatch, ///< FINGERPRINT does not match the message (corrupted, or not STUN).
    integrity_missing,    ///< The message has no MESSAGE-INTEGRITY(-SHA256) attribute.
    integrity_mismatch,   ///< MESSAGE-INTEGRITY(-SHA256) does not match: wrong key or tampered.
    // Writing a message.
    value_too_long,      ///< An attribute value does not fit its 16-bit length (or the message).
    attribute_after_end, ///< An attribute was added after FINGERPRINT (or, except the
                         ///< integrity and fingerprint attributes, after MESSAGE-INTEGRITY).
    // ChannelData.
    bad_channel_number, ///< A channel number outside 0x4000..0x4FFF.
    // Transactions.
    transaction_timeout,   ///< No response after every retransmission (RFC 8489 §6.2.1).
    too_many_transactions, ///< Every transaction slot of the client is in use.
    duplicate_transaction, ///< A transaction with this id is already running.
    // Error responses from the server (ERROR-CODE), RFC 8489 §14.8, RFC 8656 §19, RFC 8445.
    error_response,               ///< An error response with another or no error code.
    try_alternate,                ///< 300: use the ALTERNATE-SERVER.
    bad_request,                  ///< 400: the server found the request malformed.
    unauthorized,                 ///< 401: credentials missing or wrong.
    forbidden,                    ///< 403: the request is not allowed for these credentials.
    unknown_attribute,            ///< 420: the server does not understand an attribute.
    allocation_mismatch,          ///< 437: no such allocation (or one exists already).
    stale_nonce,                  ///< 438: retry with the NONCE of the response.
    address_family_not_supported, ///< 440: the server does not support that family.
    wrong_credentials,            ///< 441: not the credentials of the allocation.
    unsupported_transport,        ///< 442: the server does not relay that transport.
    peer_address_family_mismatch, ///< 443: peer of another family than the relayed address.
    allocation_quota_reached,     ///< 486: the user has too many allocations.
    role_conflict,                ///< 487: ICE role conflict: swap roles and retry.
    server_error,                 ///< 500: the server failed; retry later.
    insufficient_capacity,        ///< 508: the server has no relay port left.
};

/// The category of `stun_error`.
const std::error_category& stun_error_category() noexcept;

inline std::error_code make_error_code(stun_error e) noexcept {
    return {static_cast<int>(e), stun_error_category()};
}

namespace stun {

/// The magic cookie of every RFC 5389/8489 message.
inline constexpr std::uint32_t magic_cookie = 0x2112A442;
/// Bytes of the message header.
inline constexpr std::size_t header_size = 20;
/// Bytes of an attribute header (type and length).
inline constexpr std::size_t attribute_header_size = 4;
/// XOR with the CRC-32 of the message gives the FINGERPRINT value.
inline constexpr std::uint32_t fingerprint_xor = 0x5354554e;

/// The 96-bit transaction id.
using transaction_id = std::array<std::byte, 12>;

/// STUN methods (RFC 8489, RFC 8656, RFC 6062).
enum class method : std::uint16_t {
    binding = 0x001,
    allocate = 0x003,
    refresh = 0x004,
    send = 0x006,
    data = 0x007,
    create_permission = 0x008,
    channel_bind = 0x009,
    connect = 0x00a,
    connection_bind = 0x00b,
    connection_attempt = 0x00c,
};

/// The class of a message.
enum class message_class : std::uint8_t {
    request = 0,
    indication = 1,
    success_response = 2,
    error_response = 3,
};

/// The message type: the 12-bit method and the 2-bit class interleaved (RFC 8489 §5).
constexpr std::uint16_t message_type(method m, message_class c) noexcept {
    const auto mv = static_cast<std::uint16_t>(m);
    const auto cv = static_cast<std::uint16_t>(c);
    return static_cast<std::uint16_t>((mv & 0x000f) | ((cv & 1) << 4) | ((mv & 0x0070) << 1) |
                                      ((cv & 2) << 7) | ((mv & 0x0f80) << 2));
}
/// The method of a message type.
constexpr method method_of(std::uint16_t type) noexcept {
    return static_cast<method>((type & 0x000f) | ((type & 0x00e0) >> 1) | ((type & 0x3e00) >> 2));
}
/// The class of a message type.
constexpr message_class class_of(std::uint16_t type) noexcept {
    return static_cast<message_class>(((type & 0x0010) >> 4) | ((type & 0x0100) >> 7));
}

/// Attribute types. Values below 0x8000 are comprehension-required: a receiver that
/// does not understand one must reject the message (420); the others may be ignored.
/// Any 16-bit value can be held (unknown types are `static_cast`s).
enum class attribute_type : std::uint16_t {
    // RFC 8489
    mapped_address = 0x0001,           ///< endpoint (address form)
    username = 0x0006,                 ///< text, < 513 bytes
    message_integrity = 0x0008,        ///< HMAC-SHA1, 20 bytes
    error_code = 0x0009,               ///< code 300..699 and reason
    unknown_attributes = 0x000a,       ///< list of u16 types
    realm = 0x0014,                    ///< text, < 763 bytes
    nonce = 0x0015,                    ///< text, < 763 bytes
    message_integrity_sha256 = 0x001c, ///< HMAC-SHA256, 16..32 bytes
    password_algorithm = 0x001d,       ///< algorithm and parameters
    userhash = 0x001e,                 ///< SHA-256(username ":" realm), 32 bytes
    xor_mapped_address = 0x0020,       ///< endpoint (XOR form)
    password_algorithms = 0x8002,      ///< list of algorithms and parameters
    alternate_domain = 0x8003,         ///< text
    software = 0x8022,                 ///< text, < 763 bytes
    alternate_server = 0x8023,         ///< endpoint (address form)
    fingerprint = 0x8028,              ///< CRC-32 ^ 0x5354554e, 4 bytes, always last
    // RFC 3489 (read for compatibility with old servers)
    source_address = 0x0004,  ///< endpoint (address form); RESPONSE-ORIGIN's ancestor
    changed_address = 0x0005, ///< endpoint (address form); OTHER-ADDRESS's ancestor
    // RFC 5780
    change_request = 0x0003,  ///< flags: change IP, change port
    padding = 0x0026,         ///< any bytes
    response_port = 0x0027,   ///< u16 + 2 reserved bytes
    response_origin = 0x802b, ///< endpoint (address form)
    other_address = 0x802c,   ///< endpoint (address form)
    // RFC 8656 (TURN) and RFC 6062
    channel_number = 0x000c,            ///< u16 channel + 2 reserved bytes
    lifetime = 0x000d,                  ///< u32 seconds
    xor_peer_address = 0x0012,          ///< endpoint (XOR form)
    data = 0x0013,                      ///< any bytes
    xor_relayed_address = 0x0016,       ///< endpoint (XOR form)
    requested_address_family = 0x0017,  ///< family byte + 3 reserved bytes
    even_port = 0x0018,                 ///< 1 byte, bit 0x80 = reserve the next port
    requested_transport = 0x0019,       ///< protocol byte (17 UDP) + 3 reserved bytes
    dont_fragment = 0x001a,             ///< empty
    reservation_token = 0x0022,         ///< 8 bytes
    connection_id = 0x002a,             ///< u32 (RFC 6062)
    additional_address_family = 0x8000, ///< family byte + 3 reserved bytes
    address_error_code = 0x8001,        ///< family, code and reason
    icmp = 0x8004,                      ///< ICMP type, code and error data
    // RFC 8445 (ICE)
    priority = 0x0024,        ///< u32
    use_candidate = 0x0025,   ///< empty
    ice_controlled = 0x8029,  ///< u64 tie-breaker
    ice_controlling = 0x802a, ///< u64 tie-breaker
};

/// Whether a receiver that does not know `t` must reject the message (t < 0x8000).
constexpr bool is_comprehension_required(attribute_type t) noexcept {
    return static_cast<std::uint16_t>(t) < 0x8000;
}

/// The RFC name of an attribute type ("XOR-MAPPED-ADDRESS"), or "0x1234" style
/// text for a type this codec does not know.
std::string to_string(attribute_type t);

/// Whether this codec knows `t` (it is one of the `attribute_type` enumerators).
bool is_known(attribute_type t) noexcept;

/// One attribute of a decoded message; `value` views the message's bytes.
struct attribute {
    attribute_type type{};
    std::span<const std::byte> value; ///< Without padding.
    std::size_t offset = 0;           ///< Of the attribute header, from the message start.
};

/// Options of `decode`.
struct decode_options {
    /// Accept messages without the magic cookie (RFC 3489 clients). The cookie field
    /// is then the first 4 bytes of a 128-bit transaction id; see
    /// `message_view::classic_transaction()`. XOR attributes mean nothing in them.
    bool allow_classic = false;
};

/// A decoded STUN message: the header fields and the attributes, viewing the bytes
/// given to `decode` (which must outlive it). Cheap to copy.
///
/// Attributes after MESSAGE-INTEGRITY other than MESSAGE-INTEGRITY-SHA256 and
/// FINGERPRINT, and after MESSAGE-INTEGRITY-SHA256 other than FINGERPRINT, are
/// skipped by iteration and `find`, as RFC 8489 §14.5-14.6 says receivers must.
class message_view {
public:
    class iterator;

    /// The 16-bit message type (method and class).
    std::uint16_t type() const noexcept { return detail::load_be<std::uint16_t>(bytes_.data()); }
    stun::method get_method() const noexcept { return method_of(type()); }
    stun::message_class get_class() const noexcept { return class_of(type()); }
    bool is_request() const noexcept { return get_class() == message_class::request; }
    bool is_indication() const noexcept { return get_class() == message_class::indication; }
    bool is_success_response() const noexcept {
        return get_class() == message_class::success_response;
    }
    bool is_error_response() const noexcept { return get_class() == message_class::error_response; }
    bool is_response() const noexcept { return is_success_response() || is_error_response(); }

    /// The transaction id (bytes 8..19).
    transaction_id transaction() const noexcept;
    /// Whether the message lacks the magic cookie (only with `decode_options::allow_classic`).
    bool is_classic() const noexcept {
        return detail::load_be<std::uint32_t>(bytes_.data() + 4) != magic_cookie;
    }
    /// The 128-bit RFC 3489 transaction id (bytes 4..19): cookie field and `transaction()`.
    std::span<const std::byte, 16> classic_transaction() const noexcept {
        return std::span<const std::byte, 16>(bytes_.data() + 4, 16);
    }

    /// The whole message.
    std::span<const std::byte> bytes() const noexcept { return bytes_; }
    std::size_t size() const noexcept { return bytes_.size(); }

    /// Iteration over the attributes in order (ignored ones skipped, see above).
    iterator begin() const noexcept;
    iterator end() const noexcept;

    /// The first attribute of type `t`, if any.
    std::optional<attribute> find(attribute_type t) const noexcept;
    bool has(attribute_type t) const noexcept { return find(t).has_value(); }

    /// Offsets of the attributes that protect the message; 0 when absent.
    std::size_t integrity_offset() const noexcept { return mi_; }
    std::size_t integrity_sha256_offset() const noexcept { return mi256_; }
    std::size_t fingerprint_offset() const noexcept { return fp_; }

private:
    friend std::optional<message_view> decode(std::span<const std::byte>, std::error_code&,
                                              const decode_options&) noexcept;
    bool ignored(std::size_t offset, attribute_type t) const noexcept;

    std::span<const std::byte> bytes_;
    std::uint16_t mi_ = 0, mi256_ = 0, fp_ = 0;
};

/// Forward iterator over a message's attributes.
class message_view::iterator {
public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = attribute;
    using difference_type = std::ptrdiff_t;
    using pointer = const attribute*;
    using reference = const attribute&;

    iterator() = default;
    reference operator*() const noexcept { return current_; }
    pointer operator->() const noexcept { return &current_; }
    iterator& operator++() noexcept;
    iterator operator++(int) noexcept {
        auto old = *this;
        ++*this;
        return old;
    }
    friend bool operator==(const iterator& a, const iterator& b) noexcept {
        return a.pos_ == b.pos_;
    }

private:
    friend class message_view;
    iterator(const message_view* m, std::size_t pos) noexcept;
    void load() noexcept;

    const message_view* m_ = nullptr;
    std::size_t pos_ = 0;
    attribute current_;
};

/// Decodes the STUN message that is the whole of `bytes` (one UDP datagram, or one
/// frame cut from a stream with `stream_frame_size`).
///
/// Checks the structure only: header, magic cookie, lengths, padding (its bytes may
/// have any value, RFC 8489 §14), FINGERPRINT last and the sizes of
/// MESSAGE-INTEGRITY (20), MESSAGE-INTEGRITY-SHA256 (16..32, a multiple of 4) and
/// FINGERPRINT (4). Attribute values, the fingerprint and the integrity are checked
/// by the functions below.
///
/// @returns the message, or nothing with `ec` set to `stun_error::truncated`,
/// `not_stun`, `bad_magic_cookie`, `bad_length`, `attribute_overrun`, `bad_padding`,
/// `fingerprint_not_last` or `bad_attribute_value`.
std::optional<message_view> decode(std::span<const std::byte> bytes, std::error_code& ec,
                                   const decode_options& options = {}) noexcept;

/// The header fields, read without checking the attributes: enough to answer a
/// request whose attributes are malformed with a 400.
struct header {
    std::uint16_t type = 0;
    std::uint16_t length = 0; ///< Bytes of attributes.
    std::uint32_t cookie = 0;
    transaction_id transaction{};
};
/// Reads the header of `bytes`. @returns nothing (`stun_error::truncated`, `not_stun`)
/// if there is no STUN header.
std::optional<header> decode_header(std::span<const std::byte> bytes, std::error_code& ec) noexcept;

/// Whether `bytes` is exactly one well-formed STUN header with the magic cookie, a
/// length that is a multiple of 4 and matches the size. A fast test for
/// demultiplexing; `decode` checks the rest.
bool is_stun_message(std::span<const std::byte> bytes) noexcept;

/// @name Reading attribute values
/// Each returns the value, or nothing with `ec` set to `stun_error::bad_attribute_value`
/// when the value has the wrong size or an invalid field.
/// @{

/// MAPPED-ADDRESS, ALTERNATE-SERVER, RESPONSE-ORIGIN, OTHER-ADDRESS, SOURCE-ADDRESS,
/// CHANGED-ADDRESS: family, port and address in clear.
std::optional<endpoint> decode_address(const attribute& a, std::error_code& ec) noexcept;

/// XOR-MAPPED-ADDRESS, XOR-PEER-ADDRESS, XOR-RELAYED-ADDRESS: port XOR the cookie's
/// top 16 bits, address XOR the cookie (IPv4) or the cookie and transaction id (IPv6).
std::optional<endpoint> decode_xor_address(const attribute& a, const transaction_id& id,
                                           std::error_code& ec) noexcept;
inline std::optional<endpoint> decode_xor_address(const attribute& a, const message_view& m,
                                                  std::error_code& ec) noexcept {
    return decode_xor_address(a, m.transaction(), ec);
}

/// USERNAME, REALM, NONCE, SOFTWARE, ALTERNATE-DOMAIN: UTF-8 text, not checked.
inline std::string_view decode_string(const attribute& a) noexcept {
    return {reinterpret_cast<const char*>(a.value.data()), a.value.size()};
}

/// A 4-byte value: LIFETIME, PRIORITY, CONNECTION-ID, FINGERPRINT.
std::optional<std::uint32_t> decode_u32(const attribute& a, std::error_code& ec) noexcept;
/// An 8-byte value: ICE-CONTROLLED, ICE-CONTROLLING, RESERVATION-TOKEN.
std::optional<std::uint64_t> decode_u64(const attribute& a, std::error_code& ec) noexcept;

/// ERROR-CODE and ADDRESS-ERROR-CODE.
struct error_code_value {
    unsigned code = 0;       ///< 300..699.
    std::string_view reason; ///< UTF-8, views the message.
    /// ADDRESS-ERROR-CODE only: the family the error is about.
    ip_address::family family = ip_address::family::v4;
};
std::optional<error_code_value> decode_error_code(const attribute& a, std::error_code& ec) noexcept;
std::optional<error_code_value> decode_address_error_code(const attribute& a,
                                                          std::error_code& ec) noexcept;

/// The `stun_error` for a STUN error code (401 -> `stun_error::unauthorized`);
/// `stun_error::error_response` for a code without its own enumerator.
stun_error error_from_code(unsigned code) noexcept;
/// The RFC's reason phrase for a code ("Unauthorized"), "" for an unknown code.
std::string_view reason_phrase(unsigned code) noexcept;

/// UNKNOWN-ATTRIBUTES: a list of attribute types, viewed in the message.
class attribute_list {
public:
    attribute_list() = default;
    explicit attribute_list(std::span<const std::byte> v) noexcept : v_(v) {}
    std::size_t size() const noexcept { return v_.size() / 2; }
    bool empty() const noexcept { return v_.size() < 2; }
    attribute_type operator[](std::size_t i) const noexcept {
        return static_cast<attribute_type>(detail::load_be<std::uint16_t>(v_.data() + 2 * i));
    }
    bool contains(attribute_type t) const noexcept {
        for (std::size_t i = 0; i < size(); ++i)
            if ((*this)[i] == t)
                return true;
        return false;
    }

private:
    std::span<const std::byte> v_;
};
std::optional<attribute_list> decode_unknown_attributes(const attribute& a,
                                                        std::error_code& ec) noexcept;

/// CHANGE-REQUEST (RFC 5780 §7.2).
struct change_request {
    bool change_ip = false;
    bool change_port = false;
    friend bool operator==(const change_request&, const change_request&) = default;
};
std::optional<change_request> decode_change_request(const attribute& a,
                                                    std::error_code& ec) noexcept;

/// RESPONSE-PORT (RFC 5780 §7.5): the port only.
std::optional<std::uint16_t> decode_response_port(const attribute& a, std::error_code& ec) noexcept;

/// CHANNEL-NUMBER (RFC 8656 §18.1): the channel only (any 16-bit value; check it
/// with `is_valid_channel`).
std::optional<std::uint16_t> decode_channel_number(const attribute& a,
                                                   std::error_code& ec) noexcept;

/// REQUESTED-TRANSPORT (RFC 8656 §18.7): the IP protocol number (17 = UDP, 6 = TCP).
std::optional<std::uint8_t> decode_requested_transport(const attribute& a,
                                                       std::error_code& ec) noexcept;

/// REQUESTED-ADDRESS-FAMILY and ADDITIONAL-ADDRESS-FAMILY (RFC 8656 §18.3, §18.11):
/// 0x01 IPv4, 0x02 IPv6; other values are `bad_attribute_value`.
std::optional<ip_address::family> decode_address_family(const attribute& a,
                                                        std::error_code& ec) noexcept;

/// EVEN-PORT (RFC 8656 §18.4): whether the R bit (reserve the next port) is set.
std::optional<bool> decode_even_port(const attribute& a, std::error_code& ec) noexcept;

/// ICMP (RFC 8656 §18.13).
struct icmp_value {
    std::uint8_t type = 0;
    std::uint8_t code = 0;
    std::uint32_t error_data = 0;
    friend bool operator==(const icmp_value&, const icmp_value&) = default;
};
std::optional<icmp_value> decode_icmp(const attribute& a, std::error_code& ec) noexcept;

/// PASSWORD-ALGORITHM values (RFC 8489 §18.5).
enum class password_algorithm : std::uint16_t {
    md5 = 0x0001,
    sha256 = 0x0002,
};
/// One entry of PASSWORD-ALGORITHMS, or the value of PASSWORD-ALGORITHM.
struct password_algorithm_entry {
    password_algorithm algorithm{};
    std::span<const std::byte> parameters; ///< Views the message; empty for MD5 and SHA-256.
};
/// PASSWORD-ALGORITHMS: up to `max_entries` entries (more is `bad_attribute_value`).
struct password_algorithm_list {
    static constexpr std::size_t max_entries = 8;
    std::array<password_algorithm_entry, max_entries> entries{};
    std::size_t count = 0;
    bool contains(password_algorithm a) const noexcept {
        for (std::size_t i = 0; i < count; ++i)
            if (entries[i].algorithm == a)
                return true;
        return false;
    }
};
std::optional<password_algorithm_list> decode_password_algorithms(const attribute& a,
                                                                  std::error_code& ec) noexcept;
std::optional<password_algorithm_entry> decode_password_algorithm(const attribute& a,
                                                                  std::error_code& ec) noexcept;
/// @}

/// @name Keys and checks (RFC 8489 §9)
/// @{

/// The key of a short-term credential: the password's bytes (which must outlive the
/// span). ICE uses this with the remote or local password.
inline std::span<const std::byte> short_term_key(std::string_view password) noexcept {
    return std::as_bytes(std::span<const char>(password.data(), password.size()));
}

/// The key of a long-term credential (RFC 8489 §9.2.2): MD5(username ":" realm ":"
/// password) for `password_algorithm::md5` (16 bytes; also what RFC 5389 servers such
/// as coturn use), SHA-256 of the same text for `password_algorithm::sha256` (32 bytes).
struct long_term_key_value {
    std::array<std::byte, 32> bytes{};
    std::size_t size = 0;
    std::span<const std::byte> span() const noexcept { return {bytes.data(), size}; }
};
/// @returns the key, or nothing with `ec = peerlink::error::crypto_failure` if
/// OpenSSL has no such digest (MD5 is absent in FIPS mode).
std::optional<long_term_key_value> long_term_key(std::string_view username, std::string_view realm,
                                                 std::string_view password, std::error_code& ec,
                                                 password_algorithm alg = password_algorithm::md5);

/// USERHASH (RFC 8489 §14.4): SHA-256(username ":" realm).
std::optional<std::array<std::byte, 32>> userhash(std::string_view username, std::string_view realm,
                                                  std::error_code& ec);

/// Checks FINGERPRINT. @returns {} if it matches, else `stun_error::fingerprint_missing`
/// or `fingerprint_mismatch`.
std::error_code verify_fingerprint(const message_view& m) noexcept;

/// Which integrity attribute to check.
enum class integrity_kind {
    strongest, ///< MESSAGE-INTEGRITY-SHA256 if present, else MESSAGE-INTEGRITY.
    sha1,      ///< MESSAGE-INTEGRITY only.
    sha256,    ///< MESSAGE-INTEGRITY-SHA256 only.
};

/// Checks MESSAGE-INTEGRITY (HMAC-SHA1) and/or MESSAGE-INTEGRITY-SHA256 (HMAC-SHA256,
/// possibly truncated to 16..28 bytes) of `m` with `key`.
/// @returns {} if it matches; `stun_error::integrity_missing`, `integrity_mismatch`,
/// or `peerlink::error::crypto_failure`.
std::error_code verify_integrity(const message_view& m, std::span<const std::byte> key,
                                 integrity_kind kind = integrity_kind::strongest);

/// CRC-32 (ISO-HDLC, as zlib's `crc32`) of `bytes`, continuing from `crc` (0 to start).
std::uint32_t crc32(std::span<const std::byte> bytes, std::uint32_t crc = 0) noexcept;
/// @}

/// @name Writing attribute values without a writer
/// For code that builds a message around data in place (a TURN Send indication
/// around a payload in a `packet_buffer`). Each returns the bytes written to the
/// front of `out`, or 0 if `out` is too small.
/// @{
/// Size of an address or XOR address value: 8 for IPv4, 20 for IPv6.
constexpr std::size_t address_value_size(const endpoint& e) noexcept {
    return e.address.is_v4() ? 8 : 20;
}
std::size_t encode_address_value(std::span<std::byte> out, const endpoint& e) noexcept;
std::size_t encode_xor_address_value(std::span<std::byte> out, const endpoint& e,
                                     const transaction_id& id) noexcept;
/// Writes a 20-byte header: type, `length` (bytes of attributes), cookie, id.
std::size_t encode_header(std::span<std::byte> out, std::uint16_t type, std::uint16_t length,
                          const transaction_id& id) noexcept;
/// Writes a 4-byte attribute header.
std::size_t encode_attribute_header(std::span<std::byte> out, attribute_type t,
                                    std::uint16_t length) noexcept;
/// A length rounded up to a multiple of 4.
constexpr std::size_t padded(std::size_t n) noexcept {
    return (n + 3) & ~std::size_t{3};
}
/// @}

/// Builds one STUN message, attribute by attribute.
///
/// Every `add_*` appends one attribute (padded with zero bytes, or with
/// `set_padding_byte`'s) and keeps the header's length field up to date, so the
/// bytes written so far are a valid message at any time. Errors are sticky: after
/// the first failure (`peerlink::error::buffer_too_small`, `stun_error::value_too_long`,
/// `attribute_after_end`, a crypto failure) later calls do nothing and `finish`
/// reports it. Order: everything else, then MESSAGE-INTEGRITY, then
/// MESSAGE-INTEGRITY-SHA256, then FINGERPRINT.
class message_writer {
public:
    /// Starts a message of `type` at the front of `out`.
    message_writer(std::span<std::byte> out, std::uint16_t type, const transaction_id& id) noexcept;
    message_writer(std::span<std::byte> out, method m, message_class c,
                   const transaction_id& id) noexcept
        : message_writer(out, message_type(m, c), id) {}
    /// Starts a message at the back of `out`, in its tailroom. `finish()` appends the
    /// message to the packet; until then the packet is unchanged.
    message_writer(packet_buffer& out, method m, message_class c,
                   const transaction_id& id) noexcept;
    /// Starts an RFC 3489 message (no magic cookie; a 128-bit transaction id), as a
    /// server answers an old client. Only address-form attributes make sense in it.
    message_writer(std::span<std::byte> out, std::uint16_t type,
                   std::span<const std::byte, 16> classic_id) noexcept;

    message_writer(const message_writer&) = delete;
    message_writer& operator=(const message_writer&) = delete;

    /// Pads with `b` instead of zero from now on (to reproduce RFC 5769's vectors).
    message_writer& set_padding_byte(std::byte b) noexcept {
        pad_ = b;
        return *this;
    }

    /// Any attribute, from its raw value.
    message_writer& add_bytes(attribute_type t, std::span<const std::byte> value) noexcept;
    /// A text attribute: USERNAME, REALM, NONCE, SOFTWARE, ALTERNATE-DOMAIN.
    message_writer& add_string(attribute_type t, std::string_view text) noexcept;
    /// An attribute without a value: USE-CANDIDATE, DONT-FRAGMENT.
    message_writer& add_empty(attribute_type t) noexcept { return add_bytes(t, {}); }
    /// A 4-byte big-endian value: LIFETIME, PRIORITY, CONNECTION-ID.
    message_writer& add_u32(attribute_type t, std::uint32_t v) noexcept;
    /// An 8-byte big-endian value: ICE-CONTROLLED, ICE-CONTROLLING, RESERVATION-TOKEN.
    message_writer& add_u64(attribute_type t, std::uint64_t v) noexcept;
    /// MAPPED-ADDRESS, ALTERNATE-SERVER, RESPONSE-ORIGIN, OTHER-ADDRESS.
    message_writer& add_address(attribute_type t, const endpoint& e) noexcept;
    /// XOR-MAPPED-ADDRESS, XOR-PEER-ADDRESS, XOR-RELAYED-ADDRESS.
    message_writer& add_xor_address(attribute_type t, const endpoint& e) noexcept;
    /// ERROR-CODE. @param code 300..699; `bad_attribute_value` otherwise.
    /// @param reason "" for the RFC's phrase (`reason_phrase`).
    message_writer& add_error_code(unsigned code, std::string_view reason = {}) noexcept;
    /// ADDRESS-ERROR-CODE (RFC 8656 §18.12).
    message_writer& add_address_error_code(ip_address::family f, unsigned code,
                                           std::string_view reason = {}) noexcept;
    /// UNKNOWN-ATTRIBUTES.
    message_writer& add_unknown_attributes(std::span<const attribute_type> types) noexcept;
    /// CHANGE-REQUEST.
    message_writer& add_change_request(change_request r) noexcept;
    /// RESPONSE-PORT.
    message_writer& add_response_port(std::uint16_t port) noexcept;
    /// PADDING of `n` zero bytes (RFC 5780 §7.6).
    message_writer& add_padding(std::size_t n) noexcept;
    /// CHANNEL-NUMBER.
    message_writer& add_channel_number(std::uint16_t channel) noexcept;
    /// REQUESTED-TRANSPORT. @param protocol 17 for UDP (RFC 8656), 6 for TCP (RFC 6062).
    message_writer& add_requested_transport(std::uint8_t protocol = 17) noexcept;
    /// REQUESTED-ADDRESS-FAMILY or ADDITIONAL-ADDRESS-FAMILY.
    message_writer& add_address_family(attribute_type t, ip_address::family f) noexcept;
    /// EVEN-PORT. @param reserve_next ask the server to reserve the next port too.
    message_writer& add_even_port(bool reserve_next) noexcept;
    /// ICMP.
    message_writer& add_icmp(const icmp_value& v) noexcept;
    /// PASSWORD-ALGORITHMS.
    message_writer& add_password_algorithms(std::span<const password_algorithm_entry> e) noexcept;
    /// PASSWORD-ALGORITHM.
    message_writer& add_password_algorithm(const password_algorithm_entry& e) noexcept;

    /// MESSAGE-INTEGRITY: HMAC-SHA1 with `key` over the message so far.
    message_writer& add_message_integrity(std::span<const std::byte> key) noexcept;
    /// MESSAGE-INTEGRITY-SHA256: HMAC-SHA256 with `key`, truncated to `size` bytes
    /// (16..32, a multiple of 4; `bad_attribute_value` otherwise).
    message_writer& add_message_integrity_sha256(std::span<const std::byte> key,
                                                 std::size_t size = 32) noexcept;
    /// FINGERPRINT; nothing may follow it.
    message_writer& add_fingerprint() noexcept;

    /// The first error, if any.
    std::error_code error() const noexcept { return ec_; }
    /// Bytes written so far (the header included).
    std::size_t size() const noexcept { return size_; }
    /// The message so far.
    std::span<const std::byte> bytes() const noexcept { return {out_.data(), size_}; }
    const transaction_id& transaction() const noexcept { return id_; }

    /// Ends the message. For a `packet_buffer` writer, appends it to the packet.
    /// @returns its size, or 0 with `ec` set to the first error.
    std::size_t finish(std::error_code& ec) noexcept;

private:
    std::span<std::byte> reserve(attribute_type t, std::size_t value_size) noexcept;
    message_writer& add_code(attribute_type t, std::byte first, unsigned code,
                             std::string_view reason) noexcept;
    void fail(std::error_code ec) noexcept {
        if (!ec_)
            ec_ = ec;
    }

    std::span<std::byte> out_;
    packet_buffer* packet_ = nullptr;
    std::size_t size_ = 0;
    transaction_id id_{};
    std::byte pad_{0};
    std::uint8_t stage_ = 0; // 0 open, 1 after MI, 2 after MI-SHA256, 3 after FINGERPRINT
    std::error_code ec_;
};

/// @name TURN ChannelData (RFC 8656 §12.4)
/// @{
/// Bytes of the ChannelData header (channel number, length).
inline constexpr std::size_t channel_data_header_size = 4;
/// Whether `c` is a channel number a client may bind (0x4000..0x4FFF).
constexpr bool is_valid_channel(std::uint16_t c) noexcept {
    return c >= 0x4000 && c <= 0x4fff;
}

/// How the transport frames messages: UDP datagrams, or a TCP/TLS byte stream (where
/// ChannelData is padded to a multiple of 4 bytes, RFC 8656 §12.5).
enum class framing { datagram, stream };

/// A decoded ChannelData message; `data` views the caller's bytes.
struct channel_data {
    std::uint16_t channel = 0;
    std::span<const std::byte> data;
    std::size_t wire_size = 0; ///< Header, data and (stream) padding.
};

/// Decodes the ChannelData message at the front of `bytes`. Over UDP, bytes after
/// the data (padding) are allowed; over a stream, the padding must be there.
/// @returns the message, or nothing with `ec` = `stun_error::truncated`
/// (shorter than its header or length), `bad_padding` (a stream frame without its
/// padding) or `bad_channel_number`.
std::optional<channel_data> decode_channel_data(std::span<const std::byte> bytes,
                                                std::error_code& ec,
                                                framing f = framing::datagram) noexcept;

/// Writes a ChannelData message to the front of `out` (padding zeroed for streams).
/// @returns the bytes written, or 0 with `ec` = `peerlink::error::buffer_too_small`,
/// `stun_error::bad_channel_number` or `stun_error::value_too_long` (over 65535 bytes).
std::size_t encode_channel_data(std::span<std::byte> out, std::uint16_t channel,
                                std::span<const std::byte> data, std::error_code& ec,
                                framing f = framing::datagram) noexcept;

/// Frames the packet in place: the 4-byte header goes into the headroom and, for
/// streams, the padding into the tailroom. No copy of the data.
/// @returns {} or the error of `encode_channel_data`; the packet is unchanged on error.
std::error_code wrap_channel_data(packet_buffer& p, std::uint16_t channel,
                                  framing f = framing::datagram) noexcept;
/// @}

/// @name Demultiplexing (RFC 7983, RFC 8656 §12)
/// @{
/// What a packet on a shared socket is, by its first byte: 0..3 STUN, 16..19 ZRTP,
/// 20..63 DTLS, 64..79 TURN ChannelData, 128..191 RTP/RTCP, anything else other.
/// peerlink's own packets (0xC0/0xC1 envelopes, 0xF1/0xF2 FEC) are `other`, but a
/// plain frame starts with 0x01 (its version): confirm `stun` with `is_stun_message`.
enum class packet_kind { stun, zrtp, dtls, channel_data, rtp, other };
constexpr packet_kind classify_packet(std::span<const std::byte> bytes) noexcept {
    if (bytes.empty())
        return packet_kind::other;
    const auto b = std::to_integer<unsigned>(bytes[0]);
    if (b <= 3)
        return packet_kind::stun;
    if (b >= 16 && b <= 19)
        return packet_kind::zrtp;
    if (b >= 20 && b <= 63)
        return packet_kind::dtls;
    if (b >= 64 && b <= 79)
        return packet_kind::channel_data;
    if (b >= 128 && b <= 191)
        return packet_kind::rtp;
    return packet_kind::other;
}

/// For a byte stream (TURN over TCP or TLS): the size of the frame at the front of
/// `bytes`, a STUN message (20 + its length) or ChannelData (4 + its length padded to
/// 4). @returns the size; or nothing with `ec` clear when fewer than 4 bytes are there
/// (read more), or with `ec` = `stun_error::not_stun` when the bytes are neither
/// (the stream is out of step: close it).
std::optional<std::size_t> stream_frame_size(std::span<const std::byte> bytes,
                                             std::error_code& ec) noexcept;
/// @}

} // namespace stun
} // namespace peerlink

template <>
struct std::is_error_code_enum<peerlink::stun_error> : std::true_type {};

#include <peerlink/proto/impl/stun.hpp>

#endif // PEERLINK_PROTO_STUN_HPP
