// peerlink/net/turn_client.hpp: a TURN relay allocation over UDP or TCP (RFC 8656).
//
// `turn_client` is the thin Asio driver of `turn::client_core`
// (peerlink/proto/turn_client.hpp): one socket to the TURN server (UDP, or a TCP
// connection), one receive loop, one timer, no threads, on the socket's executor.
// Everything TURN decides (credentials, retransmissions, refreshes, channel numbers,
// framing) happens in the core; this class moves bytes and time and completes
// operations.
//
// What it gives: a relayed transport address on the server (`async_allocate`) that
// peers can send UDP datagrams to, and a datagram interface to those peers
// (`send_to`, `async_receive_from`) once they are allowed in (`async_create_permission`,
// or `async_bind_channel`, which also makes data cheaper: 4 bytes of header instead of
// 36). The allocation, its permissions and its channels are refreshed on their own
// for as long as the object lives and the server answers.
//
// @par Example
// @code
// asio::io_context io;
// peerlink::turn::client_config cfg;
// cfg.username = "alice";
// cfg.password = "secret";
// // Over UDP (a closed socket is opened for the server's family):
// peerlink::turn_client turn(asio::ip::udp::socket(io), server, cfg);
// // or over TCP (a closed socket is connected by async_allocate):
// // peerlink::turn_client turn(asio::ip::tcp::socket(io), server, cfg);
//
// asio::co_spawn(io, [&]() -> asio::awaitable<void> {
//     peerlink::endpoint relayed = co_await turn.async_allocate(asio::use_awaitable);
//     // ... tell the peer `relayed` through signaling, learn its address `peer` ...
//     co_await turn.async_create_permission(peer, asio::use_awaitable);
//     turn.send_to(peer, std::as_bytes(std::span(std::string_view("hello"))));
//     std::array<std::byte, 2048> buf;
//     auto [n, from] = co_await turn.async_receive_from(asio::buffer(buf),
//                                                      peerlink::as_tuple(asio::use_awaitable));
//     co_await turn.async_bind_channel(peer, asio::use_awaitable);   // cheaper framing
//     co_await turn.async_deallocate(asio::use_awaitable);
// }, asio::detached);
// io.run();
// @endcode
//
// @par Errors
// Operations complete with `turn_error`s (peerlink/proto/turn_client.hpp):
// `turn_error::unauthorized` (condition `authentication_failed`) for a wrong user name
// or password, `timeout` (`peer_unreachable`) when the server does not answer,
// `quota_reached`, `insufficient_capacity`, `allocation_mismatch`, `forbidden`, ...
// (`nat_traversal_failed`); with a socket error (`connection_refused` for a TCP server
// that is not there); or with `asio::error::operation_aborted` when cancelled or after
// `close()`. When the allocation is lost (a refresh refused, the lifetime ran out, the
// TCP connection closed), every pending operation completes with that error and later
// ones fail with it at once.
//
// @par Thread safety
// Not thread-safe; use it from one strand.
#ifndef PEERLINK_NET_TURN_CLIENT_HPP
#define PEERLINK_NET_TURN_CLIENT_HPP

#include <peerlink/detail/pending_op.hpp>
#include <peerlink/endpoint.hpp>
#include <peerlink/net/asio_endpoint.hpp>
#include <peerlink/proto/turn_client.hpp>
#include <peerlink/time.hpp>

#include <asio/any_io_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/buffer.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ip/udp.hpp>
#include <asio/steady_timer.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <system_error>

namespace peerlink {

/// Counters of a `turn_client`.
struct turn_client_stats {
    turn::client_stats core;         ///< The TURN core's counters.
    std::uint64_t send_drops = 0;    ///< Data the socket (or the TCP write queue) could not take.
    std::uint64_t receive_drops = 0; ///< Data lost: the receive queue was full, or it was larger
                                     ///< than `client_config::max_data_size`.
    std::uint64_t truncated = 0;     ///< Data cut to fit the buffer of `async_receive_from`.
    std::uint64_t socket_errors = 0; ///< Send or receive errors other than a full buffer.
};

namespace detail {
class turn_client_impl;
}

/// A TURN allocation on one server, over a UDP socket or a TCP connection.
///
/// Movable, not copyable. Destroying it closes it (see `close`).
class turn_client {
public:
    using executor_type = asio::any_io_executor;

    /// A client over UDP.
    /// @param socket a UDP socket, closed (it is opened for the server's address family
    ///        when `async_allocate` starts) or open and maybe bound. The client owns it
    ///        and is its only reader.
    /// @param server the TURN server's address and port.
    /// @param cfg credentials, lifetimes, timers and sizes; `cfg.server` and
    ///        `cfg.framing` are set by this constructor.
    turn_client(asio::ip::udp::socket socket, const endpoint& server, turn::client_config cfg = {});

    /// A client over TCP.
    /// @param socket a TCP socket, closed (`async_allocate` connects it to `server`) or
    ///        already connected to the server. The client owns it.
    turn_client(asio::ip::tcp::socket socket, const endpoint& server, turn::client_config cfg = {});

    turn_client(turn_client&&) noexcept = default;
    turn_client& operator=(turn_client&&) noexcept;
    turn_client(const turn_client&) = delete;
    turn_client& operator=(const turn_client&) = delete;

    /// Closes (see `close`).
    ~turn_client();

    executor_type get_executor() const noexcept;

    /// Whether it talks to the server over TCP.
    bool is_tcp() const noexcept;

    /// Makes the allocation: Allocate with the long-term credentials (the 401
    /// challenge and a 438 stale nonce are handled inside), connecting first over TCP
    /// if the socket is closed.
    ///
    /// @param token completion signature `void(std::error_code ec, endpoint relayed)`:
    /// the relayed address peers send to. Never completes inside this call.
    ///
    /// @par Errors
    /// `turn_error::unauthorized`, `missing_credentials`, `quota_reached`,
    /// `insufficient_capacity`, `timeout`, ...; a connect error over TCP;
    /// `turn_error::already_allocated` if an allocation exists or is being made;
    /// `error::operation_in_progress` if another `async_allocate` is pending.
    /// After an Allocate error the client may try `async_allocate` again; after
    /// `async_deallocate` or a lost allocation it fails with that error: one allocation
    /// per object, make a new `turn_client` for the next.
    ///
    /// @par Cancellation
    /// Terminal cancellation completes the operation with `operation_aborted`; the
    /// Allocate transaction goes on, and its allocation (if any) stays with the client.
    template <class Token = asio::default_completion_token_t<executor_type>>
    auto async_allocate(Token&& token = asio::default_completion_token_t<executor_type>());

    /// Refreshes the allocation now. (Refreshes also happen on their own at 80% of
    /// the lifetime; this is for callers who want one at a given moment.)
    /// @param token completion signature `void(std::error_code ec)`.
    /// @par Errors `turn_error::not_allocated`; a refused refresh ends the allocation
    /// (`allocation_mismatch`, `allocation_expired`, ...). Cancellation as for
    /// `async_allocate`.
    template <class Token = asio::default_completion_token_t<executor_type>>
    auto async_refresh(Token&& token = asio::default_completion_token_t<executor_type>());

    /// Installs a permission for `peer`'s IP address (any port), so that the server
    /// relays data between it and the client; kept alive until the object goes.
    /// @param token completion signature `void(std::error_code ec)`.
    /// @par Errors `turn_error::not_allocated`, `forbidden` (the server denies that
    /// address: e.g. a loopback peer on a coturn without --allow-loopback-peers),
    /// `too_many_peers`, `peer_address_family_mismatch`, `timeout`.
    template <class Token = asio::default_completion_token_t<executor_type>>
    auto async_create_permission(const endpoint& peer,
                                 Token&& token = asio::default_completion_token_t<executor_type>());

    /// Binds a channel to `peer` (its address and port): data to and from it then
    /// travels as ChannelData. It also installs a permission for its address.
    /// @param token completion signature `void(std::error_code ec, std::uint16_t channel)`.
    /// @par Errors as for `async_create_permission`, and `no_channel_available`.
    template <class Token = asio::default_completion_token_t<executor_type>>
    auto async_bind_channel(const endpoint& peer,
                            Token&& token = asio::default_completion_token_t<executor_type>());

    /// Sends `data` to `peer` through the relay, without waiting: as ChannelData if
    /// a channel is bound to `peer`, else as a Send indication (the peer needs a
    /// permission, installed or being installed). The bytes are copied.
    ///
    /// A datagram the socket cannot take now (its buffer is full; over TCP, more than
    /// 4 MiB queued) is dropped and counted in `stats().send_drops`, as UDP would.
    /// @returns {} when sent or dropped that way; `turn_error::not_allocated`,
    /// `no_permission`, or `error::message_too_large` (over `max_data_size`).
    std::error_code send_to(const endpoint& peer, std::span<const std::byte> data);

    /// Receives one datagram a peer sent to the relayed address.
    ///
    /// Data that arrives while no receive is pending waits in a queue of 64
    /// datagrams; more is dropped and counted (`stats().receive_drops`).
    /// @param buffer where the data goes; a larger datagram is cut to fit and
    ///        completes with `error::buffer_too_small` (counted in `stats().truncated`).
    /// @param token completion signature
    ///        `void(std::error_code ec, std::size_t size, endpoint peer)`.
    /// @par Errors the error that ended the allocation; `turn_error::not_allocated`
    /// after `async_deallocate`; `error::operation_in_progress` if a receive is pending;
    /// `operation_aborted` when cancelled (terminal cancellation) or closed.
    template <class Token = asio::default_completion_token_t<executor_type>>
    auto async_receive_from(asio::mutable_buffer buffer,
                            Token&& token = asio::default_completion_token_t<executor_type>());

    /// Releases the allocation on the server: a Refresh with LIFETIME 0. Pending
    /// permission and channel operations complete with `turn_error::not_allocated`.
    /// The socket stays open (close it with `close`).
    /// @param token completion signature `void(std::error_code ec)`.
    /// @par Errors `turn_error::not_allocated`; `timeout` if the server did not answer
    /// (the allocation then expires on its own).
    template <class Token = asio::default_completion_token_t<executor_type>>
    auto async_deallocate(Token&& token = asio::default_completion_token_t<executor_type>());

    /// Closes the socket and stops the timer; every pending operation completes with
    /// `asio::error::operation_aborted`. Nothing is sent: over UDP an allocation not
    /// released with `async_deallocate` stays on the server until its lifetime ends;
    /// over TCP the server releases it when the connection closes. Idempotent.
    void close();

    /// The relayed and mapped addresses (unset before the allocation).
    endpoint relayed_endpoint() const;
    endpoint mapped_endpoint() const;
    /// The socket's local address (unset while closed).
    endpoint local_endpoint() const;
    /// The core's state.
    turn::client_state state() const;
    turn_client_stats stats() const;

private:
    template <class F>
    struct initiation;

    std::shared_ptr<detail::turn_client_impl> impl_;
};

} // namespace peerlink

#include <peerlink/net/impl/turn_client.hpp>

#endif // PEERLINK_NET_TURN_CLIENT_HPP
