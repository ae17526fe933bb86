// libFuzzer target: KCP segments. Arbitrary bytes are (1) decoded as the
// segments of one datagram, each of which must stay inside the input and
// re-encode to the same header bytes, and (2) fed to a kcp_core, as a datagram
// and as a stream of datagrams around its own traffic, which must never crash,
// never write a datagram over its MTU and never hand out more than asked for.
#include <peerlink/proto/kcp.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <cstring>

namespace {

using namespace std::chrono_literals;

void check(bool ok) {
    if (!ok)
        __builtin_trap();
}

void decode_all(std::span<const std::byte> in) {
    std::error_code ec;
    auto rest = in;
    while (!rest.empty()) {
        auto seg = peerlink::kcp_decode_segment(rest, ec);
        if (!seg) {
            check(!!ec);
            return;
        }
        check(seg->payload.size() == seg->header.len);
        check(seg->payload.data() == rest.data() + peerlink::kcp_header_size);
        check(seg->wire_size() <= rest.size());
        std::array<std::byte, peerlink::kcp_header_size> header{};
        check(peerlink::kcp_encode_header(header, seg->header));
        check(std::memcmp(header.data(), rest.data(), header.size()) == 0);
        rest = rest.subspan(seg->wire_size());
    }
}

std::array<std::byte, 65536> out_buf;

void drain(peerlink::kcp_core& k) {
    for (int i = 0; i < 10000; ++i) {
        std::size_t n = k.poll_transmit(out_buf);
        if (n == 0)
            break;
        check(n <= k.settings().mtu);
    }
    std::error_code ec;
    for (int i = 0; i < 1000 && k.readable(); ++i) {
        const std::size_t want = k.peek_size();
        std::size_t n = k.receive(std::span(out_buf).first(1000), ec);
        check(n <= 1000);
        if (ec)
            break;
        if (!k.settings().stream)
            check(n == want);
    }
}

void run_core(std::span<const std::byte> in) {
    // The last byte picks the settings, so a seed that is a plain datagram still
    // decodes as one.
    const std::uint8_t flags = in.empty() ? 0 : std::to_integer<std::uint8_t>(in.back());
    peerlink::kcp_settings s;
    s.conv = peerlink::kcp_peek_conv(in).value_or(0);
    s.stream = flags & 1;
    s.nodelay = (flags >> 1) & 3;
    s.rcv_wnd = (flags & 8) ? 4 : 128;
    s.snd_wnd = (flags & 16) ? 2 : 32;
    s.mtu = (flags & 32) ? 60 : 1400;
    s.ack_nodelay = flags & 64;
    s.no_cwnd = flags & 128;
    s.resend = 2;
    s.dead_link = 6;
    s.interval_ms = 10;

    const peerlink::time_point t0 = peerlink::time_point{} + 1h;
    peerlink::kcp_core k(s, t0);
    // Some traffic of its own, so that ACKs in the input find segments in flight.
    std::array<std::byte, 3000> msg{};
    (void)k.send(std::span(msg).first(std::min<std::size_t>(in.size(), k.send_capacity())));
    k.handle_timeout(t0);
    drain(k);

    auto now = t0 + 5ms;
    (void)k.input(in, now);
    drain(k);

    // Then the input as a stream of datagrams: u16 little-endian length, bytes.
    auto rest = in;
    for (int i = 0; i < 64 && rest.size() >= 2; ++i) {
        std::size_t n =
            std::to_integer<std::size_t>(rest[0]) | (std::to_integer<std::size_t>(rest[1]) << 8);
        rest = rest.subspan(2);
        n = std::min(n, rest.size());
        now += 3ms;
        (void)k.input(rest.first(n), now);
        rest = rest.subspan(n);
        if (auto t = k.poll_timeout(); t && *t <= now)
            k.handle_timeout(now);
        drain(k);
        (void)k.send(std::span(msg).first(n % msg.size()));
    }

    // Let the timers run for a while.
    for (int i = 0; i < 64; ++i) {
        auto t = k.poll_timeout();
        if (!t)
            break;
        now = std::max(now, *t);
        k.handle_timeout(now);
        drain(k);
    }
    (void)k.stats();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::span<const std::byte> in(reinterpret_cast<const std::byte*>(data), size);
    decode_all(in);
    run_core(in);
    return 0;
}
