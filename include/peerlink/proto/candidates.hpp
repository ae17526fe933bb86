// peerlink/proto/candidates.hpp: ICE candidates (RFC 8445 §5.1): types, priorities,
// foundations, their JSON form for trickling over signaling, and the choice of host
// candidates from a list of interface addresses.
//
// A candidate is a transport address a peer may be reachable at:
//
// | type | what | type preference |
// | --- | --- | --- |
// | host | an address of a local interface | 126 |
// | peer_reflexive | an address the peer saw our checks come from | 110 |
// | server_reflexive | an address a STUN server saw (our NAT's mapping) | 100 |
// | relayed | an address on a TURN server | 0 |
//
// priority = 2^24 * type preference + 2^8 * local preference + (256 - component)
// (RFC 8445 §5.1.2.1). The local preference orders the interfaces of one host:
// IPv6 before IPv4 (RFC 8421's spirit), then the interfaces in the order given.
//
// The JSON form, one object per candidate, what `to_json` writes and
// `candidate_from_json` reads:
//
// @code
// {"type":"srflx","address":"198.18.1.1:40000","priority":1694498815,
//  "foundation":"9a3c01f2","component":1,"related":"10.1.0.2:40000"}
// @endcode
//
// `base` and `socket` are local bookkeeping and are not sent.
//
// Sans-I/O: nothing here opens a socket or reads interfaces; peerlink/net/interfaces.hpp
// lists the interfaces and feeds `gather_host_candidates`.
#ifndef PEERLINK_PROTO_CANDIDATES_HPP
#define PEERLINK_PROTO_CANDIDATES_HPP

#include <peerlink/endpoint.hpp>
#include <peerlink/error.hpp>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace peerlink::ice {

/// The kinds of candidate (RFC 8445 §5.1.1).
enum class candidate_type : std::uint8_t { host, server_reflexive, peer_reflexive, relayed };

/// The SDP name: "host", "srflx", "prflx", "relay".
std::string_view to_string(candidate_type t) noexcept;
/// Reads an SDP name. @returns nothing for another text.
std::optional<candidate_type> candidate_type_from_string(std::string_view s) noexcept;

/// The RFC 8445 §5.1.2.2 recommended type preference: host 126, peer-reflexive 110,
/// server-reflexive 100, relayed 0.
constexpr std::uint32_t type_preference(candidate_type t) noexcept {
    switch (t) {
    case candidate_type::host:
        return 126;
    case candidate_type::peer_reflexive:
        return 110;
    case candidate_type::server_reflexive:
        return 100;
    case candidate_type::relayed:
        return 0;
    }
    return 0;
}

/// The local preference of an address (0..65535): IPv6 global addresses rank above IPv4,
/// and interfaces earlier in the list (`rank` 0, 1, ...) above later ones. Link-local
/// IPv6 ranks below IPv4.
constexpr std::uint16_t local_preference(const ip_address& a, unsigned rank) noexcept {
    unsigned base = 0;
    if (a.is_v6()) {
        const bool link_local = a.data()[0] == 0xfe && (a.data()[1] & 0xc0) == 0x80;
        base = link_local ? 16383 : 65535;
    } else {
        base = 49151;
    }
    const unsigned step = 64;
    const unsigned off = rank * step;
    return static_cast<std::uint16_t>(off >= base - 1024 ? 1024 : base - off);
}

/// The priority of a candidate (RFC 8445 §5.1.2.1).
/// @param component 1..256 (peerlink uses 1: one UDP flow).
constexpr std::uint32_t candidate_priority(candidate_type t, std::uint16_t local_pref,
                                           unsigned component = 1) noexcept {
    return (type_preference(t) << 24) + (std::uint32_t{local_pref} << 8) + (256 - component);
}

/// The priority of a candidate pair (RFC 8445 §6.1.2.3): G is the controlling agent's
/// candidate priority, D the controlled agent's.
/// 2^32 * min(G, D) + 2 * max(G, D) + (G > D ? 1 : 0).
constexpr std::uint64_t pair_priority(std::uint32_t g, std::uint32_t d) noexcept {
    const std::uint64_t lo = g < d ? g : d, hi = g < d ? d : g;
    return (lo << 32) + 2 * hi + (g > d ? 1 : 0);
}

/// Identifies one of the driver's local sockets (0 is the main one).
using socket_id = std::uint32_t;

/// One candidate.
struct candidate {
    candidate_type type = candidate_type::host;
    endpoint address; ///< The transport address the peer should send to.
    std::uint32_t priority = 0;
    std::string foundation; ///< Same foundation: same type, base address and server.
    unsigned component = 1;
    std::optional<endpoint> related; ///< raddr/rport: the base of a reflexive candidate.
    // Local only, not part of the JSON form:
    endpoint base;        ///< The local address packets leave from (a host address).
    socket_id socket = 0; ///< The driver's socket this candidate belongs to.

    friend bool operator==(const candidate&, const candidate&) = default;
};

/// A foundation (RFC 8445 §5.1.1.3): 8 hex digits hashed from the type, the base
/// address and, for reflexive and relayed candidates, the server's address.
std::string make_foundation(candidate_type t, const ip_address& base,
                            const std::optional<endpoint>& server = {});

/// Builds a candidate with its priority and foundation.
/// @param rank the interface's position (see `local_preference`).
candidate make_candidate(candidate_type t, const endpoint& address, const endpoint& base,
                         unsigned rank = 0, socket_id socket = 0,
                         const std::optional<endpoint>& server = {});

/// The JSON form (see the header comment).
nlohmann::json to_json(const candidate& c);
/// Reads the JSON form. `base` is set to `address`, `socket` to 0.
/// @returns the candidate, or nothing with `ec` = `error::malformed_packet` (not an
/// object, a missing or mistyped field, an unknown type) or `error::invalid_endpoint`.
std::optional<candidate> candidate_from_json(const nlohmann::json& j, std::error_code& ec);

/// One address of a local interface (filled by peerlink/net/interfaces.hpp).
struct interface_address {
    std::string name;   ///< "eth0".
    unsigned index = 0; ///< The interface index (the scope of link-local IPv6).
    ip_address address; ///< With the scope id set for link-local IPv6.
    bool loopback = false;
    bool up = true;
};

/// What `gather_host_candidates` keeps.
struct host_gather_options {
    /// Only this address (an IP literal); empty or a wildcard ("0.0.0.0", "::") keeps
    /// every address of that family ("::" and empty: both families when `ipv6`).
    std::string bind_address;
    bool ipv6 = true;                ///< Keep IPv6 addresses (transport.ipv6).
    bool include_loopback = false;   ///< Keep 127.0.0.0/8 and ::1.
    bool include_link_local = false; ///< Keep fe80::/10 (needs a scope to be usable).
    std::uint16_t port = 0;          ///< The bound port of the socket (from the port range).
    socket_id socket = 0;            ///< The socket the candidates belong to.
};

/// Host candidates from `interfaces`, one per usable address, in interface order, with
/// priorities from `local_preference`. Down interfaces are skipped.
/// @returns the candidates; empty when none is usable. With a concrete `bind_address`
/// that is no interface's address, that address alone (the caller bound to it).
std::vector<candidate> gather_host_candidates(std::span<const interface_address> interfaces,
                                              const host_gather_options& o);

} // namespace peerlink::ice

#include <peerlink/proto/impl/candidates.hpp>

#endif // PEERLINK_PROTO_CANDIDATES_HPP
