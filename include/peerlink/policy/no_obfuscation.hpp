// peerlink/policy/no_obfuscation.hpp: the null obfuscation policy.
#ifndef PEERLINK_POLICY_NO_OBFUSCATION_HPP
#define PEERLINK_POLICY_NO_OBFUSCATION_HPP

#include <peerlink/concepts.hpp>

namespace peerlink {

/// Obfuscation policy that leaves packets as they are on the wire.
struct no_obfuscation {
    using policy_kind = obfuscation_tag;
    static constexpr std::size_t max_overhead = 0;

    bool enabled() const noexcept { return false; }
    std::error_code wrap(packet_buffer&) noexcept { return {}; }
    std::error_code unwrap(packet_buffer&) noexcept { return {}; }
};

static_assert(obfuscation_policy<no_obfuscation>);

} // namespace peerlink

#endif // PEERLINK_POLICY_NO_OBFUSCATION_HPP
