// libFuzzer target: the HTTP head parsers of the WebSocket handshake (request on
// the server side, response on the client side) and ws_url accept or refuse any
// bytes without reading out of bounds; the request parser gives the same result
// byte by byte as at once; an accepted upgrade gets a 101 that the client-side
// checks accept; a URL that parses prints back to an equal URL.
#include <peerlink/proto/websocket.hpp>

#include <string>
#include <vector>

namespace {

namespace ws = peerlink::websocket;

struct outcome {
    std::size_t used = 0;
    std::error_code ec;
    bool done = false;
    std::string method, target;
    std::vector<std::pair<std::string, std::string>> headers;
    std::error_code upgrade;
    bool operator==(const outcome&) const = default;
};

outcome parse_request(std::span<const std::byte> in, std::size_t piece) {
    ws::http_request_parser p(1024);
    outcome o;
    while (o.used < in.size() && !p.done()) {
        auto n = p.feed(in.subspan(o.used, std::min(piece, in.size() - o.used)), o.ec);
        o.used += n;
        if (o.ec)
            break;
        if (n == 0 && !p.done())
            __builtin_trap(); // stalled
    }
    o.done = p.done();
    if (o.done) {
        o.method = p.method();
        o.target = p.target();
        for (auto& h : p.headers())
            o.headers.emplace_back(h.name, h.value);
        o.upgrade = p.check_upgrade();
        if (!o.upgrade) {
            std::string resp;
            auto key = *p.header("Sec-WebSocket-Key");
            if (ws::write_accept_response(resp, key))
                __builtin_trap();
            ws::http_response_parser rp;
            std::error_code ec;
            auto bytes = std::span<const std::byte>(reinterpret_cast<const std::byte*>(resp.data()),
                                                    resp.size());
            if (rp.feed(bytes, ec) != resp.size() || ec || !rp.done() ||
                ws::validate_response(rp, key, ""))
                __builtin_trap();
        }
        if (o.used > 1024)
            __builtin_trap(); // over the cap
    }
    return o;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::span<const std::byte> in(reinterpret_cast<const std::byte*>(data), size);
    auto whole = parse_request(in, in.size() + 1);
    auto bytes = parse_request(in, 1);
    if (!(whole == bytes))
        __builtin_trap();

    ws::http_response_parser rp(1024);
    std::error_code ec;
    rp.feed(in, ec);
    if (rp.done())
        (void)ws::validate_response(rp, "dGhlIHNhbXBsZSBub25jZQ==", "chat");

    std::string_view text(reinterpret_cast<const char*>(data), size);
    if (auto u = peerlink::ws_url::parse(text, ec)) {
        std::error_code ec2;
        if (peerlink::ws_url::parse(u->to_string(), ec2) != u)
            __builtin_trap();
    }
    return 0;
}
