// peerlink/net/kcp_session.hpp: a KCP conversation with one remote endpoint, as an
// Asio byte stream over a transport policy ("kcp-go profile": raw KCP on the wire).
//
// `kcp_session<Transport>` is the thin Asio driver of one `peerlink::kcp_core`
// (peerlink/proto/kcp.hpp). Every datagram it sends is exactly what the core
// writes: one or more raw KCP segments (24-byte header + payload), with no FEC,
// no cipher and no framing of its own. That is what kcp-go sends when it is used
// without FEC and without encryption (`kcp.NewConn3(conv, addr, nil, 0, 0, conn)`,
// `kcp.ListenWithOptions(addr, nil, 0, 0)`), and what the original C KCP sends when
// its output callback writes each buffer to a UDP socket. So a session talks to
// those peers as long as both sides use the same conv, mtu and stream/message mode.
//
// The driver is one receive loop (batches of up to `rx_batch` datagrams), one timer
// re-armed from `kcp_core::poll_timeout()`, and batched sends (up to `tx_batch`
// datagrams per `try_send`, one `sendmmsg` on Linux). It decides nothing itself:
// windows, retransmission, ACKs and the flush schedule are the core's. For bulk
// transfers set `kcp_settings::flush_on_ack` (kcp-go's behaviour): without it new
// data waits for the next point of the interval grid after each window's ACKs.
//
// The session is an Asio AsyncReadStream and AsyncWriteStream, so `asio::async_read`,
// `asio::async_write` and `asio::async_read_until` work on it.
//
// @par Example: send a file's bytes to a kcp-go server
// @code
// asio::io_context io;
// peerlink::kcp_settings s = peerlink::kcp_fast;
// s.conv = 0x11223344;
// s.stream = true;       // the peer calls SetStreamMode(true)
// s.flush_on_ack = true; // as kcp-go does
// peerlink::kcp_session<peerlink::udp_transport> session(
//     s, peerlink::endpoint::parse("127.0.0.1:4000", ec), io.get_executor(),
//     peerlink::udp_transport::options{});
// asio::async_write(session, asio::buffer(bytes), [](std::error_code ec, std::size_t n) {
//     // n bytes are in the KCP send queue (not yet acknowledged)
// });
// io.run();
// @endcode
#ifndef PEERLINK_NET_KCP_SESSION_HPP
#define PEERLINK_NET_KCP_SESSION_HPP

#include <peerlink/detail/pending_op.hpp>
#include <peerlink/endpoint.hpp>
#include <peerlink/error.hpp>
#include <peerlink/net/transport.hpp>
#include <peerlink/net/udp_transport.hpp>
#include <peerlink/proto/kcp.hpp>
#include <peerlink/time.hpp>

#include <asio/async_result.hpp>
#include <asio/buffer.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <system_error>

namespace peerlink {

/// Counters of a `kcp_session`: the core's, and what the driver dropped.
struct kcp_session_stats {
    kcp_stats kcp;                         ///< The core's counters and estimates.
    std::uint64_t datagrams_received = 0;  ///< Datagrams from the peer fed to the core.
    std::uint64_t datagrams_foreign = 0;   ///< From another endpoint than the peer: dropped.
    std::uint64_t datagrams_bad_conv = 0;  ///< Carrying another conv: dropped.
    std::uint64_t datagrams_malformed = 0; ///< Refused by the core otherwise (see `input`).
    std::uint64_t datagrams_truncated = 0; ///< Larger than `mtu`: dropped.
    std::uint64_t datagrams_sent = 0;      ///< Datagrams handed to the transport.
    std::uint64_t send_errors = 0;         ///< Datagrams the transport refused: dropped.
    std::uint64_t send_would_block = 0;    ///< Times the transport's send buffer was full.
    std::uint64_t receive_batches = 0;     ///< Completed `async_receive` calls.
    std::uint64_t receive_errors = 0;      ///< `async_receive` calls that failed (then retried).
    std::uint64_t send_batches = 0;        ///< `try_send` calls.
};

/// One KCP conversation with one remote endpoint, as an Asio byte stream.
///
/// @tparam Transport a `peerlink::transport_policy` (`udp_transport`, `sim_transport`).
/// The session builds and owns it.
///
/// @par Stream and message mode
/// `kcp_settings::stream` must be the peer's. In stream mode the bytes written are
/// merged into full segments. In message mode each write is cut into messages of at
/// most one segment (`mss` bytes), exactly as kcp-go's `UDPSession.Write` does, so
/// that a peer with any receive window can take them; the reader hands out the bytes
/// of the peer's messages, whatever their size (up to `kcp_core::max_message_size()`),
/// in order, also across several reads when the buffer is smaller than a message.
/// Either way the interface is a byte stream: message boundaries are not kept.
///
/// @par Peer
/// With a `remote` endpoint, datagrams from any other endpoint are dropped (counted
/// in `stats().datagrams_foreign`). Without one (a listener), the first endpoint
/// that sends a datagram of this session's conv becomes the peer. Datagrams with
/// another conv are dropped and counted (`datagrams_bad_conv`).
///
/// @par Asynchronous operations
/// Both follow Asio's completion-token rules: callbacks, `asio::use_awaitable`,
/// `asio::use_future` and `deferred` work; the handler's associated executor,
/// allocator and cancellation slot are honoured; a handler never runs inside its
/// initiating call. At most one read and one write may be pending; another gets
/// `error::operation_in_progress`. `close()`, `cancel()` and destruction complete
/// pending operations with `asio::error::operation_aborted`.
///
/// @par Lifetime
/// The session's state lives until its pending handlers (receive, timer) have run,
/// which they do with `operation_aborted` once it is closed: after destroying a
/// session, run its executor (for `sim_transport`, `sim_network::run_for`) before
/// destroying the `io_context` or `sim_network`, as for `peer_connection`.
///
/// @par Thread safety
/// Distinct objects: safe. Shared objects: unsafe; use a strand. Completion handlers
/// whose executor is another (use_future's system executor) are dispatched from the
/// session's executor, as Asio's sockets do, so composed operations such as
/// `asio::async_read(session, buf, asio::use_future)` run their steps there.
template <class Transport = udp_transport>
class kcp_session {
    static_assert(transport_policy<Transport>,
                  "peerlink::kcp_session: Transport must meet peerlink::transport_policy (see "
                  "peerlink/net/transport.hpp)");

public:
    using transport_type = Transport;
    using executor_type = typename Transport::executor_type;

    /// Datagrams taken from the transport per `async_receive`.
    static constexpr std::size_t rx_batch = 64;
    /// Datagrams handed to the transport per `try_send`.
    static constexpr std::size_t tx_batch = 64;

    /// Builds the transport as `Transport(transport_args...)` and a core with
    /// `settings`, and starts receiving.
    ///
    /// @param settings the KCP settings; both peers need the same `conv`, `mtu` and
    /// `stream`. Out-of-range fields are clamped (see `kcp_validate`).
    /// @param remote the peer; `std::nullopt`: the first endpoint that sends a datagram
    /// with `settings.conv` (a listener).
    /// @param transport_args e.g. `io.get_executor(), udp_transport::options{...}`, or
    /// `net, local_endpoint` for a `sim_transport`.
    /// @throws what the transport's constructor throws (e.g. `std::system_error` when
    /// the UDP socket cannot be bound), `std::bad_alloc`.
    template <class... Args>
    kcp_session(const kcp_settings& settings, std::optional<endpoint> remote,
                Args&&... transport_args);

    kcp_session(const kcp_session&) = delete;
    kcp_session& operator=(const kcp_session&) = delete;
    kcp_session(kcp_session&&) noexcept = default;
    kcp_session& operator=(kcp_session&&) noexcept = default;

    /// Closes the session (see `close()`).
    ~kcp_session();

    /// The executor the transport runs on.
    executor_type get_executor() const noexcept;

    /// Reads some bytes (AsyncReadStream).
    ///
    /// Completes as soon as at least one byte is readable, with as many bytes as the
    /// buffers hold and the core has (up to 16 buffers of the sequence are filled).
    /// Buffers of total size 0 complete at once with 0 bytes.
    ///
    /// @param buffers a MutableBufferSequence; it must stay valid until completion.
    /// @param token completion signature `void(std::error_code ec, std::size_t n)`.
    ///
    /// @par Errors
    /// - `kcp_error::dead_link`: the peer stopped acknowledging (`dead_link`
    ///   retransmissions) and everything received was read. Final.
    /// - `error::not_connected`: the session is closed.
    /// - `error::operation_in_progress`: a read is already pending.
    /// - `asio::error::operation_aborted`: `cancel()`, `close()`, destruction, or a
    ///   cancellation through the handler's slot (no byte is lost).
    ///
    /// @par Per-operation cancellation
    /// All cancellation types.
    template <class MutableBufferSequence,
              class Token = asio::default_completion_token_t<executor_type>>
    auto async_read_some(const MutableBufferSequence& buffers,
                         Token&& token = asio::default_completion_token_t<executor_type>());

    /// Writes some bytes (AsyncWriteStream).
    ///
    /// Queues as many bytes as the core's send queue takes now (`send_capacity()`),
    /// at least one: waits while the queue is full, which is the backpressure. The
    /// bytes leave with the core's next flush (within `interval_ms`). Completion means
    /// queued, not acknowledged. Buffers of total size 0 complete at once with 0.
    ///
    /// @param buffers a ConstBufferSequence; it must stay valid until completion.
    /// @param token completion signature `void(std::error_code ec, std::size_t n)`.
    ///
    /// @par Errors
    /// `kcp_error::dead_link`, `error::not_connected`, `error::operation_in_progress`,
    /// `asio::error::operation_aborted`, as for `async_read_some`.
    ///
    /// @par Per-operation cancellation
    /// All cancellation types; bytes already queued by an earlier write stay queued.
    template <class ConstBufferSequence,
              class Token = asio::default_completion_token_t<executor_type>>
    auto async_write_some(const ConstBufferSequence& buffers,
                          Token&& token = asio::default_completion_token_t<executor_type>());

    /// Completes pending operations with `operation_aborted`; the session stays open.
    void cancel();

    /// Stops the session. A last flush hands the transport what the core has to send
    /// now (the ACKs the peer is owed, data the windows let out), as kcp-go's `Close`
    /// does; then pending operations complete with `operation_aborted`, the timer
    /// stops and the transport is closed. Nothing is retransmitted afterwards: to be
    /// sure the peer has everything, wait for `core().waiting_segments() == 0` first.
    /// Idempotent; the destructor calls it.
    void close();

    /// False once `close()` was called.
    bool is_open() const noexcept;

    /// The peer: the one given, or the one a listener adopted; nothing before that.
    std::optional<endpoint> remote_endpoint() const;

    /// The transport's local endpoint.
    endpoint local_endpoint() const;

    /// The KCP core, for its state (`waiting_segments()`, `is_dead()`, `stats()`).
    const kcp_core& core() const noexcept;

    /// Counters of the core and of the driver.
    kcp_session_stats stats() const;

    /// The transport.
    transport_type& transport() noexcept;

private:
    struct impl;
    template <class Op>
    struct initiation;
    struct read_op_tag {};
    struct write_op_tag {};
    std::shared_ptr<impl> impl_;
};

} // namespace peerlink

#include <peerlink/net/impl/kcp_session.hpp>

#endif // PEERLINK_NET_KCP_SESSION_HPP
