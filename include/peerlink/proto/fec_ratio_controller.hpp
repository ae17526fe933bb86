// peerlink/proto/fec_ratio_controller.hpp: picks the FEC data:parity ratio from
// the measured loss.
//
// A pure class: feed it loss samples, read the ratio. It neither measures nor
// tells the peer; the connection does both (it measures loss, asks the
// controller, and when the ratio changes negotiates it with the peer before the
// FEC policy's `set_ratio`).
//
// The default table:
//
// | smoothed loss | ratio (data:parity) | overhead |
// |---------------|---------------------|----------|
// | < 1%          | 10:1                | 10%      |
// | 1% to 5%      | 8:2                 | 25%      |
// | 5% to 10%     | 6:3                 | 50%      |
// | 10% to 20%    | 4:4                 | 100%     |
// | >= 20%        | 3:5                 | 167%     |
//
// Loss samples are smoothed (exponential moving average). The ratio moves up (more
// parity) as soon as the smoothed loss reaches the next step's bound, and down only
// once the smoothed loss has stayed under the lower bound by a margin (hysteresis)
// for several samples in a row, so a loss rate that hovers at a bound does not
// make the ratio (and the negotiation behind it) flap.
#ifndef PEERLINK_PROTO_FEC_RATIO_CONTROLLER_HPP
#define PEERLINK_PROTO_FEC_RATIO_CONTROLLER_HPP

#include <peerlink/error.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <system_error>

namespace peerlink {

/// A FEC group's split: `data_shards` data packets protected by `parity_shards` parity packets.
struct fec_ratio {
    std::uint8_t data_shards = 10;
    std::uint8_t parity_shards = 3;
    friend bool operator==(const fec_ratio&, const fec_ratio&) = default;
};

/// One row of a controller's table: use `ratio` while the smoothed loss is below
/// `below_loss` (a fraction, 0.01 = 1%). The last row's bound is ignored: it
/// applies to any higher loss.
struct fec_ratio_step {
    double below_loss = 1.0;
    fec_ratio ratio;
};

/// How a controller reacts.
struct fec_ratio_options {
    /// Weight of a new sample in the moving average, in (0, 1]; 1 disables smoothing.
    double smoothing = 0.3;
    /// Stepping down needs the smoothed loss under (1 - hysteresis) x the lower
    /// step's bound, in [0, 1). 0.25 with a 5% bound: back to 8:2 under 3.75%.
    double hysteresis = 0.25;
    /// Stepping down also needs that many such samples in a row (>= 1).
    unsigned hold_samples = 3;
};

/// Chooses the data:parity ratio from loss samples, with hysteresis. See the file
/// comment for the default table. Allocates nothing; copyable.
class fec_ratio_controller {
public:
    /// Largest table.
    static constexpr std::size_t max_steps = 16;

    /// The default table (see the file comment).
    static constexpr std::array<fec_ratio_step, 5> default_table{{
        {0.01, {10, 1}},
        {0.05, {8, 2}},
        {0.10, {6, 3}},
        {0.20, {4, 4}},
        {1.00, {3, 5}},
    }};

    /// A controller with the default table and options, at the first step (10:1).
    fec_ratio_controller() noexcept;

    /// A controller with its own table and options, at the table's first step.
    /// On `validate` failure `ec` is set and the controller uses the defaults.
    fec_ratio_controller(std::span<const fec_ratio_step> table, const fec_ratio_options& options,
                         std::error_code& ec) noexcept;

    /// Checks a table and options.
    /// @returns `error::invalid_config` unless the table has 1..16 rows with strictly
    /// increasing bounds (all but the last) in (0, 1], every ratio has data >= 1,
    /// parity >= 1 and data + parity <= 255, and the options are in their ranges.
    static std::error_code validate(std::span<const fec_ratio_step> table,
                                    const fec_ratio_options& options) noexcept;

    /// Adds a loss sample: the fraction of packets lost in some interval, in [0, 1]
    /// (clamped; NaN is ignored). The first sample sets the average.
    /// @returns true if the ratio changed.
    bool on_sample(double loss) noexcept;

    /// Adds a sample of `lost` packets out of `total`; `total == 0` is ignored.
    /// @returns true if the ratio changed.
    bool on_counts(std::uint64_t lost, std::uint64_t total) noexcept;

    /// The ratio for the current loss.
    fec_ratio ratio() const noexcept { return table_[level_].ratio; }

    /// The row of the table in use (0 = least parity).
    std::size_t level() const noexcept { return level_; }

    /// The smoothed loss (0 before the first sample).
    double loss() const noexcept { return loss_; }

    /// Forgets the samples and goes back to the first step.
    void reset() noexcept;

private:
    std::size_t level_for(double loss, double scale) const noexcept;

    std::array<fec_ratio_step, max_steps> table_{};
    std::size_t steps_ = 0;
    fec_ratio_options options_;
    std::size_t level_ = 0;
    double loss_ = 0;
    bool has_sample_ = false;
    unsigned below_count_ = 0;
};

} // namespace peerlink

#include <peerlink/proto/impl/fec_ratio_controller.hpp>

#endif // PEERLINK_PROTO_FEC_RATIO_CONTROLLER_HPP
