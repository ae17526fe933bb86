// peerlink/config.hpp: run-time configuration and its JSON form.
//
// A `config` is a plain struct with defaults that work; set what you need, or read it
// from JSON. In JSON every key is optional (a missing key keeps its default) and an
// unknown key is an error, so a typo in a configuration file is reported instead of
// silently ignored. Durations are integer milliseconds under keys ending in "_ms".
//
// @par JSON form (all defaults)
// @code
// {
//   "transport": { "bind_address": "", "port_min": 0, "port_max": 0, "ipv6": true,
//                  "max_datagram_size": 1400, "socket_buffer_bytes": 4194304 },
//   "timers": { "connect_timeout_ms": 10000, "hello_interval_ms": 250,
//               "keepalive_interval_ms": 15000, "idle_timeout_ms": 45000,
//               "backoff_initial_ms": 30000, "backoff_max_ms": 3600000 },
//   "features": { "fec": false, "fec_adaptive": true, "cipher": true, "disguise": false },
//   "signaling": { "url": "" },
//   "stun": { "servers": [] },
//   "turn": { "servers": [ { "url": "turn:198.18.0.1:3478", "username": "alice",
//                            "password": "secret" } ] }
// }
// @endcode
//
// @par Example
// @code
// std::error_code ec;
// std::string what;
// auto cfg = peerlink::config_from_json(nlohmann::json::parse(file_text), ec, &what);
// if (!cfg)
//     std::cerr << "bad configuration: " << what << '\n'; // "transport.port_min must be <= ..."
// @endcode
#ifndef PEERLINK_CONFIG_HPP
#define PEERLINK_CONFIG_HPP

#include <peerlink/error.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

namespace peerlink {

/// Sockets. JSON section "transport".
struct transport_config {
    /// The local address to bind: an IP literal ("0.0.0.0", "::1", "fe80::1%2"). Empty
    /// binds the "any" address, dual stack (IPv4 and IPv6 on one socket) when `ipv6`.
    std::string bind_address = "";
    /// The local port range to bind, inclusive. 0 and 0 let the system choose (ephemeral);
    /// otherwise 1 <= port_min <= port_max, and the first free port is taken.
    std::uint16_t port_min = 0;
    std::uint16_t port_max = 0;
    /// Whether IPv6 is used (binding, candidates). False keeps to IPv4.
    bool ipv6 = true;
    /// The largest UDP payload sent, in bytes: 512 to 65507. Keep it below the path MTU
    /// (1400 fits IPv4 and IPv6 over the usual tunnels).
    std::size_t max_datagram_size = 1400;
    /// SO_SNDBUF and SO_RCVBUF in bytes: 0 (keep the system's) to 1 GiB.
    int socket_buffer_bytes = 4 << 20;

    friend bool operator==(const transport_config&, const transport_config&) = default;
};

/// Timers. JSON section "timers", each as integer milliseconds with the suffix "_ms".
/// Every duration must be 1 ms to 24 h.
struct timer_config {
    /// How long `async_connect` tries before it fails with `error::handshake_timeout`.
    std::chrono::milliseconds connect_timeout{10000};
    /// How often a hello (or punch) is resent while connecting; <= connect_timeout.
    std::chrono::milliseconds hello_interval{250};
    /// How long a quiet connection waits before it sends a keepalive; < idle_timeout.
    std::chrono::milliseconds keepalive_interval{15000};
    /// How long without any packet from the peer before `error::peer_timeout`.
    std::chrono::milliseconds idle_timeout{45000};
    /// The first wait before trying again after a failed connect (or direct-path upgrade);
    /// it doubles after each failure up to backoff_max. backoff_initial <= backoff_max.
    std::chrono::milliseconds backoff_initial{30000};
    std::chrono::milliseconds backoff_max{3600000};

    friend bool operator==(const timer_config&, const timer_config&) = default;
};

/// Run-time switches of compiled-in policies. JSON section "features". A switch whose
/// policy is not compiled in is ignored; the peer learns the choice in-band.
struct feature_config {
    bool fec = false; ///< Forward error correction.
    /// While FEC is on, the receiver measures the loss of the peer's packets and asks
    /// for the ratio of `fec_ratio_controller`'s table (<1% 10:1 ... >20% 3:5).
    bool fec_adaptive = true;
    bool cipher = true;    ///< Encryption and peer authentication.
    bool disguise = false; ///< Wire obfuscation (e.g. DNS disguise).

    friend bool operator==(const feature_config&, const feature_config&) = default;
};

/// The signaling server. JSON section "signaling".
struct signaling_config {
    /// The server's URL ("ws://host:port/path" or "wss://..."); empty for none.
    std::string url;

    friend bool operator==(const signaling_config&, const signaling_config&) = default;
};

/// STUN servers. JSON section "stun".
struct stun_config {
    /// Server addresses ("stun:host:port", RFC 7064); no entry may be empty.
    std::vector<std::string> servers;

    friend bool operator==(const stun_config&, const stun_config&) = default;
};

/// One TURN server and its long-term credentials (RFC 8656 §9.2).
struct turn_server {
    std::string url; ///< "turn:host:port" or "turns:host:port" (RFC 7065); not empty.
    std::string username;
    std::string password;

    friend bool operator==(const turn_server&, const turn_server&) = default;
};

/// TURN relays. JSON section "turn".
struct turn_config {
    /// Servers tried in order when no direct path is found.
    std::vector<turn_server> servers;

    friend bool operator==(const turn_config&, const turn_config&) = default;
};

/// All run-time settings of a connection. Every default works on its own.
struct config {
    transport_config transport;
    timer_config timers;
    feature_config features;
    signaling_config signaling;
    stun_config stun;
    turn_config turn;

    friend bool operator==(const config&, const config&) = default;
};

/// Checks the ranges and cross-field rules documented on each field.
/// @param cfg the configuration to check.
/// @param ec set to `error::invalid_config` for the first rule broken, cleared otherwise.
/// @param what if not null, receives a sentence naming the key by its JSON path, e.g.
///   "transport.port_min must be <= transport.port_max".
/// @returns true if `cfg` is valid.
bool validate(const config& cfg, std::error_code& ec, std::string* what = nullptr);

/// Reads a configuration from JSON without throwing. Missing keys keep their defaults.
/// @param j a JSON object in the form shown at the top of this header.
/// @param ec set to `error::invalid_config` if a key is unknown, a value has the wrong
///   type (a string for a number, 1.5 for an integer, 1 for a boolean), does not fit its
///   field, or the result fails `validate`; cleared on success.
/// @param what if not null, receives a sentence naming the bad key, e.g.
///   "unknown key transport.prot_min" or "features.fec must be a boolean".
/// @returns the configuration, or nothing.
std::optional<config> config_from_json(const nlohmann::json& j, std::error_code& ec,
                                       std::string* what = nullptr);

/// Writes every field (so the output documents the defaults). TURN passwords are
/// written too: treat the output as a secret if it has any.
void to_json(nlohmann::json& j, const config& cfg);

/// `j.get<peerlink::config>()`: like `config_from_json`, starting from the defaults.
/// @throws std::system_error with `error::invalid_config`; its what() names the key.
void from_json(const nlohmann::json& j, config& cfg);

} // namespace peerlink

#include <peerlink/impl/config.hpp>

#endif // PEERLINK_CONFIG_HPP
