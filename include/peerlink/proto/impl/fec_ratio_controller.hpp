#ifndef PEERLINK_PROTO_IMPL_FEC_RATIO_CONTROLLER_HPP
#define PEERLINK_PROTO_IMPL_FEC_RATIO_CONTROLLER_HPP

#include <algorithm>
#include <cmath>

namespace peerlink {

inline fec_ratio_controller::fec_ratio_controller() noexcept : steps_(default_table.size()) {
    std::copy(default_table.begin(), default_table.end(), table_.begin());
}

inline fec_ratio_controller::fec_ratio_controller(std::span<const fec_ratio_step> table,
                                                  const fec_ratio_options& options,
                                                  std::error_code& ec) noexcept
    : fec_ratio_controller() {
    ec = validate(table, options);
    if (ec)
        return;
    std::copy(table.begin(), table.end(), table_.begin());
    steps_ = table.size();
    options_ = options;
}

inline std::error_code fec_ratio_controller::validate(std::span<const fec_ratio_step> table,
                                                      const fec_ratio_options& o) noexcept {
    if (table.empty() || table.size() > max_steps)
        return error::invalid_config;
    // Written so that NaN fails every check.
    if (!(o.smoothing > 0 && o.smoothing <= 1) || !(o.hysteresis >= 0 && o.hysteresis < 1) ||
        o.hold_samples == 0)
        return error::invalid_config;
    double previous = 0;
    for (std::size_t i = 0; i < table.size(); ++i) {
        const auto& s = table[i];
        if (s.ratio.data_shards == 0 || s.ratio.parity_shards == 0 ||
            s.ratio.data_shards + s.ratio.parity_shards > 255)
            return error::invalid_config;
        if (i + 1 < table.size()) {
            if (!(s.below_loss > previous && s.below_loss <= 1))
                return error::invalid_config;
            previous = s.below_loss;
        }
    }
    return {};
}

inline std::size_t fec_ratio_controller::level_for(double loss, double scale) const noexcept {
    for (std::size_t l = 0; l + 1 < steps_; ++l)
        if (loss < table_[l].below_loss * scale)
            return l;
    return steps_ - 1;
}

inline bool fec_ratio_controller::on_sample(double sample) noexcept {
    if (std::isnan(sample))
        return false;
    sample = std::clamp(sample, 0.0, 1.0);
    loss_ = has_sample_ ? loss_ + options_.smoothing * (sample - loss_) : sample;
    has_sample_ = true;

    // Up at once: losses that parity does not cover cost retransmissions.
    if (auto up = level_for(loss_, 1.0); up > level_) {
        level_ = up;
        below_count_ = 0;
        return true;
    }
    // Down only well under the bound, and only after it stayed there.
    const double down_scale = 1.0 - options_.hysteresis;
    if (level_ > 0 && loss_ < table_[level_ - 1].below_loss * down_scale) {
        if (++below_count_ >= options_.hold_samples) {
            level_ = level_for(loss_, down_scale);
            below_count_ = 0;
            return true;
        }
        return false;
    }
    below_count_ = 0;
    return false;
}

inline bool fec_ratio_controller::on_counts(std::uint64_t lost, std::uint64_t total) noexcept {
    if (total == 0)
        return false;
    return on_sample(static_cast<double>(std::min(lost, total)) / static_cast<double>(total));
}

inline void fec_ratio_controller::reset() noexcept {
    level_ = 0;
    loss_ = 0;
    has_sample_ = false;
    below_count_ = 0;
}

} // namespace peerlink

#endif // PEERLINK_PROTO_IMPL_FEC_RATIO_CONTROLLER_HPP
