// Arithmetic in GF(2^8) with the polynomial x^8 + x^4 + x^3 + x^2 + 1 (0x11d) and
// generator 2, the field of klauspost/reedsolomon (and so of kcp-go), Backblaze's
// JavaReedSolomon and ISA-L. Tables are built at compile time.
#ifndef PEERLINK_DETAIL_GF256_HPP
#define PEERLINK_DETAIL_GF256_HPP

#include <array>
#include <cstddef>
#include <cstdint>

namespace peerlink::detail::gf256 {

inline constexpr unsigned polynomial = 0x11d;

struct log_exp_tables {
    // exp is doubled so that exp[log a + log b] needs no reduction modulo 255.
    std::array<std::uint8_t, 512> exp{};
    std::array<std::uint8_t, 256> log{};
};

constexpr log_exp_tables make_log_exp_tables() noexcept {
    log_exp_tables t{};
    unsigned x = 1;
    for (unsigned i = 0; i < 255; ++i) {
        t.exp[i] = static_cast<std::uint8_t>(x);
        t.exp[i + 255] = static_cast<std::uint8_t>(x);
        t.log[x] = static_cast<std::uint8_t>(i);
        x <<= 1;
        if (x & 0x100)
            x ^= polynomial;
    }
    return t;
}

inline constexpr log_exp_tables tables = make_log_exp_tables();

constexpr std::uint8_t mul(std::uint8_t a, std::uint8_t b) noexcept {
    if (a == 0 || b == 0)
        return 0;
    return tables.exp[tables.log[a] + tables.log[b]];
}

/// `b` must not be 0.
constexpr std::uint8_t div(std::uint8_t a, std::uint8_t b) noexcept {
    if (a == 0)
        return 0;
    return tables.exp[tables.log[a] + 255 - tables.log[b]];
}

/// `a` must not be 0.
constexpr std::uint8_t inv(std::uint8_t a) noexcept {
    return div(1, a);
}

/// a^n, with 0^0 = 1 as klauspost's galExp (the Vandermonde matrix's first row needs it).
constexpr std::uint8_t pow(std::uint8_t a, std::size_t n) noexcept {
    if (n == 0)
        return 1;
    if (a == 0)
        return 0;
    return tables.exp[(tables.log[a] * n) % 255];
}

/// The split-nibble table of `c`: c*x = t[x & 15] ^ t[16 + (x >> 4)]. This is what
/// PSHUFB looks up, 16 entries per instruction.
constexpr void nibble_table(std::uint8_t c, std::uint8_t* out32) noexcept {
    for (unsigned i = 0; i < 16; ++i) {
        out32[i] = mul(c, static_cast<std::uint8_t>(i));
        out32[16 + i] = mul(c, static_cast<std::uint8_t>(i << 4));
    }
}

/// Multiplication by `c` as the 8x8 bit matrix GF2P8AFFINEQB takes: bit i of the
/// result is the parity of (byte 7 - i of the matrix) AND x. Multiplication by a
/// constant is linear over GF(2), so any polynomial works, unlike GF2P8MULB (0x11b).
constexpr std::uint64_t affine_matrix(std::uint8_t c) noexcept {
    std::uint64_t m = 0;
    for (unsigned i = 0; i < 8; ++i) {
        unsigned row = 0;
        for (unsigned j = 0; j < 8; ++j)
            row |= ((mul(c, static_cast<std::uint8_t>(1u << j)) >> i) & 1u) << j;
        m |= static_cast<std::uint64_t>(row) << (8 * (7 - i));
    }
    return m;
}

/// Inverts the n x n matrix `m` (row-major) in place by Gauss-Jordan elimination,
/// using `work` (2 n^2 bytes). @returns false if `m` is singular (then `m` is unchanged).
inline bool invert(std::uint8_t* m, std::uint8_t* work, std::size_t n) noexcept {
    const std::size_t w = 2 * n;
    for (std::size_t r = 0; r < n; ++r)
        for (std::size_t c = 0; c < n; ++c) {
            work[r * w + c] = m[r * n + c];
            work[r * w + n + c] = r == c ? 1 : 0;
        }
    for (std::size_t r = 0; r < n; ++r) {
        if (work[r * w + r] == 0) {
            std::size_t below = r + 1;
            while (below < n && work[below * w + r] == 0)
                ++below;
            if (below == n)
                return false;
            for (std::size_t c = 0; c < w; ++c) {
                auto t = work[r * w + c];
                work[r * w + c] = work[below * w + c];
                work[below * w + c] = t;
            }
        }
        if (auto pivot = work[r * w + r]; pivot != 1) {
            auto scale = inv(pivot);
            for (std::size_t c = 0; c < w; ++c)
                work[r * w + c] = mul(work[r * w + c], scale);
        }
        for (std::size_t other = 0; other < n; ++other) {
            auto f = work[other * w + r];
            if (other == r || f == 0)
                continue;
            for (std::size_t c = 0; c < w; ++c)
                work[other * w + c] ^= mul(f, work[r * w + c]);
        }
    }
    for (std::size_t r = 0; r < n; ++r)
        for (std::size_t c = 0; c < n; ++c)
            m[r * n + c] = work[r * w + n + c];
    return true;
}

} // namespace peerlink::detail::gf256

#endif // PEERLINK_DETAIL_GF256_HPP
