// libFuzzer target: peerlink frame decoding must reject or accept any bytes
// without reading out of bounds, and a decoded control frame must re-encode to
// the same bytes.
#include <peerlink/proto/frame.hpp>

#include <cstring>
#include <variant>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    namespace fr = peerlink::frame;
    std::span<const std::byte> in(reinterpret_cast<const std::byte*>(data), size);
    std::error_code ec;
    auto f = fr::decode(in, ec);
    if (!f)
        return 0;
    std::byte storage[128];
    peerlink::packet_buffer p(storage, 0);
    std::visit(
        [&](const auto& v) {
            using T = std::decay_t<decltype(v)>;
            if constexpr (!std::is_same_v<T, fr::data> && !std::is_same_v<T, fr::reliable>) {
                if (fr::encode(p, v) || p.size() != size ||
                    std::memcmp(p.data().data(), data, size) != 0)
                    __builtin_trap();
            }
        },
        *f);
    return 0;
}
