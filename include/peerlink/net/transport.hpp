// peerlink/net/transport.hpp: what a transport policy provides.
//
// A transport moves datagrams for one `peer_connection`: `udp_transport` over real
// sockets, `sim_transport` over a simulated network on virtual time. It also owns
// the connection's notion of time (`now()` and a timer type), so a connection on
// the simulated network runs entirely on virtual time.
//
// clang-format off
// | expression                  | type / effect                                          |
// |-----------------------------|--------------------------------------------------------|
// | `T::policy_kind`            | `peerlink::transport_tag`                              |
// | `T::executor_type`          | the executor its handlers run on                       |
// | `T::timer_type`             | `expires_at(time_point)`, `async_wait(h)`, `cancel()`  |
// | `t.get_executor()`          | `executor_type`                                        |
// | `t.now()`                   | `time_point`: the transport's clock                    |
// | `t.local_endpoint()`        | `endpoint` it is bound to                              |
// | `t.make_timer()`            | `timer_type` on the transport's clock                  |
// | `t.async_receive(slots, h)` | fills 1..N `rx_slot`s, then `h(error_code, size_t)`    |
// | `t.try_send(batch, ec)`     | sends a prefix of `batch` now, returns how many        |
// | `t.async_wait_writable(h)`  | `h(error_code)` once `try_send` can make progress      |
// | `t.close()`                 | pending operations complete with `operation_aborted`   |
// clang-format on
//
// `try_send` never blocks. It stops early and sets `ec` to
// `std::errc::operation_would_block` when the socket buffer is full; any other
// error concerns the datagram at the returned index, which the caller drops and
// counts before it goes on with the rest.
#ifndef PEERLINK_NET_TRANSPORT_HPP
#define PEERLINK_NET_TRANSPORT_HPP

#include <peerlink/concepts.hpp>
#include <peerlink/endpoint.hpp>
#include <peerlink/time.hpp>

#include <concepts>
#include <cstddef>
#include <span>
#include <system_error>

namespace peerlink {

/// One slot of a batched receive: the caller provides `buffer`; the transport sets
/// `size` and `from`. A datagram larger than `buffer` is truncated and its slot's
/// `truncated` flag set, so the caller can count and drop it.
struct rx_slot {
    std::span<std::byte> buffer;
    std::size_t size = 0;
    endpoint from;
    bool truncated = false;
};

/// One datagram of a batched send.
struct tx_datagram {
    std::span<const std::byte> data;
    endpoint to;
};

namespace detail {
// Archetype handlers: the concept checks that the async calls accept a plain callable.
struct receive_handler_archetype {
    void operator()(std::error_code, std::size_t) const {}
};
struct wait_handler_archetype {
    void operator()(std::error_code) const {}
};
} // namespace detail

/// A timer on a transport's clock.
template <class T>
concept transport_timer = requires(T& t, time_point tp) {
    t.expires_at(tp);
    t.async_wait(detail::wait_handler_archetype{});
    t.cancel();
};

/// The transport tells time and makes timers on its clock.
template <class T>
concept has_transport_clock = requires(T& t, const T& ct) {
    { ct.now() } -> std::same_as<time_point>;
    { t.make_timer() } -> std::same_as<typename T::timer_type>;
}
&&transport_timer<typename T::timer_type>;

/// The transport has an executor, Asio style.
template <class T>
concept has_executor = requires(const T& ct) {
    typename T::executor_type;
    { ct.get_executor() } -> std::same_as<typename T::executor_type>;
};

/// The transport receives batches asynchronously.
template <class T>
concept batch_receiver = requires(T& t, std::span<rx_slot> slots) {
    t.async_receive(slots, detail::receive_handler_archetype{});
};

/// The transport sends batches without blocking, and says when it can send again.
template <class T>
concept batch_sender = requires(T& t, std::span<const tx_datagram> batch, std::error_code& ec) {
    { t.try_send(batch, ec) } -> std::same_as<std::size_t>;
    t.async_wait_writable(detail::wait_handler_archetype{});
};

/// A transport policy.
template <class T>
concept transport_policy = policy_of_kind<T, transport_tag> && has_executor<T> &&
    has_transport_clock<T> && batch_receiver<T> && batch_sender<T> && requires(T& t, const T& ct) {
    { ct.local_endpoint() } -> std::same_as<endpoint>;
    t.close();
};

} // namespace peerlink

#endif // PEERLINK_NET_TRANSPORT_HPP
