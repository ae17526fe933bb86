// peerlink/concepts.hpp: the policy kinds and their concepts.
//
// A policy is a type that opts in to one kind with a tag:
//
// @code
// struct my_cipher {
//     using policy_kind = peerlink::cipher_tag;
//     ...
// };
// @endcode
//
// and then meets that kind's concept. Nothing satisfies a concept by accident:
// without the tag, a type is not a policy. Each concept is a conjunction of small
// named requirements, so a failed check names the requirement that is missing.
// The transport concept needs Asio and lives in peerlink/net/transport.hpp.
// docs/policies/ has one page per kind with its valid expressions.
#ifndef PEERLINK_CONCEPTS_HPP
#define PEERLINK_CONCEPTS_HPP

#include <peerlink/endpoint.hpp>
#include <peerlink/proto/packet_buffer.hpp>
#include <peerlink/time.hpp>

#include <concepts>
#include <cstddef>
#include <optional>
#include <system_error>
#include <type_traits>

namespace peerlink {

/// @name Policy kind tags
/// A policy names its kind with `using policy_kind = <tag>;`.
/// @{
struct transport_tag {};   ///< Moves datagrams: UDP sockets, the simulated network, a relay.
struct reliability_tag {}; ///< Turns datagrams into a reliable stream (KCP), or not.
struct fec_tag {};         ///< Adds forward error correction to the packet pipeline.
struct cipher_tag {};      ///< Authenticates the peer and encrypts every packet.
struct obfuscation_tag {}; ///< Disguises packets on the wire.
struct traversal_tag {};   ///< Finds a path to the peer through NATs.
/// @}

/// A type that names a policy kind.
template <class T>
concept policy_kind_tag = std::same_as<T, transport_tag> || std::same_as<T, reliability_tag> ||
    std::same_as<T, fec_tag> || std::same_as<T, cipher_tag> || std::same_as<T, obfuscation_tag> ||
    std::same_as<T, traversal_tag>;

/// A type that opted in to being a policy of some known kind.
template <class T>
concept policy = requires {
    typename T::policy_kind;
}
&&policy_kind_tag<typename T::policy_kind>;

/// A policy of kind `Kind`.
template <class T, class Kind>
concept policy_of_kind = policy<T> && std::same_as<typename T::policy_kind, Kind>;

// Small named requirements shared by the pipeline kinds.

/// The stage says how many bytes it may add to a packet, at compile time.
template <class T>
concept declares_max_overhead = requires {
    { T::max_overhead } -> std::convertible_to<std::size_t>;
};

/// The stage can be built by the connection: from nothing (stateless stages).
template <class T>
concept connection_constructible = std::default_initializable<T> && std::movable<T>;

/// The stage reports whether it is switched on now (a compiled-in stage can be off).
template <class T>
concept reports_enabled = requires(const T& t) {
    { t.enabled() } -> std::same_as<bool>;
};

// --- reliability ---------------------------------------------------------------

/// The policy says whether it gives a reliable, ordered byte stream.
template <class T>
concept declares_reliability = requires {
    { T::is_reliable } -> std::convertible_to<bool>;
};

/// A reliability policy. `datagram_only` is the null policy: the connection then
/// offers only its unreliable datagram path.
template <class T>
concept reliability_policy =
    policy_of_kind<T, reliability_tag> && declares_reliability<T> && connection_constructible<T>;

// --- fec -------------------------------------------------------------------------

/// Turns an outgoing packet into its FEC form and yields any parity packets after it.
template <class T>
concept fec_encoder = requires(T& t, packet_buffer& p, time_point now) {
    { t.encode(p, now) } -> std::same_as<std::error_code>;
    { t.poll_parity(p) } -> std::same_as<bool>;
};

/// Turns a received packet back into its payload (empty when it carried only
/// parity) and yields any packets that parity recovered.
template <class T>
concept fec_decoder = requires(T& t, packet_buffer& p, time_point now) {
    { t.decode(p, now) } -> std::same_as<std::error_code>;
    { t.poll_recovered(p) } -> std::same_as<bool>;
};

/// A forward-error-correction policy. `no_fec` is the null policy.
template <class T>
concept fec_policy = policy_of_kind<T, fec_tag> && declares_max_overhead<T> &&
    connection_constructible<T> && reports_enabled<T> && fec_encoder<T> && fec_decoder<T>;

// --- cipher ----------------------------------------------------------------------

/// Seals an outgoing packet in place and opens an incoming one in place.
template <class T>
concept packet_sealer = requires(T& t, packet_buffer& p, time_point now) {
    { t.seal(p, now) } -> std::same_as<std::error_code>;
    { t.open(p, now) } -> std::same_as<std::error_code>;
};

/// A cipher policy. `no_cipher` is the null policy.
template <class T>
concept cipher_policy = policy_of_kind<T, cipher_tag> && declares_max_overhead<T> &&
    connection_constructible<T> && reports_enabled<T> && packet_sealer<T>;

// --- obfuscation -----------------------------------------------------------------

/// Wraps an outgoing packet in its disguise and unwraps an incoming one.
template <class T>
concept packet_wrapper = requires(T& t, packet_buffer& p) {
    { t.wrap(p) } -> std::same_as<std::error_code>;
    { t.unwrap(p) } -> std::same_as<std::error_code>;
};

/// An obfuscation policy. `no_obfuscation` is the null policy.
template <class T>
concept obfuscation_policy = policy_of_kind<T, obfuscation_tag> && declares_max_overhead<T> &&
    connection_constructible<T> && reports_enabled<T> && packet_wrapper<T>;

// --- traversal -------------------------------------------------------------------

/// What a traversal policy is asked to reach.
struct traversal_request {
    /// An address the peer is known to listen on (given by the user or by signaling).
    std::optional<endpoint> remote;
};

/// Starts path finding and yields the path once one is known.
template <class T>
concept path_finder = requires(T& t, const T& ct, const traversal_request& r, time_point now) {
    { t.start(r, now) } -> std::same_as<std::error_code>;
    { ct.poll_path() } -> std::same_as<std::optional<endpoint>>;
};

/// A NAT-traversal policy. `direct_only` is the simplest: the peer's address is given.
template <class T>
concept traversal_policy =
    policy_of_kind<T, traversal_tag> && connection_constructible<T> && path_finder<T>;

} // namespace peerlink

#endif // PEERLINK_CONCEPTS_HPP
