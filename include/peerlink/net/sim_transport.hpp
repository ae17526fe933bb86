// peerlink/net/sim_transport.hpp: a transport policy over a simulated network on
// virtual time.
//
// `sim_network` is an in-memory network of any number of endpoints (IPv4 or IPv6,
// all virtual: no packet leaves the process) with a link model per direction:
// delay, jitter, loss, duplication, reordering, bandwidth with a bounded queue, and
// an MTU. It keeps its own clock. `sim_network::run_for` and `run_until` drive the
// `asio::io_context`: they run every ready handler and, only when none is left, jump
// the clock to the next scheduled event (a datagram arriving, a timer expiring).
// Nothing sleeps, so millions of packets take seconds, and a run depends only on
// the seed: the same seed gives the same run on every compiler and library.
//
// `sim_transport` is one endpoint of that network and satisfies
// `peerlink::transport_policy` (see peerlink/net/transport.hpp); its `now()` and its
// `sim_timer`s read the network's virtual clock, so a connection built on it runs
// entirely on virtual time.
//
// Lifetimes: the `asio::io_context` outlives the `sim_network`, which outlives its
// transports and timers. None of these objects is thread-safe. Run the io_context
// only through `run_for`/`run_until`: a pending receive or timer wait is not work
// of the io_context (`io.run()` would return, or wait forever, while virtual time
// stands still).
//
// @par Example
// @code
// asio::io_context io;
// peerlink::sim_network net(io, 42);
// net.set_default_link({.delay = std::chrono::milliseconds(20), .loss = 0.01});
// peerlink::sim_transport a(net, *peerlink::endpoint::parse("10.0.0.1:1000", ec));
// peerlink::sim_transport b(net, *peerlink::endpoint::parse("10.0.0.2:2000", ec));
// std::array<std::byte, 1500> buf;
// std::array<peerlink::rx_slot, 1> slots{{{buf}}};
// b.async_receive(slots, [&](std::error_code ec, std::size_t n) { ... });
// std::array<peerlink::tx_datagram, 1> out{{{payload, b.local_endpoint()}}};
// a.try_send(out, ec);
// net.run_for(std::chrono::seconds(1)); // the handler ran at 20 ms of virtual time
// @endcode
#ifndef PEERLINK_NET_SIM_TRANSPORT_HPP
#define PEERLINK_NET_SIM_TRANSPORT_HPP

#include <peerlink/endpoint.hpp>
#include <peerlink/error.hpp>
#include <peerlink/net/detail/sim_event_queue.hpp>
#include <peerlink/net/detail/sim_operation.hpp>
#include <peerlink/net/detail/sim_packet_pool.hpp>
#include <peerlink/net/detail/sim_random.hpp>
#include <peerlink/net/detail/sim_timer_state.hpp>
#include <peerlink/net/transport.hpp>
#include <peerlink/time.hpp>

#include <asio/async_result.hpp>
#include <asio/io_context.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <system_error>
#include <unordered_map>
#include <vector>

namespace peerlink {

class sim_transport;
class sim_timer;

/// The model of one direction of a link. Every field's default means "no effect".
///
/// A datagram sent at virtual time `t` goes through these steps, in this order:
/// 0. on a link cut by `sim_network::partition`: lost (counted in `lost`);
/// 1. larger than `mtu`: dropped, counted in `dropped_mtu`;
/// 2. lost with probability `loss` (counted in `lost`);
/// 3. with `bandwidth_bps`, it queues behind the datagrams already on the link and
///    leaves when its last bit is serialized (`size * 8 / bandwidth_bps` after the
///    previous one); if the queue it would join (itself included) holds more than
///    `queue_limit_bytes`, it is tail-dropped (counted in `dropped_queue`);
/// 4. it arrives `delay` plus a jitter uniform in `[0, jitter]` after it left;
/// 5. with probability `reorder` it is held `reorder_delay` longer, so datagrams
///    sent after it overtake it (counted in `reordered`);
/// 6. with probability `duplicate` a second copy arrives too, with its own jitter
///    (counted in `duplicated`; the copy takes no bandwidth).
/// Jitter alone can also reorder datagrams that are sent closer together than it.
struct sim_link {
    duration delay{};     ///< One-way propagation delay.
    duration jitter{};    ///< Extra delay per datagram, uniform in [0, jitter].
    double loss = 0;      ///< Probability that a datagram is lost, in [0, 1].
    double duplicate = 0; ///< Probability that a datagram arrives twice.
    double reorder = 0;   ///< Probability that a datagram is held `reorder_delay` longer.
    std::uint64_t bandwidth_bps = 0;   ///< Bits per second; 0 = unlimited (no queue).
    std::size_t mtu = 65507;           ///< Largest datagram that passes, in bytes.
    std::size_t queue_limit_bytes = 0; ///< Bandwidth queue limit in bytes; 0 = unlimited.
    duration reorder_delay = std::chrono::milliseconds(10); ///< Hold time of a reordered one.
};

/// What happened to the datagrams on a network, since it was made.
///
/// `sent` counts every datagram handed to `try_send`; each then ends in exactly one
/// of `lost`, `dropped_mtu`, `dropped_queue`, `dropped_no_endpoint`,
/// `dropped_receive_buffer` or `delivered`, or is still in flight; each duplicate
/// adds one more to that balance. `reordered` counts datagrams held back by
/// `sim_link::reorder`.
struct sim_counters {
    std::uint64_t sent = 0;                ///< Datagrams passed to `try_send`.
    std::uint64_t delivered = 0;           ///< Datagrams (copies included) put in a receive queue.
    std::uint64_t lost = 0;                ///< Lost by `sim_link::loss` or on a partitioned link.
    std::uint64_t duplicated = 0;          ///< Extra copies made by `sim_link::duplicate`.
    std::uint64_t reordered = 0;           ///< Datagrams held back by `sim_link::reorder`.
    std::uint64_t dropped_mtu = 0;         ///< Larger than the link's `mtu`.
    std::uint64_t dropped_queue = 0;       ///< Tail-dropped by the bandwidth queue.
    std::uint64_t dropped_no_endpoint = 0; ///< Arrived where no transport is bound.
    /// Arrived at a transport whose receive queue held `sim_network::receive_queue_limit`
    /// datagrams, as a full socket buffer would drop them.
    std::uint64_t dropped_receive_buffer = 0;

    friend bool operator==(const sim_counters&, const sim_counters&) = default;
};

/// An in-memory network of `sim_transport` endpoints, on a virtual clock.
///
/// It cannot be copied or moved: its transports and timers point at it.
class sim_network {
public:
    using executor_type = asio::io_context::executor_type;

    /// Datagrams a transport's receive queue holds before arrivals are dropped.
    static constexpr std::size_t receive_queue_limit = 4096;

    /// The virtual time of a new network: a fixed point, the same on every run.
    static constexpr time_point start_time = time_point{} + std::chrono::hours(1);

    /// A network with no endpoints, every link perfect (`sim_link{}`), at `start_time`.
    /// @param io the io_context whose handlers `run_for`/`run_until` run.
    /// @param seed seeds the link model's random numbers; the same seed (and the same
    /// program) gives the same run.
    sim_network(asio::io_context& io, std::uint64_t seed);

    sim_network(const sim_network&) = delete;
    sim_network& operator=(const sim_network&) = delete;
    /// The network's transports and timers must be gone (asserted in debug builds).
    ~sim_network();

    /// The io_context's executor; transports and timers run their handlers on it.
    executor_type get_executor() const noexcept { return io_.get_executor(); }
    asio::io_context& context() const noexcept { return io_; }

    /// The virtual time. It moves only inside `run_for`/`run_until`.
    time_point now() const noexcept { return now_; }

    /// Sets the link model of every direction that has none of its own (`set_link`).
    /// Datagrams already in flight keep their fate.
    void set_default_link(const sim_link& link) { default_link_ = link; }
    const sim_link& default_link() const noexcept { return default_link_; }

    /// Sets the link model of the direction `from` -> `to` only.
    void set_link(const endpoint& from, const endpoint& to, const sim_link& link);

    /// The model that applies to `from` -> `to`: its own, or the default.
    const sim_link& link(const endpoint& from, const endpoint& to) const noexcept;

    /// Cuts (`cut == true`) or restores the link between `a` and `b`, both ways.
    /// While it is cut, datagrams sent over it, and those in flight when they arrive,
    /// are lost (counted in `lost`).
    void partition(const endpoint& a, const endpoint& b, bool cut);

    /// Whether `partition` cut the link between `a` and `b`.
    bool partitioned(const endpoint& a, const endpoint& b) const noexcept;

    const sim_counters& counters() const noexcept { return counters_; }

    /// Datagrams in flight and timer expiries scheduled (some may be stale).
    std::size_t pending_events() const noexcept { return events_.size(); }

    /// Runs the io_context on virtual time until `done()` is true, nothing is left to
    /// do, or `limit` of virtual time has passed.
    ///
    /// Loop: run every ready handler (`io.restart(); io.poll()`); stop if `done()`;
    /// if handlers ran, repeat; if no event is scheduled, stop (idle); otherwise move
    /// the clock to the next event's time and fire every event due then, which posts
    /// the handlers of the receives and timer waits they complete. Time never moves
    /// while a handler is ready.
    ///
    /// @param done checked after each round of handlers; an empty function is never true.
    /// @param limit the most virtual time to let pass. When it is reached the clock
    /// stands at exactly `now() + limit` (as called) and the run stops, with events
    /// due later still scheduled.
    /// @returns the number of events taken from the schedule.
    std::size_t run_until(std::function<bool()> done, duration limit);

    /// Runs for `d` of virtual time: `run_until({}, d)`, after which the clock stands
    /// at the call's `now() + d` even if the network went idle earlier.
    std::size_t run_for(duration d);

private:
    friend class sim_transport;
    friend class sim_timer;

    struct link_key {
        endpoint from;
        endpoint to;
        friend bool operator==(const link_key&, const link_key&) = default;
    };
    struct link_key_hash {
        std::size_t operator()(const link_key& k) const noexcept {
            std::hash<endpoint> h;
            return h(k.from) * 0x9e3779b97f4a7c15ull ^ h(k.to);
        }
    };
    struct link_state {
        std::optional<sim_link> config;
        bool cut = false;
        time_point busy_until{}; // when the bandwidth queue has sent its last bit
    };

    void transmit(const endpoint& from, const endpoint& to, std::span<const std::byte> bytes);
    void schedule_datagram(time_point at, const endpoint& from, const endpoint& to,
                           std::span<const std::byte> bytes);
    void fire(detail::sim_event& e);
    void deliver(detail::sim_event& e);
    void fire_timer(std::uint64_t id, std::uint64_t generation);

    bool bind(sim_transport& t, endpoint& local, std::error_code& ec);
    void unbind(const endpoint& local) noexcept;

    std::uint64_t add_timer(detail::sim_timer_state& s);
    void remove_timer(detail::sim_timer_state& s) noexcept;
    void schedule_timer(detail::sim_timer_state& s);
    static std::size_t cancel_timer(detail::sim_timer_state& s);
    static void cancel_timer_wait(detail::sim_timer_state& s,
                                  detail::sim_operation<std::error_code>* op);

    asio::io_context& io_;
    time_point now_ = start_time;
    detail::sim_random rng_;
    sim_link default_link_;
    sim_counters counters_;
    detail::sim_event_queue events_;
    detail::sim_packet_pool pool_;
    std::unordered_map<link_key, link_state, link_key_hash> links_;
    std::unordered_map<endpoint, sim_transport*> endpoints_;
    std::unordered_map<std::uint64_t, detail::sim_timer_state*> timers_;
    std::uint64_t next_timer_id_ = 1;
    std::vector<sim_transport*> ready_; // transports whose pending receive can complete
};

/// A timer on a `sim_network`'s virtual clock, with the interface of
/// `asio::steady_timer` that peerlink uses.
///
/// Waits complete, posted, when the virtual clock reaches the expiry. Movable; a
/// moved-from timer may only be destroyed or assigned to. Destroying a timer, or
/// assigning to it, cancels its pending waits.
class sim_timer {
public:
    using executor_type = asio::io_context::executor_type;
    using clock_type = peerlink::clock;
    using time_point = peerlink::time_point;
    using duration = peerlink::duration;

    /// A timer on `net`'s clock whose expiry has passed (like Asio's, it starts at
    /// the clock's epoch), so a wait completes at once until an expiry is set.
    explicit sim_timer(sim_network& net);

    sim_timer(sim_timer&&) noexcept = default;
    sim_timer& operator=(sim_timer&&) noexcept = default;
    ~sim_timer() = default;

    executor_type get_executor() const noexcept;

    /// The expiry as a virtual time point.
    time_point expiry() const noexcept { return state_->expiry; }

    /// Sets the expiry; pending waits complete with `asio::error::operation_aborted`.
    /// @returns the number of waits cancelled.
    std::size_t expires_at(time_point t);

    /// Sets the expiry to `net.now() + d`; pending waits are cancelled.
    /// @returns the number of waits cancelled.
    std::size_t expires_after(duration d);

    /// Cancels every pending wait: each completes with `asio::error::operation_aborted`.
    /// @returns the number of waits cancelled.
    std::size_t cancel();

    /// Waits until the virtual clock reaches the expiry.
    ///
    /// @param token the completion token, signature `void(std::error_code)`:
    /// success at the expiry (posted at once if it has passed),
    /// `asio::error::operation_aborted` after `cancel()`, a new expiry, the timer's
    /// destruction, or a cancellation. The handler never runs inside this call.
    /// Several waits may be pending; they complete in the order they were started.
    ///
    /// @par Per-operation cancellation
    /// Terminal, partial and total cancellation complete this wait with
    /// `operation_aborted` and leave the others.
    template <class Token = asio::default_completion_token_t<executor_type>>
    auto async_wait(Token&& token = asio::default_completion_token_t<executor_type>());

private:
    struct state_deleter {
        void operator()(detail::sim_timer_state* s) const noexcept;
    };
    struct initiate_wait;
    struct wait_cancellation;

    std::unique_ptr<detail::sim_timer_state, state_deleter> state_;
};

/// A transport policy over a `sim_network`: one endpoint of the network.
///
/// It is pinned (neither copied nor moved): the network and pending operations point
/// at it. Destroying it closes it.
///
/// Per `peerlink::transport_policy`: `try_send` accepts every datagram at once and
/// the link model decides its fate; datagrams that arrive wait in a receive queue
/// of `sim_network::receive_queue_limit` datagrams (arrivals beyond it are dropped
/// and counted) until `async_receive` takes them.
class sim_transport {
public:
    using policy_kind = transport_tag;
    using executor_type = asio::io_context::executor_type;
    using timer_type = sim_timer;

    /// Binds `local` on `net`.
    ///
    /// @param local any IPv4 or IPv6 endpoint; only exact matches receive (no
    /// wildcard address). Port 0 takes the first free port from 49152 up.
    /// @throws std::system_error with `std::errc::address_in_use` (generic category:
    /// Asio 1.22's own `asio::error::address_in_use` does not compare equal to the
    /// `std::errc` condition) when a transport of `net` is bound there, or
    /// `error::no_port_available` when port 0 finds no free port.
    sim_transport(sim_network& net, const endpoint& local);

    /// Binds `local` on `net`, reporting failure in `ec` (the errors of the throwing
    /// constructor); on failure the transport is closed (`is_open() == false`).
    sim_transport(sim_network& net, const endpoint& local, std::error_code& ec);

    sim_transport(const sim_transport&) = delete;
    sim_transport& operator=(const sim_transport&) = delete;
    ~sim_transport() { close(); }

    executor_type get_executor() const noexcept { return net_->get_executor(); }

    /// The network's virtual time.
    time_point now() const noexcept { return net_->now(); }

    /// The bound endpoint (with the chosen port when bound with port 0).
    endpoint local_endpoint() const noexcept { return local_; }

    sim_network& network() const noexcept { return *net_; }

    /// Whether the transport is bound. It is closed after `close()` or a failed bind.
    bool is_open() const noexcept { return open_; }

    /// Datagrams waiting in the receive queue.
    std::size_t available() const noexcept { return rx_queue_.size(); }

    /// A timer on the network's virtual clock.
    timer_type make_timer() const { return timer_type(*net_); }

    /// Receives a batch of datagrams.
    ///
    /// Waits until at least one datagram is queued, then fills slots in order with
    /// the queued datagrams, up to `slots.size()`, without waiting for more. For each
    /// filled slot, `size` is the number of bytes stored in `buffer`, `from` the
    /// sender and `truncated` whether the datagram was longer than `buffer` (its
    /// tail is lost). Datagrams that arrive at the same virtual instant are taken
    /// together.
    ///
    /// @param slots caller-owned slots; they and their buffers must stay valid until
    /// the operation completes. An empty span completes at once with 0.
    /// @param token the completion token, signature
    /// `void(std::error_code ec, std::size_t filled)`. The handler never runs inside
    /// this call.
    ///
    /// @par Errors
    /// `asio::error::operation_aborted` after `close()` or a cancellation;
    /// `asio::error::bad_descriptor` on a closed transport;
    /// `error::operation_in_progress` when another receive is pending (only one may be).
    ///
    /// @par Per-operation cancellation
    /// Terminal, partial and total cancellation complete the receive with
    /// `operation_aborted`; no datagram is lost.
    template <class Token = asio::default_completion_token_t<executor_type>>
    auto async_receive(std::span<rx_slot> slots,
                       Token&& token = asio::default_completion_token_t<executor_type>());

    /// Hands every datagram of `batch` to the network at the current virtual time.
    ///
    /// @returns `batch.size()` with `ec` cleared: the link model, not the sender,
    /// decides what becomes of each (see `sim_link`), as for UDP. On a closed
    /// transport, 0 with `ec` = `asio::error::bad_descriptor`.
    std::size_t try_send(std::span<const tx_datagram> batch, std::error_code& ec);

    /// Completes at once (posted) with success, since `try_send` never blocks; with
    /// `asio::error::bad_descriptor` on a closed transport.
    /// @param token the completion token, signature `void(std::error_code)`.
    template <class Token = asio::default_completion_token_t<executor_type>>
    auto async_wait_writable(Token&& token = asio::default_completion_token_t<executor_type>());

    /// Unbinds the endpoint (datagrams to it now count as `dropped_no_endpoint`),
    /// discards the receive queue and completes a pending receive with
    /// `asio::error::operation_aborted`, posted. Closing twice does nothing.
    void close() noexcept;

private:
    friend class sim_network;

    struct initiate_receive;
    struct initiate_wait_writable;
    struct receive_cancellation;

    struct queued_datagram {
        endpoint from;
        std::vector<std::byte> bytes;
    };

    std::size_t fill(std::span<rx_slot> slots);
    void complete_receive();
    void cancel_receive();

    sim_network* net_;
    endpoint local_;
    bool open_ = false;
    bool ready_ = false; // listed in the network's ready_
    std::deque<queued_datagram> rx_queue_;
    std::unique_ptr<detail::sim_operation<std::error_code, std::size_t>> rx_op_;
    std::span<rx_slot> rx_slots_;
};

} // namespace peerlink

#include <peerlink/net/impl/sim_transport.hpp>

#endif // PEERLINK_NET_SIM_TRANSPORT_HPP
