// peerlink/proto/stun_server.hpp: the sans-I/O STUN server core (Binding only), with
// RFC 5780 NAT behaviour discovery support.
//
// `stun::server_core` answers Binding requests (RFC 8489 §6.3) so that any peerlink
// node can serve STUN to its peers. A success response carries XOR-MAPPED-ADDRESS,
// MAPPED-ADDRESS (for old clients; can be switched off), SOFTWARE and FINGERPRINT.
//
// Given an alternate address and port (`server_config::alternate`) the server works
// as RFC 5780 §6 says, on four sockets: primary or alternate address × primary or
// alternate port. Its responses then also carry RESPONSE-ORIGIN (the socket it
// answers from) and OTHER-ADDRESS (the socket that differs in both address and port
// from the one the request came in on), and it honours CHANGE-REQUEST (answer from
// the other address and/or port), RESPONSE-PORT (answer to another port of the
// client) and PADDING (the response is padded to the request's size, never more: a
// small request cannot buy a large answer).
//
// Errors: a request whose attributes are malformed, or that carries PADDING together
// with RESPONSE-PORT, or of another method than Binding, gets 400 Bad Request; one
// with comprehension-required attributes the server does not understand gets 420
// Unknown Attribute listing them in UNKNOWN-ATTRIBUTES (CHANGE-REQUEST is such an
// attribute for a server without an alternate address, which is how RFC 5780 clients
// learn that it cannot help them). Anything else that is not a usable request
// (responses, indications, bad FINGERPRINT, undecodable) is dropped and counted.
// RFC 3489 requests (no magic cookie) are answered in kind: MAPPED-ADDRESS,
// SOURCE-ADDRESS, CHANGED-ADDRESS.
//
// @code
// stun::server_config cfg;
// cfg.primary = {ip_address::v4({192, 0, 2, 1}), 3478};
// cfg.alternate = endpoint{ip_address::v4({192, 0, 2, 2}), 3479};
// stun::server_core server(cfg);
// server.handle_datagram(bytes, from, stun::server_socket::primary);  // each datagram
// while (auto t = server.poll_transmit())
//     socket_for(t->via).send_to(t->data, t->to);
// @endcode
//
// The server has no timers and keeps no state per client. Memory (a ring of
// `transmit_slots` responses of `max_message_size` bytes) is allocated at
// construction. Never throws after construction, never reads a clock, includes no
// Asio.
#ifndef PEERLINK_PROTO_STUN_SERVER_HPP
#define PEERLINK_PROTO_STUN_SERVER_HPP

#include <peerlink/endpoint.hpp>
#include <peerlink/error.hpp>
#include <peerlink/proto/stun.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <vector>

namespace peerlink::stun {

/// Configuration of a `server_core`.
struct server_config {
    /// The primary address and port (PA:PP). Without an alternate the address may be
    /// unspecified (0.0.0.0, ::), RESPONSE-ORIGIN is then left out.
    endpoint primary;
    /// RFC 5780: the alternate address and port (AA:AP). Same family as `primary`,
    /// another address and another port, neither unspecified.
    std::optional<endpoint> alternate;
    /// SOFTWARE in every response; "" for none.
    std::string software = "peerlink";
    /// Also put MAPPED-ADDRESS in success responses (for RFC 3489-era clients).
    bool mapped_address = true;
    /// Answer RFC 3489 requests (no magic cookie).
    bool answer_classic = true;
    /// Responses that can wait for the driver.
    std::size_t transmit_slots = 64;
    /// Largest response, in bytes (PADDING is cut to fit).
    std::size_t max_message_size = 2048;
};

/// One of the server's sockets: bit 0 = alternate port, bit 1 = alternate address.
enum class server_socket : std::uint8_t {
    primary = 0,           ///< PA:PP
    alternate_port = 1,    ///< PA:AP
    alternate_address = 2, ///< AA:PP
    alternate_both = 3,    ///< AA:AP
};

/// A response for the driver to send from socket `via` to `to`.
struct server_transmit {
    std::span<const std::byte> data;
    endpoint to;
    server_socket via = server_socket::primary;
};

/// Counters of a `server_core`; they only grow.
struct server_stats {
    std::uint64_t requests = 0;            ///< Binding requests answered with success.
    std::uint64_t bad_requests = 0;        ///< Answered with 400.
    std::uint64_t unknown_attributes = 0;  ///< Answered with 420.
    std::uint64_t indications = 0;         ///< Binding indications (keepalives): no answer.
    std::uint64_t dropped_malformed = 0;   ///< Not decodable, not even for a 400.
    std::uint64_t dropped_not_request = 0; ///< Responses: not for a server.
    std::uint64_t dropped_fingerprint = 0; ///< With a wrong FINGERPRINT.
    std::uint64_t dropped_queue_full = 0;  ///< No transmit slot left.
};

/// The sans-I/O STUN server.
///
/// Not thread-safe. Never throws after construction; never reads a clock.
class server_core {
public:
    /// Allocates the transmit ring. An invalid `alternate` (see `check_config`) is
    /// ignored: the server then works without RFC 5780.
    explicit server_core(server_config cfg);

    /// {} if `cfg` is usable as given, else `peerlink::error::invalid_config`.
    static std::error_code check_config(const server_config& cfg) noexcept;

    const server_config& config() const noexcept { return cfg_; }

    /// Whether the server does RFC 5780 (it has a valid alternate address and port).
    bool rfc5780() const noexcept { return rfc5780_; }

    /// The address and port of one of the four sockets (only `primary` without RFC 5780).
    endpoint local_endpoint(server_socket s) const noexcept;

    /// Processes one datagram that arrived on socket `on` from `from`.
    /// @returns true if it was a STUN message (answered, or dropped and counted),
    /// false if it was not STUN at all (the caller may hand it to someone else).
    bool handle_datagram(std::span<const std::byte> bytes, const endpoint& from,
                         server_socket on = server_socket::primary) noexcept;

    /// The next response to send, oldest first; the view is valid until the next call
    /// on the core. Call after every `handle_datagram` until it returns nothing.
    std::optional<server_transmit> poll_transmit() noexcept;

    /// Responses waiting for `poll_transmit`.
    std::size_t pending() const noexcept { return count_; }

    const server_stats& stats() const noexcept { return stats_; }

private:
    struct slot {
        std::vector<std::byte> buf;
        std::size_t size = 0;
        endpoint to;
        server_socket via = server_socket::primary;
    };
    slot* push() noexcept;
    void answer_error(const header& h, const endpoint& from, server_socket on, unsigned code,
                      std::span<const attribute_type> unknown, bool classic,
                      std::span<const std::byte, 16> classic_id) noexcept;
    void answer(const message_view& m, const endpoint& from, server_socket on) noexcept;

    server_config cfg_;
    bool rfc5780_ = false;
    std::vector<slot> ring_;
    std::size_t head_ = 0, count_ = 0;
    server_stats stats_;
};

} // namespace peerlink::stun

#include <peerlink/proto/impl/stun_server.hpp>

#endif // PEERLINK_PROTO_STUN_SERVER_HPP
