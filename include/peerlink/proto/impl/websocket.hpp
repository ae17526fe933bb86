// Implementation of peerlink/proto/websocket.hpp.
#ifndef PEERLINK_PROTO_IMPL_WEBSOCKET_HPP
#define PEERLINK_PROTO_IMPL_WEBSOCKET_HPP

#include <peerlink/detail/byte_order.hpp>
#include <peerlink/endpoint.hpp>

#include <openssl/evp.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <new>

namespace peerlink {

inline std::string detail::websocket_error_category_impl::message(int ev) const {
    switch (static_cast<websocket_error>(ev)) {
    case websocket_error::bad_http_request:
        return "malformed HTTP request: the request line or a header line does not parse";
    case websocket_error::http_header_too_large:
        return "HTTP header block larger than the configured cap";
    case websocket_error::unsupported_http_version:
        return "HTTP version other than 1.0 and 1.1";
    case websocket_error::not_get:
        return "WebSocket upgrade request with a method other than GET";
    case websocket_error::missing_host:
        return "WebSocket upgrade request without a Host header";
    case websocket_error::not_upgrade:
        return "not a WebSocket upgrade request (no 'Upgrade: websocket' over HTTP/1.1)";
    case websocket_error::missing_connection_upgrade:
        return "WebSocket upgrade request without 'Connection: Upgrade'";
    case websocket_error::bad_key:
        return "Sec-WebSocket-Key missing, repeated, or not 16 bytes in base64";
    case websocket_error::bad_version:
        return "Sec-WebSocket-Version missing or not 13";
    case websocket_error::bad_http_response:
        return "malformed HTTP response from the WebSocket server";
    case websocket_error::handshake_rejected:
        return "the WebSocket server refused the upgrade (HTTP status other than 101)";
    case websocket_error::bad_upgrade_response:
        return "HTTP 101 without 'Upgrade: websocket' and 'Connection: Upgrade'";
    case websocket_error::bad_accept:
        return "Sec-WebSocket-Accept does not match the key sent";
    case websocket_error::unexpected_subprotocol:
        return "the WebSocket server chose a subprotocol that was not offered";
    case websocket_error::unexpected_extension:
        return "the WebSocket server answered with an extension that was not offered";
    case websocket_error::invalid_request_field:
        return "a WebSocket handshake field is empty or contains CR, LF or NUL";
    case websocket_error::reserved_bits:
        return "WebSocket frame with RSV bits set but no extension negotiated";
    case websocket_error::unknown_opcode:
        return "WebSocket frame with a reserved opcode";
    case websocket_error::fragmented_control:
        return "fragmented WebSocket control frame";
    case websocket_error::control_too_large:
        return "WebSocket control frame payload larger than 125 bytes";
    case websocket_error::non_minimal_length:
        return "WebSocket frame length not in its shortest encoding";
    case websocket_error::length_too_large:
        return "WebSocket frame length with the most significant bit set";
    case websocket_error::unmasked_frame:
        return "unmasked WebSocket frame from a client";
    case websocket_error::masked_frame:
        return "masked WebSocket frame from a server";
    case websocket_error::unexpected_continuation:
        return "WebSocket continuation frame outside a fragmented message";
    case websocket_error::expected_continuation:
        return "new WebSocket data frame inside a fragmented message";
    case websocket_error::bad_close_payload:
        return "WebSocket close frame with a one-byte payload";
    case websocket_error::bad_close_code:
        return "WebSocket close code that may not be sent";
    case websocket_error::invalid_utf8:
        return "WebSocket text message or close reason is not valid UTF-8";
    case websocket_error::message_too_large:
        return "WebSocket message larger than the configured maximum";
    case websocket_error::close_reason_too_long:
        return "WebSocket close reason longer than 123 bytes";
    case websocket_error::closed:
        return "the WebSocket connection is closed";
    case websocket_error::http_answered:
        return "a plain HTTP request was answered and the connection closed";
    case websocket_error::handshake_timeout:
        return "the WebSocket opening handshake did not finish in time";
    case websocket_error::close_timeout:
        return "the WebSocket peer did not finish the close handshake in time";
    case websocket_error::bad_url:
        return "invalid WebSocket URL: expected ws://host[:port][/path] or wss://...";
    }
    return "unknown WebSocket error";
}

inline std::error_condition
detail::websocket_error_category_impl::default_error_condition(int ev) const noexcept {
    auto e = static_cast<websocket_error>(ev);
    if (e >= websocket_error::bad_http_request && e <= websocket_error::message_too_large)
        return make_error_condition(condition::malformed_input);
    switch (e) {
    case websocket_error::bad_url:
        return make_error_condition(condition::malformed_input);
    case websocket_error::handshake_timeout:
    case websocket_error::close_timeout:
        return make_error_condition(condition::peer_unreachable);
    default:
        return {ev, *this};
    }
}

namespace websocket {

namespace detail {

inline std::span<const std::byte> as_bytes(std::string_view s) noexcept {
    return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

inline char lower(char c) noexcept {
    return c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c;
}

inline bool iequals(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size())
        return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (lower(a[i]) != lower(b[i]))
            return false;
    return true;
}

inline bool is_tchar(char c) noexcept {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

inline bool is_token(std::string_view s) noexcept {
    return !s.empty() && std::all_of(s.begin(), s.end(), is_tchar);
}

inline std::string_view trim(std::string_view s) noexcept {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
        s.remove_suffix(1);
    return s;
}

// Calls f(token) for each element of a comma-separated list; stops when f returns true.
template <class F>
bool any_list_element(std::string_view list, F f) {
    while (!list.empty()) {
        auto comma = list.find(',');
        auto item = trim(list.substr(0, comma));
        if (!item.empty() && f(item))
            return true;
        if (comma == std::string_view::npos)
            break;
        list.remove_prefix(comma + 1);
    }
    return false;
}

// A field we put into a header line or the request line: no CR, LF or NUL.
inline bool safe_field(std::string_view s) noexcept {
    return s.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

inline bool parse_http_version(std::string_view v, unsigned& minor, bool& is_http) noexcept {
    is_http = v.size() == 8 && v.substr(0, 5) == "HTTP/" && v[5] >= '0' && v[5] <= '9' &&
              v[6] == '.' && v[7] >= '0' && v[7] <= '9';
    if (!is_http || v[5] != '1' || (v[7] != '0' && v[7] != '1'))
        return false;
    minor = unsigned(v[7] - '0');
    return true;
}

inline std::string base64(const unsigned char* data, std::size_t n) {
    // EVP_EncodeBlock also writes a NUL after the text: into the string's own terminator.
    std::string out(4 * ((n + 2) / 3), '\0');
    int len =
        EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, static_cast<int>(n));
    if (len != static_cast<int>(out.size()))
        return {};
    return out;
}

// The form every client sends for 16 bytes: 22 base64 characters and "==". A
// stricter decode would refuse nothing a real client sends.
inline bool is_valid_key(std::string_view key) noexcept {
    if (key.size() != 24 || key[22] != '=' || key[23] != '=')
        return false;
    for (std::size_t i = 0; i < 22; ++i) {
        char c = key[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '+' || c == '/';
        if (!ok)
            return false;
    }
    return true;
}

} // namespace detail

constexpr bool is_valid_close_code(std::uint16_t code) noexcept {
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

inline std::uint16_t close_code_for(std::error_code ec) noexcept {
    if (ec.category() != websocket_error_category())
        return close_code::internal_error;
    auto e = static_cast<websocket_error>(ec.value());
    if (e == websocket_error::invalid_utf8)
        return close_code::invalid_payload;
    if (e == websocket_error::message_too_large)
        return close_code::message_too_big;
    if (e >= websocket_error::reserved_bits && e <= websocket_error::bad_close_code)
        return close_code::protocol_error;
    return close_code::internal_error;
}

inline unsigned http_status_for(std::error_code ec) noexcept {
    if (ec.category() != websocket_error_category())
        return 500;
    switch (static_cast<websocket_error>(ec.value())) {
    case websocket_error::http_header_too_large:
        return 431;
    case websocket_error::unsupported_http_version:
        return 505;
    case websocket_error::not_upgrade:
    case websocket_error::bad_version:
        return 426;
    case websocket_error::bad_http_request:
    case websocket_error::not_get:
    case websocket_error::missing_host:
    case websocket_error::missing_connection_upgrade:
    case websocket_error::bad_key:
        return 400;
    default:
        return 500;
    }
}

inline std::string_view reason_phrase(unsigned status) noexcept {
    switch (status) {
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 204:
        return "No Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 413:
        return "Content Too Large";
    case 426:
        return "Upgrade Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}

// ---------------------------------------------------------------------------------
// UTF-8

inline bool utf8_validator::feed(std::span<const std::byte> bytes) noexcept {
    if (!ok_)
        return false;
    auto p = reinterpret_cast<const unsigned char*>(bytes.data());
    std::size_t n = bytes.size(), i = 0;
    while (i < n) {
        if (need_ == 0) {
            while (i + 8 <= n) { // ASCII runs, a word at a time
                std::uint64_t w;
                std::memcpy(&w, p + i, 8);
                if (w & 0x8080808080808080ull)
                    break;
                i += 8;
            }
            if (i == n)
                break;
            unsigned char c = p[i++];
            if (c < 0x80)
                continue;
            lo_ = 0x80;
            hi_ = 0xBF;
            if (c >= 0xC2 && c <= 0xDF) {
                need_ = 1;
            } else if (c >= 0xE0 && c <= 0xEF) {
                need_ = 2;
                if (c == 0xE0)
                    lo_ = 0xA0; // overlong
                else if (c == 0xED)
                    hi_ = 0x9F; // surrogates
            } else if (c >= 0xF0 && c <= 0xF4) {
                need_ = 3;
                if (c == 0xF0)
                    lo_ = 0x90; // overlong
                else if (c == 0xF4)
                    hi_ = 0x8F; // above U+10FFFF
            } else {
                ok_ = false;
                return false;
            }
        } else {
            unsigned char c = p[i++];
            if (c < lo_ || c > hi_) {
                ok_ = false;
                return false;
            }
            lo_ = 0x80;
            hi_ = 0xBF;
            --need_;
        }
    }
    return true;
}

inline bool is_valid_utf8(std::span<const std::byte> bytes) noexcept {
    utf8_validator v;
    return v.feed(bytes) && v.complete();
}

// ---------------------------------------------------------------------------------
// Handshake

inline std::string make_key(std::span<const std::byte, 16> nonce) {
    return detail::base64(reinterpret_cast<const unsigned char*>(nonce.data()), nonce.size());
}

inline std::string accept_key(std::string_view key) {
    std::string input;
    input.reserve(key.size() + accept_guid.size());
    input.append(key).append(accept_guid);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (EVP_Digest(input.data(), input.size(), md, &md_len, EVP_sha1(), nullptr) != 1 ||
        md_len != 20)
        return {};
    return detail::base64(md, md_len);
}

inline std::error_code write_request(std::string& out, const request_options& o,
                                     std::string_view key) {
    using detail::safe_field;
    bool path_ok =
        !o.path.empty() && o.path.front() == '/' &&
        std::all_of(o.path.begin(), o.path.end(), [](char c) { return c > 0x20 && c < 0x7f; });
    if (o.host.empty() || key.empty() || !path_ok || !safe_field(o.host) || !safe_field(key) ||
        !safe_field(o.subprotocols) || !safe_field(o.origin) || !safe_field(o.user_agent))
        return make_error_code(websocket_error::invalid_request_field);
    out.append("GET ").append(o.path).append(" HTTP/1.1\r\nHost: ").append(o.host);
    out.append("\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ");
    out.append(key).append("\r\nSec-WebSocket-Version: 13\r\n");
    if (!o.subprotocols.empty())
        out.append("Sec-WebSocket-Protocol: ").append(o.subprotocols).append("\r\n");
    if (!o.origin.empty())
        out.append("Origin: ").append(o.origin).append("\r\n");
    if (!o.user_agent.empty())
        out.append("User-Agent: ").append(o.user_agent).append("\r\n");
    out.append("\r\n");
    return {};
}

namespace detail {

inline std::size_t http_head::feed(std::span<const std::byte> bytes, std::error_code& ec,
                                   std::error_code bad_syntax) {
    ec.clear();
    if (error_) {
        ec = error_;
        return 0;
    }
    if (done_)
        return 0;
    if (buf_.capacity() == 0)
        buf_.reserve(std::min<std::size_t>(max_size_, 1024));
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        if (buf_.size() >= max_size_) {
            ec = error_ = make_error_code(websocket_error::http_header_too_large);
            return i;
        }
        char c = static_cast<char>(bytes[i]);
        buf_.push_back(c);
        if (c != '\n')
            continue;
        std::size_t len = buf_.size() - 1 - line_start_;
        bool blank = len == 0 || (len == 1 && buf_[line_start_] == '\r');
        if (blank) {
            done_ = true;
            if (line_start_ == 0)
                error_ = bad_syntax; // no start line
            else
                error_ = split(bad_syntax);
            ec = error_;
            return i + 1;
        }
        line_start_ = buf_.size();
    }
    return bytes.size();
}

inline std::error_code http_head::split(std::error_code bad_syntax) {
    constexpr std::size_t max_headers = 100;
    std::string_view all(buf_);
    bool first = true;
    while (!all.empty()) {
        auto nl = all.find('\n');
        auto line = all.substr(0, nl);
        all.remove_prefix(nl + 1);
        if (!line.empty() && line.back() == '\r')
            line.remove_suffix(1);
        if (line.empty())
            break; // the blank line that ends the head
        for (char c : line) {
            auto u = static_cast<unsigned char>(c);
            if ((u < 0x20 && c != '\t') || u == 0x7f)
                return bad_syntax; // CR inside a line, NUL, other controls
        }
        if (first) {
            start_line_ = line;
            first = false;
            continue;
        }
        if (line.front() == ' ' || line.front() == '\t')
            return bad_syntax; // obsolete line folding (RFC 7230 §3.2.4)
        auto colon = line.find(':');
        if (colon == std::string_view::npos || !is_token(line.substr(0, colon)))
            return bad_syntax; // also refuses whitespace before the colon
        if (headers_.size() == max_headers)
            return make_error_code(websocket_error::http_header_too_large);
        headers_.push_back({line.substr(0, colon), trim(line.substr(colon + 1))});
    }
    return {};
}

inline std::optional<std::string_view> http_head::header(std::string_view name) const noexcept {
    for (auto& h : headers_)
        if (iequals(h.name, name))
            return h.value;
    return std::nullopt;
}

inline std::size_t http_head::count(std::string_view name) const noexcept {
    return static_cast<std::size_t>(
        std::count_if(headers_.begin(), headers_.end(),
                      [&](const http_header& h) { return iequals(h.name, name); }));
}

inline bool http_head::has_token(std::string_view name, std::string_view token) const noexcept {
    for (auto& h : headers_)
        if (iequals(h.name, name) &&
            any_list_element(h.value, [&](std::string_view t) { return iequals(t, token); }))
            return true;
    return false;
}

inline void http_head::reset() noexcept {
    buf_.clear();
    headers_.clear();
    start_line_ = {};
    line_start_ = 0;
    done_ = false;
    error_.clear();
}

} // namespace detail

inline std::size_t http_request_parser::feed(std::span<const std::byte> bytes,
                                             std::error_code& ec) {
    ec.clear();
    if (error_) {
        ec = error_;
        return 0;
    }
    bool was_done = head_.done();
    auto n = head_.feed(bytes, ec, make_error_code(websocket_error::bad_http_request));
    if (ec) {
        error_ = ec;
        return n;
    }
    if (!head_.done() || was_done)
        return n;
    // request-line = method SP request-target SP HTTP-version (RFC 7230 §3.1.1)
    auto line = head_.start_line();
    auto sp1 = line.find(' ');
    auto sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
    bool is_http = false;
    if (sp2 == std::string_view::npos) {
        ec = error_ = make_error_code(websocket_error::bad_http_request);
        return n;
    }
    method_ = line.substr(0, sp1);
    target_ = line.substr(sp1 + 1, sp2 - sp1 - 1);
    auto version = line.substr(sp2 + 1);
    bool target_ok =
        !target_.empty() && target_.front() == '/' &&
        std::all_of(target_.begin(), target_.end(), [](char c) { return c > 0x20 && c < 0x7f; });
    if (!detail::is_token(method_) || !target_ok) {
        ec = error_ = make_error_code(websocket_error::bad_http_request);
    } else if (!detail::parse_http_version(version, minor_, is_http)) {
        ec = error_ = make_error_code(is_http ? websocket_error::unsupported_http_version
                                              : websocket_error::bad_http_request);
    }
    return n;
}

inline std::string_view http_request_parser::path() const noexcept {
    return target_.substr(0, target_.find('?'));
}

inline std::string_view http_request_parser::query() const noexcept {
    auto q = target_.find('?');
    return q == std::string_view::npos ? std::string_view{} : target_.substr(q + 1);
}

inline std::error_code http_request_parser::check_upgrade() const noexcept {
    auto fail = [](websocket_error e) {
        return make_error_code(e);
    };
    if (!done())
        return error_ ? error_ : fail(websocket_error::bad_http_request);
    if (!is_upgrade() || minor_ < 1)
        return fail(websocket_error::not_upgrade);
    if (method_ != "GET")
        return fail(websocket_error::not_get);
    auto host = header("Host");
    if (!host || host->empty() || head_.count("Host") != 1)
        return fail(websocket_error::missing_host);
    if (!has_token("Connection", "Upgrade"))
        return fail(websocket_error::missing_connection_upgrade);
    auto key = header("Sec-WebSocket-Key");
    if (!key || head_.count("Sec-WebSocket-Key") != 1 || !detail::is_valid_key(*key))
        return fail(websocket_error::bad_key);
    auto version = header("Sec-WebSocket-Version");
    if (!version || *version != "13" || head_.count("Sec-WebSocket-Version") != 1)
        return fail(websocket_error::bad_version);
    return {};
}

inline void http_request_parser::reset() noexcept {
    head_.reset();
    method_ = target_ = {};
    minor_ = 0;
    error_.clear();
}

inline std::size_t http_response_parser::feed(std::span<const std::byte> bytes,
                                              std::error_code& ec) {
    ec.clear();
    if (error_) {
        ec = error_;
        return 0;
    }
    bool was_done = head_.done();
    auto n = head_.feed(bytes, ec, make_error_code(websocket_error::bad_http_response));
    if (ec) {
        error_ = ec;
        return n;
    }
    if (!head_.done() || was_done)
        return n;
    // status-line = HTTP-version SP status-code SP reason-phrase (RFC 7230 §3.1.2); some
    // servers leave out the space before an empty reason.
    auto line = head_.start_line();
    bool is_http = false;
    bool ok = line.size() >= 12 && line[8] == ' ' &&
              detail::parse_http_version(line.substr(0, 8), minor_, is_http) &&
              (line.size() == 12 || line[12] == ' ');
    if (ok) {
        auto code = line.substr(9, 3);
        ok = std::all_of(code.begin(), code.end(), [](char c) { return c >= '0' && c <= '9'; }) &&
             code[0] != '0';
        if (ok) {
            status_ = unsigned((code[0] - '0') * 100 + (code[1] - '0') * 10 + (code[2] - '0'));
            reason_ = line.size() > 13 ? line.substr(13) : std::string_view{};
        }
    }
    if (!ok)
        ec = error_ = make_error_code(websocket_error::bad_http_response);
    return n;
}

inline void http_response_parser::reset() noexcept {
    head_.reset();
    status_ = minor_ = 0;
    reason_ = {};
    error_.clear();
}

inline std::error_code validate_response(const http_response_parser& r, std::string_view key,
                                         std::string_view offered_subprotocols) {
    auto fail = [](websocket_error e) {
        return make_error_code(e);
    };
    if (!r.done())
        return fail(websocket_error::bad_http_response);
    if (r.status() != 101)
        return fail(websocket_error::handshake_rejected);
    if (!r.has_token("Upgrade", "websocket") || !r.has_token("Connection", "Upgrade"))
        return fail(websocket_error::bad_upgrade_response);
    auto accept = r.header("Sec-WebSocket-Accept");
    auto expected = accept_key(key);
    if (!accept || expected.empty() || *accept != expected)
        return fail(websocket_error::bad_accept);
    if (auto ext = r.header("Sec-WebSocket-Extensions"); ext && !ext->empty())
        return fail(websocket_error::unexpected_extension);
    if (auto proto = r.header("Sec-WebSocket-Protocol")) {
        bool offered = detail::is_token(*proto) &&
                       detail::any_list_element(offered_subprotocols,
                                                [&](std::string_view t) { return t == *proto; });
        if (!offered)
            return fail(websocket_error::unexpected_subprotocol);
    }
    return {};
}

inline std::error_code write_accept_response(std::string& out, std::string_view key,
                                             std::string_view subprotocol) {
    if (!detail::safe_field(subprotocol))
        return make_error_code(websocket_error::invalid_request_field);
    auto accept = accept_key(key);
    if (accept.empty())
        return make_error_code(error::crypto_failure);
    out.append("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Accept: ");
    out.append(accept).append("\r\n");
    if (!subprotocol.empty())
        out.append("Sec-WebSocket-Protocol: ").append(subprotocol).append("\r\n");
    out.append("\r\n");
    return {};
}

inline std::error_code write_http_response(std::string& out, const http_response& r,
                                           bool head_only) {
    for (auto& [name, value] : r.headers)
        if (!detail::is_token(name) || !detail::safe_field(value))
            return make_error_code(websocket_error::invalid_request_field);
    if (!detail::safe_field(r.content_type) || r.status < 100 || r.status > 999)
        return make_error_code(websocket_error::invalid_request_field);
    out.append("HTTP/1.1 ").append(std::to_string(r.status)).append(" ");
    out.append(reason_phrase(r.status)).append("\r\n");
    if (!r.content_type.empty())
        out.append("Content-Type: ").append(r.content_type).append("\r\n");
    out.append("Content-Length: ").append(std::to_string(r.body.size()));
    out.append("\r\nConnection: close\r\n");
    for (auto& [name, value] : r.headers)
        out.append(name).append(": ").append(value).append("\r\n");
    out.append("\r\n");
    if (!head_only)
        out.append(r.body);
    return {};
}

inline void write_error_response(std::string& out, std::error_code ec) {
    http_response r;
    r.status = http_status_for(ec);
    r.body = ec.message() + "\n";
    if (r.status == 426) {
        r.headers.emplace_back("Upgrade", "websocket");
        r.headers.emplace_back("Sec-WebSocket-Version", "13");
    }
    write_http_response(out, r);
}

// ---------------------------------------------------------------------------------
// Frames

inline std::size_t write_frame_header(std::span<std::byte, max_frame_header_size> out, opcode op,
                                      bool fin, std::uint64_t payload_size,
                                      const std::optional<mask_key>& mask,
                                      std::uint8_t rsv) noexcept {
    using peerlink::detail::store_be;
    out[0] =
        static_cast<std::byte>((fin ? 0x80u : 0u) | ((rsv & 7u) << 4) | static_cast<unsigned>(op));
    std::size_t n = 2;
    unsigned b1 = mask ? 0x80u : 0u;
    if (payload_size < 126) {
        b1 |= static_cast<unsigned>(payload_size);
    } else if (payload_size <= 0xFFFF) {
        b1 |= 126;
        store_be(out.data() + 2, static_cast<std::uint16_t>(payload_size));
        n = 4;
    } else {
        b1 |= 127;
        store_be(out.data() + 2, payload_size);
        n = 10;
    }
    out[1] = static_cast<std::byte>(b1);
    if (mask) {
        std::memcpy(out.data() + n, mask->data(), 4);
        n += 4;
    }
    return n;
}

inline void apply_mask(std::span<std::byte> data, const mask_key& key,
                       std::size_t offset) noexcept {
    std::byte k8[8];
    for (std::size_t i = 0; i < 8; ++i)
        k8[i] = key[(offset + i) & 3];
    std::uint64_t w8;
    std::memcpy(&w8, k8, 8);
    std::size_t i = 0, n = data.size();
    for (; i + 8 <= n; i += 8) { // the key repeats every 4 bytes, so every 8 too
        std::uint64_t w;
        std::memcpy(&w, data.data() + i, 8);
        w ^= w8;
        std::memcpy(data.data() + i, &w, 8);
    }
    for (; i < n; ++i)
        data[i] ^= k8[i & 7];
}

inline std::size_t write_close_payload(std::span<std::byte, max_control_payload> out,
                                       std::uint16_t code, std::string_view reason,
                                       std::error_code& ec) noexcept {
    ec.clear();
    if (!is_valid_close_code(code)) {
        ec = make_error_code(websocket_error::bad_close_code);
        return 0;
    }
    if (reason.size() > max_control_payload - 2) {
        ec = make_error_code(websocket_error::close_reason_too_long);
        return 0;
    }
    if (!is_valid_utf8(detail::as_bytes(reason))) {
        ec = make_error_code(websocket_error::invalid_utf8);
        return 0;
    }
    peerlink::detail::store_be(out.data(), code);
    if (!reason.empty())
        std::memcpy(out.data() + 2, reason.data(), reason.size());
    return 2 + reason.size();
}

inline void append_frame(std::vector<std::byte>& out, opcode op, bool fin,
                         std::span<const std::byte> payload, const std::optional<mask_key>& mask,
                         std::uint8_t rsv) {
    std::array<std::byte, max_frame_header_size> h;
    auto n = write_frame_header(h, op, fin, payload.size(), mask, rsv);
    out.insert(out.end(), h.begin(), h.begin() + static_cast<std::ptrdiff_t>(n));
    auto at = out.size();
    out.insert(out.end(), payload.begin(), payload.end());
    if (mask)
        apply_mask(std::span<std::byte>(out).subspan(at), *mask);
}

inline std::size_t frame_parser::fail(websocket_error e, std::error_code& ec) noexcept {
    state_ = state::failed;
    ec = error_ = make_error_code(e);
    return 0;
}

// Called once the first two header bytes, then once the whole header, are in.
// Returns false when the parser failed.
inline bool frame_parser::header_complete(std::error_code& ec) noexcept {
    using peerlink::detail::load_be;
    auto b0 = std::to_integer<unsigned>(hdr_[0]);
    auto b1 = std::to_integer<unsigned>(hdr_[1]);
    unsigned len7 = b1 & 0x7f;
    if (hdr_need_ == 2 && hdr_have_ == 2) {
        // Everything the first two bytes tell, checked before waiting for more.
        fin_ = b0 & 0x80;
        masked_ = b1 & 0x80;
        unsigned op = b0 & 0x0f;
        if (((b0 >> 4) & 7) & ~unsigned(settings_.allowed_rsv))
            return fail(websocket_error::reserved_bits, ec), false;
        if (op != 0 && op != 1 && op != 2 && op != 8 && op != 9 && op != 10)
            return fail(websocket_error::unknown_opcode, ec), false;
        frame_op_ = static_cast<opcode>(op);
        if (op & 8) {
            if (!fin_)
                return fail(websocket_error::fragmented_control, ec), false;
            if (len7 > max_control_payload)
                return fail(websocket_error::control_too_large, ec), false;
        } else if (op == 0 && !in_message_) {
            return fail(websocket_error::unexpected_continuation, ec), false;
        } else if (op != 0 && in_message_) {
            return fail(websocket_error::expected_continuation, ec), false;
        }
        if (role_ == role::server && !masked_)
            return fail(websocket_error::unmasked_frame, ec), false;
        if (role_ == role::client && masked_)
            return fail(websocket_error::masked_frame, ec), false;
        hdr_need_ = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + (masked_ ? 4 : 0);
        if (hdr_need_ > 2)
            return true; // wait for the rest of the header
    }
    std::size_t at = 2;
    if (len7 == 126) {
        frame_size_ = load_be<std::uint16_t>(hdr_.data() + 2);
        at = 4;
        if (frame_size_ < 126)
            return fail(websocket_error::non_minimal_length, ec), false;
    } else if (len7 == 127) {
        frame_size_ = load_be<std::uint64_t>(hdr_.data() + 2);
        at = 10;
        if (frame_size_ >> 63)
            return fail(websocket_error::length_too_large, ec), false;
        if (frame_size_ <= 0xFFFF)
            return fail(websocket_error::non_minimal_length, ec), false;
    } else {
        frame_size_ = len7;
    }
    if (masked_)
        std::memcpy(mask_.data(), hdr_.data() + at, 4);
    if (!(static_cast<unsigned>(frame_op_) & 8)) {
        if (frame_op_ != opcode::continuation) { // the first frame of a message
            message_op_ = frame_op_;
            message_.clear();
            utf8_.reset();
        }
        if (frame_size_ > settings_.max_message_size ||
            message_.size() > settings_.max_message_size - frame_size_)
            return fail(websocket_error::message_too_large, ec), false;
    }
    state_ = state::payload;
    frame_have_ = 0;
    return true;
}

inline bool frame_parser::frame_complete(std::error_code& ec) noexcept {
    state_ = state::header;
    hdr_have_ = 0;
    hdr_need_ = 2;
    auto n = static_cast<std::size_t>(frame_size_);
    if (static_cast<unsigned>(frame_op_) & 8) {
        received r;
        r.op = frame_op_;
        r.payload = std::span<const std::byte>(control_.data(), n);
        if (frame_op_ == opcode::close) {
            if (n == 1)
                return fail(websocket_error::bad_close_payload, ec), false;
            r.close_code = close_code::no_status;
            if (n >= 2) {
                r.close_code = peerlink::detail::load_be<std::uint16_t>(control_.data());
                if (!is_valid_close_code(r.close_code))
                    return fail(websocket_error::bad_close_code, ec), false;
                auto reason = r.payload.subspan(2);
                if (!is_valid_utf8(reason))
                    return fail(websocket_error::invalid_utf8, ec), false;
                r.close_reason =
                    std::string_view(reinterpret_cast<const char*>(reason.data()), reason.size());
            }
            state_ = state::closed;
        }
        event_ = r;
        return true;
    }
    if (!fin_) {
        in_message_ = true;
        return true;
    }
    in_message_ = false;
    if (message_op_ == opcode::text && !utf8_.complete())
        return fail(websocket_error::invalid_utf8, ec), false;
    received r;
    r.op = message_op_;
    r.payload = message_;
    event_ = r;
    clear_message_ = true;
    return true;
}

inline std::size_t frame_parser::feed(std::span<const std::byte> in, std::error_code& ec) noexcept {
    ec.clear();
    if (state_ == state::failed) {
        ec = error_;
        return 0;
    }
    if (event_)
        return 0;
    if (clear_message_) {
        message_.clear();
        clear_message_ = false;
    }
    std::size_t pos = 0;
    while (pos < in.size()) {
        if (state_ == state::closed)
            return in.size();
        if (state_ == state::header) {
            auto take = std::min(hdr_need_ - hdr_have_, in.size() - pos);
            std::memcpy(hdr_.data() + hdr_have_, in.data() + pos, take);
            hdr_have_ += take;
            pos += take;
            if (hdr_have_ < hdr_need_)
                continue;
            if (!header_complete(ec))
                return pos;
            if (state_ == state::header)
                continue; // the extended length or the mask are still to come
            if (frame_size_ == 0) {
                if (!frame_complete(ec))
                    return pos;
                if (event_)
                    return pos;
            }
            continue;
        }
        // Payload.
        auto take = static_cast<std::size_t>(
            std::min<std::uint64_t>(frame_size_ - frame_have_, in.size() - pos));
        auto src = in.subspan(pos, take);
        std::span<std::byte> dst;
        if (static_cast<unsigned>(frame_op_) & 8) {
            dst =
                std::span<std::byte>(control_).subspan(static_cast<std::size_t>(frame_have_), take);
            std::memcpy(dst.data(), src.data(), take);
        } else {
            auto at = message_.size();
            try {
                message_.insert(message_.end(), src.begin(), src.end());
            } catch (const std::bad_alloc&) {
                return pos + fail(websocket_error::message_too_large, ec);
            }
            dst = std::span<std::byte>(message_).subspan(at);
        }
        if (masked_)
            apply_mask(dst, mask_, static_cast<std::size_t>(frame_have_));
        if (!(static_cast<unsigned>(frame_op_) & 8) && message_op_ == opcode::text &&
            !utf8_.feed(dst))
            return pos + fail(websocket_error::invalid_utf8, ec);
        frame_have_ += take;
        pos += take;
        if (frame_have_ == frame_size_) {
            if (!frame_complete(ec))
                return pos;
            if (event_)
                return pos;
        }
    }
    return pos;
}

inline std::optional<received> frame_parser::poll_event() noexcept {
    auto e = event_;
    event_.reset();
    return e;
}

inline void frame_parser::reset() noexcept {
    state_ = state::header;
    error_.clear();
    hdr_have_ = 0;
    hdr_need_ = 2;
    frame_size_ = frame_have_ = 0;
    in_message_ = false;
    message_.clear();
    utf8_.reset();
    event_.reset();
    clear_message_ = false;
}

inline void frame_parser::shrink() noexcept {
    if (!event_ && !in_message_) {
        std::vector<std::byte> empty;
        message_.swap(empty);
    }
}

} // namespace websocket

// ---------------------------------------------------------------------------------
// ws_url

inline std::optional<ws_url> ws_url::parse(std::string_view text, std::error_code& ec) {
    using websocket::detail::iequals;
    ec.clear();
    auto bad = [&]() -> std::optional<ws_url> {
        ec = make_error_code(websocket_error::bad_url);
        return std::nullopt;
    };
    ws_url u;
    auto sep = text.find("://");
    if (sep == std::string_view::npos)
        return bad();
    auto scheme = text.substr(0, sep);
    if (iequals(scheme, "wss"))
        u.secure = true;
    else if (!iequals(scheme, "ws"))
        return bad();
    u.port = u.secure ? 443 : 80;
    auto rest = text.substr(sep + 3);
    if (rest.find('#') != std::string_view::npos)
        return bad(); // RFC 6455 §3: no fragment
    auto end = rest.find_first_of("/?");
    auto authority = rest.substr(0, end);
    auto target = end == std::string_view::npos ? std::string_view{} : rest.substr(end);
    if (authority.empty() || authority.find('@') != std::string_view::npos)
        return bad();
    std::string_view host, port;
    if (authority.front() == '[') {
        auto close = authority.find(']');
        if (close == std::string_view::npos)
            return bad();
        host = authority.substr(1, close - 1);
        auto after = authority.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != ':')
                return bad();
            port = after.substr(1);
            if (port.empty())
                return bad();
        }
        std::error_code ip_ec;
        auto ip = ip_address::parse(host, ip_ec);
        if (!ip || !ip->is_v6() || host.find('%') != std::string_view::npos)
            return bad();
    } else {
        auto colon = authority.find(':');
        host = authority.substr(0, colon);
        if (colon != std::string_view::npos) {
            port = authority.substr(colon + 1);
            if (port.empty())
                return bad();
        }
        if (host.empty())
            return bad();
        bool numeric = true;
        for (char c : host) {
            bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
            if (!alnum && c != '-' && c != '.' && c != '_')
                return bad();
            if (!(c >= '0' && c <= '9') && c != '.')
                numeric = false;
        }
        std::error_code ip_ec;
        if (numeric && !ip_address::parse(host, ip_ec))
            return bad(); // looks like an IPv4 address but is not one
    }
    if (!port.empty()) {
        unsigned v = 0;
        auto [p, err] = std::from_chars(port.data(), port.data() + port.size(), v);
        if (err != std::errc{} || p != port.data() + port.size() || port.size() > 5 || v == 0 ||
            v > 65535 || port.front() == '+')
            return bad();
        u.port = static_cast<std::uint16_t>(v);
    }
    for (char c : target)
        if (c <= 0x20 || c >= 0x7f)
            return bad();
    u.host = std::string(host);
    if (target.empty())
        u.target = "/";
    else if (target.front() == '?')
        u.target = "/" + std::string(target);
    else
        u.target = std::string(target);
    return u;
}

inline std::string ws_url::host_header() const {
    std::string h = host_is_ipv6() ? "[" + host + "]" : host;
    if (port != (secure ? 443 : 80))
        h += ":" + std::to_string(port);
    return h;
}

inline std::string ws_url::to_string() const {
    return (secure ? "wss://" : "ws://") + host_header() + target;
}

} // namespace peerlink

#endif // PEERLINK_PROTO_IMPL_WEBSOCKET_HPP
