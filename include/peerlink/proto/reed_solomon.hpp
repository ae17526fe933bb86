// peerlink/proto/reed_solomon.hpp: a systematic Reed-Solomon erasure code over GF(2^8).
//
// `data` shards of equal size go in, `parity` shards come out; any `data` of the
// `data + parity` shards rebuild the rest. The field uses the polynomial 0x11d
// with generator 2, and the encoding matrix is built exactly as
// klauspost/reedsolomon builds its default one (and so as kcp-go's FEC does):
//
//  1. V = the (data + parity) x data Vandermonde matrix, V[r][c] = r^c (0^0 = 1);
//  2. M = V * inverse(top data x data square of V).
//
// M's top square is the identity (data shards are sent as they are) and every
// square subset of M's rows is invertible, so any `data` shards suffice. A group
// may hold up to 255 shards in any split (the Vandermonde rows must be distinct
// field elements).
//
// The coding loops run on the fastest kernel the CPU has, chosen at run time:
// GFNI (AVX-512 or AVX2), AVX-512BW, AVX2 or SSSE3 split-nibble tables, or plain
// C++. Every kernel gives the same bytes; `set_kernel` forces one (tests,
// benchmarks).
//
// @par Example
// @code
// peerlink::reed_solomon rs;
// if (auto ec = rs.init(10, 3)) return ec;
// std::array<const std::byte*, 10> data = ...;   // 10 shards of n bytes
// std::array<std::byte*, 3> parity = ...;        // 3 buffers of n bytes
// rs.encode(data, parity, n);
// // later, shards[i] for i < 13 with present[i] telling which arrived:
// rs.reconstruct_data(shards, present, n);       // fills in the missing data shards
// @endcode
#ifndef PEERLINK_PROTO_REED_SOLOMON_HPP
#define PEERLINK_PROTO_REED_SOLOMON_HPP

#include <peerlink/detail/gf256_kernels.hpp>
#include <peerlink/error.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <system_error>
#include <type_traits>
#include <vector>

namespace peerlink {

/// Errors of the Reed-Solomon codec and of the FEC policy built on it.
enum class fec_error {
    /// `data` is 0, or `data + parity` is more than 255.
    invalid_shard_count = 1,
    /// A list of shards is not as long as the codec's shard count.
    wrong_shard_list,
    /// Fewer than `data` shards are present: the group cannot be rebuilt.
    too_few_shards,
    /// The CPU cannot run the requested GF(2^8) kernel.
    unsupported_kernel,
    /// Shards of one group disagree (lengths, ratio): the group is dropped.
    inconsistent_group,
};

/// The category of `peerlink::fec_error`. Configuration mistakes map to
/// `condition::configuration_error`, inconsistent input to `condition::malformed_input`.
const std::error_category& fec_category() noexcept;

inline std::error_code make_error_code(fec_error e) noexcept {
    return {static_cast<int>(e), fec_category()};
}

// enum class gf_kernel { scalar, ssse3, avx2, avx512, gfni_avx2, gfni_avx512 }:
// the GF(2^8) kernels a `reed_solomon` can run on (declared in detail/gf256_kernels.hpp):
// plain C++, split-nibble PSHUFB tables on SSSE3, AVX2 or AVX-512BW, and
// GF2P8AFFINEQB on GFNI with AVX2 or AVX-512.

/// "scalar", "ssse3", "avx2", "avx512", "gfni_avx2" or "gfni_avx512".
const char* to_string(gf_kernel k) noexcept;

/// Whether this CPU (and OS) can run kernel `k`; `gf_kernel::scalar` always can.
bool gf_kernel_supported(gf_kernel k) noexcept;

/// The fastest kernel this CPU can run; new codecs start with it.
gf_kernel gf_best_kernel() noexcept;

/// A systematic Reed-Solomon code with `data_shards()` data and `parity_shards()`
/// parity shards, compatible with klauspost/reedsolomon's default code.
///
/// `init` allocates the matrix and the kernel tables (for 10+3 about 2 KB); encoding
/// and reconstruction allocate nothing and never throw. A codec caches the decoding
/// tables of the last loss pattern, so a burst of groups with the same losses
/// inverts the matrix once. Not thread-safe (reconstruction updates that cache);
/// `encode` is const and may run on several threads at once.
class reed_solomon {
public:
    /// Largest `data + parity`.
    static constexpr std::size_t max_shards = 255;

    /// A codec with no shards; `init` it before use.
    reed_solomon() = default;

    /// Builds the code for `data` data and `parity` parity shards.
    /// @returns `fec_error::invalid_shard_count` unless 1 <= data and data + parity
    /// <= 255 (then the codec is left empty).
    std::error_code init(std::size_t data, std::size_t parity);

    std::size_t data_shards() const noexcept { return data_; }
    std::size_t parity_shards() const noexcept { return parity_; }
    std::size_t total_shards() const noexcept { return data_ + parity_; }

    /// Element (row, col) of the encoding matrix, row < total_shards(), col < data_shards().
    /// Rows below `data_shards()` are the identity; the others make the parity.
    std::uint8_t coefficient(std::size_t row, std::size_t col) const noexcept {
        return matrix_[row * data_ + col];
    }

    /// The kernel this codec runs on.
    gf_kernel kernel() const noexcept { return kernel_; }

    /// Forces kernel `k`. @returns `fec_error::unsupported_kernel` if the CPU lacks it
    /// (the kernel is then unchanged).
    std::error_code set_kernel(gf_kernel k) noexcept;

    /// Computes the parity shards of `data`.
    ///
    /// @param data `data_shards()` pointers to `shard_size` bytes each.
    /// @param parity `parity_shards()` pointers to `shard_size` writable bytes each,
    /// overlapping no data shard.
    /// @param shard_size Bytes per shard; any value, 0 included.
    /// @returns `fec_error::wrong_shard_list` if a list has the wrong length.
    std::error_code encode(std::span<const std::byte* const> data,
                           std::span<std::byte* const> parity,
                           std::size_t shard_size) const noexcept;

    /// Rebuilds the missing data shards of a group (parity shards are not rebuilt).
    ///
    /// Uses the first `data_shards()` present shards in index order, as
    /// klauspost/reedsolomon's ReconstructData does.
    ///
    /// @param shards `total_shards()` pointers to `shard_size` bytes each; the entries
    /// of missing data shards must point to writable buffers, which receive the data.
    /// Entries of missing parity shards are not used and may be null.
    /// @param present `total_shards()` flags: which shards hold received bytes.
    /// @param shard_size Bytes per shard.
    /// @returns `fec_error::too_few_shards` if fewer than `data_shards()` are present,
    /// `fec_error::wrong_shard_list` if a list has the wrong length.
    std::error_code reconstruct_data(std::span<std::byte* const> shards,
                                     std::span<const bool> present,
                                     std::size_t shard_size) noexcept;

    /// Like `reconstruct_data`, then also rebuilds the missing parity shards (whose
    /// entries must then point to writable buffers too).
    std::error_code reconstruct(std::span<std::byte* const> shards, std::span<const bool> present,
                                std::size_t shard_size) noexcept;

private:
    using mask = std::array<std::uint64_t, 4>;

    void product(const detail::gf256::product_tables& t, const std::uint8_t* const* in,
                 std::uint8_t* const* out, std::size_t len) const noexcept;

    std::size_t data_ = 0;
    std::size_t parity_ = 0;
    gf_kernel kernel_ = gf_best_kernel();
    detail::gf256::product_fn fn_ = detail::gf256::kernel_function(kernel_);
    std::vector<std::uint8_t> matrix_;         // total x data
    std::vector<std::uint8_t> parity_nibble_;  // parity x data entries of 32 bytes
    std::vector<std::uint64_t> parity_affine_; // parity x data
    // Decoding: the last pattern's tables (missing data rows of the inverse).
    std::vector<std::uint8_t> work_;       // 3 data^2: the sub-matrix and Gauss-Jordan's
    std::vector<std::uint8_t> dec_nibble_; // min(data, parity) x data entries
    std::vector<std::uint64_t> dec_affine_;
    std::vector<std::uint8_t> dec_rows_; // the rows used, then the missing data rows
    mask dec_key_{};                     // the rows used; all zero: nothing cached
    std::size_t dec_missing_ = 0;
};

} // namespace peerlink

template <>
struct std::is_error_code_enum<peerlink::fec_error> : std::true_type {};

#include <peerlink/proto/impl/reed_solomon.hpp>

#endif // PEERLINK_PROTO_REED_SOLOMON_HPP
