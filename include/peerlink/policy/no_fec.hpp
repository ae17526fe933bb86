// peerlink/policy/no_fec.hpp: the null forward-error-correction policy.
#ifndef PEERLINK_POLICY_NO_FEC_HPP
#define PEERLINK_POLICY_NO_FEC_HPP

#include <peerlink/concepts.hpp>

namespace peerlink {

/// FEC policy that adds nothing: packets pass through unchanged, no parity is sent.
/// It is empty, so a connection that uses it stores nothing for it.
struct no_fec {
    using policy_kind = fec_tag;
    static constexpr std::size_t max_overhead = 0;

    bool enabled() const noexcept { return false; }
    std::error_code encode(packet_buffer&, time_point) noexcept { return {}; }
    bool poll_parity(packet_buffer&) noexcept { return false; }
    std::error_code decode(packet_buffer&, time_point) noexcept { return {}; }
    bool poll_recovered(packet_buffer&) noexcept { return false; }
};

static_assert(fec_policy<no_fec>);

} // namespace peerlink

#endif // PEERLINK_POLICY_NO_FEC_HPP
