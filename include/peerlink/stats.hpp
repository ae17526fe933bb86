// peerlink/stats.hpp: a snapshot of a connection's counters.
//
// `peer_connection::stats()` returns a `stats` by value: counters since the connection
// was made, the current round-trip estimates, the state and the path. It converts to
// JSON for logs and dashboards; durations are integer microseconds under keys ending
// in "_us".
//
// @par JSON form
// @code
// { "packets_sent": 120, "packets_received": 118, "bytes_sent": 160000, ...,
//   "srtt_us": 23000, "min_rtt_us": 20000, "last_rtt_us": 25000,
//   "state": "connected", "path": "direct",
//   "local_endpoint": "10.0.0.2:40000", "remote_endpoint": "198.18.0.7:51234" }
// @endcode
#ifndef PEERLINK_STATS_HPP
#define PEERLINK_STATS_HPP

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <string>

namespace peerlink {

/// Counters and estimates of one connection. All counters start at zero and only grow.
struct stats {
    /// @name Wire traffic: UDP datagrams and their bytes, every header included.
    /// @{
    std::uint64_t packets_sent = 0;
    std::uint64_t packets_received = 0;
    std::uint64_t bytes_sent = 0;
    std::uint64_t bytes_received = 0;
    /// @}

    /// @name Application datagrams (`async_send` / `async_receive`) sent and delivered.
    /// @{
    std::uint64_t datagrams_sent = 0;
    std::uint64_t datagrams_received = 0;
    /// @}

    /// @name Drops and back-pressure.
    /// @{
    std::uint64_t dropped_malformed = 0;       ///< Packets that failed to decode or authenticate.
    std::uint64_t dropped_unexpected_peer = 0; ///< Packets from an address or peer not ours.
    std::uint64_t dropped_send_errors = 0;     ///< Packets the socket refused to send.
    std::uint64_t dropped_truncated = 0;       ///< Packets larger than the receive buffer.
    std::uint64_t send_would_block = 0;        ///< Times the socket's send buffer was full.
    std::uint64_t dropped_receive_queue_full =
        0; ///< Datagrams the application did not take in time.
    /// Packets dropped because they were not sealed while the connection needs the
    /// cipher, or did not authenticate (forged, replayed, wrong key).
    std::uint64_t dropped_unauthenticated = 0;
    std::uint64_t fec_recovered = 0; ///< Packets rebuilt from FEC parity.
    /// @}

    /// @name Round-trip time. Zero until the first sample.
    /// @{
    std::chrono::microseconds srtt{0};     ///< Smoothed RTT (RFC 6298).
    std::chrono::microseconds min_rtt{0};  ///< The smallest sample seen.
    std::chrono::microseconds last_rtt{0}; ///< The latest sample.
    /// @}

    /// The name of the current state ("idle", "punching", "connected", ...).
    std::string state = "idle";
    /// How packets reach the peer: "none", "direct" or "relayed".
    std::string path = "none";
    /// The local and remote addresses in use, "a.b.c.d:port" or "[v6]:port"; empty when
    /// there is none.
    std::string local_endpoint;
    std::string remote_endpoint;
    /// The packet pipeline in use: cipher "none" (not compiled in), "off" (both sides
    /// agreed), "handshaking", "noise-ik" or "noise-xx"; FEC "off" or the ratio sent
    /// with ("10:3"); disguise "off" or "dns".
    std::string cipher = "none";
    std::string fec = "off";
    std::string disguise = "off";

    friend bool operator==(const stats&, const stats&) = default;
};

/// Writes every field; durations as integer microseconds ("srtt_us").
void to_json(nlohmann::json& j, const stats& s);

/// Reads what `to_json` writes. Missing keys keep their defaults and unknown keys are
/// ignored, so a reader can load the output of another peerlink version.
/// @throws nlohmann::json::type_error if a counter is not a non-negative integer, a
///   duration not an integer, or a text not a string.
void from_json(const nlohmann::json& j, stats& s);

} // namespace peerlink

#include <peerlink/impl/stats.hpp>

#endif // PEERLINK_STATS_HPP
