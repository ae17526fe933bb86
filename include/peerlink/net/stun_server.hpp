// peerlink/net/stun_server.hpp: an embeddable STUN server on an Asio executor.
//
// `stun_server` binds one UDP socket (a plain STUN server), or four (RFC 5780: the
// primary and the alternate address, each on the primary and the alternate port),
// and answers Binding requests until `stop()`. It is the thin driver of
// `stun::server_core` (peerlink/proto/stun_server.hpp), which decides every answer;
// the driver runs one batched receive loop per socket (`udp_transport`) and sends
// each answer from the socket the core names. No threads, no timers.
//
// @par Example: a server for NAT behaviour discovery on two loopback addresses
// @code
// asio::io_context io;
// peerlink::stun_server::options o;
// o.primary = *peerlink::endpoint::parse("127.0.0.1:0", ec);   // port 0: any free port
// o.alternate = *peerlink::endpoint::parse("127.0.0.2:0", ec);
// peerlink::stun_server server(io.get_executor(), o);          // throws on failure
// auto where = server.local_endpoint();                        // 127.0.0.1:<port>
// io.run();                                                    // until server.stop()
// @endcode
#ifndef PEERLINK_NET_STUN_SERVER_HPP
#define PEERLINK_NET_STUN_SERVER_HPP

#include <peerlink/endpoint.hpp>
#include <peerlink/error.hpp>
#include <peerlink/net/udp_transport.hpp>
#include <peerlink/proto/stun_server.hpp>

#include <asio/any_io_executor.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <system_error>

namespace peerlink {

/// Counters of a `stun_server`: the core's, and the driver's own.
struct stun_server_stats {
    stun::server_stats core;          ///< What the core answered and dropped.
    std::uint64_t received = 0;       ///< Datagrams received, all sockets.
    std::uint64_t truncated = 0;      ///< Larger than `max_datagram_size`: dropped.
    std::uint64_t sent = 0;           ///< Responses handed to the system.
    std::uint64_t send_errors = 0;    ///< Responses the system refused (or would block).
    std::uint64_t receive_errors = 0; ///< Receive calls that failed (then retried).
};

/// A STUN server (Binding, RFC 5780) on one or four UDP sockets.
///
/// Not thread-safe; use it from the executor's thread (or a strand). Not movable.
/// Destroying it stops it.
class stun_server {
public:
    using executor_type = asio::any_io_executor;

    /// Where to listen and what to say.
    struct options {
        /// The primary address and port. Port 0: a free port. Without `alternate` the
        /// address may be a wildcard ("0.0.0.0", or "::" for dual stack).
        endpoint primary{ip_address::any_v4(), 3478};
        /// RFC 5780: the alternate address and port (port 0: a free port, the same on
        /// both addresses). Both addresses must be local, concrete and of one family.
        std::optional<endpoint> alternate;
        /// SOFTWARE in responses; "" for none.
        std::string software = "peerlink";
        /// Also send MAPPED-ADDRESS (for RFC 3489-era clients).
        bool mapped_address = true;
        /// Largest datagram taken; longer ones are dropped.
        std::size_t max_datagram_size = 2048;
    };

    /// A server that is not listening yet; call `open`.
    explicit stun_server(executor_type ex);

    /// A listening server. @throws std::system_error with the error `open` reports.
    stun_server(executor_type ex, const options& o);

    stun_server(const stun_server&) = delete;
    stun_server& operator=(const stun_server&) = delete;
    ~stun_server();

    /// Binds the socket(s) and starts answering.
    /// @param ec cleared on success; otherwise, and nothing is left open:
    /// - `error::invalid_config`: an alternate with another family, an unspecified
    ///   address, or the same address or port as the primary;
    /// - `asio::error::already_open`: the server is listening;
    /// - a bind error (`address_in_use`, `address_not_available` for an address
    ///   that is not local), or `error::no_port_available` when no common free port
    ///   was found for both addresses.
    void open(const options& o, std::error_code& ec);

    /// Stops answering and closes the sockets. Idempotent. Handlers still queued
    /// run later and do nothing. `stats()` keeps the final counters; `open` may be
    /// called again.
    void stop() noexcept;

    bool is_open() const noexcept;
    executor_type get_executor() const noexcept { return ex_; }

    /// Whether the server runs RFC 5780 (four sockets).
    bool rfc5780() const noexcept;

    /// The bound address and port of one socket (with ports chosen by the system);
    /// `0.0.0.0:0` when not listening.
    endpoint local_endpoint(stun::server_socket s = stun::server_socket::primary) const noexcept;

    stun_server_stats stats() const noexcept;

private:
    struct impl;
    executor_type ex_;
    std::shared_ptr<impl> impl_;
};

} // namespace peerlink

#include <peerlink/net/impl/stun_server.hpp>

#endif // PEERLINK_NET_STUN_SERVER_HPP
