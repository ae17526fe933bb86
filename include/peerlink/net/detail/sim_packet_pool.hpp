// Byte buffers for datagrams in flight on the simulated network, recycled so that a
// long run allocates only while the number of datagrams in flight grows.
#ifndef PEERLINK_NET_DETAIL_SIM_PACKET_POOL_HPP
#define PEERLINK_NET_DETAIL_SIM_PACKET_POOL_HPP

#include <cstddef>
#include <span>
#include <vector>

namespace peerlink::detail {

class sim_packet_pool {
public:
    std::vector<std::byte> acquire(std::span<const std::byte> bytes) {
        std::vector<std::byte> v;
        if (!free_.empty()) {
            v = std::move(free_.back());
            free_.pop_back();
        }
        v.assign(bytes.begin(), bytes.end());
        return v;
    }

    void release(std::vector<std::byte>&& v) {
        if (free_.size() < max_free) // a burst must not pin its memory forever
            free_.push_back(std::move(v));
    }

private:
    static constexpr std::size_t max_free = 8192;
    std::vector<std::vector<std::byte>> free_;
};

} // namespace peerlink::detail

#endif // PEERLINK_NET_DETAIL_SIM_PACKET_POOL_HPP
