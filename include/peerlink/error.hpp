// peerlink/error.hpp: error codes and error conditions.
//
// Every failure peerlink reports is a `std::error_code`. Codes are specific
// (`error::peer_id_checksum_mismatch`); conditions group them so a caller can
// ask one question (`ec == condition::peer_unreachable`) without listing codes.
#ifndef PEERLINK_ERROR_HPP
#define PEERLINK_ERROR_HPP

#include <string>
#include <system_error>
#include <type_traits>

namespace peerlink {

/// Specific errors reported by peerlink's core, codecs and drivers.
///
/// Later modules (KCP, STUN, TURN, ...) add their own enums with their own
/// categories; all of them map onto the conditions below.
enum class error {
    // Input that did not decode. Malformed packets from the network are counted and
    // dropped by the connection; these codes are what the codecs return.
    malformed_packet = 1, ///< A packet is shorter than its header or its lengths disagree.
    unsupported_version,  ///< A peerlink packet carries a protocol version this build lacks.
    unknown_frame_type,   ///< A peerlink packet carries a frame type this build does not know.
    message_too_large,    ///< A message is larger than the path MTU allows.
    buffer_too_small,     ///< The caller's buffer cannot hold the result.
    // Identity and peer ids.
    peer_id_bad_length,        ///< A peer id text has the wrong number of characters.
    peer_id_bad_character,     ///< A peer id text contains a character outside its alphabet.
    peer_id_bad_prefix,        ///< A peer id text does not start with "pl".
    peer_id_checksum_mismatch, ///< A peer id text has a typo: its checksum does not match.
    invalid_key,               ///< A key has the wrong size or is rejected by the crypto library.
    crypto_failure,            ///< The crypto library failed (out of memory, no provider).
    // Addresses and configuration.
    invalid_endpoint,           ///< An address text is not "a.b.c.d:port" or "[v6]:port".
    invalid_config,             ///< A configuration value is out of range or of the wrong type.
    no_port_available,          ///< Every port in the configured range is in use.
    address_family_not_enabled, ///< An IPv6 (or IPv4) peer with that family switched off.
    // Connection life.
    not_connected,         ///< The operation needs a connected peer.
    already_connecting,    ///< `async_connect` while a connect is in progress or done.
    connection_closed,     ///< The peer closed the connection in order.
    peer_timeout,          ///< The peer stopped answering (no packet within the idle timeout).
    handshake_timeout,     ///< No answer to the connection's hello within the connect timeout.
    unexpected_peer,       ///< A packet claims a peer id other than the one expected.
    operation_in_progress, ///< The same operation is already pending on this object.
    waiting_to_retry,      ///< The connection is backing off before its next attempt.
    // Pipeline features.
    feature_unavailable,   ///< A pipeline feature that this build or the peer's lacks.
    feature_refused,       ///< The peer did not agree to a requested pipeline change.
    authentication_failed, ///< The handshake failed: a wrong or spoofed peer key.
};

/// Conditions that group errors by what the caller can do about them.
enum class condition {
    malformed_input = 1,   ///< Bad bytes from the network or a bad text from the user.
    nat_traversal_failed,  ///< No path to the peer could be found or kept.
    peer_unreachable,      ///< The peer does not answer or went away.
    authentication_failed, ///< The peer could not prove its identity.
    configuration_error,   ///< The local configuration cannot work.
};

namespace detail {

class error_category_impl final : public std::error_category {
public:
    const char* name() const noexcept override { return "peerlink"; }

    std::string message(int ev) const override {
        switch (static_cast<error>(ev)) {
        case error::malformed_packet:
            return "malformed packet: shorter than its header or lengths disagree";
        case error::unsupported_version:
            return "peerlink packet of an unsupported protocol version";
        case error::unknown_frame_type:
            return "peerlink packet of an unknown frame type";
        case error::message_too_large:
            return "message larger than the path allows";
        case error::buffer_too_small:
            return "buffer too small for the result";
        case error::peer_id_bad_length:
            return "peer id has the wrong length (expected 57 characters starting with 'pl')";
        case error::peer_id_bad_character:
            return "peer id contains a character outside a-z and 2-7";
        case error::peer_id_bad_prefix:
            return "peer id does not start with 'pl'";
        case error::peer_id_checksum_mismatch:
            return "peer id checksum mismatch: the id has a typo";
        case error::invalid_key:
            return "invalid key: wrong size or rejected by OpenSSL";
        case error::crypto_failure:
            return "OpenSSL operation failed";
        case error::invalid_endpoint:
            return "invalid endpoint: expected 'a.b.c.d:port' or '[v6]:port'";
        case error::invalid_config:
            return "invalid configuration value";
        case error::no_port_available:
            return "no free port in the configured port range";
        case error::address_family_not_enabled:
            return "address family not enabled in the configuration";
        case error::not_connected:
            return "not connected to a peer";
        case error::already_connecting:
            return "a connect is already in progress or done";
        case error::connection_closed:
            return "the peer closed the connection";
        case error::peer_timeout:
            return "the peer stopped answering";
        case error::handshake_timeout:
            return "the peer did not answer the connection's hello in time";
        case error::unexpected_peer:
            return "a packet came from a peer other than the expected one";
        case error::operation_in_progress:
            return "the same operation is already pending";
        case error::waiting_to_retry:
            return "the connection is waiting before its next attempt";
        case error::feature_unavailable:
            return "pipeline feature not compiled in here or at the peer";
        case error::feature_refused:
            return "the peer did not agree to the requested pipeline change";
        case error::authentication_failed:
            return "authentication failed: the peer's key is not the one expected";
        }
        return "unknown peerlink error";
    }

    std::error_condition default_error_condition(int ev) const noexcept override;
};

class condition_category_impl final : public std::error_category {
public:
    const char* name() const noexcept override { return "peerlink.condition"; }

    std::string message(int ev) const override {
        switch (static_cast<condition>(ev)) {
        case condition::malformed_input:
            return "malformed input";
        case condition::nat_traversal_failed:
            return "NAT traversal failed";
        case condition::peer_unreachable:
            return "peer unreachable";
        case condition::authentication_failed:
            return "authentication failed";
        case condition::configuration_error:
            return "configuration error";
        }
        return "unknown peerlink condition";
    }
};

} // namespace detail

/// The category of `peerlink::error`.
inline const std::error_category& error_category() noexcept {
    static const detail::error_category_impl instance;
    return instance;
}

/// The category of `peerlink::condition`.
inline const std::error_category& condition_category() noexcept {
    static const detail::condition_category_impl instance;
    return instance;
}

inline std::error_code make_error_code(error e) noexcept {
    return {static_cast<int>(e), error_category()};
}

inline std::error_condition make_error_condition(condition c) noexcept {
    return {static_cast<int>(c), condition_category()};
}

inline std::error_condition
detail::error_category_impl::default_error_condition(int ev) const noexcept {
    switch (static_cast<error>(ev)) {
    case error::malformed_packet:
    case error::unsupported_version:
    case error::unknown_frame_type:
    case error::peer_id_bad_length:
    case error::peer_id_bad_character:
    case error::peer_id_bad_prefix:
    case error::peer_id_checksum_mismatch:
    case error::invalid_endpoint:
        return make_error_condition(condition::malformed_input);
    case error::invalid_config:
    case error::no_port_available:
    case error::address_family_not_enabled:
    case error::feature_unavailable:
        return make_error_condition(condition::configuration_error);
    case error::peer_timeout:
    case error::handshake_timeout:
        return make_error_condition(condition::peer_unreachable);
    case error::unexpected_peer:
    case error::authentication_failed:
        return make_error_condition(condition::authentication_failed);
    default:
        return {ev, *this};
    }
}

} // namespace peerlink

template <>
struct std::is_error_code_enum<peerlink::error> : std::true_type {};
template <>
struct std::is_error_condition_enum<peerlink::condition> : std::true_type {};

#endif // PEERLINK_ERROR_HPP
