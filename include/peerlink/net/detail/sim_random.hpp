// The simulated network's random numbers: xoshiro256** seeded by splitmix64.
//
// The standard distributions are implementation-defined, so they would make a
// seed mean different runs on different standard libraries. These few integer
// operations give the same sequence on every compiler.
#ifndef PEERLINK_NET_DETAIL_SIM_RANDOM_HPP
#define PEERLINK_NET_DETAIL_SIM_RANDOM_HPP

#include <cstdint>

namespace peerlink::detail {

class sim_random {
public:
    explicit sim_random(std::uint64_t seed) noexcept {
        for (auto& word : s_) {
            seed += 0x9e3779b97f4a7c15ull; // splitmix64: never yields the all-zero state
            std::uint64_t z = seed;
            z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
            z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
            word = z ^ (z >> 31);
        }
    }

    std::uint64_t next() noexcept {
        const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
        const std::uint64_t t = s_[1] << 17;
        s_[2] ^= s_[0];
        s_[3] ^= s_[1];
        s_[1] ^= s_[2];
        s_[0] ^= s_[3];
        s_[2] ^= t;
        s_[3] = rotl(s_[3], 45);
        return result;
    }

    /// Uniform in [0, 1), from the top 53 bits.
    double uniform() noexcept { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

    /// True with probability `p`. Draws nothing when `p` is 0 or less (or 1 or more),
    /// so a link without loss does not shift the sequence of a link with loss.
    bool chance(double p) noexcept {
        if (p <= 0)
            return false;
        if (p >= 1)
            return true;
        return uniform() < p;
    }

    /// Uniform in [0, n]; draws nothing when `n` is 0.
    std::uint64_t up_to(std::uint64_t n) noexcept {
        if (n == 0)
            return 0;
        if (n == ~std::uint64_t{0})
            return next();
        return next() % (n + 1); // bias n/2^64: negligible for nanoseconds of jitter
    }

private:
    static constexpr std::uint64_t rotl(std::uint64_t x, int k) noexcept {
        return (x << k) | (x >> (64 - k));
    }

    std::uint64_t s_[4];
};

} // namespace peerlink::detail

#endif // PEERLINK_NET_DETAIL_SIM_RANDOM_HPP
