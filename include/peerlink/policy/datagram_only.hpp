// peerlink/policy/datagram_only.hpp: the null reliability policy.
#ifndef PEERLINK_POLICY_DATAGRAM_ONLY_HPP
#define PEERLINK_POLICY_DATAGRAM_ONLY_HPP

#include <peerlink/concepts.hpp>

namespace peerlink {

/// Reliability policy that adds no reliability: the connection offers only its
/// unreliable datagram path (`async_send` / `async_receive`), and no byte stream.
/// Datagrams may be lost, duplicated or reordered as the network does.
struct datagram_only {
    using policy_kind = reliability_tag;
    static constexpr bool is_reliable = false;
};

static_assert(reliability_policy<datagram_only>);

} // namespace peerlink

#endif // PEERLINK_POLICY_DATAGRAM_ONLY_HPP
