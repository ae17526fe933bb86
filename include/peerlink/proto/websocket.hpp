// peerlink/proto/websocket.hpp: the WebSocket protocol (RFC 6455), sans-I/O.
//
// Everything a WebSocket endpoint decides, without a socket: the HTTP/1.1 upgrade
// handshake on both sides (RFC 6455 §4), the frame codec (§5) with message
// reassembly, UTF-8 checks and close codes (§7), and `ws_url` for ws:// and wss://
// addresses (§3). The Asio driver is `peerlink::websocket_stream`
// (peerlink/net/websocket.hpp); the signaling protocol runs on top of it.
//
// The handshake on the server side:
//
// @code
// websocket::http_request_parser req;          // caps the header block at 8 KiB
// std::size_t used = req.feed(bytes, ec);      // as bytes arrive; leftover bytes are frames
// if (req.done()) {
//     std::string out;
//     if (auto bad = req.check_upgrade())
//         websocket::write_error_response(out, bad);          // 400, 426, ...
//     else
//         websocket::write_accept_response(out, *req.header("Sec-WebSocket-Key"));
// }
// @endcode
//
// Frames, once the handshake is done:
//
// @code
// websocket::frame_parser p(websocket::role::server);
// while (!in.empty()) {
//     in = in.subspan(p.feed(in, ec));        // stops after each complete message
//     if (ec) { send a close with websocket::close_code_for(ec); break; }
//     while (auto m = p.poll_event()) { ... m->op, m->payload ... }
// }
// @endcode
//
// Nothing here throws except `std::bad_alloc` from the strings the handshake
// functions append to; the frame parser catches even that (it reports 1009).
#ifndef PEERLINK_PROTO_WEBSOCKET_HPP
#define PEERLINK_PROTO_WEBSOCKET_HPP

#include <peerlink/error.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace peerlink {

/// Errors of the WebSocket handshake, frame codec, stream and URL parser.
///
/// Handshake and frame errors map onto `condition::malformed_input`, timeouts onto
/// `condition::peer_unreachable`. A frame error says which close code the endpoint
/// sends when it fails the connection: `websocket::close_code_for(ec)`. A handshake
/// error on the server side says which HTTP status it answers with:
/// `websocket::http_status_for(ec)`.
enum class websocket_error {
    // The opening handshake, server side (RFC 6455 §4.2.1).
    bad_http_request = 1,     ///< Request line or a header line does not parse (400).
    http_header_too_large,    ///< The header block is larger than the cap (431).
    unsupported_http_version, ///< Not HTTP/1.0 or HTTP/1.1 (505).
    not_get,                  ///< An upgrade request with a method other than GET (400).
    missing_host,             ///< An upgrade request without a Host header (400).
    not_upgrade, ///< No "Upgrade: websocket" (plain HTTP), or an upgrade over HTTP/1.0 (426).
    missing_connection_upgrade, ///< No "Connection: Upgrade" (400).
    bad_key,                    ///< Sec-WebSocket-Key missing, repeated or not 16 bytes (400).
    bad_version,                ///< Sec-WebSocket-Version missing or not 13 (426).
    // The opening handshake, client side (RFC 6455 §4.1).
    bad_http_response,      ///< Status line or a header line of the response does not parse.
    handshake_rejected,     ///< The server answered with a status other than 101.
    bad_upgrade_response,   ///< A 101 without "Upgrade: websocket" and "Connection: Upgrade".
    bad_accept,             ///< Sec-WebSocket-Accept does not match the key sent.
    unexpected_subprotocol, ///< The server chose a subprotocol the client did not offer.
    unexpected_extension,   ///< The server answered with an extension the client did not offer.
    invalid_request_field,  ///< A host, path or header given to us contains CR, LF or NUL.
    // Frames (RFC 6455 §5); the close code sent is given for each.
    reserved_bits,           ///< RSV1-3 set without a negotiated extension (1002).
    unknown_opcode,          ///< Opcode 3-7 or 11-15 (1002).
    fragmented_control,      ///< A ping, pong or close without FIN (1002).
    control_too_large,       ///< A control frame with more than 125 bytes of payload (1002).
    non_minimal_length,      ///< A 16- or 64-bit length that fits a shorter form (1002).
    length_too_large,        ///< A 64-bit length with its top bit set (1002).
    unmasked_frame,          ///< A client frame without a mask (1002).
    masked_frame,            ///< A server frame with a mask (1002).
    unexpected_continuation, ///< A continuation frame outside a fragmented message (1002).
    expected_continuation,   ///< A new text or binary frame inside a fragmented message (1002).
    bad_close_payload,       ///< A close frame with one byte of payload (1002).
    bad_close_code,          ///< A close code that may not appear on the wire (1002).
    invalid_utf8,            ///< A text message or close reason that is not UTF-8 (1007).
    message_too_large,       ///< A message larger than the configured cap (1009).
    close_reason_too_long,   ///< A close reason longer than 123 bytes (sending side).
    // The stream (peerlink/net/websocket.hpp).
    closed,            ///< The close handshake is over: no more messages either way.
    http_answered,     ///< async_accept answered a plain HTTP request and closed the connection.
    handshake_timeout, ///< The opening handshake did not finish in time.
    close_timeout,     ///< The peer did not answer the close handshake in time.
    // URLs.
    bad_url, ///< Not "ws://host[:port][/path]" or "wss://...".
};

namespace detail {

class websocket_error_category_impl final : public std::error_category {
public:
    const char* name() const noexcept override { return "peerlink.websocket"; }
    std::string message(int ev) const override;
    std::error_condition default_error_condition(int ev) const noexcept override;
};

} // namespace detail

/// The category of `peerlink::websocket_error`.
inline const std::error_category& websocket_error_category() noexcept {
    static const detail::websocket_error_category_impl instance;
    return instance;
}

inline std::error_code make_error_code(websocket_error e) noexcept {
    return {static_cast<int>(e), websocket_error_category()};
}

} // namespace peerlink

template <>
struct std::is_error_code_enum<peerlink::websocket_error> : std::true_type {};

namespace peerlink::websocket {

/// The GUID of RFC 6455 §1.3 that Sec-WebSocket-Accept hashes with the key.
inline constexpr std::string_view accept_guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// The largest header a frame can have: 2 + 8 (64-bit length) + 4 (mask).
inline constexpr std::size_t max_frame_header_size = 14;
/// The largest payload of a ping, pong or close frame (RFC 6455 §5.5).
inline constexpr std::size_t max_control_payload = 125;

/// Which end of the connection this is: clients mask what they send, servers must not.
enum class role : std::uint8_t { client, server };

/// Frame opcodes (RFC 6455 §5.2).
enum class opcode : std::uint8_t {
    continuation = 0x0,
    text = 0x1,
    binary = 0x2,
    close = 0x8,
    ping = 0x9,
    pong = 0xA,
};

/// The type of a data message.
enum class message_kind : std::uint8_t { text, binary };

/// Close codes (RFC 6455 §7.4.1 and the IANA registry).
namespace close_code {
inline constexpr std::uint16_t normal = 1000;
inline constexpr std::uint16_t going_away = 1001;
inline constexpr std::uint16_t protocol_error = 1002;
inline constexpr std::uint16_t unsupported_data = 1003;
/// Never sent: what a close frame without a code reports.
inline constexpr std::uint16_t no_status = 1005;
/// Never sent: what a connection that ended without a close frame reports.
inline constexpr std::uint16_t abnormal = 1006;
inline constexpr std::uint16_t invalid_payload = 1007;
inline constexpr std::uint16_t policy_violation = 1008;
inline constexpr std::uint16_t message_too_big = 1009;
inline constexpr std::uint16_t mandatory_extension = 1010;
inline constexpr std::uint16_t internal_error = 1011;
inline constexpr std::uint16_t service_restart = 1012;
inline constexpr std::uint16_t try_again_later = 1013;
inline constexpr std::uint16_t bad_gateway = 1014;
} // namespace close_code

/// Whether `code` may appear in a close frame: 1000-1003, 1007-1014 and 3000-4999.
constexpr bool is_valid_close_code(std::uint16_t code) noexcept;

/// The close code an endpoint sends when it fails the connection because of `ec`
/// (a `websocket_error` of the frame group): 1002, 1007 or 1009; 1011 for anything else.
std::uint16_t close_code_for(std::error_code ec) noexcept;

/// The HTTP status a server answers a bad handshake with (400, 426, 431, 505); 500
/// for errors outside the server handshake group.
unsigned http_status_for(std::error_code ec) noexcept;

/// The reason phrase of an HTTP status ("Bad Request"), or "Unknown".
std::string_view reason_phrase(unsigned status) noexcept;

// ---------------------------------------------------------------------------------
// UTF-8

/// Checks UTF-8 as it arrives in pieces (RFC 3629: no overlong forms, no surrogates,
/// nothing above U+10FFFF). Fails at the first byte that cannot start or continue a
/// valid sequence.
class utf8_validator {
public:
    /// Checks the next bytes. @returns false once the text can no longer be valid.
    bool feed(std::span<const std::byte> bytes) noexcept;
    /// Whether the text fed so far is valid and does not end inside a sequence.
    bool complete() const noexcept { return ok_ && need_ == 0; }
    void reset() noexcept { *this = utf8_validator{}; }

private:
    bool ok_ = true;
    std::uint8_t need_ = 0;
    std::uint8_t lo_ = 0x80, hi_ = 0xBF;
};

/// Whether `bytes` are valid UTF-8.
bool is_valid_utf8(std::span<const std::byte> bytes) noexcept;

// ---------------------------------------------------------------------------------
// The opening handshake (RFC 6455 §4)

/// The Sec-WebSocket-Key for 16 random bytes: their base64 form (24 characters).
/// @param nonce 16 bytes from a CSPRNG, new for each connection.
std::string make_key(std::span<const std::byte, 16> nonce);

/// The Sec-WebSocket-Accept for `key`: base64(SHA-1(key + accept_guid)), 28 characters,
/// computed with OpenSSL's EVP interface. Empty if OpenSSL fails.
std::string accept_key(std::string_view key);

/// What the client's upgrade request asks for.
struct request_options {
    std::string_view host;         ///< The Host header: "example.com" or "[::1]:8080".
    std::string_view path = "/";   ///< The request target: path and query.
    std::string_view subprotocols; ///< Sec-WebSocket-Protocol: "a, b", or empty for none.
    std::string_view origin;       ///< Origin header, or empty for none.
    std::string_view user_agent = "peerlink"; ///< User-Agent header, or empty for none.
};

/// Appends the client's upgrade request (RFC 6455 §4.1) to `out`.
///
/// @param key The Sec-WebSocket-Key, from `make_key`.
/// @returns `websocket_error::invalid_request_field` if a field holds CR, LF or NUL,
/// or the host or key is empty (nothing is appended then).
std::error_code write_request(std::string& out, const request_options& options,
                              std::string_view key);

/// A header line, as views into the parser's buffer.
struct http_header {
    std::string_view name;
    std::string_view value; ///< Without surrounding whitespace.
};

namespace detail {

// The start line and header lines of an HTTP/1.x message, gathered incrementally.
class http_head {
public:
    explicit http_head(std::size_t max_size) noexcept : max_size_(max_size) {}
    std::size_t feed(std::span<const std::byte> bytes, std::error_code& ec,
                     std::error_code bad_syntax);
    bool done() const noexcept { return done_; }
    std::string_view start_line() const noexcept { return start_line_; }
    std::span<const http_header> headers() const noexcept { return headers_; }
    std::optional<std::string_view> header(std::string_view name) const noexcept;
    std::size_t count(std::string_view name) const noexcept;
    bool has_token(std::string_view name, std::string_view token) const noexcept;
    void reset() noexcept;

private:
    std::error_code split(std::error_code bad_syntax);

    std::size_t max_size_;
    std::string buf_;
    std::vector<http_header> headers_;
    std::string_view start_line_;
    std::size_t line_start_ = 0;
    bool done_ = false;
    std::error_code error_;
};

} // namespace detail

/// Parses an HTTP/1.x request head as bytes arrive: the server side of the handshake,
/// and the plain HTTP requests (GET /status) a server answers on the same port.
///
/// `feed` consumes bytes up to the blank line that ends the header block and no
/// further: what follows belongs to the WebSocket connection (or is a request body,
/// which this parser does not read). Views returned by the accessors stay valid until
/// `reset` or destruction.
class http_request_parser {
public:
    /// @param max_header_size The cap on the request line plus headers, in bytes.
    explicit http_request_parser(std::size_t max_header_size = 8192) noexcept
        : head_(max_header_size) {}

    /// Consumes request bytes.
    ///
    /// @returns how many bytes of `bytes` belong to the request head. Sets `ec` to
    /// `websocket_error::http_header_too_large` when the head outgrows the cap,
    /// `bad_http_request` when a line does not parse, `unsupported_http_version`
    /// for anything but HTTP/1.0 and HTTP/1.1. Once an error is set, later calls
    /// return it again and consume nothing.
    std::size_t feed(std::span<const std::byte> bytes, std::error_code& ec);
    /// Whether the whole head has arrived and parsed.
    bool done() const noexcept { return head_.done() && !error_; }

    std::string_view method() const noexcept { return method_; } ///< "GET"
    std::string_view target() const noexcept { return target_; } ///< "/path?query"
    std::string_view path() const noexcept;                      ///< "/path"
    std::string_view query() const noexcept;                     ///< "query" (after '?')
    unsigned version_minor() const noexcept { return minor_; }   ///< 0 or 1 (HTTP/1.x)
    std::span<const http_header> headers() const noexcept { return head_.headers(); }
    /// The first header called `name` (case-insensitive).
    std::optional<std::string_view> header(std::string_view name) const noexcept {
        return head_.header(name);
    }
    /// Whether any header called `name` lists `token` (comma-separated, case-insensitive).
    bool has_token(std::string_view name, std::string_view token) const noexcept {
        return head_.has_token(name, token);
    }

    /// Whether the client asks for a WebSocket ("Upgrade: websocket"); false for a
    /// plain HTTP request.
    bool is_upgrade() const noexcept { return has_token("Upgrade", "websocket"); }
    /// Checks the request against RFC 6455 §4.2.1: GET, HTTP/1.1, Host, Upgrade,
    /// Connection, Sec-WebSocket-Key (16 bytes in base64) and Sec-WebSocket-Version 13.
    /// @returns the first requirement that fails, or no error.
    std::error_code check_upgrade() const noexcept;
    /// Whether the client offers `subprotocol` in Sec-WebSocket-Protocol.
    bool offers_subprotocol(std::string_view subprotocol) const noexcept {
        return has_token("Sec-WebSocket-Protocol", subprotocol);
    }

    void reset() noexcept;

private:
    detail::http_head head_;
    std::string_view method_, target_;
    unsigned minor_ = 0;
    std::error_code error_;
};

/// Parses the server's HTTP/1.x response head as bytes arrive: the client side of the
/// handshake. Same rules as `http_request_parser`; errors are `bad_http_response` and
/// `http_header_too_large`.
class http_response_parser {
public:
    explicit http_response_parser(std::size_t max_header_size = 8192) noexcept
        : head_(max_header_size) {}

    std::size_t feed(std::span<const std::byte> bytes, std::error_code& ec);
    bool done() const noexcept { return head_.done() && !error_; }

    unsigned status() const noexcept { return status_; }         ///< 101
    std::string_view reason() const noexcept { return reason_; } ///< "Switching Protocols"
    unsigned version_minor() const noexcept { return minor_; }   ///< 0 or 1
    std::span<const http_header> headers() const noexcept { return head_.headers(); }
    std::optional<std::string_view> header(std::string_view name) const noexcept {
        return head_.header(name);
    }
    bool has_token(std::string_view name, std::string_view token) const noexcept {
        return head_.has_token(name, token);
    }

    void reset() noexcept;

private:
    detail::http_head head_;
    unsigned status_ = 0, minor_ = 0;
    std::string_view reason_;
    std::error_code error_;
};

/// Checks the server's answer to our upgrade request (RFC 6455 §4.1, client side).
///
/// @param key The Sec-WebSocket-Key sent.
/// @param offered_subprotocols The Sec-WebSocket-Protocol sent, or empty.
/// @returns `handshake_rejected` (status not 101), `bad_upgrade_response`, `bad_accept`,
/// `unexpected_subprotocol`, `unexpected_extension`, or no error.
std::error_code validate_response(const http_response_parser& response, std::string_view key,
                                  std::string_view offered_subprotocols);

/// Appends the server's "101 Switching Protocols" for `key` to `out`.
/// @param subprotocol The subprotocol chosen from the client's offer, or empty.
/// @returns `invalid_request_field` for a subprotocol with CR, LF or NUL, or
/// `error::crypto_failure` if OpenSSL fails; nothing is appended then.
std::error_code write_accept_response(std::string& out, std::string_view key,
                                      std::string_view subprotocol = {});

/// A plain HTTP answer: to a request that is not an upgrade (GET /status), or to an
/// upgrade the server refuses (404, 503).
struct http_response {
    unsigned status = 200;
    std::string content_type = "text/plain; charset=utf-8";
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers; ///< Extra header lines.
};

/// Appends `response` with Content-Length and "Connection: close" to `out`.
/// @param head_only Leave the body out (the answer to a HEAD request).
/// @returns `invalid_request_field` if a header name or value holds CR, LF or NUL.
std::error_code write_http_response(std::string& out, const http_response& response,
                                    bool head_only = false);

/// Appends the answer to a handshake that failed with `ec`: the status of
/// `http_status_for(ec)`, the error's message as body, and for 426 the headers
/// "Upgrade: websocket" and "Sec-WebSocket-Version: 13".
void write_error_response(std::string& out, std::error_code ec);

// ---------------------------------------------------------------------------------
// Frames (RFC 6455 §5)

/// A masking key (RFC 6455 §5.3); a client takes a new one from a CSPRNG per frame.
using mask_key = std::array<std::byte, 4>;

/// Writes a frame header into `out`.
///
/// @param mask The masking key for a client frame, or nothing for a server frame.
/// @param rsv RSV1-3 as the low three bits (RSV1 = 4), for a negotiated extension.
/// @returns the header's size, 2 to 14 bytes. The length takes its shortest form.
std::size_t write_frame_header(std::span<std::byte, max_frame_header_size> out, opcode op, bool fin,
                               std::uint64_t payload_size,
                               const std::optional<mask_key>& mask = std::nullopt,
                               std::uint8_t rsv = 0) noexcept;

/// XORs `data` with `key` in place, as byte `offset` of a payload (masking and
/// unmasking are the same operation).
void apply_mask(std::span<std::byte> data, const mask_key& key, std::size_t offset = 0) noexcept;

/// Writes a close frame's payload: the code in network order and the reason.
///
/// @returns its size. Sets `ec` to `bad_close_code` for a code that may not be sent,
/// `close_reason_too_long` for more than 123 bytes of reason, `invalid_utf8` for a
/// reason that is not UTF-8, and returns 0 then.
std::size_t write_close_payload(std::span<std::byte, max_control_payload> out, std::uint16_t code,
                                std::string_view reason, std::error_code& ec) noexcept;

/// Appends a whole frame, header and payload (masked when `mask` is given), to `out`.
/// Convenient for tests and small frames; the stream writes headers and payloads
/// without this copy.
void append_frame(std::vector<std::byte>& out, opcode op, bool fin,
                  std::span<const std::byte> payload,
                  const std::optional<mask_key>& mask = std::nullopt, std::uint8_t rsv = 0);

/// Limits and options of a `frame_parser`.
struct parser_settings {
    /// The largest message, all its fragments together; a larger one fails with
    /// `message_too_large` (close code 1009) as soon as a frame header announces it.
    std::size_t max_message_size = 16 * 1024 * 1024;
    /// RSV bits an extension negotiated (RSV1 = 4, RSV2 = 2, RSV3 = 1); others are
    /// a protocol error. peerlink negotiates none.
    std::uint8_t allowed_rsv = 0;
};

/// What the parser delivers: a whole data message or one control frame.
struct received {
    /// text or binary (a whole message, fragments joined), or ping, pong, close.
    opcode op = opcode::binary;
    /// The message or control payload, unmasked. For a close frame the whole payload
    /// (code and reason). Valid until the next `feed` or `reset`.
    std::span<const std::byte> payload;
    /// Close only: the code, or `close_code::no_status` for an empty close frame.
    std::uint16_t close_code = 0;
    /// Close only: the reason (checked UTF-8). Valid as `payload`.
    std::string_view close_reason;
};

/// Parses the frames one end receives and joins fragments into messages.
///
/// The parser checks everything RFC 6455 §5 asks of a receiver: RSV bits, opcodes,
/// the shortest length encoding, masking by role, control frames of at most 125
/// bytes and never fragmented, continuation order, the message size cap, UTF-8 of
/// text messages (failing fast, inside a message) and of close reasons, and close
/// codes. Memory: one message buffer that grows up to the cap and is reused, plus
/// 125 bytes for control frames; nothing is allocated per frame.
///
/// After a close frame the parser ignores everything (RFC 6455 §5.5.1). After an
/// error it stays failed: `feed` returns the error again.
class frame_parser {
public:
    /// @param r The role of the end that receives: a server expects masked frames.
    explicit frame_parser(role r = role::server, const parser_settings& s = {}) noexcept
        : role_(r), settings_(s) {}

    /// Consumes frame bytes.
    ///
    /// Stops right after the byte that completes a message or a control frame, so
    /// the caller can take it with `poll_event` before feeding the rest; while an
    /// event waits, `feed` consumes nothing.
    /// @returns how many bytes of `bytes` were consumed. Sets `ec` to a frame error of
    /// `websocket_error` (see `close_code_for` for what to send back).
    std::size_t feed(std::span<const std::byte> bytes, std::error_code& ec) noexcept;

    /// Takes the message or control frame that completed, if any.
    std::optional<received> poll_event() noexcept;

    /// Whether a close frame was received (everything after it is ignored).
    bool close_received() const noexcept { return state_ == state::closed; }
    /// Whether a fragmented message is in progress.
    bool in_message() const noexcept { return in_message_; }
    /// The error the parser failed with, if it did.
    std::error_code error() const noexcept { return error_; }
    /// Forgets everything; the message buffer keeps its capacity.
    void reset() noexcept;
    /// Frees the message buffer's memory (say, after an unusually large message).
    void shrink() noexcept;

    const parser_settings& settings() const noexcept { return settings_; }
    void set_max_message_size(std::size_t n) noexcept { settings_.max_message_size = n; }

private:
    enum class state : std::uint8_t { header, payload, closed, failed };

    std::size_t fail(websocket_error e, std::error_code& ec) noexcept;
    bool header_complete(std::error_code& ec) noexcept;
    bool frame_complete(std::error_code& ec) noexcept;

    role role_;
    parser_settings settings_;
    state state_ = state::header;
    std::error_code error_;
    // The frame being read.
    std::array<std::byte, max_frame_header_size> hdr_{};
    std::size_t hdr_have_ = 0, hdr_need_ = 2;
    opcode frame_op_ = opcode::binary;
    bool fin_ = false, masked_ = false;
    mask_key mask_{};
    std::uint64_t frame_size_ = 0, frame_have_ = 0;
    // The message being joined, and the control frame.
    bool in_message_ = false;
    opcode message_op_ = opcode::binary;
    std::vector<std::byte> message_;
    utf8_validator utf8_;
    std::array<std::byte, max_control_payload> control_{};
    // The event waiting for poll_event.
    std::optional<received> event_;
    bool clear_message_ = false;
};

} // namespace peerlink::websocket

namespace peerlink {

/// A WebSocket URL (RFC 6455 §3): "ws://host[:port][/path][?query]" or "wss://...".
///
/// @par Example
/// @code
/// std::error_code ec;
/// auto u = peerlink::ws_url::parse("wss://[::1]:8443/signal?v=1", ec);
/// // u->secure, u->host == "::1", u->port == 8443, u->target == "/signal?v=1"
/// @endcode
struct ws_url {
    bool secure = false;      ///< wss://
    std::string host;         ///< A name, an IPv4 address or an IPv6 address without brackets.
    std::uint16_t port = 80;  ///< The port given, or 80 (ws) / 443 (wss).
    std::string target = "/"; ///< Path and query; "/" when the URL has none.

    /// Parses `text`. The scheme is case-insensitive; user info ("user@") and
    /// fragments ("#x") are refused, as RFC 6455 §3 asks; an IPv6 literal must be
    /// in brackets and valid; the port is 1-65535.
    /// @returns the URL, or nothing with `ec` set to `websocket_error::bad_url`.
    static std::optional<ws_url> parse(std::string_view text, std::error_code& ec);

    /// Whether `host` is an IPv6 literal (it then needs brackets in a URL or a Host header).
    bool host_is_ipv6() const noexcept { return host.find(':') != std::string::npos; }
    /// The Host header: the host (IPv6 in brackets), with ":port" unless it is the
    /// scheme's default.
    std::string host_header() const;
    /// The URL back as text, in the form `parse` accepts.
    std::string to_string() const;

    friend bool operator==(const ws_url&, const ws_url&) = default;
};

} // namespace peerlink

#include <peerlink/proto/impl/websocket.hpp>

#endif // PEERLINK_PROTO_WEBSOCKET_HPP
