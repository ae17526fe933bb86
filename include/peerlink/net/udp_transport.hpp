// peerlink/net/udp_transport.hpp: the transport policy over a real UDP socket.
//
// `udp_transport` moves datagrams for a connection over one UDP socket on an Asio
// executor. It batches: on Linux one `recvmmsg` fills up to `max_batch` receive
// slots and one `sendmmsg` sends up to `max_batch` datagrams; elsewhere it falls
// back to one `recvmsg`/`sendmsg` per datagram with the same results.
//
// By default the socket is dual stack: one IPv6 socket bound to `[::]` that also
// talks to IPv4 peers. Peers are always named by plain `peerlink::endpoint`s: an
// IPv4 peer is `a.b.c.d:port` whether the socket is IPv4 or dual stack (the
// IPv4-mapped form `::ffff:a.b.c.d` never reaches the caller), and a datagram to an
// IPv4 endpoint is sent as IPv4-mapped when the socket is dual stack.
//
// It satisfies `peerlink::transport_policy` (see peerlink/net/transport.hpp). Like
// Asio's I/O objects it is not thread-safe: use it from one thread or a strand.
//
// @par Example
// @code
// asio::io_context io;
// peerlink::udp_transport::options o;
// o.port_min = 40000;
// o.port_max = 40099;
// peerlink::udp_transport t(io.get_executor(), o); // dual stack, a port in 40000..40099
// std::array<std::byte, 1500> buf;
// peerlink::rx_slot slot;
// slot.buffer = buf;
// t.async_receive(std::span(&slot, 1), [&](std::error_code ec, std::size_t n) {
//     if (!ec && n == 1)
//         std::printf("%zu bytes from %s\n", slot.size, slot.from.to_string().c_str());
// });
// io.run();
// @endcode
#ifndef PEERLINK_NET_UDP_TRANSPORT_HPP
#define PEERLINK_NET_UDP_TRANSPORT_HPP

#include <peerlink/config.hpp>
#include <peerlink/endpoint.hpp>
#include <peerlink/error.hpp>
#include <peerlink/net/asio_endpoint.hpp>
#include <peerlink/net/transport.hpp>
#include <peerlink/time.hpp>

#include <asio/any_io_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/ip/udp.hpp>
#include <asio/steady_timer.hpp>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <system_error>

namespace peerlink {

namespace detail {
struct udp_receive_op;
}

/// A transport policy over one UDP socket, with batched sends and receives.
///
/// The object owns its socket. It can be neither copied nor moved: a pending
/// `async_receive` refers to it. Destroying it, like `close()`, completes pending
/// operations with `asio::error::operation_aborted`.
class udp_transport {
public:
    using policy_kind = transport_tag;
    /// The executor that handlers run on when they have no executor of their own.
    using executor_type = asio::any_io_executor;
    /// A timer on `clock` (`std::chrono::steady_clock`), the clock of `now()`.
    using timer_type = asio::steady_timer;
    using native_handle_type = asio::ip::udp::socket::native_handle_type;

    /// Most datagrams one system call moves; larger batches take several calls.
    static constexpr std::size_t max_batch = 64;

    /// True when this build moves a batch in one system call (`sendmmsg`/`recvmmsg`).
    static constexpr bool batches_system_calls =
#if defined(__linux__) && !defined(PEERLINK_NO_MMSG)
        true;
#else
        false;
#endif

    /// Where and how the socket is opened.
    struct options {
        /// The local address to bind: "" for all interfaces, or an IPv4 or IPv6
        /// address text ("127.0.0.1", "::1", "[fe80::1%2]"; no host names).
        /// - "" with `ipv6`: one dual-stack socket on `[::]` (IPv4 peers included);
        ///   if the system has no IPv6, an IPv4 socket on 0.0.0.0.
        /// - "" without `ipv6`: an IPv4 socket on 0.0.0.0.
        /// - "::": a dual-stack socket on `[::]`.
        /// - any other IPv6 address: an IPv6-only socket; IPv4 peers cannot be reached.
        /// - an IPv4 address: an IPv4 socket; IPv6 peers cannot be reached.
        std::string bind_address;
        /// The local port range. `port_min = port_max = 0`: a port chosen by the
        /// system. `port_max = 0` with `port_min > 0`: exactly `port_min`. Otherwise
        /// every port of `port_min..port_max` is tried, from a pseudo-random start,
        /// until one is free.
        std::uint16_t port_min = 0, port_max = 0;
        /// Whether IPv6 may be used at all.
        bool ipv6 = true;
        /// SO_RCVBUF and SO_SNDBUF to ask for (the system may grant less); 0 or
        /// less keeps the system's defaults.
        int socket_buffer_bytes = 4 << 20;
    };

    /// A closed transport; call `open()` before using it.
    explicit udp_transport(executor_type ex);

    /// An open transport.
    /// @throws std::system_error with the error `open()` would report.
    udp_transport(executor_type ex, const options& o);

    /// An open transport with the options of `cfg.transport`, as `peer_connection` makes it.
    /// @throws std::system_error with the error `open()` would report.
    udp_transport(executor_type ex, const config& cfg)
        : udp_transport(std::move(ex), options{cfg.transport.bind_address, cfg.transport.port_min,
                                               cfg.transport.port_max, cfg.transport.ipv6,
                                               cfg.transport.socket_buffer_bytes}) {}

    udp_transport(const udp_transport&) = delete;
    udp_transport& operator=(const udp_transport&) = delete;
    ~udp_transport() = default;

    /// Opens and binds the socket as `o` says, non-blocking.
    ///
    /// @param o where to bind; see `options`.
    /// @param ec set on failure, cleared on success. On failure the transport stays closed.
    /// - `error::invalid_endpoint`: `bind_address` is not an IP address text.
    /// - `error::address_family_not_enabled`: an IPv6 `bind_address` with `ipv6 == false`.
    /// - `error::invalid_config`: a port range with `port_min == 0` or `port_min > port_max`.
    /// - `error::no_port_available`: every port of the range is in use (or forbidden).
    /// - `asio::error::already_open`: the transport is open.
    /// - a system error from `socket()` or `bind()` (e.g. the address is not local).
    void open(const options& o, std::error_code& ec);

    /// Whether the socket is open.
    bool is_open() const noexcept {
        return socket_.is_open();
    }

    /// Closes the socket. Pending `async_receive` and `async_wait_writable` complete
    /// with `asio::error::operation_aborted`. Closing a closed transport does nothing.
    void close() noexcept;

    executor_type get_executor() const noexcept {
        // Asio's basic_socket::get_executor() is not const, though it only reads.
        return const_cast<asio::ip::udp::socket&>(socket_).get_executor();
    }

    /// The current time on the transport's clock (`peerlink::clock`).
    time_point now() const noexcept {
        return clock::now();
    }

    /// A timer on the transport's executor and clock.
    timer_type make_timer() const {
        return timer_type(get_executor());
    }

    /// The bound address and port. A dual-stack socket reports `[::]:port`; a closed
    /// transport reports `0.0.0.0:0`.
    endpoint local_endpoint() const noexcept {
        return local_;
    }

    /// True when the socket is dual stack (IPv6 socket that also reaches IPv4 peers).
    bool dual_stack() const noexcept {
        return dual_stack_;
    }

    /// The socket's descriptor, for socket options the transport does not set.
    native_handle_type native_handle() {
        return socket_.native_handle();
    }

    /// Receives a batch of datagrams.
    ///
    /// Waits until at least one datagram is there, then fills slots in order with
    /// the datagrams already queued, up to `slots.size()` (and at most `max_batch`),
    /// without waiting for more. For each filled slot, `size` is the number of bytes
    /// stored in `buffer`, `from` the sender and `truncated` whether the datagram
    /// was longer than `buffer` (its tail is lost). ICMP errors that a previous send
    /// caused (port unreachable) are skipped.
    ///
    /// @param slots caller-owned slots; they and their buffers must stay valid until
    /// the operation completes. An empty span completes at once with 0.
    /// @param token the completion token, signature
    /// `void(std::error_code ec, std::size_t filled)`. The handler never runs
    /// inside this call.
    ///
    /// @par Errors
    /// `asio::error::operation_aborted` after `close()` or a cancellation;
    /// `asio::error::bad_descriptor` on a closed transport; otherwise the error of
    /// the receive system call, in `std::system_category()` (compare it with
    /// `std::errc`: Asio 1.22's own system category does not map to `std::errc`).
    ///
    /// @par Per-operation cancellation
    /// Terminal cancellation is supported (e.g. `asio::bind_cancellation_slot`,
    /// `asio::experimental::awaitable_operators`): the operation then completes
    /// with `operation_aborted`, and no datagram is lost.
    template <class Token = asio::default_completion_token_t<executor_type>>
    auto async_receive(std::span<rx_slot> slots,
                       Token&& token = asio::default_completion_token_t<executor_type>());

    /// Sends a prefix of `batch` now, without blocking.
    ///
    /// @returns how many datagrams, from the front of `batch`, were handed to the
    /// system. If it is less than `batch.size()`, `ec` says why:
    /// - `std::errc::operation_would_block`: the socket buffer is full; wait with
    ///   `async_wait_writable` and send the rest.
    /// - any other error concerns the datagram at the returned index only (e.g.
    ///   `error::address_family_not_enabled` for an IPv6 peer on an IPv4 socket,
    ///   `std::errc::message_size` for a datagram above 65507 bytes, no route): the
    ///   caller drops it and calls again with the rest.
    /// - `asio::error::bad_descriptor`: the transport is closed; nothing was sent.
    /// `ec` is cleared when the whole batch was sent. System call errors are in
    /// `std::system_category()`.
    std::size_t try_send(std::span<const tx_datagram> batch, std::error_code& ec);

    /// Waits until the socket can send again, after `try_send` reported
    /// `operation_would_block`.
    ///
    /// @param token the completion token, signature `void(std::error_code)`.
    /// Aborted by `close()` and by terminal cancellation with `operation_aborted`.
    template <class Token = asio::default_completion_token_t<executor_type>>
    auto async_wait_writable(Token&& token = asio::default_completion_token_t<executor_type>());

    /// How many send system calls `try_send` made (each moves up to `max_batch`
    /// datagrams on Linux, one elsewhere).
    std::uint64_t syscalls_sent() const noexcept {
        return syscalls_sent_;
    }
    /// How many receive system calls `async_receive` made, including calls that
    /// found nothing to receive.
    std::uint64_t syscalls_received() const noexcept {
        return syscalls_received_;
    }

private:
    friend struct detail::udp_receive_op;

    std::size_t receive_now(std::span<rx_slot> slots, std::error_code& ec);
    bool to_socket_endpoint(const endpoint& to, asio::ip::udp::endpoint& out,
                            std::error_code& ec) const noexcept;
    bool open_socket(asio::ip::udp::endpoint where, bool dual, std::uint16_t lo, std::uint16_t hi,
                     int buffer_bytes, std::error_code& ec);

    asio::ip::udp::socket socket_;
    endpoint local_;
    bool v6_socket_ = false;
    bool dual_stack_ = false;
    std::uint64_t syscalls_sent_ = 0;
    std::uint64_t syscalls_received_ = 0;
};

} // namespace peerlink

#include <peerlink/net/impl/udp_transport.hpp>

#endif // PEERLINK_NET_UDP_TRANSPORT_HPP
