// The hot loop of Reed-Solomon coding: a matrix of GF(2^8) coefficients times a
// set of equally long byte vectors. One scalar kernel and several SIMD kernels,
// each compiled for its instruction set with a target attribute (no global
// -mavx2 needed) and picked at run time from what the CPU has.
//
// - ssse3, avx2, avx512: split-nibble tables, one PSHUFB per nibble per
//   coefficient (the ISA-L / klauspost method).
// - gfni_avx2, gfni_avx512: one GF2P8AFFINEQB per coefficient, with the
//   multiplication expressed as a bit matrix (see gf256::affine_matrix).
//
// Every kernel computes out[o][i] = XOR over c of coef(o, c) * in[c][i], writing
// (not accumulating into) the outputs, and processes up to four outputs per pass
// over the inputs so the accumulators stay in registers. A length that is not a
// multiple of the vector width ends with one vector block that overlaps the
// previous one: it rewrites bytes with the same values, which is why inputs and
// outputs must not overlap.
#ifndef PEERLINK_DETAIL_GF256_KERNELS_HPP
#define PEERLINK_DETAIL_GF256_KERNELS_HPP

#include <peerlink/detail/gf256.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>

#if defined(__x86_64__) || defined(__i386__)
#define PEERLINK_GF256_X86 1
#include <immintrin.h>
#endif

namespace peerlink {

/// The GF(2^8) kernels; documented with `reed_solomon` in peerlink/proto/reed_solomon.hpp.
enum class gf_kernel { scalar, ssse3, avx2, avx512, gfni_avx2, gfni_avx512 };

} // namespace peerlink

namespace peerlink::detail::gf256 {

using kernel_id = gf_kernel;

inline constexpr kernel_id all_kernels[] = {kernel_id::scalar,    kernel_id::ssse3,
                                            kernel_id::avx2,      kernel_id::avx512,
                                            kernel_id::gfni_avx2, kernel_id::gfni_avx512};

// Coefficient tables of one product, row-major: entry (o, c) is output o, input c.
struct product_tables {
    const std::uint8_t* nibble = nullptr;  // 32 bytes per entry (gf256::nibble_table)
    const std::uint64_t* affine = nullptr; // one matrix per entry (gf256::affine_matrix)
    std::size_t inputs = 0;
    std::size_t outputs = 0;
};

using product_fn = void (*)(const product_tables&, const std::uint8_t* const* in,
                            std::uint8_t* const* out, std::size_t len) noexcept;

inline void product_scalar_range(const product_tables& t, const std::uint8_t* const* in,
                                 std::uint8_t* const* out, std::size_t begin,
                                 std::size_t end) noexcept {
    for (std::size_t o = 0; o < t.outputs; ++o) {
        std::uint8_t* dst = out[o];
        for (std::size_t c = 0; c < t.inputs; ++c) {
            const std::uint8_t* tab = t.nibble + (o * t.inputs + c) * 32;
            const std::uint8_t* src = in[c];
            if (c == 0) {
                for (std::size_t i = begin; i < end; ++i)
                    dst[i] = static_cast<std::uint8_t>(tab[src[i] & 15] ^ tab[16 + (src[i] >> 4)]);
            } else {
                for (std::size_t i = begin; i < end; ++i)
                    dst[i] ^= static_cast<std::uint8_t>(tab[src[i] & 15] ^ tab[16 + (src[i] >> 4)]);
            }
        }
    }
}

inline void product_scalar(const product_tables& t, const std::uint8_t* const* in,
                           std::uint8_t* const* out, std::size_t len) noexcept {
    product_scalar_range(t, in, out, 0, len);
}

#ifdef PEERLINK_GF256_X86

// The loops over vectors and outputs must be unrolled for the accumulators to live
// in registers; GCC does not unroll them at -O2 on its own.
#define PEERLINK_GF256_UNROLL _Pragma("GCC unroll 8")

// Each SIMD family: block<NB, U>() computes NB outputs over U vectors at `pos`;
// pass<NB>() walks the length; the product function splits the outputs into passes.

// --- SSSE3, 16 bytes per vector ---------------------------------------------------

template <int NB, int U>
__attribute__((target("ssse3"), always_inline)) inline void
ssse3_block(const std::uint8_t* tab, std::size_t n_in, const std::uint8_t* const* in,
            std::uint8_t* const* out, std::size_t pos) noexcept {
    const __m128i mask = _mm_set1_epi8(0x0f);
    __m128i acc[U][NB];
    PEERLINK_GF256_UNROLL
    for (int u = 0; u < U; ++u) {
        PEERLINK_GF256_UNROLL
        for (int o = 0; o < NB; ++o)
            acc[u][o] = _mm_setzero_si128();
    }
    for (std::size_t c = 0; c < n_in; ++c) {
        __m128i lo[U], hi[U];
        PEERLINK_GF256_UNROLL
        for (int u = 0; u < U; ++u) {
            __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in[c] + pos + 16 * u));
            lo[u] = _mm_and_si128(x, mask);
            hi[u] = _mm_and_si128(_mm_srli_epi64(x, 4), mask);
        }
        PEERLINK_GF256_UNROLL
        for (int o = 0; o < NB; ++o) {
            const std::uint8_t* e = tab + (o * n_in + c) * 32;
            __m128i tl = _mm_loadu_si128(reinterpret_cast<const __m128i*>(e));
            __m128i th = _mm_loadu_si128(reinterpret_cast<const __m128i*>(e + 16));
            PEERLINK_GF256_UNROLL
            for (int u = 0; u < U; ++u)
                acc[u][o] = _mm_xor_si128(acc[u][o], _mm_xor_si128(_mm_shuffle_epi8(tl, lo[u]),
                                                                   _mm_shuffle_epi8(th, hi[u])));
        }
    }
    PEERLINK_GF256_UNROLL
    for (int u = 0; u < U; ++u) {
        PEERLINK_GF256_UNROLL
        for (int o = 0; o < NB; ++o)
            _mm_storeu_si128(reinterpret_cast<__m128i*>(out[o] + pos + 16 * u), acc[u][o]);
    }
}

template <int NB>
__attribute__((target("ssse3"))) void
ssse3_pass(const std::uint8_t* tab, std::size_t n_in, const std::uint8_t* const* in,
           std::uint8_t* const* out, std::size_t len) noexcept {
    std::size_t pos = 0;
    for (; pos + 32 <= len; pos += 32)
        ssse3_block<NB, 2>(tab, n_in, in, out, pos);
    for (; pos + 16 <= len; pos += 16)
        ssse3_block<NB, 1>(tab, n_in, in, out, pos);
    if (pos < len)
        ssse3_block<NB, 1>(tab, n_in, in, out, len - 16);
}

__attribute__((target("ssse3"))) inline void product_ssse3(const product_tables& t,
                                                           const std::uint8_t* const* in,
                                                           std::uint8_t* const* out,
                                                           std::size_t len) noexcept {
    if (len < 16)
        return product_scalar(t, in, out, len);
    for (std::size_t o0 = 0; o0 < t.outputs; o0 += 4) {
        const std::uint8_t* tab = t.nibble + o0 * t.inputs * 32;
        switch (std::min<std::size_t>(4, t.outputs - o0)) {
        case 1:
            ssse3_pass<1>(tab, t.inputs, in, out + o0, len);
            break;
        case 2:
            ssse3_pass<2>(tab, t.inputs, in, out + o0, len);
            break;
        case 3:
            ssse3_pass<3>(tab, t.inputs, in, out + o0, len);
            break;
        default:
            ssse3_pass<4>(tab, t.inputs, in, out + o0, len);
            break;
        }
    }
}

// --- AVX2, 32 bytes per vector ----------------------------------------------------

template <int NB, int U>
__attribute__((target("avx2"), always_inline)) inline void
avx2_block(const std::uint8_t* tab, std::size_t n_in, const std::uint8_t* const* in,
           std::uint8_t* const* out, std::size_t pos) noexcept {
    const __m256i mask = _mm256_set1_epi8(0x0f);
    __m256i acc[U][NB];
    PEERLINK_GF256_UNROLL
    for (int u = 0; u < U; ++u) {
        PEERLINK_GF256_UNROLL
        for (int o = 0; o < NB; ++o)
            acc[u][o] = _mm256_setzero_si256();
    }
    for (std::size_t c = 0; c < n_in; ++c) {
        __m256i lo[U], hi[U];
        PEERLINK_GF256_UNROLL
        for (int u = 0; u < U; ++u) {
            __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(in[c] + pos + 32 * u));
            lo[u] = _mm256_and_si256(x, mask);
            hi[u] = _mm256_and_si256(_mm256_srli_epi64(x, 4), mask);
        }
        PEERLINK_GF256_UNROLL
        for (int o = 0; o < NB; ++o) {
            const std::uint8_t* e = tab + (o * n_in + c) * 32;
            __m256i tl =
                _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(e)));
            __m256i th = _mm256_broadcastsi128_si256(
                _mm_loadu_si128(reinterpret_cast<const __m128i*>(e + 16)));
            PEERLINK_GF256_UNROLL
            for (int u = 0; u < U; ++u)
                acc[u][o] =
                    _mm256_xor_si256(acc[u][o], _mm256_xor_si256(_mm256_shuffle_epi8(tl, lo[u]),
                                                                 _mm256_shuffle_epi8(th, hi[u])));
        }
    }
    PEERLINK_GF256_UNROLL
    for (int u = 0; u < U; ++u) {
        PEERLINK_GF256_UNROLL
        for (int o = 0; o < NB; ++o)
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(out[o] + pos + 32 * u), acc[u][o]);
    }
}

template <int NB>
__attribute__((target("avx2"))) void avx2_pass(const std::uint8_t* tab, std::size_t n_in,
                                               const std::uint8_t* const* in,
                                               std::uint8_t* const* out, std::size_t len) noexcept {
    std::size_t pos = 0;
    for (; pos + 64 <= len; pos += 64)
        avx2_block<NB, 2>(tab, n_in, in, out, pos);
    for (; pos + 32 <= len; pos += 32)
        avx2_block<NB, 1>(tab, n_in, in, out, pos);
    if (pos < len)
        avx2_block<NB, 1>(tab, n_in, in, out, len - 32);
}

__attribute__((target("avx2"))) inline void product_avx2(const product_tables& t,
                                                         const std::uint8_t* const* in,
                                                         std::uint8_t* const* out,
                                                         std::size_t len) noexcept {
    if (len < 32)
        return product_ssse3(t, in, out, len);
    for (std::size_t o0 = 0; o0 < t.outputs; o0 += 4) {
        const std::uint8_t* tab = t.nibble + o0 * t.inputs * 32;
        switch (std::min<std::size_t>(4, t.outputs - o0)) {
        case 1:
            avx2_pass<1>(tab, t.inputs, in, out + o0, len);
            break;
        case 2:
            avx2_pass<2>(tab, t.inputs, in, out + o0, len);
            break;
        case 3:
            avx2_pass<3>(tab, t.inputs, in, out + o0, len);
            break;
        default:
            avx2_pass<4>(tab, t.inputs, in, out + o0, len);
            break;
        }
    }
}

// --- AVX-512BW, 64 bytes per vector -------------------------------------------------

#define PEERLINK_GF256_AVX512 "avx512f,avx512bw,avx2"

template <int NB, int U>
__attribute__((target(PEERLINK_GF256_AVX512), always_inline)) inline void
avx512_block(const std::uint8_t* tab, std::size_t n_in, const std::uint8_t* const* in,
             std::uint8_t* const* out, std::size_t pos) noexcept {
    const __m512i mask = _mm512_set1_epi8(0x0f);
    __m512i acc[U][NB];
    PEERLINK_GF256_UNROLL
    for (int u = 0; u < U; ++u) {
        PEERLINK_GF256_UNROLL
        for (int o = 0; o < NB; ++o)
            acc[u][o] = _mm512_setzero_si512();
    }
    for (std::size_t c = 0; c < n_in; ++c) {
        __m512i lo[U], hi[U];
        PEERLINK_GF256_UNROLL
        for (int u = 0; u < U; ++u) {
            __m512i x = _mm512_loadu_si512(in[c] + pos + 64 * u);
            lo[u] = _mm512_and_si512(x, mask);
            // maskz forms: GCC 12 warns about the undefined vector in the plain ones.
            hi[u] = _mm512_and_si512(_mm512_maskz_srli_epi64(0xff, x, 4), mask);
        }
        PEERLINK_GF256_UNROLL
        for (int o = 0; o < NB; ++o) {
            const std::uint8_t* e = tab + (o * n_in + c) * 32;
            __m512i tl = _mm512_maskz_broadcast_i32x4(
                0xffff, _mm_loadu_si128(reinterpret_cast<const __m128i*>(e)));
            __m512i th = _mm512_maskz_broadcast_i32x4(
                0xffff, _mm_loadu_si128(reinterpret_cast<const __m128i*>(e + 16)));
            PEERLINK_GF256_UNROLL
            for (int u = 0; u < U; ++u)
                acc[u][o] = _mm512_ternarylogic_epi64(acc[u][o], _mm512_shuffle_epi8(tl, lo[u]),
                                                      _mm512_shuffle_epi8(th, hi[u]), 0x96);
        }
    }
    PEERLINK_GF256_UNROLL
    for (int u = 0; u < U; ++u) {
        PEERLINK_GF256_UNROLL
        for (int o = 0; o < NB; ++o)
            _mm512_storeu_si512(out[o] + pos + 64 * u, acc[u][o]);
    }
}

template <int NB>
__attribute__((target(PEERLINK_GF256_AVX512))) void
avx512_pass(const std::uint8_t* tab, std::size_t n_in, const std::uint8_t* const* in,
            std::uint8_t* const* out, std::size_t len) noexcept {
    std::size_t pos = 0;
    for (; pos + 128 <= len; pos += 128)
        avx512_block<NB, 2>(tab, n_in, in, out, pos);
    for (; pos + 64 <= len; pos += 64)
        avx512_block<NB, 1>(tab, n_in, in, out, pos);
    if (pos < len)
        avx512_block<NB, 1>(tab, n_in, in, out, len - 64);
}

__attribute__((target(PEERLINK_GF256_AVX512))) inline void
product_avx512(const product_tables& t, const std::uint8_t* const* in, std::uint8_t* const* out,
               std::size_t len) noexcept {
    if (len < 64)
        return product_avx2(t, in, out, len);
    for (std::size_t o0 = 0; o0 < t.outputs; o0 += 4) {
        const std::uint8_t* tab = t.nibble + o0 * t.inputs * 32;
        switch (std::min<std::size_t>(4, t.outputs - o0)) {
        case 1:
            avx512_pass<1>(tab, t.inputs, in, out + o0, len);
            break;
        case 2:
            avx512_pass<2>(tab, t.inputs, in, out + o0, len);
            break;
        case 3:
            avx512_pass<3>(tab, t.inputs, in, out + o0, len);
            break;
        default:
            avx512_pass<4>(tab, t.inputs, in, out + o0, len);
            break;
        }
    }
}

// --- GFNI with AVX2, 32 bytes per vector --------------------------------------------

template <int NB, int U>
__attribute__((target("gfni,avx2"), always_inline)) inline void
gfni_avx2_block(const std::uint64_t* aff, std::size_t n_in, const std::uint8_t* const* in,
                std::uint8_t* const* out, std::size_t pos) noexcept {
    __m256i acc[U][NB];
    PEERLINK_GF256_UNROLL
    for (int u = 0; u < U; ++u) {
        PEERLINK_GF256_UNROLL
        for (int o = 0; o < NB; ++o)
            acc[u][o] = _mm256_setzero_si256();
    }
    for (std::size_t c = 0; c < n_in; ++c) {
        __m256i x[U];
        PEERLINK_GF256_UNROLL
        for (int u = 0; u < U; ++u)
            x[u] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(in[c] + pos + 32 * u));
        PEERLINK_GF256_UNROLL
        for (int o = 0; o < NB; ++o) {
            __m256i m = _mm256_set1_epi64x(static_cast<long long>(aff[o * n_in + c]));
            PEERLINK_GF256_UNROLL
            for (int u = 0; u < U; ++u)
                acc[u][o] = _mm256_xor_si256(acc[u][o], _mm256_gf2p8affine_epi64_epi8(x[u], m, 0));
        }
    }
    PEERLINK_GF256_UNROLL
    for (int u = 0; u < U; ++u) {
        PEERLINK_GF256_UNROLL
        for (int o = 0; o < NB; ++o)
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(out[o] + pos + 32 * u), acc[u][o]);
    }
}

template <int NB>
__attribute__((target("gfni,avx2"))) void
gfni_avx2_pass(const std::uint64_t* aff, std::size_t n_in, const std::uint8_t* const* in,
               std::uint8_t* const* out, std::size_t len) noexcept {
    std::size_t pos = 0;
    for (; pos + 64 <= len; pos += 64)
        gfni_avx2_block<NB, 2>(aff, n_in, in, out, pos);
    for (; pos + 32 <= len; pos += 32)
        gfni_avx2_block<NB, 1>(aff, n_in, in, out, pos);
    if (pos < len)
        gfni_avx2_block<NB, 1>(aff, n_in, in, out, len - 32);
}

__attribute__((target("gfni,avx2"))) inline void product_gfni_avx2(const product_tables& t,
                                                                   const std::uint8_t* const* in,
                                                                   std::uint8_t* const* out,
                                                                   std::size_t len) noexcept {
    if (len < 32)
        return product_ssse3(t, in, out, len);
    for (std::size_t o0 = 0; o0 < t.outputs; o0 += 4) {
        const std::uint64_t* aff = t.affine + o0 * t.inputs;
        switch (std::min<std::size_t>(4, t.outputs - o0)) {
        case 1:
            gfni_avx2_pass<1>(aff, t.inputs, in, out + o0, len);
            break;
        case 2:
            gfni_avx2_pass<2>(aff, t.inputs, in, out + o0, len);
            break;
        case 3:
            gfni_avx2_pass<3>(aff, t.inputs, in, out + o0, len);
            break;
        default:
            gfni_avx2_pass<4>(aff, t.inputs, in, out + o0, len);
            break;
        }
    }
}

// --- GFNI with AVX-512, 64 bytes per vector -----------------------------------------

#define PEERLINK_GF256_GFNI_AVX512 "gfni,avx512f,avx512bw,avx2"

template <int NB, int U>
__attribute__((target(PEERLINK_GF256_GFNI_AVX512), always_inline)) inline void
gfni_avx512_block(const std::uint64_t* aff, std::size_t n_in, const std::uint8_t* const* in,
                  std::uint8_t* const* out, std::size_t pos) noexcept {
    __m512i acc[U][NB];
    PEERLINK_GF256_UNROLL
    for (int u = 0; u < U; ++u) {
        PEERLINK_GF256_UNROLL
        for (int o = 0; o < NB; ++o)
            acc[u][o] = _mm512_setzero_si512();
    }
    for (std::size_t c = 0; c < n_in; ++c) {
        __m512i x[U];
        PEERLINK_GF256_UNROLL
        for (int u = 0; u < U; ++u)
            x[u] = _mm512_loadu_si512(in[c] + pos + 64 * u);
        PEERLINK_GF256_UNROLL
        for (int o = 0; o < NB; ++o) {
            __m512i m = _mm512_set1_epi64(static_cast<long long>(aff[o * n_in + c]));
#ifdef __clang__
            // Clang 14 encodes VGF2P8AFFINEQB's broadcast-memory form with the wrong
            // displacement scale (64 instead of 8) and reads the wrong matrix: keep
            // the matrix in a register so it cannot fold the load.
            __asm__("" : "+v"(m));
#endif
            PEERLINK_GF256_UNROLL
            for (int u = 0; u < U; ++u)
                acc[u][o] = _mm512_xor_si512(acc[u][o], _mm512_gf2p8affine_epi64_epi8(x[u], m, 0));
        }
    }
    PEERLINK_GF256_UNROLL
    for (int u = 0; u < U; ++u) {
        PEERLINK_GF256_UNROLL
        for (int o = 0; o < NB; ++o)
            _mm512_storeu_si512(out[o] + pos + 64 * u, acc[u][o]);
    }
}

template <int NB>
__attribute__((target(PEERLINK_GF256_GFNI_AVX512))) void
gfni_avx512_pass(const std::uint64_t* aff, std::size_t n_in, const std::uint8_t* const* in,
                 std::uint8_t* const* out, std::size_t len) noexcept {
    std::size_t pos = 0;
    for (; pos + 128 <= len; pos += 128)
        gfni_avx512_block<NB, 2>(aff, n_in, in, out, pos);
    for (; pos + 64 <= len; pos += 64)
        gfni_avx512_block<NB, 1>(aff, n_in, in, out, pos);
    if (pos < len)
        gfni_avx512_block<NB, 1>(aff, n_in, in, out, len - 64);
}

__attribute__((target(PEERLINK_GF256_GFNI_AVX512))) inline void
product_gfni_avx512(const product_tables& t, const std::uint8_t* const* in,
                    std::uint8_t* const* out, std::size_t len) noexcept {
    if (len < 64)
        return product_gfni_avx2(t, in, out, len);
    for (std::size_t o0 = 0; o0 < t.outputs; o0 += 4) {
        const std::uint64_t* aff = t.affine + o0 * t.inputs;
        switch (std::min<std::size_t>(4, t.outputs - o0)) {
        case 1:
            gfni_avx512_pass<1>(aff, t.inputs, in, out + o0, len);
            break;
        case 2:
            gfni_avx512_pass<2>(aff, t.inputs, in, out + o0, len);
            break;
        case 3:
            gfni_avx512_pass<3>(aff, t.inputs, in, out + o0, len);
            break;
        default:
            gfni_avx512_pass<4>(aff, t.inputs, in, out + o0, len);
            break;
        }
    }
}

#undef PEERLINK_GF256_AVX512
#undef PEERLINK_GF256_UNROLL
#undef PEERLINK_GF256_GFNI_AVX512

#endif // PEERLINK_GF256_X86

/// Whether this CPU (and OS: the AVX state is checked too) can run `k`.
inline bool kernel_supported(kernel_id k) noexcept {
#ifdef PEERLINK_GF256_X86
    __builtin_cpu_init();
    const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
    switch (k) {
    case kernel_id::scalar:
        return true;
    case kernel_id::ssse3:
        return __builtin_cpu_supports("ssse3");
    case kernel_id::avx2:
        return __builtin_cpu_supports("avx2");
    case kernel_id::avx512:
        return avx512 && __builtin_cpu_supports("avx2");
    case kernel_id::gfni_avx2:
        return __builtin_cpu_supports("gfni") && __builtin_cpu_supports("avx2");
    case kernel_id::gfni_avx512:
        return avx512 && __builtin_cpu_supports("gfni") && __builtin_cpu_supports("avx2");
    }
    return false;
#else
    return k == kernel_id::scalar;
#endif
}

/// The fastest supported kernel. The order comes from fec_bench on AVX-512 machines:
/// GFNI needs one instruction per coefficient where split nibbles need four.
inline kernel_id best_kernel() noexcept {
    static const kernel_id best = [] {
        for (auto k : {kernel_id::gfni_avx512, kernel_id::gfni_avx2, kernel_id::avx512,
                       kernel_id::avx2, kernel_id::ssse3})
            if (kernel_supported(k))
                return k;
        return kernel_id::scalar;
    }();
    return best;
}

inline product_fn kernel_function(kernel_id k) noexcept {
#ifdef PEERLINK_GF256_X86
    switch (k) {
    case kernel_id::scalar:
        return &product_scalar;
    case kernel_id::ssse3:
        return &product_ssse3;
    case kernel_id::avx2:
        return &product_avx2;
    case kernel_id::avx512:
        return &product_avx512;
    case kernel_id::gfni_avx2:
        return &product_gfni_avx2;
    case kernel_id::gfni_avx512:
        return &product_gfni_avx512;
    }
#else
    (void)k;
#endif
    return &product_scalar;
}

} // namespace peerlink::detail::gf256

#undef PEERLINK_GF256_X86

#endif // PEERLINK_DETAIL_GF256_KERNELS_HPP
