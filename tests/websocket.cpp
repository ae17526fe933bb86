#include <peerlink/proto/websocket.hpp>

#include "catch.hpp"

#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace ws = peerlink::websocket;
using peerlink::websocket_error;

namespace {

std::vector<std::byte> bytes_of(std::initializer_list<int> v) {
    std::vector<std::byte> out;
    for (int b : v)
        out.push_back(static_cast<std::byte>(b));
    return out;
}

std::span<const std::byte> as_span(std::string_view s) {
    return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

std::string as_string(std::span<const std::byte> b) {
    return {reinterpret_cast<const char*>(b.data()), b.size()};
}

// What a parser delivered, copied out (the parser's views do not outlive the next feed).
struct event {
    ws::opcode op;
    std::string payload;
    std::uint16_t code = 0;
    std::string reason;
    friend bool operator==(const event&, const event&) = default;
};

event ev(ws::opcode op, std::string payload, std::uint16_t code = 0, std::string reason = {}) {
    return {op, std::move(payload), code, std::move(reason)};
}

struct parse_result {
    std::vector<event> events;
    std::error_code ec;
    std::size_t consumed = 0;
};

// Feeds `in` in pieces of `chunk` bytes (0: all at once), draining events as they come.
parse_result parse(ws::role r, std::span<const std::byte> in, std::size_t chunk = 0,
                   ws::parser_settings s = {}) {
    ws::frame_parser p(r, s);
    parse_result out;
    std::size_t pos = 0;
    for (int guard = 0; pos < in.size() && guard < 10'000'000; ++guard) {
        std::size_t n = chunk ? std::min(chunk, in.size() - pos) : in.size() - pos;
        auto piece = in.subspan(pos, n);
        while (!piece.empty()) {
            auto used = p.feed(piece, out.ec);
            pos += used;
            piece = piece.subspan(used);
            bool any = false;
            while (auto e = p.poll_event()) {
                any = true;
                out.events.push_back(
                    {e->op, as_string(e->payload), e->close_code, std::string(e->close_reason)});
            }
            if (used == 0 && !any && !out.ec) {
                FAIL("the parser consumed nothing and delivered nothing");
            }
            if (out.ec) {
                out.consumed = pos;
                return out;
            }
        }
    }
    out.consumed = pos;
    return out;
}

const ws::mask_key rfc_mask{std::byte{0x37}, std::byte{0xfa}, std::byte{0x21}, std::byte{0x3d}};

std::vector<std::byte> frame(ws::opcode op, bool fin, std::string_view payload,
                             std::optional<ws::mask_key> mask = std::nullopt,
                             std::uint8_t rsv = 0) {
    std::vector<std::byte> out;
    ws::append_frame(out, op, fin, as_span(payload), mask, rsv);
    return out;
}

std::vector<std::byte> cat(std::initializer_list<std::vector<std::byte>> parts) {
    std::vector<std::byte> out;
    for (auto& p : parts)
        out.insert(out.end(), p.begin(), p.end());
    return out;
}

} // namespace

// ---------------------------------------------------------------------------------
// Handshake

TEST_CASE("websocket accept key matches RFC 6455 section 1.3", "[websocket]") {
    CHECK(ws::accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    std::string nonce = "the sample nonce";
    REQUIRE(nonce.size() == 16);
    CHECK(ws::make_key(std::span<const std::byte, 16>(as_span(nonce).data(), 16)) ==
          "dGhlIHNhbXBsZSBub25jZQ==");
}

TEST_CASE("websocket server parses the RFC 6455 example request and accepts it", "[websocket]") {
    std::string req = "GET /chat HTTP/1.1\r\n"
                      "Host: server.example.com\r\n"
                      "Upgrade: websocket\r\n"
                      "Connection: Upgrade\r\n"
                      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                      "Origin: http://example.com\r\n"
                      "Sec-WebSocket-Protocol: chat, superchat\r\n"
                      "Sec-WebSocket-Version: 13\r\n"
                      "\r\n";
    std::string with_frame = req + "\x81\x85";
    for (std::size_t chunk : {std::size_t{0}, std::size_t{1}, std::size_t{7}}) {
        INFO("chunk " << chunk);
        ws::http_request_parser p;
        std::error_code ec;
        std::size_t used = 0;
        auto in = as_span(with_frame);
        while (!p.done() && used < in.size() && !ec) {
            auto n = chunk ? std::min(chunk, in.size() - used) : in.size() - used;
            used += p.feed(in.subspan(used, n), ec);
        }
        REQUIRE_FALSE(ec);
        REQUIRE(p.done());
        CHECK(used == req.size()); // the frame bytes after the head are left alone
        CHECK(p.feed(in.subspan(used), ec) == 0);
        CHECK(p.method() == "GET");
        CHECK(p.target() == "/chat");
        CHECK(p.path() == "/chat");
        CHECK(p.version_minor() == 1);
        CHECK(p.headers().size() == 7);
        CHECK(p.header("host") == "server.example.com");
        CHECK(p.header("ORIGIN") == "http://example.com");
        CHECK(p.is_upgrade());
        CHECK(p.offers_subprotocol("superchat"));
        CHECK_FALSE(p.offers_subprotocol("super"));
        CHECK_FALSE(p.check_upgrade());

        std::string out;
        REQUIRE_FALSE(ws::write_accept_response(out, *p.header("Sec-WebSocket-Key"), "chat"));
        CHECK(out == "HTTP/1.1 101 Switching Protocols\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                     "Sec-WebSocket-Protocol: chat\r\n"
                     "\r\n");
    }
}

TEST_CASE("websocket client request and server response round trip", "[websocket]") {
    std::array<std::byte, 16> nonce{};
    for (std::size_t i = 0; i < 16; ++i)
        nonce[i] = static_cast<std::byte>(i * 17 + 3);
    auto key = ws::make_key(nonce);
    CHECK(key.size() == 24);

    std::string req;
    ws::request_options o;
    o.host = "[::1]:8080";
    o.path = "/signal?v=1";
    o.subprotocols = "peerlink.v1, peerlink.v0";
    REQUIRE_FALSE(ws::write_request(req, o, key));

    ws::http_request_parser server;
    std::error_code ec;
    CHECK(server.feed(as_span(req), ec) == req.size());
    REQUIRE(server.done());
    CHECK_FALSE(server.check_upgrade());
    CHECK(server.path() == "/signal");
    CHECK(server.query() == "v=1");
    CHECK(server.header("Host") == "[::1]:8080");
    CHECK(server.header("Sec-WebSocket-Key") == key);
    CHECK(server.offers_subprotocol("peerlink.v0"));

    std::string resp;
    REQUIRE_FALSE(ws::write_accept_response(resp, key, "peerlink.v1"));
    ws::http_response_parser client;
    CHECK(client.feed(as_span(resp), ec) == resp.size());
    REQUIRE_FALSE(ec);
    REQUIRE(client.done());
    CHECK(client.status() == 101);
    CHECK(client.reason() == "Switching Protocols");
    CHECK_FALSE(ws::validate_response(client, key, o.subprotocols));
    // Another key: the accept no longer matches.
    CHECK(ws::validate_response(client, "dGhlIHNhbXBsZSBub25jZQ==", o.subprotocols) ==
          websocket_error::bad_accept);
    // A subprotocol that was not offered.
    CHECK(ws::validate_response(client, key, "other") == websocket_error::unexpected_subprotocol);

    for (auto bad : {std::string_view("a\r\nb"), std::string_view("")}) {
        std::string out;
        ws::request_options b;
        b.host = bad;
        CHECK(ws::write_request(out, b, key) == websocket_error::invalid_request_field);
        CHECK(out.empty());
    }
    std::string out;
    ws::request_options b;
    b.host = "h";
    b.path = "/a b";
    CHECK(ws::write_request(out, b, key) == websocket_error::invalid_request_field);
}

TEST_CASE("websocket server answers bad upgrade requests with the right status", "[websocket]") {
    const std::string key = "dGhlIHNhbXBsZSBub25jZQ==";
    auto request = [&](std::string first, std::string headers) {
        return first + "\r\n" + headers + "\r\n";
    };
    const std::string good = "Host: h\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"
                             "Sec-WebSocket-Key: " +
                             key + "\r\nSec-WebSocket-Version: 13\r\n";
    struct bad_case {
        std::string text;
        websocket_error error;
        unsigned status;
        bool parse_error; // the parser itself fails, not check_upgrade
    };
    std::vector<bad_case> cases = {
        {request("GET / HTTP/1.1", "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                                   "Sec-WebSocket-Key: " +
                                       key + "\r\nSec-WebSocket-Version: 13\r\n"),
         websocket_error::missing_host, 400, false},
        {request("GET / HTTP/1.1", "Host: h\r\n"), websocket_error::not_upgrade, 426, false},
        {request("GET / HTTP/1.0", good), websocket_error::not_upgrade, 426, false},
        {request("POST / HTTP/1.1", good), websocket_error::not_get, 400, false},
        {request("GET / HTTP/1.1", "Host: h\r\nUpgrade: websocket\r\nSec-WebSocket-Key: " + key +
                                       "\r\nSec-WebSocket-Version: 13\r\n"),
         websocket_error::missing_connection_upgrade, 400, false},
        {request("GET / HTTP/1.1", "Host: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                   "Sec-WebSocket-Version: 13\r\n"),
         websocket_error::bad_key, 400, false},
        {request("GET / HTTP/1.1", "Host: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                   "Sec-WebSocket-Key: c2hvcnQ=\r\nSec-WebSocket-Version: 13\r\n"),
         websocket_error::bad_key, 400, false},
        {request("GET / HTTP/1.1", good + "Sec-WebSocket-Key: " + key + "\r\n"),
         websocket_error::bad_key, 400, false},
        {request("GET / HTTP/1.1", "Host: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                   "Sec-WebSocket-Key: " +
                                       key + "\r\nSec-WebSocket-Version: 8\r\n"),
         websocket_error::bad_version, 426, false},
        {request("GET / HTTP/1.1", "Host: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                   "Sec-WebSocket-Key: " +
                                       key + "\r\n"),
         websocket_error::bad_version, 426, false},
        {request("GET / HTTP/2.0", good), websocket_error::unsupported_http_version, 505, true},
        {request("GET / FTP/1.1", good), websocket_error::bad_http_request, 400, true},
        {request("GET /", good), websocket_error::bad_http_request, 400, true},
        {request("GET  / HTTP/1.1", good), websocket_error::bad_http_request, 400, true},
        {request("GET http://h/ HTTP/1.1", good), websocket_error::bad_http_request, 400, true},
        {request("G(T / HTTP/1.1", good), websocket_error::bad_http_request, 400, true},
        {request("GET / HTTP/1.1", good + "NoColon\r\n"), websocket_error::bad_http_request, 400,
         true},
        {request("GET / HTTP/1.1", good + "Bad : space\r\n"), websocket_error::bad_http_request,
         400, true},
        {request("GET / HTTP/1.1", good + "X: a\r\n folded\r\n"), websocket_error::bad_http_request,
         400, true},
        {request("GET / HTTP/1.1", good + std::string("X: a\0b\r\n", 8)),
         websocket_error::bad_http_request, 400, true},
        {request("GET / HTTP/1.1", good + "X: a\rb\r\n"), websocket_error::bad_http_request, 400,
         true},
        {"\r\nGET / HTTP/1.1\r\n" + good + "\r\n", websocket_error::bad_http_request, 400, true},
        {request("GET / HTTP/1.1", good + "X: " + std::string(9000, 'a') + "\r\n"),
         websocket_error::http_header_too_large, 431, true},
    };
    for (auto& c : cases) {
        INFO(c.text.substr(0, 200));
        for (std::size_t chunk : {std::size_t{0}, std::size_t{1}}) {
            ws::http_request_parser p;
            std::error_code ec;
            std::size_t used = 0;
            auto in = as_span(c.text);
            while (used < in.size() && !ec && !p.done()) {
                auto n = chunk ? std::size_t{1} : in.size() - used;
                used += p.feed(in.subspan(used, n), ec);
            }
            if (c.parse_error) {
                CHECK(ec == c.error);
                CHECK_FALSE(p.done());
                // A failed parser keeps failing.
                std::error_code again;
                CHECK(p.feed(as_span("x"), again) == 0);
                CHECK(again == c.error);
            } else {
                REQUIRE_FALSE(ec);
                REQUIRE(p.done());
                CHECK(p.check_upgrade() == c.error);
            }
            CHECK(ws::http_status_for(make_error_code(c.error)) == c.status);
        }
    }
    // The answers: a status line, the error in the body, and the 426 hints.
    std::string out;
    ws::write_error_response(out, make_error_code(websocket_error::bad_version));
    CHECK(out.rfind("HTTP/1.1 426 Upgrade Required\r\n", 0) == 0);
    CHECK(out.find("\r\nSec-WebSocket-Version: 13\r\n") != std::string::npos);
    CHECK(out.find("\r\nUpgrade: websocket\r\n") != std::string::npos);
    CHECK(out.find("\r\nConnection: close\r\n") != std::string::npos);
    out.clear();
    ws::write_error_response(out, make_error_code(websocket_error::bad_key));
    CHECK(out.rfind("HTTP/1.1 400 Bad Request\r\n", 0) == 0);
    auto body = make_error_code(websocket_error::bad_key).message() + "\n";
    CHECK(out.find("Content-Length: " + std::to_string(body.size()) + "\r\n") != std::string::npos);
    CHECK(out.substr(out.size() - body.size()) == body);
    CHECK(make_error_code(websocket_error::bad_key) == peerlink::condition::malformed_input);
}

TEST_CASE("websocket server sees plain HTTP requests and answers them", "[websocket]") {
    std::string req = "GET /status?pretty=1 HTTP/1.0\r\nAccept: application/json\r\n"
                      "X-Multi: a\r\nx-multi: b, c\r\n\r\n";
    ws::http_request_parser p;
    std::error_code ec;
    CHECK(p.feed(as_span(req), ec) == req.size());
    REQUIRE(p.done());
    CHECK_FALSE(p.is_upgrade());
    CHECK(p.check_upgrade() == websocket_error::not_upgrade);
    CHECK(p.method() == "GET");
    CHECK(p.path() == "/status");
    CHECK(p.query() == "pretty=1");
    CHECK(p.version_minor() == 0);
    CHECK(p.header("accept") == "application/json");
    CHECK(p.header("X-Multi") == "a");
    CHECK(p.has_token("x-multi", "C"));
    CHECK_FALSE(p.header("Missing"));
    p.reset();
    CHECK_FALSE(p.done());
    CHECK(p.feed(as_span(req), ec) == req.size());
    CHECK(p.done());

    ws::http_response r;
    r.status = 200;
    r.content_type = "application/json";
    r.body = R"({"peers":3})";
    r.headers.emplace_back("Cache-Control", "no-store");
    std::string out;
    REQUIRE_FALSE(ws::write_http_response(out, r));
    CHECK(out == "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n"
                 "Connection: close\r\nCache-Control: no-store\r\n\r\n{\"peers\":3}");
    out.clear();
    REQUIRE_FALSE(ws::write_http_response(out, r, true));
    CHECK(out.find("{\"peers\"") == std::string::npos);
    CHECK(out.find("Content-Length: 11\r\n") != std::string::npos);
    r.headers.emplace_back("X-Evil", "a\r\nSet-Cookie: x");
    out.clear();
    CHECK(ws::write_http_response(out, r) == websocket_error::invalid_request_field);
    CHECK(out.empty());
}

TEST_CASE("websocket client rejects bad handshake responses", "[websocket]") {
    const std::string key = "dGhlIHNhbXBsZSBub25jZQ==";
    const std::string accept = "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n";
    const std::string up = "Upgrade: websocket\r\nConnection: Upgrade\r\n";
    struct bad_case {
        std::string text;
        websocket_error error;
    };
    std::vector<bad_case> cases = {
        {"HTTP/1.1 200 OK\r\n" + up + accept + "\r\n", websocket_error::handshake_rejected},
        {"HTTP/1.1 101 Switching Protocols\r\n" + accept + "\r\n",
         websocket_error::bad_upgrade_response},
        {"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n" + accept + "\r\n",
         websocket_error::bad_upgrade_response},
        {"HTTP/1.1 101 Switching Protocols\r\n" + up + "\r\n", websocket_error::bad_accept},
        {"HTTP/1.1 101 Switching Protocols\r\n" + up +
             "Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n",
         websocket_error::bad_accept},
        {"HTTP/1.1 101 Switching Protocols\r\n" + up + accept +
             "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
         websocket_error::unexpected_extension},
        {"HTTP/1.1 101 Switching Protocols\r\n" + up + accept +
             "Sec-WebSocket-Protocol: chat\r\n\r\n",
         websocket_error::unexpected_subprotocol},
    };
    for (auto& c : cases) {
        INFO(c.text);
        ws::http_response_parser p;
        std::error_code ec;
        p.feed(as_span(c.text), ec);
        REQUIRE_FALSE(ec);
        REQUIRE(p.done());
        CHECK(ws::validate_response(p, key, "") == c.error);
    }
    for (std::string bad :
         {"HTTP/1.1 1O1 Switching\r\n\r\n", "HTTP/1.1 101Switching\r\n\r\n", "HTTP/2 101 x\r\n\r\n",
          "ICY 200 OK\r\n\r\n", "HTTP/1.1 099 x\r\n\r\n"}) {
        INFO(bad);
        ws::http_response_parser p;
        std::error_code ec;
        p.feed(as_span(bad), ec);
        CHECK(ec == websocket_error::bad_http_response);
    }
    // A status line without a reason phrase is accepted.
    std::string ok = "HTTP/1.1 101\r\n" + up + accept + "\r\n";
    ws::http_response_parser p;
    std::error_code ec;
    CHECK(p.feed(as_span(ok), ec) == ok.size());
    CHECK_FALSE(ec);
    CHECK(p.status() == 101);
    CHECK(p.reason().empty());
    CHECK_FALSE(ws::validate_response(p, key, ""));
}

// ---------------------------------------------------------------------------------
// Frames

TEST_CASE("websocket frames of RFC 6455 section 5.7 parse and encode", "[websocket]") {
    // A single-frame unmasked text message (server to client).
    auto hello = bytes_of({0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f});
    CHECK(frame(ws::opcode::text, true, "Hello") == hello);
    auto r = parse(ws::role::client, hello);
    REQUIRE_FALSE(r.ec);
    REQUIRE(r.events.size() == 1);
    CHECK(r.events[0] == ev(ws::opcode::text, "Hello"));
    // The server refuses it: clients must mask.
    CHECK(parse(ws::role::server, hello).ec == websocket_error::unmasked_frame);

    // A single-frame masked text message (client to server).
    auto masked = bytes_of({0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58});
    CHECK(frame(ws::opcode::text, true, "Hello", rfc_mask) == masked);
    r = parse(ws::role::server, masked);
    REQUIRE_FALSE(r.ec);
    REQUIRE(r.events.size() == 1);
    CHECK(r.events[0] == ev(ws::opcode::text, "Hello"));
    CHECK(parse(ws::role::client, masked).ec == websocket_error::masked_frame);

    // A fragmented unmasked text message.
    auto fragmented = bytes_of({0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f});
    CHECK(cat({frame(ws::opcode::text, false, "Hel"),
               frame(ws::opcode::continuation, true, "lo")}) == fragmented);
    r = parse(ws::role::client, fragmented);
    REQUIRE_FALSE(r.ec);
    REQUIRE(r.events.size() == 1);
    CHECK(r.events[0] == ev(ws::opcode::text, "Hello"));

    // Unmasked ping, masked pong.
    auto ping = bytes_of({0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f});
    CHECK(frame(ws::opcode::ping, true, "Hello") == ping);
    r = parse(ws::role::client, ping);
    REQUIRE(r.events.size() == 1);
    CHECK(r.events[0] == ev(ws::opcode::ping, "Hello"));
    auto pong = bytes_of({0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58});
    CHECK(frame(ws::opcode::pong, true, "Hello", rfc_mask) == pong);
    r = parse(ws::role::server, pong);
    REQUIRE(r.events.size() == 1);
    CHECK(r.events[0] == ev(ws::opcode::pong, "Hello"));

    // 256 bytes binary in a single unmasked frame: 16-bit length.
    std::string p256(256, '\0');
    for (std::size_t i = 0; i < p256.size(); ++i)
        p256[i] = static_cast<char>(i);
    auto b256 = frame(ws::opcode::binary, true, p256);
    REQUIRE(b256.size() == 4 + 256);
    CHECK(std::vector<std::byte>(b256.begin(), b256.begin() + 4) ==
          bytes_of({0x82, 0x7E, 0x01, 0x00}));
    r = parse(ws::role::client, b256);
    REQUIRE(r.events.size() == 1);
    CHECK(r.events[0] == ev(ws::opcode::binary, p256));

    // 64 KiB binary in a single unmasked frame: 64-bit length.
    std::string p64k(65536, '\0');
    for (std::size_t i = 0; i < p64k.size(); ++i)
        p64k[i] = static_cast<char>(i * 7);
    auto b64k = frame(ws::opcode::binary, true, p64k);
    REQUIRE(b64k.size() == 10 + 65536);
    CHECK(std::vector<std::byte>(b64k.begin(), b64k.begin() + 10) ==
          bytes_of({0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0}));
    r = parse(ws::role::client, b64k);
    REQUIRE(r.events.size() == 1);
    CHECK(r.events[0] == ev(ws::opcode::binary, p64k));
    // The same, masked, byte by byte.
    auto m64k = frame(ws::opcode::binary, true, p64k, rfc_mask);
    r = parse(ws::role::server, m64k, 1);
    REQUIRE_FALSE(r.ec);
    REQUIRE(r.events.size() == 1);
    CHECK(r.events[0].payload == p64k);
}

TEST_CASE("websocket frame header writer picks the shortest length form", "[websocket]") {
    std::array<std::byte, ws::max_frame_header_size> h;
    CHECK(ws::write_frame_header(h, ws::opcode::binary, true, 125) == 2);
    CHECK(ws::write_frame_header(h, ws::opcode::binary, true, 126) == 4);
    CHECK(ws::write_frame_header(h, ws::opcode::binary, true, 65535) == 4);
    CHECK(ws::write_frame_header(h, ws::opcode::binary, true, 65536) == 10);
    CHECK(ws::write_frame_header(h, ws::opcode::binary, false, 65536, rfc_mask) == 14);
    CHECK(h[0] == std::byte{0x02});
    CHECK(h[1] == std::byte{0xff});
    CHECK(ws::write_frame_header(h, ws::opcode::text, true, 0, std::nullopt, 4) == 2);
    CHECK(h[0] == std::byte{0xC1});

    // Masking in pieces at the right offsets equals masking at once.
    std::vector<std::byte> a(1000), b;
    for (std::size_t i = 0; i < a.size(); ++i)
        a[i] = static_cast<std::byte>(i * 13);
    b = a;
    ws::apply_mask(a, rfc_mask);
    std::size_t pos = 0;
    for (std::size_t n : {1, 2, 3, 7, 8, 9, 15, 100, 855}) {
        ws::apply_mask(std::span<std::byte>(b).subspan(pos, n), rfc_mask, pos);
        pos += n;
    }
    REQUIRE(pos == b.size());
    CHECK(a == b);
}

TEST_CASE("websocket parser gives the same result byte by byte as at once", "[websocket]") {
    std::mt19937 rng(1234);
    for (ws::role r : {ws::role::client, ws::role::server}) {
        // Messages of many sizes, some fragmented, with control frames between fragments.
        std::vector<std::byte> wire;
        std::vector<event> expected;
        for (int m = 0; m < 60; ++m) {
            std::size_t size = (m % 7 == 0) ? 70000 : rng() % 400;
            std::string payload(size, 'x');
            bool text = m % 2 == 0;
            for (auto& c : payload)
                c = text ? static_cast<char>('a' + rng() % 26) : static_cast<char>(rng());
            if (text && size > 4)
                payload.replace(size / 2, 2, "\xc3\xa9"); // é, maybe split across fragments
            std::size_t pieces = 1 + rng() % 4;
            std::size_t at = 0;
            for (std::size_t i = 0; i < pieces; ++i) {
                std::size_t n = i + 1 == pieces ? size - at : std::min(size - at, rng() % 200);
                auto op = i == 0 ? (text ? ws::opcode::text : ws::opcode::binary)
                                 : ws::opcode::continuation;
                std::optional<ws::mask_key> mask;
                if (r == ws::role::server)
                    mask = ws::mask_key{std::byte(rng()), std::byte(rng()), std::byte(rng()),
                                        std::byte(rng())};
                ws::append_frame(wire, op, i + 1 == pieces,
                                 as_span(std::string_view(payload).substr(at, n)), mask);
                at += n;
                if (i + 1 < pieces && rng() % 2) {
                    std::string ping = "p" + std::to_string(m);
                    ws::append_frame(wire, ws::opcode::ping, true, as_span(ping), mask);
                    expected.push_back(ev(ws::opcode::ping, ping));
                }
            }
            expected.push_back(ev(text ? ws::opcode::text : ws::opcode::binary, payload));
        }
        std::vector<std::byte> close;
        std::array<std::byte, ws::max_control_payload> cp;
        std::error_code ec;
        auto n = ws::write_close_payload(cp, 4000, "bye \xe2\x9c\x93", ec);
        REQUIRE_FALSE(ec);
        std::optional<ws::mask_key> mask;
        if (r == ws::role::server)
            mask = rfc_mask;
        ws::append_frame(wire, ws::opcode::close, true, std::span(cp).first(n), mask);
        expected.push_back(
            ev(ws::opcode::close, as_string(std::span(cp).first(n)), 4000, "bye \xe2\x9c\x93"));
        // Bytes after the close are ignored.
        ws::append_frame(wire, ws::opcode::text, true, as_span("ignored"), mask);

        auto whole = parse(r, wire);
        REQUIRE_FALSE(whole.ec);
        CHECK(whole.consumed == wire.size());
        REQUIRE(whole.events.size() == expected.size());
        CHECK(whole.events == expected);
        for (std::size_t chunk : {1, 2, 3, 5, 13, 1000}) {
            INFO("chunk " << chunk);
            auto pieces = parse(r, wire, chunk);
            REQUIRE_FALSE(pieces.ec);
            CHECK(pieces.events == expected);
        }
    }
}

TEST_CASE("websocket parser fails bad frames with the right close code", "[websocket]") {
    using ws::opcode;
    auto C = ws::role::client; // receives unmasked frames
    struct bad_case {
        const char* what;
        std::vector<std::byte> wire;
        websocket_error error;
        std::uint16_t close;
        ws::parser_settings settings = {};
    };
    auto close_frame = [](std::vector<std::byte> payload) {
        std::vector<std::byte> f;
        ws::append_frame(f, opcode::close, true, payload);
        return f;
    };
    auto code = [](std::uint16_t c) {
        return bytes_of({c >> 8, c & 0xff});
    };
    ws::parser_settings small;
    small.max_message_size = 1000;
    std::vector<bad_case> cases = {
        {"RSV1", frame(opcode::text, true, "a", std::nullopt, 4), websocket_error::reserved_bits,
         1002},
        {"RSV3", frame(opcode::binary, true, "a", std::nullopt, 1), websocket_error::reserved_bits,
         1002},
        {"opcode 3", bytes_of({0x83, 0x00}), websocket_error::unknown_opcode, 1002},
        {"opcode 0xB", bytes_of({0x8B, 0x00}), websocket_error::unknown_opcode, 1002},
        {"ping without FIN", bytes_of({0x09, 0x00}), websocket_error::fragmented_control, 1002},
        {"ping of 126 bytes", frame(opcode::ping, true, std::string(126, 'p')),
         websocket_error::control_too_large, 1002},
        {"close of 126 bytes", bytes_of({0x88, 0x7E, 0x00, 0x7E}),
         websocket_error::control_too_large, 1002},
        {"16-bit length below 126", bytes_of({0x82, 0x7E, 0x00, 0x7D}),
         websocket_error::non_minimal_length, 1002},
        {"64-bit length below 65536", bytes_of({0x82, 0x7F, 0, 0, 0, 0, 0, 0, 0xff, 0xff}),
         websocket_error::non_minimal_length, 1002},
        {"64-bit length with the top bit", bytes_of({0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0}),
         websocket_error::length_too_large, 1002},
        {"continuation first", frame(opcode::continuation, true, "a"),
         websocket_error::unexpected_continuation, 1002},
        {"text inside a fragmented message",
         cat({frame(opcode::text, false, "a"), frame(opcode::text, true, "b")}),
         websocket_error::expected_continuation, 1002},
        {"close of one byte", close_frame(bytes_of({0x03})), websocket_error::bad_close_payload,
         1002},
        {"close code 999", close_frame(code(999)), websocket_error::bad_close_code, 1002},
        {"close code 1004", close_frame(code(1004)), websocket_error::bad_close_code, 1002},
        {"close code 1005", close_frame(code(1005)), websocket_error::bad_close_code, 1002},
        {"close code 1006", close_frame(code(1006)), websocket_error::bad_close_code, 1002},
        {"close code 1015", close_frame(code(1015)), websocket_error::bad_close_code, 1002},
        {"close code 2999", close_frame(code(2999)), websocket_error::bad_close_code, 1002},
        {"close code 5000", close_frame(code(5000)), websocket_error::bad_close_code, 1002},
        {"close reason not UTF-8", close_frame(cat({code(1000), bytes_of({0xff})})),
         websocket_error::invalid_utf8, 1007},
        {"overlong", frame(opcode::text, true, "\xc0\x80"), websocket_error::invalid_utf8, 1007},
        {"surrogate", frame(opcode::text, true, "\xed\xa0\x80"), websocket_error::invalid_utf8,
         1007},
        {"above U+10FFFF", frame(opcode::text, true, "\xf4\x90\x80\x80"),
         websocket_error::invalid_utf8, 1007},
        {"truncated sequence at the end",
         cat({frame(opcode::text, false, "ok"), frame(opcode::continuation, true, "\xe2\x82")}),
         websocket_error::invalid_utf8, 1007},
        {"one frame over the cap", frame(opcode::binary, true, std::string(1001, 'x')),
         websocket_error::message_too_large, 1009, small},
        {"fragments over the cap",
         cat({frame(opcode::binary, false, std::string(600, 'x')),
              frame(opcode::continuation, true, std::string(401, 'x'))}),
         websocket_error::message_too_large, 1009, small},
    };
    for (auto& c : cases) {
        INFO(c.what);
        for (std::size_t chunk : {std::size_t{0}, std::size_t{1}}) {
            auto r = parse(C, c.wire, chunk, c.settings);
            CHECK(r.ec == c.error);
            CHECK(ws::close_code_for(r.ec) == c.close);
            CHECK(r.ec == peerlink::condition::malformed_input);
        }
    }
    // The cap fails as soon as the header announces too much, before the payload.
    ws::frame_parser p(C, small);
    std::error_code ec;
    auto hdr = bytes_of({0x82, 0x7E, 0x03, 0xE9}); // 1001 bytes
    CHECK(p.feed(hdr, ec) == hdr.size());
    CHECK(ec == websocket_error::message_too_large);
    CHECK(p.error() == websocket_error::message_too_large);
    // A failed parser stays failed.
    std::error_code again;
    CHECK(p.feed(frame(opcode::text, true, "a"), again) == 0);
    CHECK(again == websocket_error::message_too_large);
    // Invalid UTF-8 fails fast, in the first fragment.
    ws::frame_parser q(C);
    auto first = frame(opcode::text, false, "ab\xff");
    q.feed(first, ec);
    CHECK(ec == websocket_error::invalid_utf8);
    // A negotiated RSV bit is accepted.
    ws::parser_settings rsv;
    rsv.allowed_rsv = 4;
    auto ok = parse(C, frame(opcode::text, true, "a", std::nullopt, 4), 0, rsv);
    CHECK_FALSE(ok.ec);
    CHECK(ok.events.size() == 1);
    // Exactly the cap is fine.
    auto at_cap = parse(C, frame(opcode::binary, true, std::string(1000, 'x')), 0, small);
    CHECK_FALSE(at_cap.ec);
    CHECK(at_cap.events.size() == 1);
    CHECK(ws::close_code_for(make_error_code(peerlink::error::crypto_failure)) == 1011);
}

TEST_CASE("websocket close frames report codes and reasons", "[websocket]") {
    auto C = ws::role::client;
    auto r = parse(C, bytes_of({0x88, 0x00}));
    REQUIRE(r.events.size() == 1);
    CHECK(r.events[0].code == ws::close_code::no_status);
    CHECK(r.events[0].reason.empty());
    for (std::uint16_t code : {1000, 1001, 1003, 1007, 1011, 1014, 3000, 4999}) {
        INFO(code);
        std::vector<std::byte> f;
        auto payload = bytes_of({code >> 8, code & 0xff, 'o', 'k'});
        ws::append_frame(f, ws::opcode::close, true, payload);
        r = parse(C, f);
        REQUIRE_FALSE(r.ec);
        REQUIRE(r.events.size() == 1);
        CHECK(r.events[0].code == code);
        CHECK(r.events[0].reason == "ok");
    }
    std::array<std::byte, ws::max_control_payload> out;
    std::error_code ec;
    CHECK(ws::write_close_payload(out, 1005, "", ec) == 0);
    CHECK(ec == websocket_error::bad_close_code);
    CHECK(ws::write_close_payload(out, 1000, std::string(124, 'r'), ec) == 0);
    CHECK(ec == websocket_error::close_reason_too_long);
    CHECK(ws::write_close_payload(out, 1000, "\xff", ec) == 0);
    CHECK(ec == websocket_error::invalid_utf8);
    CHECK(ws::write_close_payload(out, 1000, std::string(123, 'r'), ec) == 125);
    CHECK_FALSE(ec);
    CHECK(out[0] == std::byte{0x03});
    CHECK(out[1] == std::byte{0xE8});
}

TEST_CASE("websocket parser hands out one event at a time", "[websocket]") {
    auto wire = cat({frame(ws::opcode::text, true, "one"), frame(ws::opcode::text, true, "two")});
    ws::frame_parser p(ws::role::client);
    std::error_code ec;
    auto n = p.feed(wire, ec);
    CHECK(n == 5);                                      // stops after the first message
    CHECK(p.feed(std::span(wire).subspan(n), ec) == 0); // nothing while the event waits
    auto e = p.poll_event();
    REQUIRE(e);
    CHECK(as_string(e->payload) == "one");
    CHECK_FALSE(p.poll_event());
    CHECK(p.feed(std::span(wire).subspan(n), ec) == 5);
    e = p.poll_event();
    REQUIRE(e);
    CHECK(as_string(e->payload) == "two");
    // An empty message completes with its header.
    auto empty = frame(ws::opcode::binary, true, "");
    CHECK(p.feed(empty, ec) == 2);
    e = p.poll_event();
    REQUIRE(e);
    CHECK(e->op == ws::opcode::binary);
    CHECK(e->payload.empty());
}

TEST_CASE("websocket UTF-8 validator follows RFC 3629", "[websocket]") {
    for (std::string ok :
         {"", "plain ascii text longer than eight", "\xc2\x80", "\xdf\xbf", "\xe0\xa0\x80",
          "\xed\x9f\xbf", "\xee\x80\x80", "\xef\xbf\xbf", "\xf0\x90\x80\x80", "\xf4\x8f\xbf\xbf",
          "\xce\xba\xe1\xbd\xb9\xcf\x83"}) {
        INFO(ok);
        CHECK(ws::is_valid_utf8(as_span(ok)));
        // Split at every point: still valid.
        for (std::size_t i = 0; i <= ok.size(); ++i) {
            ws::utf8_validator v;
            CHECK(v.feed(as_span(ok).first(i)));
            CHECK(v.feed(as_span(ok).subspan(i)));
            CHECK(v.complete());
        }
    }
    for (std::string bad :
         {"\x80", "\xc1\xbf", "\xc2", "\xe0\x9f\xbf", "\xed\xa0\x80", "\xf0\x8f\xbf\xbf",
          "\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xff", "abcdefgh\xfe", "\xe2\x82"}) {
        INFO(bad);
        CHECK_FALSE(ws::is_valid_utf8(as_span(bad)));
    }
}

TEST_CASE("ws_url parses ws and wss URLs and refuses bad ones", "[websocket]") {
    std::error_code ec;
    auto u = peerlink::ws_url::parse("ws://example.com/chat?x=1", ec);
    REQUIRE(u);
    CHECK_FALSE(u->secure);
    CHECK(u->host == "example.com");
    CHECK(u->port == 80);
    CHECK(u->target == "/chat?x=1");
    CHECK(u->host_header() == "example.com");
    CHECK(u->to_string() == "ws://example.com/chat?x=1");

    u = peerlink::ws_url::parse("WSS://[::1]:8443", ec);
    REQUIRE(u);
    CHECK(u->secure);
    CHECK(u->host == "::1");
    CHECK(u->host_is_ipv6());
    CHECK(u->port == 8443);
    CHECK(u->target == "/");
    CHECK(u->host_header() == "[::1]:8443");
    CHECK(u->to_string() == "wss://[::1]:8443/");

    u = peerlink::ws_url::parse("wss://127.0.0.1?q", ec);
    REQUIRE(u);
    CHECK(u->port == 443);
    CHECK(u->target == "/?q");
    CHECK(u->host_header() == "127.0.0.1");
    u = peerlink::ws_url::parse("ws://h:65535/", ec);
    REQUIRE(u);
    CHECK(u->port == 65535);
    CHECK(peerlink::ws_url::parse(u->to_string(), ec) == u);

    for (const char* bad : {"",
                            "http://h/",
                            "ws:/h",
                            "ws://",
                            "ws:///path",
                            "ws://h:0/",
                            "ws://h:65536/",
                            "ws://h:/",
                            "ws://h:8x/",
                            "ws://h:+80/",
                            "ws://user@h/",
                            "ws://h/#frag",
                            "ws://[::1/",
                            "ws://[::1]x/",
                            "ws://[1.2.3.4]/",
                            "ws://[fe80::1%251]/",
                            "ws://::1/",
                            "ws://h h/",
                            "ws://h/a b",
                            "ws://300.1.1.1/",
                            "ws://h\r\n/",
                            "ws://[::1]:/"}) {
        INFO(bad);
        CHECK_FALSE(peerlink::ws_url::parse(bad, ec));
        CHECK(ec == websocket_error::bad_url);
        CHECK(ec == peerlink::condition::malformed_input);
    }
}
