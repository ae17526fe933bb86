// libFuzzer target: DNS unwrapping (the dns_disguise codec) must reject or accept any bytes
// without reading out of bounds. A rejected message is left unchanged. An accepted one
// passes the cheap is_wrapped test, and re-wrapping its payload under its question gives a
// message of the same size that unwraps to the same payload and question.
#include <peerlink/proto/dns_wrap.hpp>

#include <cstring>
#include <vector>

namespace {

namespace dns = peerlink::dns;

void check(std::span<const std::byte> in, bool response) {
    static const dns::params cfg;
    // Room for a re-wrap on both sides, whatever the payload size.
    const std::size_t room = 2 * dns::txt_strings(in.size()) + 2 * dns::max_overhead;
    std::vector<std::byte> storage(in.size() + 2 * room);
    peerlink::packet_buffer p(storage, room);
    p.append(in);
    dns::question q;
    auto ec = response ? dns::unwrap_response(p, cfg, q) : dns::unwrap_query(p, cfg, q);
    if (ec) {
        if (p.size() != in.size() || p.headroom() != room ||
            (!in.empty() && std::memcmp(p.data().data(), in.data(), in.size()) != 0))
            __builtin_trap();
        return;
    }
    if (!dns::is_wrapped(in))
        __builtin_trap();
    const std::vector<std::byte> payload(p.data().begin(), p.data().end());
    ec = response ? dns::wrap_response(p, q, cfg) : dns::wrap_query(p, q, cfg);
    if (ec || p.size() != in.size() || !dns::is_wrapped(p.data()))
        __builtin_trap();
    dns::question again;
    ec = response ? dns::unwrap_response(p, cfg, again) : dns::unwrap_query(p, cfg, again);
    if (ec || !(again == q) || p.size() != payload.size() ||
        (!payload.empty() && std::memcmp(p.data().data(), payload.data(), payload.size()) != 0))
        __builtin_trap();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::span<const std::byte> in(reinterpret_cast<const std::byte*>(data), size);
    check(in, false);
    check(in, true);
    return 0;
}
