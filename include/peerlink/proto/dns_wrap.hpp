// peerlink/proto/dns_wrap.hpp: wrapping a packet as a DNS query or a DNS response.
//
// The codec behind the `dns_disguise` obfuscation policy (policy/dns_disguise.hpp): free
// functions that turn a payload into a well-formed DNS message (RFC 1035, EDNS(0) from
// RFC 6891) in place in a `packet_buffer`, and back. Every message is one that tshark and
// any DNS parser decode without complaint; the payload rides in the places DNS has for
// opaque bytes:
//
// - a **query** carries it in an EDNS(0) option of the OPT record (the same place as DNS
//   cookies, client-subnet and padding options), with an option code from the range
//   RFC 6891 reserves for local and experimental use (65001..65534);
// - a **response** carries it in the character-strings of one TXT answer, the record type
//   resolvers return for arbitrary text (SPF, DKIM, verification tokens).
//
// Why these two places: both hold a 1400-byte payload in one record with a fixed, small
// overhead, and both are parsed as opaque data by DNS tools. Names (the "encoded labels"
// of DNS tunnels) hold at most 253 bytes and cost 60% more in base32, so they only carry a
// short random label here, as a cache-busting CDN name would.
//
// @par Query (n = payload size, D = size of the encoded domain: 17 for "cdn.example.com")
// | offset | bytes | field              | value                                                 |
// |--------|-------|--------------------|-------------------------------------------------------|
// | 0      | 2     | ID                 | from the caller (a keyed permutation of a counter)    |
// | 2      | 2     | flags              | 0x0100: QR=0, opcode QUERY, RD=1                      |
// | 4      | 8     | QD/AN/NS/AR counts | 1, 0, 0, 1                                            |
// | 12     | 13    | QNAME, first label | length 12, then 12 base32 characters `a-z 2-7`        |
// | 25     | D     | QNAME, the domain  | the configured domain's labels, then 0                |
// | 25+D   | 4     | QTYPE, QCLASS      | 16 (TXT), 1 (IN)                                      |
// | 29+D   | 11    | OPT record         | name 0, type 41, class 4096, TTL 0, RDLENGTH n+4      |
// | 40+D   | 4     | EDNS option header | option code (default 65001), option length n          |
// | 44+D   | n     | the payload        | as it is                                              |
// Overhead: 44 + D bytes, 61 with the default domain, whatever the payload size. (The OPT
// record's class is the UDP payload size the sender accepts; TTL 0 is extended rcode 0,
// EDNS version 0, no flags.)
//
// @par Response (k = ceil(n / 254), at least 1)
// | offset    | bytes | field              | value                                            |
// |-----------|-------|--------------------|--------------------------------------------------|
// | 0         | 2     | ID                 | from the caller (a received query's, or fresh)   |
// | 2         | 2     | flags              | 0x8180: QR=1, opcode QUERY, RD=1, RA=1, NOERROR  |
// | 4         | 8     | QD/AN/NS/AR counts | 1, 1, 0, 1                                       |
// | 12        | 17+D  | the question       | as in a query: QNAME, TXT, IN                    |
// | 29+D      | 12    | TXT answer header  | name 0xc00c (-> QNAME), type 16, class 1, TTL 60 |
// |           |       |                    | RDLENGTH n+2k                                    |
// | 41+D      | n+2k  | k strings          | length L, key byte K, L-1 payload bytes XOR K    |
// | 41+D+n+2k | 11    | OPT record         | name 0, type 41, class 4096, TTL 0, RDLENGTH 0   |
// The payload is cut into 254-byte chunks, the last one shorter, each one TXT
// character-string of L = chunk + 1 bytes (2..255); an empty payload is one string holding
// only its key byte (L = 1). Each chunk is XORed with a nonzero key byte that does not occur
// in it (there is always one: a chunk has at most 254 of the 256 byte values), so no
// string contains a zero byte (Wireshark, like many tools, reads TXT data as text and
// warns about embedded NULs) and the receiver undoes it with one XOR. Overhead: 52 + D + 2k
// bytes; 81 for a 1400-byte payload with the default domain (k = 6), 71 for an empty one.
//
// @par What the receiver checks
// Exactly this form: QR bit, opcode 0, rcode 0, TC clear, the counts, a 12-character
// base32 first label, the configured domain (case-insensitive), TXT/IN, the answer's name
// pointer, canonical TXT chunking with nonzero keys (responses), the OPT record with
// exactly our option (queries) or none (responses), and no trailing byte. It ignores the
// ID, the AA/RD/RA/AD/CD bits and the Z bit, the OPT class and TTL and the answer's TTL,
// which a middlebox might rewrite. A failed unwrap leaves the packet unchanged.
//
// The codec allocates nothing, never throws and reads no clock; unwrap_query moves no
// byte, unwrap_response moves the payload once (to close the gaps of the string headers).
#ifndef PEERLINK_PROTO_DNS_WRAP_HPP
#define PEERLINK_PROTO_DNS_WRAP_HPP

#include <peerlink/error.hpp>
#include <peerlink/proto/packet_buffer.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>

namespace peerlink {

/// Why a received packet is not a DNS message of the `dns_disguise` form.
///
/// All map onto `condition::malformed_input`. Errors of the sending side are peerlink's
/// generic ones: `error::buffer_too_small` (no head- or tailroom), `error::message_too_large`
/// (a payload the DNS length fields cannot describe), `error::invalid_config` (a domain or
/// option code that cannot be used).
enum class dns_wrap_error {
    /// Shorter than a DNS header, or a header this form never has: another opcode, an
    /// error rcode, the TC bit, or other section counts.
    not_dns = 1,
    /// A query where a response was expected, or a response where a query was.
    wrong_direction,
    /// The question's name is not a 12-character base32 label under the configured domain.
    wrong_name,
    /// A question or record of another type, class or owner name than this form uses.
    wrong_record,
    /// The OPT record does not hold exactly this form's options: one option with the
    /// configured code in a query, none in a response.
    wrong_option,
    /// The TXT data is not the chunked form `wrap_response` writes.
    bad_txt,
    /// A name, record or length runs past the end of the packet.
    truncated,
    /// Bytes follow the last record.
    trailing_bytes,
};

namespace detail {

class dns_wrap_error_category_impl final : public std::error_category {
public:
    const char* name() const noexcept override { return "peerlink.dns_wrap"; }
    std::string message(int ev) const override;
    std::error_condition default_error_condition(int ev) const noexcept override;
};

} // namespace detail

/// The category of `peerlink::dns_wrap_error`.
inline const std::error_category& dns_wrap_error_category() noexcept {
    static const detail::dns_wrap_error_category_impl instance;
    return instance;
}

inline std::error_code make_error_code(dns_wrap_error e) noexcept {
    return {static_cast<int>(e), dns_wrap_error_category()};
}

} // namespace peerlink

template <>
struct std::is_error_code_enum<peerlink::dns_wrap_error> : std::true_type {};

namespace peerlink::dns {

/// Bytes of the DNS header.
inline constexpr std::size_t header_size = 12;
/// Characters of the random first label of every question name.
inline constexpr std::size_t label_size = 12;
/// The largest encoded domain (length bytes, labels and the final 0): a domain of up to
/// 30 characters. It bounds `max_overhead`, so it is kept small.
inline constexpr std::size_t max_domain_size = 32;
/// The domain used unless one is configured. example.com is reserved (RFC 2606): it
/// never points at anyone's real servers. Deployments should pick their own.
inline constexpr std::string_view default_domain = "cdn.example.com";
/// The EDNS(0) option code that carries a query's payload unless one is configured.
inline constexpr std::uint16_t default_option_code = 65001;
/// The range RFC 6891 section 9 reserves for local/experimental options.
inline constexpr std::uint16_t min_option_code = 65001;
inline constexpr std::uint16_t max_option_code = 65534;
/// The UDP payload size both sides advertise in their OPT record (a common default).
inline constexpr std::uint16_t edns_udp_size = 4096;
/// The TTL of the TXT answer.
inline constexpr std::uint32_t answer_ttl = 60;
/// Payload bytes per TXT character-string (255 minus the key byte).
inline constexpr std::size_t txt_chunk_size = 254;
/// The largest query payload: the OPT record's RDLENGTH is 16 bits and holds 4 more bytes.
inline constexpr std::size_t max_query_payload = 65535 - 4;
/// The largest response payload: n + 2 * ceil(n / 254) must fit the TXT RDLENGTH.
inline constexpr std::size_t max_response_payload = 65023;

/// TXT character-strings for an `n`-byte payload (at least one).
constexpr std::size_t txt_strings(std::size_t n) noexcept {
    return n == 0 ? 1 : (n + txt_chunk_size - 1) / txt_chunk_size;
}

/// Bytes a query adds to its payload with an encoded domain of `domain_size` bytes.
constexpr std::size_t query_overhead(std::size_t domain_size) noexcept {
    return header_size + 1 + label_size + domain_size + 4 + 11 + 4;
}

/// Bytes a response adds to an `n`-byte payload with an encoded domain of `domain_size`.
constexpr std::size_t response_overhead(std::size_t n, std::size_t domain_size) noexcept {
    return header_size + 1 + label_size + domain_size + 4 + 12 + 2 * txt_strings(n) + 11;
}

/// Payloads up to this size stay within `max_overhead` (six TXT strings). Larger ones
/// (a `max_datagram_size` above 1620) wrap too, 2 bytes more per 254 payload bytes.
inline constexpr std::size_t overhead_bound_payload = 6 * txt_chunk_size;

/// The most either wrap adds to a payload of up to `overhead_bound_payload` bytes with
/// any allowed domain: 96 bytes (a response with six strings and a 32-byte domain).
inline constexpr std::size_t max_overhead = std::max(
    response_overhead(overhead_bound_payload, max_domain_size), query_overhead(max_domain_size));

/// A domain name in DNS wire form (labels with length bytes, then 0), lower-case.
class encoded_domain {
public:
    /// The default domain, `default_domain`.
    encoded_domain() noexcept;

    /// Replaces the name with `text` ("cdn.example.com", a final dot is allowed).
    /// @returns `error::invalid_config` (name unchanged) unless `text` has at least one
    ///   label, every label has 1..63 letters, digits or hyphens and neither starts nor
    ///   ends with a hyphen, and the encoded name fits `max_domain_size` bytes.
    std::error_code assign(std::string_view text) noexcept;

    /// The encoded bytes, final 0 included.
    std::span<const std::byte> wire() const noexcept { return {bytes_.data(), size_}; }
    std::size_t size() const noexcept { return size_; }
    /// The name as text, without a final dot.
    std::string to_string() const;

    friend bool operator==(const encoded_domain& a, const encoded_domain& b) noexcept {
        return std::ranges::equal(a.wire(), b.wire());
    }

private:
    std::array<std::byte, max_domain_size> bytes_{};
    std::size_t size_ = 0;
};

/// What both sides must agree on.
struct params {
    encoded_domain domain;                           ///< The domain every name ends with.
    std::uint16_t option_code = default_option_code; ///< The EDNS(0) option of queries.
};

/// The parts of a question that vary from message to message.
struct question {
    std::uint16_t id = 0;                 ///< The DNS transaction ID.
    std::array<char, label_size> label{}; ///< The first label: base32 `a-z 2-7`.
    friend bool operator==(const question&, const question&) = default;
};

/// Makes a question with transaction ID `id` and a label spelling the low 60 bits of
/// `bits` in base32 (RFC 4648 alphabet, lower-case).
question make_question(std::uint16_t id, std::uint64_t bits) noexcept;

/// Wraps the payload in `p` as a DNS query for TXT `<q.label>.<cfg.domain>` whose OPT
/// record carries the payload in option `cfg.option_code`. In place: the header goes
/// into the headroom; the payload does not move.
/// @returns `error::message_too_large` for a payload over `max_query_payload`,
///   `error::buffer_too_small` if the headroom is under `query_overhead(domain size)`;
///   `p` is unchanged on error.
std::error_code wrap_query(packet_buffer& p, const question& q, const params& cfg) noexcept;

/// Wraps the payload in `p` as a DNS response to the question `q`, with the payload in
/// a TXT answer. In place: the header goes into the headroom, the string headers and the
/// OPT record take `2 * txt_strings(n) + 11` bytes of tailroom, and the payload moves
/// back to make room for the string headers.
/// @returns `error::message_too_large` for a payload over `max_response_payload`,
///   `error::buffer_too_small` without the head- or tailroom; `p` is unchanged on error.
std::error_code wrap_response(packet_buffer& p, const question& q, const params& cfg) noexcept;

/// Unwraps a query written by `wrap_query` with the same `cfg`: on success `p` views
/// the payload (in place, nothing moves) and `q` holds the query's ID and label.
/// @returns a `dns_wrap_error` (`wrong_direction` for a response); `p` and `q` are
///   unchanged on error.
std::error_code unwrap_query(packet_buffer& p, const params& cfg, question& q) noexcept;

/// Unwraps a response written by `wrap_response` with the same `cfg.domain`: on success
/// `p` views the payload, moved to the front of the TXT data, and `q` holds the ID and
/// label.
/// @returns a `dns_wrap_error` (`wrong_direction` for a query); `p`'s bytes and view
///   and `q` are unchanged on error.
std::error_code unwrap_response(packet_buffer& p, const params& cfg, question& q) noexcept;

/// A cheap test, without the configuration, for whether `packet` has the header and
/// first label of a wrapped query or response: the flags and counts of one of the two
/// forms, and a 12-character base32 first label. Random bytes pass with a probability
/// under 2^-70; a packet that passes may still fail to unwrap.
bool is_wrapped(std::span<const std::byte> packet) noexcept;

} // namespace peerlink::dns

#include <peerlink/proto/impl/dns_wrap.hpp>

#endif // PEERLINK_PROTO_DNS_WRAP_HPP
