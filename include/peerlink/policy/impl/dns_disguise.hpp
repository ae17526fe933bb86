// peerlink/policy/impl/dns_disguise.hpp: definitions for policy/dns_disguise.hpp.
#ifndef PEERLINK_POLICY_IMPL_DNS_DISGUISE_HPP
#define PEERLINK_POLICY_IMPL_DNS_DISGUISE_HPP

#include <openssl/rand.h>

namespace peerlink {
namespace detail {

// splitmix64's finalizer: a cheap bijective mixer, plenty for IDs and labels that only
// have to look random to an observer (the payload is what the cipher protects).
constexpr std::uint64_t dns_mix64(std::uint64_t x) noexcept {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

// A keyed permutation of the low 16 bits of `counter` (a 4-round Feistel network on two
// bytes), rekeyed every 65536 counts: IDs look random and never repeat within a block.
constexpr std::uint16_t dns_permute16(std::uint64_t key, std::uint64_t counter) noexcept {
    const std::uint64_t block_key = dns_mix64(key ^ (counter >> 16));
    unsigned l = (counter >> 8) & 0xff;
    unsigned r = counter & 0xff;
    for (unsigned round = 0; round < 4; ++round) {
        const unsigned f = dns_mix64(block_key + (round << 8 | r)) & 0xff;
        const unsigned t = l ^ f;
        l = r;
        r = t;
    }
    return static_cast<std::uint16_t>(l << 8 | r);
}

inline std::uint64_t dns_random_seed() noexcept {
    std::uint64_t seed = 0;
    if (RAND_bytes(reinterpret_cast<unsigned char*>(&seed), sizeof seed) != 1)
        seed = reinterpret_cast<std::uintptr_t>(&seed) ^ 0x9e3779b97f4a7c15ull;
    return seed;
}

} // namespace detail

inline dns_disguise::dns_disguise() noexcept : dns_disguise(detail::dns_random_seed()) {}

inline dns_disguise::dns_disguise(std::uint64_t seed) noexcept : key_(detail::dns_mix64(seed)) {}

inline void dns_disguise::configure(bool initiator) noexcept {
    initiator_ = initiator;
    pending_head_ = pending_count_ = 0;
}

inline std::error_code dns_disguise::set_domain(std::string_view domain) noexcept {
    return params_.domain.assign(domain);
}

inline std::error_code dns_disguise::set_option_code(std::uint16_t code) noexcept {
    if (code < dns::min_option_code || code > dns::max_option_code)
        return error::invalid_config;
    params_.option_code = code;
    return {};
}

inline dns::question dns_disguise::fresh_question(bool avoid_seen) noexcept {
    // A bounded search: a flood of forged queries must not make wrap slow.
    constexpr unsigned max_tries = 16;
    for (unsigned tries = 1;; ++tries) {
        const std::uint64_t c = counter_++;
        const std::uint16_t id = detail::dns_permute16(key_, c);
        const bool seen = seen_ids_[id >> 6] >> (id & 63) & 1;
        if (!avoid_seen || !seen || tries == max_tries)
            return dns::make_question(id, detail::dns_mix64(~key_ ^ c));
    }
}

inline void dns_disguise::remember_query(const dns::question& q) noexcept {
    // Half the ID space remembered: start over, so fresh IDs stay easy to find.
    if (seen_count_ >= 32768) {
        seen_ids_.fill(0);
        seen_count_ = 0;
    }
    auto& word = seen_ids_[q.id >> 6];
    const std::uint64_t bit = std::uint64_t{1} << (q.id & 63);
    if (!(word & bit)) {
        word |= bit;
        ++seen_count_;
    }
    if (pending_count_ == pending_.size()) { // forget the oldest
        pending_head_ = (pending_head_ + 1) % pending_.size();
        --pending_count_;
    }
    pending_[(pending_head_ + pending_count_) % pending_.size()] = q;
    ++pending_count_;
}

inline std::error_code dns_disguise::wrap(packet_buffer& p) noexcept {
    if (!enabled_)
        return {};
    std::error_code ec;
    if (initiator_) {
        ec = dns::wrap_query(p, fresh_question(false), params_);
    } else if (pending_count_ > 0) {
        ec = dns::wrap_response(p, pending_[pending_head_], params_);
        if (!ec) {
            pending_head_ = (pending_head_ + 1) % pending_.size();
            --pending_count_;
            ++counters_.answered;
        }
    } else {
        ec = dns::wrap_response(p, fresh_question(true), params_);
    }
    if (!ec)
        ++counters_.wrapped;
    return ec;
}

inline std::error_code dns_disguise::unwrap(packet_buffer& p) noexcept {
    if (!enabled_)
        return {};
    dns::question q;
    const auto ec =
        initiator_ ? dns::unwrap_response(p, params_, q) : dns::unwrap_query(p, params_, q);
    if (ec) {
        ++counters_.rejected;
        return ec;
    }
    if (!initiator_)
        remember_query(q);
    ++counters_.unwrapped;
    return {};
}

inline bool looks_like_dns_disguise(std::span<const std::byte> packet) noexcept {
    return dns::is_wrapped(packet);
}

} // namespace peerlink

#endif // PEERLINK_POLICY_IMPL_DNS_DISGUISE_HPP
