// What a simulated timer shares with its network: kept on the heap so that the
// network and cancellation handlers can point at it while the `sim_timer` moves.
#ifndef PEERLINK_NET_DETAIL_SIM_TIMER_STATE_HPP
#define PEERLINK_NET_DETAIL_SIM_TIMER_STATE_HPP

#include <peerlink/net/detail/sim_operation.hpp>
#include <peerlink/time.hpp>

#include <cstdint>
#include <memory>
#include <system_error>
#include <vector>

namespace peerlink {
class sim_network;
}

namespace peerlink::detail {

struct sim_timer_state {
    sim_network* net = nullptr;
    std::uint64_t id = 0;
    time_point expiry{};
    // Bumped by every cancel and new expiry; an agenda entry of an older generation is stale.
    std::uint64_t generation = 0;
    bool scheduled = false; // an agenda entry of this generation exists
    std::vector<std::unique_ptr<sim_operation<std::error_code>>> waits;
};

} // namespace peerlink::detail

#endif // PEERLINK_NET_DETAIL_SIM_TIMER_STATE_HPP
