#ifndef PEERLINK_PROTO_IMPL_REED_SOLOMON_HPP
#define PEERLINK_PROTO_IMPL_REED_SOLOMON_HPP

#include <peerlink/detail/gf256.hpp>

#include <algorithm>

namespace peerlink {

namespace detail {

class fec_category_impl final : public std::error_category {
public:
    const char* name() const noexcept override { return "peerlink.fec"; }

    std::string message(int ev) const override {
        switch (static_cast<fec_error>(ev)) {
        case fec_error::invalid_shard_count:
            return "invalid FEC shard count: need 1..255 data shards and at most 255 in all";
        case fec_error::wrong_shard_list:
            return "a shard list does not hold one entry per shard of the code";
        case fec_error::too_few_shards:
            return "too few FEC shards to rebuild the group";
        case fec_error::unsupported_kernel:
            return "this CPU cannot run the requested GF(2^8) kernel";
        case fec_error::inconsistent_group:
            return "shards of one FEC group disagree on their lengths or ratio";
        }
        return "unknown peerlink FEC error";
    }

    std::error_condition default_error_condition(int ev) const noexcept override {
        switch (static_cast<fec_error>(ev)) {
        case fec_error::invalid_shard_count:
        case fec_error::unsupported_kernel:
            return make_error_condition(condition::configuration_error);
        case fec_error::inconsistent_group:
            return make_error_condition(condition::malformed_input);
        default:
            return {ev, *this};
        }
    }
};

} // namespace detail

inline const std::error_category& fec_category() noexcept {
    static const detail::fec_category_impl instance;
    return instance;
}

inline const char* to_string(gf_kernel k) noexcept {
    switch (k) {
    case gf_kernel::scalar:
        return "scalar";
    case gf_kernel::ssse3:
        return "ssse3";
    case gf_kernel::avx2:
        return "avx2";
    case gf_kernel::avx512:
        return "avx512";
    case gf_kernel::gfni_avx2:
        return "gfni_avx2";
    case gf_kernel::gfni_avx512:
        return "gfni_avx512";
    }
    return "unknown";
}

inline bool gf_kernel_supported(gf_kernel k) noexcept {
    return detail::gf256::kernel_supported(k);
}

inline gf_kernel gf_best_kernel() noexcept {
    return detail::gf256::best_kernel();
}

inline std::error_code reed_solomon::init(std::size_t data, std::size_t parity) {
    namespace gf = detail::gf256;
    if (data == 0 || parity > max_shards || data + parity > max_shards) {
        data_ = parity_ = 0;
        matrix_.clear();
        parity_nibble_.clear();
        parity_affine_.clear();
        dec_key_ = {};
        return fec_error::invalid_shard_count;
    }
    const std::size_t total = data + parity;
    std::vector<std::uint8_t> vandermonde(total * data);
    for (std::size_t r = 0; r < total; ++r)
        for (std::size_t c = 0; c < data; ++c)
            vandermonde[r * data + c] = gf::pow(static_cast<std::uint8_t>(r), c);
    std::vector<std::uint8_t> top(vandermonde.begin(),
                                  vandermonde.begin() + static_cast<std::ptrdiff_t>(data * data));
    work_.assign(3 * data * data, 0);
    // A square Vandermonde matrix of distinct elements is never singular.
    gf::invert(top.data(), work_.data(), data);

    data_ = data;
    parity_ = parity;
    matrix_.assign(total * data, 0);
    for (std::size_t r = 0; r < total; ++r)
        for (std::size_t c = 0; c < data; ++c) {
            std::uint8_t v = 0;
            for (std::size_t i = 0; i < data; ++i)
                v ^= gf::mul(vandermonde[r * data + i], top[i * data + c]);
            matrix_[r * data + c] = v;
        }
    parity_nibble_.assign(parity * data * 32, 0);
    parity_affine_.assign(parity * data, 0);
    for (std::size_t p = 0; p < parity; ++p)
        for (std::size_t c = 0; c < data; ++c) {
            auto coef = matrix_[(data + p) * data + c];
            gf::nibble_table(coef, &parity_nibble_[(p * data + c) * 32]);
            parity_affine_[p * data + c] = gf::affine_matrix(coef);
        }
    const std::size_t max_missing = std::min(data, parity);
    dec_nibble_.assign(max_missing * data * 32, 0);
    dec_affine_.assign(max_missing * data, 0);
    dec_rows_.assign(data + max_missing, 0);
    dec_key_ = {};
    dec_missing_ = 0;
    return {};
}

inline std::error_code reed_solomon::set_kernel(gf_kernel k) noexcept {
    if (!gf_kernel_supported(k))
        return fec_error::unsupported_kernel;
    kernel_ = k;
    fn_ = detail::gf256::kernel_function(k);
    return {};
}

inline void reed_solomon::product(const detail::gf256::product_tables& t,
                                  const std::uint8_t* const* in, std::uint8_t* const* out,
                                  std::size_t len) const noexcept {
    if (len != 0 && t.outputs != 0)
        fn_(t, in, out, len);
}

inline std::error_code reed_solomon::encode(std::span<const std::byte* const> data,
                                            std::span<std::byte* const> parity,
                                            std::size_t shard_size) const noexcept {
    if (data_ == 0 || data.size() != data_ || parity.size() != parity_)
        return fec_error::wrong_shard_list;
    std::array<const std::uint8_t*, max_shards> in;
    std::array<std::uint8_t*, max_shards> out;
    for (std::size_t i = 0; i < data_; ++i)
        in[i] = reinterpret_cast<const std::uint8_t*>(data[i]);
    for (std::size_t i = 0; i < parity_; ++i)
        out[i] = reinterpret_cast<std::uint8_t*>(parity[i]);
    product({parity_nibble_.data(), parity_affine_.data(), data_, parity_}, in.data(), out.data(),
            shard_size);
    return {};
}

inline std::error_code reed_solomon::reconstruct_data(std::span<std::byte* const> shards,
                                                      std::span<const bool> present,
                                                      std::size_t shard_size) noexcept {
    namespace gf = detail::gf256;
    const std::size_t total = data_ + parity_;
    if (data_ == 0 || shards.size() != total || present.size() != total)
        return fec_error::wrong_shard_list;
    std::size_t present_data = 0;
    std::size_t present_all = 0;
    for (std::size_t i = 0; i < total; ++i)
        if (present[i]) {
            ++present_all;
            present_data += i < data_ ? 1 : 0;
        }
    if (present_data == data_)
        return {};
    if (present_all < data_)
        return fec_error::too_few_shards;

    // The rows used are every present data row plus the first present parity rows,
    // so they alone determine which data rows are missing: they are the cache key.
    mask key{};
    std::uint8_t* rows = dec_rows_.data();
    for (std::size_t i = 0, used = 0; i < total && used < data_; ++i)
        if (present[i]) {
            rows[used++] = static_cast<std::uint8_t>(i);
            key[i / 64] |= std::uint64_t{1} << (i % 64);
        }
    std::uint8_t* missing = rows + data_;
    if (key != dec_key_) {
        std::size_t n_missing = 0;
        for (std::size_t d = 0; d < data_; ++d)
            if (!present[d])
                missing[n_missing++] = static_cast<std::uint8_t>(d);
        std::uint8_t* sub = work_.data();
        for (std::size_t j = 0; j < data_; ++j)
            std::copy_n(&matrix_[rows[j] * data_], data_, &sub[j * data_]);
        if (!gf::invert(sub, work_.data() + data_ * data_, data_)) {
            dec_key_ = {};
            return fec_error::inconsistent_group; // unreachable for this matrix
        }
        for (std::size_t t = 0; t < n_missing; ++t)
            for (std::size_t j = 0; j < data_; ++j) {
                auto coef = sub[missing[t] * data_ + j];
                gf::nibble_table(coef, &dec_nibble_[(t * data_ + j) * 32]);
                dec_affine_[t * data_ + j] = gf::affine_matrix(coef);
            }
        dec_key_ = key;
        dec_missing_ = n_missing;
    }
    std::array<const std::uint8_t*, max_shards> in;
    std::array<std::uint8_t*, max_shards> out;
    for (std::size_t j = 0; j < data_; ++j)
        in[j] = reinterpret_cast<const std::uint8_t*>(shards[rows[j]]);
    for (std::size_t t = 0; t < dec_missing_; ++t)
        out[t] = reinterpret_cast<std::uint8_t*>(shards[missing[t]]);
    product({dec_nibble_.data(), dec_affine_.data(), data_, dec_missing_}, in.data(), out.data(),
            shard_size);
    return {};
}

inline std::error_code reed_solomon::reconstruct(std::span<std::byte* const> shards,
                                                 std::span<const bool> present,
                                                 std::size_t shard_size) noexcept {
    if (auto ec = reconstruct_data(shards, present, shard_size))
        return ec;
    std::array<const std::uint8_t*, max_shards> in;
    for (std::size_t j = 0; j < data_; ++j)
        in[j] = reinterpret_cast<const std::uint8_t*>(shards[j]);
    for (std::size_t p = 0; p < parity_; ++p) {
        if (present[data_ + p])
            continue;
        std::uint8_t* out = reinterpret_cast<std::uint8_t*>(shards[data_ + p]);
        product({&parity_nibble_[p * data_ * 32], &parity_affine_[p * data_], data_, 1}, in.data(),
                &out, shard_size);
    }
    return {};
}

} // namespace peerlink

#endif // PEERLINK_PROTO_IMPL_REED_SOLOMON_HPP
