// peerlink/policy/no_cipher.hpp: the null cipher policy.
#ifndef PEERLINK_POLICY_NO_CIPHER_HPP
#define PEERLINK_POLICY_NO_CIPHER_HPP

#include <peerlink/concepts.hpp>

namespace peerlink {

/// Cipher policy that neither authenticates nor encrypts. Packets travel in the
/// clear and the peer id in a hello is only a claim: anyone on the path can read,
/// change or forge packets. For tests, benchmarks and trusted networks only.
struct no_cipher {
    using policy_kind = cipher_tag;
    static constexpr std::size_t max_overhead = 0;

    bool enabled() const noexcept { return false; }
    std::error_code seal(packet_buffer&, time_point) noexcept { return {}; }
    std::error_code open(packet_buffer&, time_point) noexcept { return {}; }
};

static_assert(cipher_policy<no_cipher>);

} // namespace peerlink

#endif // PEERLINK_POLICY_NO_CIPHER_HPP
