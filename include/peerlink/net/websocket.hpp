// peerlink/net/websocket.hpp: a WebSocket (RFC 6455) client and server on Asio.
//
// `websocket_stream<NextLayer>` runs the protocol of peerlink/proto/websocket.hpp
// over a connected `asio::ip::tcp::socket` (ws://) or an
// `asio::ssl::stream<asio::ip::tcp::socket>` (wss://). It carries peerlink's
// signaling protocol; the rendezvous server also answers plain HTTP (`GET /status`)
// on the same port through the accept hook.
//
// @par Example: a server that answers /status and echoes messages
// @code
// asio::awaitable<void> session(asio::ip::tcp::socket s) {
//     peerlink::websocket_stream<asio::ip::tcp::socket> ws(std::move(s));
//     auto [ec] = co_await ws.async_accept(
//         [](const peerlink::websocket::http_request_parser& req)
//             -> peerlink::websocket::handshake_decision {
//             if (!req.is_upgrade() && req.path() == "/status")
//                 return peerlink::websocket::http_response{200, "application/json", "{}"};
//             return peerlink::websocket::accept_upgrade{};
//         },
//         peerlink::as_tuple(asio::use_awaitable));
//     if (ec) co_return; // also websocket_error::http_answered after /status
//     std::string msg;
//     for (;;) {
//         auto [rec, n] = co_await ws.async_read(msg, peerlink::as_tuple(asio::use_awaitable));
//         if (rec) co_return; // websocket_error::closed after a close handshake
//         co_await ws.async_write(asio::buffer(msg), ws.message_type(), asio::use_awaitable);
//     }
// }
// @endcode
//
// @par Example: a client
// @code
// std::error_code ec;
// auto url = *peerlink::ws_url::parse("wss://example.com/signal", ec);
// asio::ssl::context tls(asio::ssl::context::tls_client);
// tls.set_default_verify_paths();
// tls.set_verify_mode(asio::ssl::verify_peer);
// peerlink::websocket_stream<asio::ssl::stream<asio::ip::tcp::socket>> ws(io, tls);
// asio::ip::tcp::resolver r(io);
// co_await asio::async_connect(ws.lowest_layer(),
//                              co_await r.async_resolve(url.host, std::to_string(url.port),
//                                                       asio::use_awaitable),
//                              asio::use_awaitable);
// co_await ws.async_handshake(url, asio::use_awaitable); // TLS, then the upgrade
// @endcode
//
// @par Linking
// With an `asio::ssl::stream`, link OpenSSL's libssl (CMake: `OpenSSL::SSL`) as well as
// libcrypto; plain TCP needs libcrypto only.
#ifndef PEERLINK_NET_WEBSOCKET_HPP
#define PEERLINK_NET_WEBSOCKET_HPP

#include <peerlink/proto/websocket.hpp>
#include <peerlink/time.hpp>

#include <asio/async_result.hpp>
#include <asio/buffer.hpp>
#include <asio/ip/tcp.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <variant>

namespace peerlink {

namespace websocket {

/// The accept hook's answer: go on with the WebSocket upgrade.
struct accept_upgrade {
    /// The subprotocol chosen from the client's Sec-WebSocket-Protocol offer, or empty.
    std::string subprotocol;
};

/// What a server does with a request: upgrade it, or answer it with plain HTTP (the
/// `/status` page, or a refusal such as 404 or 503) and close the connection.
using handshake_decision = std::variant<accept_upgrade, http_response>;

/// Sees the parsed HTTP request in `websocket_stream::async_accept` and decides. It runs
/// on the stream's executor and must not throw.
using accept_hook = std::function<handshake_decision(const http_request_parser&)>;

/// Sees the control frames a `websocket_stream` receives: ping, pong and close, with
/// their payload. Pings are answered by the stream; this is for RTT and logs.
using control_callback = std::function<void(opcode, std::span<const std::byte>)>;

} // namespace websocket

/// Limits and options of a `websocket_stream`. `write_fragment_size` and `close_timeout`
/// apply from the next write or close on; the others from the next handshake.
struct websocket_settings {
    /// The largest message received; a larger one fails the connection with close
    /// code 1009 and `websocket_error::message_too_large`.
    std::size_t max_message_size = 16 * 1024 * 1024;
    /// The cap on the HTTP head of the opening handshake (431 above it).
    std::size_t max_header_size = 8192;
    /// Messages written are split into frames of at most this many bytes; 0 sends
    /// each message as one frame. Control frames may go between fragments.
    std::size_t write_fragment_size = 0;
    /// How long the opening handshake (TLS included) may take.
    duration handshake_timeout = std::chrono::seconds(30);
    /// How long the close handshake may take, and then the wait for the peer's FIN.
    duration close_timeout = std::chrono::seconds(5);
    /// Client: the subprotocols offered ("a, b"), or empty.
    std::string subprotocols;
    /// Client over TLS: check that the server's certificate names the host (RFC 6125)
    /// with `asio::ssl::host_name_verification`. The ssl::context's verify mode decides
    /// whether a failed check aborts the handshake.
    bool verify_host_name = true;
};

/// The close frame the peer sent.
struct websocket_close_reason {
    std::uint16_t code = 0; ///< 0 when none was received; 1005 for a close without a code.
    std::string reason;
};

namespace detail {

// asio::ssl::stream, recognised without including asio/ssl.hpp (plain TCP users need
// not link libssl).
template <class T>
concept tls_stream = requires(T& s) {
    typename T::handshake_type;
    s.native_handle();
    s.next_layer();
};

} // namespace detail

/// A WebSocket connection over `NextLayer`.
///
/// @tparam NextLayer `asio::ip::tcp::socket`, or `asio::ssl::stream<asio::ip::tcp::socket>`
/// for TLS: then `async_accept` and `async_handshake` run the TLS handshake first.
///
/// @par What the stream does by itself
/// Answers pings with pongs, answers the peer's close frame, fails the connection
/// with the right close code on a protocol error (1002, 1007, 1009), and closes TCP
/// after the close handshake without losing the last frame to a reset (it shuts down
/// its sending side and reads until the peer's FIN, bounded by `close_timeout`).
/// Control frames are read while an `async_read` or `async_close` is pending: keep a
/// read pending (a server usually always does). The handshake sets TCP_NODELAY.
///
/// @par Asynchronous operations
/// Every `async_*` function follows Asio's completion-token rules (callbacks,
/// `use_awaitable`, `use_future`, `deferred`); the handler never runs inside the
/// initiating call and runs through its associated executor. One `async_read`, one
/// `async_close` and one of `async_accept`/`async_handshake` may be pending at a time
/// (another fails with `error::operation_in_progress`); `async_write` and `async_ping`
/// queue, so any number may be pending and they go out in order (pings before the
/// next frame of a message).
///
/// @par Per-operation cancellation
/// `async_read`: terminal, partial and total; the read completes with
/// `asio::error::operation_aborted` and the stream stays usable (a message arriving
/// later waits for the next read). `async_accept`, `async_handshake`, `async_close`:
/// terminal; the connection is closed. `async_write`, `async_ping`: not cancellable
/// one by one (a frame cut short would break the stream); `close()` ends everything.
///
/// @par Thread safety
/// Distinct objects: safe. Shared objects: unsafe; use a strand.
template <class NextLayer>
class websocket_stream {
public:
    using next_layer_type = NextLayer;
    using lowest_layer_type = typename NextLayer::lowest_layer_type;
    using executor_type = typename NextLayer::executor_type;

    /// Constructs the next layer from `args`: a connected or unconnected socket, an
    /// executor or io_context, or (TLS) a socket or executor and an `asio::ssl::context`.
    template <class... Args>
    requires std::is_constructible_v<NextLayer, Args&&...>
    explicit websocket_stream(Args&&... args);

    websocket_stream(websocket_stream&&) noexcept = default;
    /// Closes this stream's connection (as `close()`), then takes `other`'s.
    websocket_stream& operator=(websocket_stream&& other) noexcept;
    /// Closes the connection; pending operations complete with `operation_aborted`.
    ~websocket_stream();

    executor_type get_executor() noexcept;
    next_layer_type& next_layer() noexcept;
    lowest_layer_type& lowest_layer() noexcept;

    const websocket_settings& settings() const noexcept;
    /// Replaces the settings (see `websocket_settings` for when each applies).
    void set_settings(const websocket_settings& s);
    /// Installs the callback that sees received pings, pongs and close frames.
    void set_control_callback(websocket::control_callback cb);

    /// Server side: reads the HTTP request, asks `hook`, and answers.
    ///
    /// With an `asio::ssl::stream` the TLS handshake runs first. Then the request is
    /// read (at most `max_header_size` bytes) and parsed; `hook` sees it and returns
    /// - `websocket::accept_upgrade`: the request is checked (RFC 6455 §4.2.1) and
    ///   answered with 101; the operation completes with no error. A request that is
    ///   not a valid upgrade is answered with 400 or 426 and completes with the error.
    /// - `websocket::http_response`: the response is sent (with "Connection: close"),
    ///   the connection is closed, and the operation completes with
    ///   `websocket_error::http_answered`.
    ///
    /// @param hook Decides on each request; without it, upgrades are accepted and
    /// plain HTTP requests answered with 426.
    /// @param token Completion signature `void(std::error_code)`. Errors: the HTTP
    /// errors of `http_request_parser` (the request was answered with 400, 431, 505),
    /// those of `check_upgrade`, `http_answered`, `handshake_timeout`, TLS and socket
    /// errors, `error::operation_in_progress` while one is pending,
    /// `error::already_connecting` once a handshake has run on this stream.
    template <class CompletionToken = asio::default_completion_token_t<executor_type>>
    auto async_accept(websocket::accept_hook hook,
                      CompletionToken&& token = asio::default_completion_token_t<executor_type>{});
    template <class CompletionToken = asio::default_completion_token_t<executor_type>>
    auto async_accept(CompletionToken&& token = asio::default_completion_token_t<executor_type>{});

    /// Client side: sends the upgrade request and checks the answer.
    ///
    /// The next layer must be connected. With an `asio::ssl::stream` the TLS handshake
    /// runs first, with SNI set to the host (unless it is an IP address) and, with
    /// `verify_host_name`, the certificate checked against it.
    /// @param host The Host header: "example.com", "example.com:8080", "[::1]:8080".
    /// @param target The request target, "/" or "/path?query".
    /// @param token Completion signature `void(std::error_code)`. Errors: those of
    /// `validate_response` (`handshake_rejected` with the status in `handshake_status()`,
    /// `bad_accept`, ...), `bad_http_response`, `invalid_request_field` for a host or
    /// target that cannot be sent, `handshake_timeout`, TLS and socket errors.
    template <class CompletionToken = asio::default_completion_token_t<executor_type>>
    auto
    async_handshake(std::string_view host, std::string_view target,
                    CompletionToken&& token = asio::default_completion_token_t<executor_type>{});
    /// Client side, from a parsed URL: `async_handshake(url.host_header(), url.target)`.
    template <class CompletionToken = asio::default_completion_token_t<executor_type>>
    auto
    async_handshake(const ws_url& url,
                    CompletionToken&& token = asio::default_completion_token_t<executor_type>{});

    /// Reads one whole message (fragments joined) and appends it to `buffer`.
    ///
    /// Pings that arrive meanwhile are answered, the peer's close is answered.
    /// `message_type()` tells whether the message was text or binary.
    /// @param buffer A DynamicBuffer (`asio::dynamic_buffer(vec)`, ...); it must outlive
    /// the operation.
    /// @param token Completion signature `void(std::error_code, std::size_t)`: the
    /// message's size. Errors: `websocket_error::closed` once the close handshake is
    /// over (`close_reason()` tells the peer's code), a frame error of
    /// `websocket_error` after which the connection was failed with its close code,
    /// `error::buffer_too_small` if the buffer's max_size is exceeded (the message is
    /// dropped), socket errors (`asio::error::eof` without a close frame),
    /// `error::not_connected` before the handshake.
    template <class DynamicBuffer,
              class CompletionToken = asio::default_completion_token_t<executor_type>>
    requires(asio::is_dynamic_buffer_v1<DynamicBuffer>::value ||
             asio::is_dynamic_buffer_v2<DynamicBuffer>::
                 value) auto async_read(DynamicBuffer buffer,
                                        CompletionToken&& token =
                                            asio::default_completion_token_t<executor_type>{});
    /// Reads one whole message into `out`, replacing its content. As above.
    template <class CompletionToken = asio::default_completion_token_t<executor_type>>
    auto async_read(std::string& out,
                    CompletionToken&& token = asio::default_completion_token_t<executor_type>{});

    /// The type of the last message `async_read` delivered.
    websocket::message_kind message_type() const noexcept;

    /// Queues one message. Client frames are masked with a fresh key from OpenSSL's
    /// CSPRNG; with `write_fragment_size`, the message goes as several frames.
    ///
    /// @param message Must stay valid until the operation completes.
    /// @param kind text (the caller vouches for UTF-8) or binary.
    /// @param token Completion signature `void(std::error_code, std::size_t)`, once the
    /// whole message is handed to the next layer. Errors: `websocket_error::closed`
    /// after a close was sent or queued, socket errors, `error::not_connected` before
    /// the handshake.
    template <class CompletionToken = asio::default_completion_token_t<executor_type>>
    auto async_write(asio::const_buffer message,
                     websocket::message_kind kind = websocket::message_kind::binary,
                     CompletionToken&& token = asio::default_completion_token_t<executor_type>{});

    /// Queues a ping; the peer's pong reaches the control callback.
    /// @param payload At most 125 bytes.
    /// @param token Completion signature `void(std::error_code)`, once the ping is
    /// sent. Errors: `websocket_error::control_too_large`, `closed`, socket errors.
    template <class CompletionToken = asio::default_completion_token_t<executor_type>>
    auto async_ping(asio::const_buffer payload,
                    CompletionToken&& token = asio::default_completion_token_t<executor_type>{});

    /// Runs the close handshake (RFC 6455 §7): queues a close frame after the messages
    /// already queued, waits for the peer's close (data messages that arrive meanwhile
    /// go to a pending `async_read`, or are dropped), then closes TCP.
    ///
    /// @param code A close code that may be sent (1000, 1001, 3000-4999, ...).
    /// @param reason At most 123 bytes of UTF-8.
    /// @param token Completion signature `void(std::error_code)`: no error once both
    /// close frames went across. Errors: `bad_close_code`, `close_reason_too_long`,
    /// `invalid_utf8` (nothing sent then), `close_timeout` if the peer does not answer
    /// within `close_timeout`, a frame error if the peer sent garbage meanwhile,
    /// socket errors.
    template <class CompletionToken = asio::default_completion_token_t<executor_type>>
    auto async_close(std::uint16_t code = websocket::close_code::normal,
                     std::string_view reason = {},
                     CompletionToken&& token = asio::default_completion_token_t<executor_type>{});

    /// Closes the connection at once, without a close handshake. Pending operations
    /// complete with `asio::error::operation_aborted`.
    void close();

    /// Whether the opening handshake is done and the connection not closed yet (a close
    /// handshake may be in progress).
    bool is_open() const noexcept;
    /// The peer's close frame, once received.
    const websocket_close_reason& close_reason() const noexcept;
    /// The subprotocol agreed in the handshake, or empty.
    const std::string& subprotocol() const noexcept;
    /// Client: the HTTP status of the server's answer to the handshake (101 on success).
    unsigned handshake_status() const noexcept;

private:
    struct impl;
    std::shared_ptr<impl> impl_;
};

} // namespace peerlink

#include <peerlink/net/impl/websocket.hpp>

#endif // PEERLINK_NET_WEBSOCKET_HPP
