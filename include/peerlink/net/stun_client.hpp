// peerlink/net/stun_client.hpp: one STUN Binding over a UDP socket or a transport.
//
// `async_stun_binding` asks a STUN server which address and port it sees this socket
// as (the server-reflexive address), with RFC 8489's retransmissions, and, from an
// RFC 5780 server, where it answered from and its alternate address. It is the thin
// Asio driver of `stun::client_core` (peerlink/proto/stun_client.hpp): one receive,
// one timer, no threads.
//
// It works on a plain `asio::ip::udp::socket` (IPv4, IPv6 or dual stack: an IPv4
// server is reached through an IPv4-mapped address on a dual-stack socket) and on any
// peerlink transport policy (`udp_transport`, `sim_transport` on virtual time).
// While it runs it reads the socket: datagrams that are not its response are
// dropped, so do not run it beside another reader of the same socket.
//
// @par Example
// @code
// asio::io_context io;
// asio::ip::udp::socket socket(io, asio::ip::udp::endpoint(asio::ip::udp::v4(), 0));
// peerlink::async_stun_binding(socket, *peerlink::endpoint::parse("192.0.2.1:3478", ec),
//     [](std::error_code ec, peerlink::stun_binding_result r) {
//         if (!ec)
//             std::printf("seen as %s\n", r.mapped.to_string().c_str());
//     });
// io.run();
// // or: auto r = co_await peerlink::async_stun_binding(socket, server, asio::use_awaitable);
// @endcode
#ifndef PEERLINK_NET_STUN_CLIENT_HPP
#define PEERLINK_NET_STUN_CLIENT_HPP

#include <peerlink/endpoint.hpp>
#include <peerlink/net/detail/stun_operation.hpp>
#include <peerlink/net/transport.hpp>
#include <peerlink/proto/stun.hpp>
#include <peerlink/proto/stun_client.hpp>
#include <peerlink/time.hpp>

#include <asio/async_result.hpp>
#include <asio/ip/udp.hpp>

#include <chrono>
#include <concepts>
#include <cstddef>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>

namespace peerlink {

/// What `async_stun_binding` sends and how long it tries.
struct stun_binding_options {
    /// Initial retransmission timeout (RFC 8489 §6.2.1).
    duration rto = std::chrono::milliseconds(500);
    /// Requests in all (Rc).
    unsigned max_requests = 7;
    /// Final wait after the last request, in multiples of `rto` (Rm).
    unsigned final_wait_factor = 16;
    /// RFC 5780 CHANGE-REQUEST: ask the server to answer from another address/port.
    stun::change_request change{};
    /// SOFTWARE in the request; "" for none.
    std::string software;
    /// End the request with FINGERPRINT.
    bool fingerprint = true;
    /// Fills transaction ids; empty: OpenSSL's RAND_bytes.
    std::function<void(std::span<std::byte>)> random;
};

/// What a Binding found.
struct stun_binding_result {
    endpoint mapped;                         ///< XOR-MAPPED-ADDRESS (or MAPPED-ADDRESS).
    std::optional<endpoint> response_origin; ///< RESPONSE-ORIGIN, from RFC 5780 servers.
    std::optional<endpoint> other_address;   ///< OTHER-ADDRESS, from RFC 5780 servers.
    endpoint server;                         ///< Where the response came from.
    duration rtt{};                          ///< From the last request to the response.
    unsigned requests_sent = 0;              ///< Transmissions, the first included.
};

/// A UDP socket or a transport policy that `async_stun_binding` and
/// `async_discover_nat` run on.
template <class T>
concept stun_socket = std::same_as<T, asio::ip::udp::socket> || transport_policy<T>;

/// Sends a STUN Binding request to `server` from `socket` and waits for the answer.
///
/// @param socket an open `asio::ip::udp::socket` or a transport policy; it must
/// outlive the operation, and nothing else may read it meanwhile.
/// @param server the STUN server, IPv4 or IPv6.
/// @param options timers and request contents.
/// @param token the completion token, signature
/// `void(std::error_code ec, stun_binding_result result)`. The handler never runs
/// inside this call; it runs once the operation's receive and timer have finished.
///
/// @par Errors
/// - `stun_error::transaction_timeout` (condition `peer_unreachable`): no answer
///   after every retransmission (39.5 s with the defaults).
/// - the `stun_error` of an error response: `unknown_attribute` (420: e.g. a
///   CHANGE-REQUEST to a server without RFC 5780), `bad_request`, ...
/// - `stun_error::attribute_missing`, `bad_attribute_value`: a response without a
///   usable mapped address.
/// - `asio::error::operation_aborted`: cancelled, or the socket was closed.
/// - a send error from the socket (e.g. an IPv6 server from an IPv4 socket:
///   `address_family_not_supported` / `error::address_family_not_enabled`, no route).
///
/// @par Per-operation cancellation
/// Terminal cancellation is supported (`asio::bind_cancellation_slot`, awaitable
/// operators): the operation completes with `operation_aborted`.
///
/// @par GCC 12 and coroutines
/// GCC 12 mis-destroys temporaries with non-trivial destructors inside a `co_await`
/// expression: `co_await async_stun_binding(s, server, {}, use_awaitable)` frees a
/// string it never allocated. Name the options in a variable, or use the overload
/// without options.
template <stun_socket Socket,
          class Token = asio::default_completion_token_t<typename Socket::executor_type>>
auto async_stun_binding(
    Socket& socket, const endpoint& server, const stun_binding_options& options,
    Token&& token = asio::default_completion_token_t<typename Socket::executor_type>());

/// `async_stun_binding` with the default options.
template <stun_socket Socket,
          class Token = asio::default_completion_token_t<typename Socket::executor_type>>
requires(!std::is_convertible_v<Token, const stun_binding_options&>) auto async_stun_binding(
    Socket& socket, const endpoint& server,
    Token&& token = asio::default_completion_token_t<typename Socket::executor_type>()) {
    const stun_binding_options defaults;
    return async_stun_binding(socket, server, defaults, std::forward<Token>(token));
}

} // namespace peerlink

#include <peerlink/net/impl/stun_client.hpp>

#endif // PEERLINK_NET_STUN_CLIENT_HPP
