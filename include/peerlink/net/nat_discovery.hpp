// peerlink/net/nat_discovery.hpp: NAT behaviour discovery (RFC 5780) over a socket.
//
// `async_discover_nat` runs `nat_discovery_core` (peerlink/proto/nat_discovery.hpp)
// from one UDP socket against an RFC 5780 STUN server and completes with a
// `nat_report`: mapping and filtering behaviour, the classic NAT type, the addresses
// seen. It is the thin Asio driver: one receive, one timer, no threads.
//
// "No NAT" needs the socket's own address. A socket bound to a wildcard address
// (0.0.0.0, ::) does not know it, so the driver asks the system which source address
// it would use toward the server (a connected UDP socket, nothing is sent), unless
// `nat_discovery_options::local` says it.
//
// @par Example: a command-line check (examples/nat_check.cpp is the full program)
// @code
// asio::io_context io;
// asio::ip::udp::socket socket(io, asio::ip::udp::endpoint(asio::ip::udp::v4(), 0));
// peerlink::async_discover_nat(socket, server,
//     [](std::error_code ec, peerlink::nat_report r) {
//         if (ec) std::fprintf(stderr, "%s\n", ec.message().c_str());
//         else std::printf("%s", r.to_string().c_str());  // or nlohmann::json(r).dump()
//     });
// io.run();
// @endcode
#ifndef PEERLINK_NET_NAT_DISCOVERY_HPP
#define PEERLINK_NET_NAT_DISCOVERY_HPP

#include <peerlink/endpoint.hpp>
#include <peerlink/net/detail/stun_operation.hpp>
#include <peerlink/net/stun_client.hpp>
#include <peerlink/proto/nat_discovery.hpp>

#include <asio/async_result.hpp>

#include <optional>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>

namespace peerlink {

/// Options of `async_discover_nat`.
struct nat_discovery_options {
    /// Timers of each test (default: RTO 250 ms, 5 requests, final wait 8 RTO).
    stun::client_config stun = nat_discovery_config::default_stun_config();
    /// SOFTWARE in the requests; "" for none.
    std::string software;
    /// Run the filtering tests / the mapping tests.
    bool filtering = true;
    bool mapping = true;
    /// The socket's address as the network sees it before any NAT; by default the
    /// socket's bound address or, for a wildcard, the system's source address toward
    /// the server.
    std::optional<endpoint> local;
};

/// Discovers the NAT behaviour in front of `socket` with the help of `server`.
///
/// @param socket an open `asio::ip::udp::socket` or a transport policy; it must
/// outlive the operation, and nothing else may read it meanwhile.
/// @param server the primary address and port of an RFC 5780 STUN server.
/// @param options timers and which tests to run.
/// @param token the completion token, signature `void(std::error_code ec,
/// nat_report report)`. The handler never runs inside this call.
///
/// @par Errors
/// `ec` is for the socket only: `asio::error::operation_aborted` (cancelled or
/// closed) or a send error (no route to the server, wrong address family). What the
/// tests find, including "UDP blocked" and a server without RFC 5780, is in the
/// report (`report.udp_blocked`, `report.rfc5780`, `report.error`).
///
/// @par Per-operation cancellation
/// Terminal cancellation is supported: completes with `operation_aborted` and the
/// report so far.
///
/// @par GCC 12 and coroutines
/// Inside a coroutine name the options in a variable (a temporary in the `co_await`
/// expression is mis-destroyed by GCC 12, see `async_stun_binding`), or use the
/// overload without options.
template <stun_socket Socket,
          class Token = asio::default_completion_token_t<typename Socket::executor_type>>
auto async_discover_nat(
    Socket& socket, const endpoint& server, const nat_discovery_options& options,
    Token&& token = asio::default_completion_token_t<typename Socket::executor_type>());

/// `async_discover_nat` with the default options.
template <stun_socket Socket,
          class Token = asio::default_completion_token_t<typename Socket::executor_type>>
requires(!std::is_convertible_v<Token, const nat_discovery_options&>) auto async_discover_nat(
    Socket& socket, const endpoint& server,
    Token&& token = asio::default_completion_token_t<typename Socket::executor_type>()) {
    const nat_discovery_options defaults;
    return async_discover_nat(socket, server, defaults, std::forward<Token>(token));
}

} // namespace peerlink

#include <peerlink/net/impl/nat_discovery.hpp>

#endif // PEERLINK_NET_NAT_DISCOVERY_HPP
