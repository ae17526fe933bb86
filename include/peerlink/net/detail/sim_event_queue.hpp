// The simulated network's agenda: datagram deliveries and timer expiries, taken in
// order of (time, insertion sequence) so that equal times keep the order in which
// they were scheduled, which makes runs deterministic.
#ifndef PEERLINK_NET_DETAIL_SIM_EVENT_QUEUE_HPP
#define PEERLINK_NET_DETAIL_SIM_EVENT_QUEUE_HPP

#include <peerlink/endpoint.hpp>
#include <peerlink/time.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace peerlink::detail {

struct sim_event {
    time_point at;
    std::uint64_t seq = 0;
    std::uint64_t timer_id = 0; // 0 for a datagram
    std::uint64_t generation = 0;
    endpoint from;
    endpoint to;
    std::vector<std::byte> bytes;
};

class sim_event_queue {
public:
    bool empty() const noexcept { return heap_.empty(); }
    std::size_t size() const noexcept { return heap_.size(); }
    const sim_event& top() const noexcept { return heap_.front(); }

    void push(sim_event&& e) {
        e.seq = next_seq_++;
        heap_.push_back(std::move(e));
        std::push_heap(heap_.begin(), heap_.end(), later);
    }

    // std::priority_queue cannot move its top out; a heap over a vector can.
    sim_event pop() {
        std::pop_heap(heap_.begin(), heap_.end(), later);
        sim_event e = std::move(heap_.back());
        heap_.pop_back();
        return e;
    }

private:
    static bool later(const sim_event& a, const sim_event& b) noexcept {
        return a.at != b.at ? a.at > b.at : a.seq > b.seq;
    }

    std::vector<sim_event> heap_;
    std::uint64_t next_seq_ = 0;
};

} // namespace peerlink::detail

#endif // PEERLINK_NET_DETAIL_SIM_EVENT_QUEUE_HPP
