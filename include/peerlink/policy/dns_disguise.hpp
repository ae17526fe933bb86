// peerlink/policy/dns_disguise.hpp: the DNS disguise obfuscation policy.
//
// Makes every packet on the wire a well-formed DNS message: the initiator's packets are
// DNS queries, the responder's are DNS responses, and each carries one (encrypted) peerlink
// packet. tshark decodes them as DNS without a malformed-packet or expert warning (checked
// by the ctests in tests/dns_tshark/). The codec is proto/dns_wrap.hpp.
//
// @par Query (initiator to responder; D = encoded domain size, 17 for "cdn.example.com")
// | bytes      | field                                                                    |
// |------------|--------------------------------------------------------------------------|
// | 0..1       | ID: a keyed permutation of a counter (no repeat within 65536 queries)    |
// | 2..3       | flags 0x0100 (standard query, recursion desired)                         |
// | 4..11      | counts: 1 question, 0 answers, 0 authority, 1 additional                 |
// | 12..24     | QNAME label: length 12, 12 pseudo-random base32 characters               |
// | 25..24+D   | QNAME rest: the configured domain                                        |
// | 25+D..28+D | QTYPE 16 (TXT), QCLASS 1 (IN)                                            |
// | 29+D..39+D | OPT pseudo-record: root name, type 41, UDP size 4096, RDLENGTH n+4       |
// | 40+D..43+D | EDNS option: code 65001 (configurable 65001..65534), length n            |
// | 44+D..     | the payload, n bytes, as it is                                           |
//
// @par Response (responder to initiator; k = max(1, ceil(n / 254)))
// | bytes         | field                                                                 |
// |---------------|-----------------------------------------------------------------------|
// | 0..1          | ID: that of a query received and not yet answered, else a fresh one   |
// | 2..3          | flags 0x8180 (response, recursion desired and available, no error)    |
// | 4..11         | counts: 1 question, 1 answer, 0 authority, 1 additional              |
// | 12..28+D      | the question: that query's name, TXT, IN (a fresh name for fresh ID)  |
// | 29+D..40+D    | TXT answer: name 0xc00c (-> QNAME), TXT, IN, TTL 60, RDLENGTH n+2k    |
// | 41+D..        | k strings: length, key byte, up to 254 payload bytes XOR the key      |
// | last 11 bytes | OPT pseudo-record: root name, type 41, UDP size 4096, RDLENGTH 0      |
// proto/dns_wrap.hpp has the details (key bytes, what the receiver checks).
//
// @par Overhead
// | payload                    | query     | response                         |
// |----------------------------|-----------|----------------------------------|
// | n bytes, domain of D bytes | 44 + D    | 52 + D + 2 * max(1, ceil(n/254)) |
// | 1400 bytes, default domain | 61 (4.4%) | 81 (5.8%)                        |
// | 0 bytes, default domain    | 61        | 71                               |
// `max_overhead` (96) bounds both for payloads up to 1524 bytes and any domain the policy
// accepts (at most 32 encoded bytes, 30 characters). A connection with
// `transport.max_datagram_size` above 1620 sends larger payloads; their responses
// grow by 2 more bytes per 254 payload bytes and may exceed `max_datagram_size` by that.
//
// @par Matching queries and responses
// A responder remembers the last `pending_queries` queries it unwrapped and answers the
// oldest one with its next response (same ID, same question), as a resolver would. With
// no query pending it sends an unsolicited response under a fresh ID, chosen to differ
// from every query ID it has seen recently: DNS analysers (Wireshark among them) flag a
// second response to an answered query as a retransmission.
//
// @par Roles and switching
// Both sides must use the same domain and option code, opposite roles, and agree on
// whether the disguise is on. `configure(true)` (the default) makes a side the
// initiator. `set_enabled(false)` turns the policy into a pass-through on both paths;
// connection negotiation decides when, and `looks_like_dns_disguise` tells a disguised
// packet from a plain one around a switch.
//
// @par Example
// @code
// peerlink::dns_disguise client, server;
// client.configure(true);
// server.configure(false);
// std::byte storage[1600];
// peerlink::packet_buffer p(storage, peerlink::dns_disguise::max_overhead);
// p.append(payload);
// client.wrap(p);          // p is now a DNS query
// server.unwrap(p);        // p is the payload again
// @endcode
//
// Not thread-safe. `wrap` and `unwrap` never allocate, never throw and read no clock.
#ifndef PEERLINK_POLICY_DNS_DISGUISE_HPP
#define PEERLINK_POLICY_DNS_DISGUISE_HPP

#include <peerlink/concepts.hpp>
#include <peerlink/proto/dns_wrap.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <system_error>

namespace peerlink {

/// What a `dns_disguise` policy has done, for stats and tests.
struct dns_disguise_counters {
    std::uint64_t wrapped = 0;   ///< Packets wrapped as queries or responses.
    std::uint64_t unwrapped = 0; ///< Packets of the expected direction unwrapped.
    std::uint64_t rejected = 0;  ///< Received packets that were not the expected DNS form.
    std::uint64_t answered = 0;  ///< Responses that answered a received query (responder).
};

/// Obfuscation policy: packets travel as DNS queries (initiator) and DNS responses
/// (responder). See the file comment for the wire format and the overhead.
class dns_disguise {
public:
    using policy_kind = obfuscation_tag;

    /// The most `wrap` adds, for payloads up to `dns::overhead_bound_payload` (1524)
    /// bytes: 96.
    static constexpr std::size_t max_overhead = dns::max_overhead;
    /// Received queries a responder remembers to answer.
    static constexpr std::size_t pending_queries = 8;

    /// An enabled initiator with the default domain and option code, its IDs and labels
    /// seeded from OpenSSL's random generator (so two peers never share a sequence).
    dns_disguise() noexcept;

    /// The same with a given seed: the same seed gives the same IDs and labels (tests).
    explicit dns_disguise(std::uint64_t seed) noexcept;

    /// Sets the role: the initiator sends queries and accepts only responses, the
    /// responder sends responses and accepts only queries. Forgets pending queries.
    void configure(bool initiator) noexcept;
    bool is_initiator() const noexcept { return initiator_; }

    /// Sets the domain every question name ends with. Both sides must use the same.
    /// @returns `error::invalid_config` (domain unchanged) for a name `dns::encoded_domain`
    ///   rejects: not letters, digits and hyphens, or longer than 30 characters.
    std::error_code set_domain(std::string_view domain) noexcept;

    /// Sets the EDNS(0) option code that carries query payloads. Both sides must use the
    /// same. @returns `error::invalid_config` (unchanged) outside 65001..65534.
    std::error_code set_option_code(std::uint16_t code) noexcept;

    /// The domain and option code in use.
    const dns::params& params() const noexcept { return params_; }

    /// Switches the disguise on or off at run time. Off, `wrap` and `unwrap` leave
    /// packets untouched (and count nothing).
    void set_enabled(bool on) noexcept { enabled_ = on; }

    /// Whether `packet` looks disguised (see `looks_like_dns_disguise`): the connection
    /// unwraps such packets whether or not its own disguise is on.
    static bool recognizes(std::span<const std::byte> packet) noexcept;
    bool enabled() const noexcept { return enabled_; }

    /// Wraps the outgoing packet in `p` as a query (initiator) or a response (responder).
    /// `p` needs `max_overhead` bytes of headroom and of tailroom.
    /// @returns `error::buffer_too_small` or `error::message_too_large` from the codec;
    ///   `p` is then unchanged.
    std::error_code wrap(packet_buffer& p) noexcept;

    /// Unwraps a received packet in place: a response (initiator) or a query (responder).
    /// @returns a `dns_wrap_error` (condition `malformed_input`) for anything else,
    ///   `dns_wrap_error::wrong_direction` for a message of the wrong direction; the
    ///   packet is then unchanged and counted in `counters().rejected`.
    std::error_code unwrap(packet_buffer& p) noexcept;

    const dns_disguise_counters& counters() const noexcept { return counters_; }

private:
    dns::question fresh_question(bool avoid_seen) noexcept;
    void remember_query(const dns::question& q) noexcept;

    dns::params params_;
    std::uint64_t key_ = 0;
    std::uint64_t counter_ = 0;
    bool initiator_ = true;
    bool enabled_ = true;
    // Responder: queries received and not yet answered, oldest first.
    std::array<dns::question, pending_queries> pending_{};
    std::size_t pending_head_ = 0;
    std::size_t pending_count_ = 0;
    // Responder: IDs of recently received queries, which fresh response IDs avoid.
    std::array<std::uint64_t, 65536 / 64> seen_ids_{};
    std::size_t seen_count_ = 0;
    dns_disguise_counters counters_;
};

static_assert(obfuscation_policy<dns_disguise>);

/// A cheap test of whether `packet` looks like a packet `dns_disguise` wrapped (either
/// direction): DNS flags and section counts of its query or response, and a first label
/// of 12 base32 characters. Does not check the domain; a packet that passes may still
/// fail to unwrap. Random bytes (an encrypted packet without the disguise) pass with a
/// probability under 2^-70.
bool looks_like_dns_disguise(std::span<const std::byte> packet) noexcept;

inline bool dns_disguise::recognizes(std::span<const std::byte> packet) noexcept {
    return looks_like_dns_disguise(packet);
}

} // namespace peerlink

#include <peerlink/policy/impl/dns_disguise.hpp>

#endif // PEERLINK_POLICY_DNS_DISGUISE_HPP
