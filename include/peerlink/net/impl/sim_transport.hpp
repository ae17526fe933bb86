// peerlink/net/impl/sim_transport.hpp: definitions for peerlink/net/sim_transport.hpp.
#ifndef PEERLINK_NET_IMPL_SIM_TRANSPORT_HPP
#define PEERLINK_NET_IMPL_SIM_TRANSPORT_HPP

#include <asio/cancellation_type.hpp>
#include <asio/error.hpp>

#include <algorithm>
#include <cassert>
#include <cstring>
#include <string>
#include <utility>

namespace peerlink {

namespace detail {

// Integer arithmetic, so the schedule is exact and the same everywhere; the split
// keeps `bits * 1e9` from overflowing for any datagram or queue size.
inline duration sim_serialization_time(std::uint64_t bytes, std::uint64_t bps) noexcept {
    constexpr std::uint64_t ns_per_s = 1'000'000'000;
    const std::uint64_t bits = bytes * 8;
    const std::uint64_t rem = bits % bps;
    const std::uint64_t rem_ns =
        rem <= ~std::uint64_t{0} / ns_per_s
            ? rem * ns_per_s / bps
            : static_cast<std::uint64_t>(static_cast<double>(rem) * 1e9 / static_cast<double>(bps));
    return std::chrono::duration_cast<duration>(
        std::chrono::nanoseconds(static_cast<std::int64_t>(bits / bps * ns_per_s + rem_ns)));
}

inline bool sim_cancels(asio::cancellation_type_t type) noexcept {
    return (type & (asio::cancellation_type::terminal | asio::cancellation_type::partial |
                    asio::cancellation_type::total)) != asio::cancellation_type::none;
}

} // namespace detail

// --- sim_network -----------------------------------------------------------------

inline sim_network::sim_network(asio::io_context& io, std::uint64_t seed) : io_(io), rng_(seed) {}

inline sim_network::~sim_network() {
    // They hold pointers to this network.
    assert(endpoints_.empty() && "sim_transport outlives its sim_network");
    assert(timers_.empty() && "sim_timer outlives its sim_network");
}

inline void sim_network::set_link(const endpoint& from, const endpoint& to, const sim_link& link) {
    links_[link_key{from, to}].config = link;
}

inline const sim_link& sim_network::link(const endpoint& from, const endpoint& to) const noexcept {
    auto it = links_.find(link_key{from, to});
    return it != links_.end() && it->second.config ? *it->second.config : default_link_;
}

inline void sim_network::partition(const endpoint& a, const endpoint& b, bool cut) {
    links_[link_key{a, b}].cut = cut;
    links_[link_key{b, a}].cut = cut;
}

inline bool sim_network::partitioned(const endpoint& a, const endpoint& b) const noexcept {
    auto it = links_.find(link_key{a, b});
    return it != links_.end() && it->second.cut;
}

inline std::size_t sim_network::run_until(std::function<bool()> done, duration limit) {
    limit = std::max(limit, duration::zero());
    const time_point deadline =
        limit >= time_point::max() - now_ ? time_point::max() : now_ + limit;
    std::size_t fired = 0;
    for (;;) {
        // poll() stops the io_context when it finds no work; restart() undoes that.
        io_.restart();
        const std::size_t ran = io_.poll();
        if (done && done())
            break;
        if (ran != 0)
            continue;
        if (events_.empty())
            break;
        if (events_.top().at > deadline) {
            now_ = deadline;
            break;
        }
        now_ = std::max(now_, events_.top().at);
        while (!events_.empty() && events_.top().at <= now_) {
            detail::sim_event e = events_.pop();
            fire(e);
            ++fired;
        }
        // Receives complete after every arrival of this instant is queued, so one
        // completion takes them all.
        for (sim_transport* t : ready_) {
            t->ready_ = false;
            t->complete_receive();
        }
        ready_.clear();
    }
    return fired;
}

inline std::size_t sim_network::run_for(duration d) {
    d = std::max(d, duration::zero());
    const time_point target = d >= time_point::max() - now_ ? time_point::max() : now_ + d;
    const std::size_t fired = run_until({}, d);
    now_ = std::max(now_, target);
    return fired;
}

inline void sim_network::transmit(const endpoint& from, const endpoint& to,
                                  std::span<const std::byte> bytes) {
    ++counters_.sent;
    link_state* state = nullptr;
    if (!links_.empty()) {
        auto it = links_.find(link_key{from, to});
        if (it != links_.end())
            state = &it->second;
    }
    const sim_link& cfg = state && state->config ? *state->config : default_link_;
    if (state && state->cut) {
        ++counters_.lost;
        return;
    }
    if (bytes.size() > cfg.mtu) {
        ++counters_.dropped_mtu;
        return;
    }
    if (rng_.chance(cfg.loss)) {
        ++counters_.lost;
        return;
    }
    time_point departure = now_;
    if (cfg.bandwidth_bps != 0) {
        if (!state)
            state = &links_[link_key{from, to}];
        const time_point start = std::max(now_, state->busy_until);
        const duration serialize = detail::sim_serialization_time(bytes.size(), cfg.bandwidth_bps);
        // The queue is measured in time: what it holds takes `start - now_` to send.
        if (cfg.queue_limit_bytes != 0 &&
            (start - now_) + serialize >
                detail::sim_serialization_time(cfg.queue_limit_bytes, cfg.bandwidth_bps)) {
            ++counters_.dropped_queue;
            return;
        }
        state->busy_until = start + serialize;
        departure = state->busy_until;
    }
    auto jitter = [&] {
        return cfg.jitter > duration::zero() ? duration(static_cast<duration::rep>(rng_.up_to(
                                                   static_cast<std::uint64_t>(cfg.jitter.count()))))
                                             : duration::zero();
    };
    time_point arrival = departure + cfg.delay + jitter();
    if (rng_.chance(cfg.reorder)) {
        arrival += cfg.reorder_delay;
        ++counters_.reordered;
    }
    schedule_datagram(arrival, from, to, bytes);
    if (rng_.chance(cfg.duplicate)) {
        ++counters_.duplicated;
        schedule_datagram(departure + cfg.delay + jitter(), from, to, bytes);
    }
}

inline void sim_network::schedule_datagram(time_point at, const endpoint& from, const endpoint& to,
                                           std::span<const std::byte> bytes) {
    detail::sim_event e;
    e.at = at;
    e.from = from;
    e.to = to;
    e.bytes = pool_.acquire(bytes);
    events_.push(std::move(e));
}

inline void sim_network::fire(detail::sim_event& e) {
    if (e.timer_id != 0)
        fire_timer(e.timer_id, e.generation);
    else
        deliver(e);
}

inline void sim_network::deliver(detail::sim_event& e) {
    if (!links_.empty()) {
        auto it = links_.find(link_key{e.from, e.to});
        if (it != links_.end() && it->second.cut) {
            ++counters_.lost;
            pool_.release(std::move(e.bytes));
            return;
        }
    }
    auto it = endpoints_.find(e.to);
    if (it == endpoints_.end()) {
        ++counters_.dropped_no_endpoint;
        pool_.release(std::move(e.bytes));
        return;
    }
    sim_transport& t = *it->second;
    if (t.rx_queue_.size() >= receive_queue_limit) {
        ++counters_.dropped_receive_buffer;
        pool_.release(std::move(e.bytes));
        return;
    }
    ++counters_.delivered;
    t.rx_queue_.push_back(sim_transport::queued_datagram{e.from, std::move(e.bytes)});
    if (t.rx_op_ && !t.ready_) {
        t.ready_ = true;
        ready_.push_back(&t);
    }
}

inline void sim_network::fire_timer(std::uint64_t id, std::uint64_t generation) {
    auto it = timers_.find(id);
    if (it == timers_.end())
        return;
    detail::sim_timer_state& s = *it->second;
    if (s.generation != generation || !s.scheduled)
        return;
    s.scheduled = false;
    auto waits = std::move(s.waits);
    s.waits.clear();
    for (auto& w : waits)
        w->complete(std::error_code{});
}

inline bool sim_network::bind(sim_transport& t, endpoint& local, std::error_code& ec) {
    if (local.port == 0) {
        for (std::uint32_t p = 49152; p <= 65535 && local.port == 0; ++p)
            if (!endpoints_.contains(endpoint{local.address, static_cast<std::uint16_t>(p)}))
                local.port = static_cast<std::uint16_t>(p);
        if (local.port == 0) {
            ec = error::no_port_available;
            return false;
        }
    } else if (endpoints_.contains(local)) {
        ec = std::make_error_code(std::errc::address_in_use);
        return false;
    }
    endpoints_.emplace(local, &t);
    ec.clear();
    return true;
}

inline void sim_network::unbind(const endpoint& local) noexcept {
    endpoints_.erase(local);
}

inline std::uint64_t sim_network::add_timer(detail::sim_timer_state& s) {
    const std::uint64_t id = next_timer_id_++;
    timers_.emplace(id, &s);
    return id;
}

inline void sim_network::remove_timer(detail::sim_timer_state& s) noexcept {
    timers_.erase(s.id);
}

inline void sim_network::schedule_timer(detail::sim_timer_state& s) {
    if (s.scheduled)
        return;
    detail::sim_event e;
    e.at = s.expiry;
    e.timer_id = s.id;
    e.generation = s.generation;
    events_.push(std::move(e));
    s.scheduled = true;
}

inline std::size_t sim_network::cancel_timer(detail::sim_timer_state& s) {
    ++s.generation;
    s.scheduled = false;
    auto waits = std::move(s.waits);
    s.waits.clear();
    for (auto& w : waits)
        w->complete(asio::error::operation_aborted);
    return waits.size();
}

inline void sim_network::cancel_timer_wait(detail::sim_timer_state& s,
                                           detail::sim_operation<std::error_code>* op) {
    auto it =
        std::find_if(s.waits.begin(), s.waits.end(), [op](const auto& w) { return w.get() == op; });
    if (it == s.waits.end())
        return;
    auto spent = std::move(*it);
    s.waits.erase(it);
    spent->complete(asio::error::operation_aborted);
}

// --- sim_timer -------------------------------------------------------------------

inline void sim_timer::state_deleter::operator()(detail::sim_timer_state* s) const noexcept {
    s->net->remove_timer(*s);
    sim_network::cancel_timer(*s);
    delete s;
}

// Holds the state, not the timer: with a deferred token the timer may move before
// the initiation runs.
struct sim_timer::initiate_wait {
    using executor_type = sim_timer::executor_type;
    detail::sim_timer_state* state;

    executor_type get_executor() const noexcept { return state->net->get_executor(); }

    template <class Handler>
    void operator()(Handler&& handler) const {
        using handler_type = std::decay_t<Handler>;
        sim_network& net = *state->net;
        if (state->expiry <= net.now()) {
            detail::sim_post(net.get_executor(), std::forward<Handler>(handler), std::error_code{});
            return;
        }
        auto op = std::make_unique<
            detail::sim_operation_impl<handler_type, executor_type, std::error_code>>(
            std::forward<Handler>(handler), net.get_executor());
        op->template install_cancellation<wait_cancellation>(state, op.get());
        state->waits.push_back(std::move(op));
        net.schedule_timer(*state);
    }
};

struct sim_timer::wait_cancellation {
    // A constructor, not an aggregate: Asio constructs it with parentheses.
    wait_cancellation(detail::sim_timer_state* s, detail::sim_operation<std::error_code>* o)
        : state(s), op(o) {}

    detail::sim_timer_state* state;
    detail::sim_operation<std::error_code>* op;

    void operator()(asio::cancellation_type_t type) const {
        // Completing the operation clears the slot, which destroys this object:
        // nothing may touch it afterwards.
        if (detail::sim_cancels(type))
            sim_network::cancel_timer_wait(*state, op);
    }
};

inline sim_timer::sim_timer(sim_network& net) : state_(new detail::sim_timer_state) {
    state_->net = &net;
    state_->id = net.add_timer(*state_);
}

inline sim_timer::executor_type sim_timer::get_executor() const noexcept {
    return state_->net->get_executor();
}

inline std::size_t sim_timer::expires_at(time_point t) {
    const std::size_t cancelled = sim_network::cancel_timer(*state_);
    state_->expiry = t;
    return cancelled;
}

inline std::size_t sim_timer::expires_after(duration d) {
    return expires_at(state_->net->now() + d);
}

inline std::size_t sim_timer::cancel() {
    return sim_network::cancel_timer(*state_);
}

template <class Token>
auto sim_timer::async_wait(Token&& token) {
    return asio::async_initiate<Token, void(std::error_code)>(initiate_wait{state_.get()}, token);
}

// --- sim_transport ---------------------------------------------------------------

struct sim_transport::initiate_receive {
    using executor_type = sim_transport::executor_type;
    sim_transport* self;

    executor_type get_executor() const noexcept { return self->get_executor(); }

    template <class Handler>
    void operator()(Handler&& handler, std::span<rx_slot> slots) const {
        using handler_type = std::decay_t<Handler>;
        const executor_type ex = self->get_executor();
        std::error_code ec;
        std::size_t filled = 0;
        if (!self->open_)
            ec = asio::error::bad_descriptor;
        else if (self->rx_op_)
            ec = error::operation_in_progress;
        else if (!slots.empty() && self->rx_queue_.empty()) {
            auto op = std::make_unique<detail::sim_operation_impl<handler_type, executor_type,
                                                                  std::error_code, std::size_t>>(
                std::forward<Handler>(handler), ex);
            op->template install_cancellation<receive_cancellation>(self);
            self->rx_op_ = std::move(op);
            self->rx_slots_ = slots;
            return;
        } else
            filled = self->fill(slots);
        detail::sim_post(ex, std::forward<Handler>(handler), ec, filled);
    }
};

struct sim_transport::initiate_wait_writable {
    using executor_type = sim_transport::executor_type;
    sim_transport* self;

    executor_type get_executor() const noexcept { return self->get_executor(); }

    template <class Handler>
    void operator()(Handler&& handler) const {
        std::error_code ec;
        if (!self->open_)
            ec = asio::error::bad_descriptor;
        detail::sim_post(self->get_executor(), std::forward<Handler>(handler), ec);
    }
};

struct sim_transport::receive_cancellation {
    explicit receive_cancellation(sim_transport* t) : self(t) {}

    sim_transport* self;

    void operator()(asio::cancellation_type_t type) const {
        // Completing the receive clears the slot, which destroys this object.
        if (detail::sim_cancels(type))
            self->cancel_receive();
    }
};

inline sim_transport::sim_transport(sim_network& net, const endpoint& local)
    : net_(&net), local_(local) {
    std::error_code ec;
    open_ = net.bind(*this, local_, ec);
    if (ec)
        throw std::system_error(ec, "sim_transport: cannot bind " + local.to_string());
}

inline sim_transport::sim_transport(sim_network& net, const endpoint& local, std::error_code& ec)
    : net_(&net), local_(local) {
    open_ = net.bind(*this, local_, ec);
}

template <class Token>
auto sim_transport::async_receive(std::span<rx_slot> slots, Token&& token) {
    return asio::async_initiate<Token, void(std::error_code, std::size_t)>(initiate_receive{this},
                                                                           token, slots);
}

template <class Token>
auto sim_transport::async_wait_writable(Token&& token) {
    return asio::async_initiate<Token, void(std::error_code)>(initiate_wait_writable{this}, token);
}

inline std::size_t sim_transport::try_send(std::span<const tx_datagram> batch,
                                           std::error_code& ec) {
    if (!open_) {
        ec = asio::error::bad_descriptor;
        return 0;
    }
    ec.clear();
    for (const tx_datagram& d : batch)
        net_->transmit(local_, d.to, d.data);
    return batch.size();
}

inline void sim_transport::close() noexcept {
    if (!open_)
        return;
    open_ = false;
    net_->unbind(local_);
    rx_queue_.clear();
    if (ready_) {
        std::erase(net_->ready_, this);
        ready_ = false;
    }
    cancel_receive();
}

inline std::size_t sim_transport::fill(std::span<rx_slot> slots) {
    std::size_t n = 0;
    for (; n < slots.size() && !rx_queue_.empty(); ++n) {
        queued_datagram& d = rx_queue_.front();
        rx_slot& slot = slots[n];
        const std::size_t len = std::min(d.bytes.size(), slot.buffer.size());
        if (len != 0)
            std::memcpy(slot.buffer.data(), d.bytes.data(), len);
        slot.size = len;
        slot.from = d.from;
        slot.truncated = d.bytes.size() > slot.buffer.size();
        net_->pool_.release(std::move(d.bytes));
        rx_queue_.pop_front();
    }
    return n;
}

inline void sim_transport::complete_receive() {
    if (!rx_op_ || rx_queue_.empty())
        return;
    const std::size_t filled = fill(rx_slots_);
    auto op = std::move(rx_op_);
    rx_slots_ = {};
    op->complete(std::error_code{}, filled);
}

inline void sim_transport::cancel_receive() {
    if (!rx_op_)
        return;
    auto op = std::move(rx_op_);
    rx_slots_ = {};
    op->complete(asio::error::operation_aborted, 0);
}

} // namespace peerlink

#endif // PEERLINK_NET_IMPL_SIM_TRANSPORT_HPP
