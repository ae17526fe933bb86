// libFuzzer target: the WebSocket frame parser accepts or fails any bytes without
// reading out of bounds, gives the same events and error whether the bytes come at
// once or in pieces, and every message it delivers keeps the parser's promises
// (size cap, UTF-8 text, valid close codes) and survives an encode/parse round trip.
//
// Input: byte 0 picks the role (bit 0: server) and the piece size (bits 1-4); the
// rest is the wire.
#include <peerlink/proto/websocket.hpp>

#include <cstring>
#include <string>
#include <vector>

namespace {

namespace ws = peerlink::websocket;

struct seen {
    ws::opcode op;
    std::string payload;
    std::uint16_t code;
    bool operator==(const seen&) const = default;
};

constexpr std::size_t max_message = 4096;

std::error_code run(ws::role r, std::span<const std::byte> in, std::size_t piece,
                    std::vector<seen>& out) {
    ws::parser_settings s;
    s.max_message_size = max_message;
    ws::frame_parser p(r, s);
    std::error_code ec;
    std::size_t pos = 0;
    while (pos < in.size()) {
        auto chunk = in.subspan(pos, std::min(piece, in.size() - pos));
        auto used = p.feed(chunk, ec);
        pos += used;
        bool any = false;
        while (auto e = p.poll_event()) {
            any = true;
            out.push_back(
                {e->op,
                 std::string(reinterpret_cast<const char*>(e->payload.data()), e->payload.size()),
                 e->close_code});
            if (e->payload.size() > max_message)
                __builtin_trap();
            if (e->op == ws::opcode::text && !ws::is_valid_utf8(e->payload))
                __builtin_trap();
            if (e->op == ws::opcode::close && e->close_code != ws::close_code::no_status &&
                !ws::is_valid_close_code(e->close_code))
                __builtin_trap();
            if (e->op == ws::opcode::continuation)
                __builtin_trap();
        }
        if (ec)
            return ec;
        if (used == 0 && !any)
            __builtin_trap(); // stalled
    }
    return ec;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0)
        return 0;
    auto r = (data[0] & 1) ? ws::role::server : ws::role::client;
    std::size_t piece = 1 + ((data[0] >> 1) & 15);
    std::span<const std::byte> in(reinterpret_cast<const std::byte*>(data + 1), size - 1);

    std::vector<seen> whole, pieces;
    auto ec_whole = run(r, in, in.size() + 1, whole);
    auto ec_pieces = run(r, in, piece, pieces);
    if (ec_whole != ec_pieces || whole != pieces)
        __builtin_trap();
    if (ec_whole && ws::close_code_for(ec_whole) == ws::close_code::internal_error)
        __builtin_trap(); // every parser error has a protocol close code

    // Each message, written back as one frame by the other side, parses to itself.
    for (auto& m : whole) {
        if (m.op == ws::opcode::close)
            continue;
        std::vector<std::byte> wire;
        std::optional<ws::mask_key> mask;
        if (r == ws::role::server)
            mask = ws::mask_key{std::byte{1}, std::byte{2}, std::byte{3}, std::byte{4}};
        ws::append_frame(wire, m.op, true,
                         {reinterpret_cast<const std::byte*>(m.payload.data()), m.payload.size()},
                         mask);
        std::vector<seen> again;
        if (run(r, wire, wire.size(), again) || again.size() != 1 || again[0] != m)
            __builtin_trap();
    }
    return 0;
}
