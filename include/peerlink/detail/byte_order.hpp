// Loads and stores of fixed-size integers in a given byte order, over bytes that
// need not be aligned. Wire codecs use these and nothing else for integers.
#ifndef PEERLINK_DETAIL_BYTE_ORDER_HPP
#define PEERLINK_DETAIL_BYTE_ORDER_HPP

#include <concepts>
#include <cstddef>
#include <cstdint>

namespace peerlink::detail {

template <std::unsigned_integral T>
constexpr T load_be(const std::byte* p) noexcept {
    T v = 0;
    for (std::size_t i = 0; i < sizeof(T); ++i)
        v = static_cast<T>((v << 8) | static_cast<T>(p[i]));
    return v;
}

template <std::unsigned_integral T>
constexpr void store_be(std::byte* p, T v) noexcept {
    for (std::size_t i = sizeof(T); i-- > 0;) {
        p[i] = static_cast<std::byte>(v & 0xff);
        v = static_cast<T>(v >> 8);
    }
}

template <std::unsigned_integral T>
constexpr T load_le(const std::byte* p) noexcept {
    T v = 0;
    for (std::size_t i = sizeof(T); i-- > 0;)
        v = static_cast<T>((v << 8) | static_cast<T>(p[i]));
    return v;
}

template <std::unsigned_integral T>
constexpr void store_le(std::byte* p, T v) noexcept {
    for (std::size_t i = 0; i < sizeof(T); ++i) {
        p[i] = static_cast<std::byte>(v & 0xff);
        v = static_cast<T>(v >> 8);
    }
}

} // namespace peerlink::detail

#endif // PEERLINK_DETAIL_BYTE_ORDER_HPP
