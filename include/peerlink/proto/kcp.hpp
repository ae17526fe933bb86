// peerlink/proto/kcp.hpp: the sans-I/O KCP core (reliability: segments, ACKs,
// windows, retransmission), byte-compatible with the original C KCP and kcp-go.
//
// `kcp_core` is ikcp.c's state machine (skywind3000/kcp) without sockets and
// without a clock: the driver feeds it datagrams and the time, and drains the
// datagrams it wants sent. It reproduces ikcp.c's behaviour: RTO estimation
// (srtt/rttval, rto = srtt + max(interval, 4 * rttval) clamped to
// [min_rto, 60000] ms), exponential or 1.5x back-off (nodelay), fast retransmit
// after `resend` skips (at most `fast_limit` times per segment), the congestion
// window (slow start to ssthresh, then additive increase; halved on fast
// retransmit, reset to 1 on timeout) or none (`no_cwnd`), window probing (WASK
// after 7 s of a zero remote window, then every 1.5x longer up to 120 s; WINS
// when this side's full window reopens), dead-link detection, stream mode and
// message mode with fragmentation. See kcp_segment.hpp for the wire format.
//
// What peerlink does differently, none of it visible on the wire:
//
// - Storage: ring buffers indexed by sequence number, no linked list. An ACK
//   costs O(1) and flush work is proportional to the segments in flight. The
//   rings grow with use, never per segment: a ring is allocated when it is first
//   needed and grows 4x at a time up to the size the windows need (a few
//   allocations over a conversation's life), and `shrink_to_fit()` frees the
//   empty ones. A new or idle core holds no buffer at all (see `capacity()`).
// - Timer: flushes run on ikcp_update's grid (every `interval_ms`), at the grid
//   time an application calling ikcp_update every millisecond would see them,
//   but `poll_timeout()` asks only for the flushes that have something to do:
//   a core with nothing queued, in flight or owed asks for no timer at all, so
//   idle sessions cost nothing.
// - Output: a flush writes its datagrams into an internal ring that the driver
//   drains with `poll_transmit()`.
// - `interval_ms` may be 1..5000; ikcp.c and kcp-go clamp it to 10..5000. The
//   interval only schedules this side's flushes, so the peer cannot tell.
// - RTT samples use the `now` given to `input()`, not the time of the last
//   update as ikcp.c does: the estimate is closer to the real RTT.
// - The congestion window starts at 1 segment (ikcp.c starts at 0 and reaches 1
//   at the end of its first flush, which delays the first send by one interval).
// - The fragment limit of a message follows the configured receive window
//   (`rcv_wnd - 1`, at most 255) where ikcp.c uses its constant IKCP_WND_RCV
//   (128); the receive window is not raised to 128 as ikcp_wndsize does.
// - Input errors: a datagram is processed up to its first bad segment; the
//   segments before it count (ikcp.c returns at once and skips its ACK
//   bookkeeping for them). Two checks ikcp.c lacks: a PUSH longer than this
//   side's MSS is refused (ikcp.c allocates any length), and in message mode so
//   is a fragment count the receive window can never hold (ikcp.c would stall).
// - Bounded memory: the ACK list is written out early when it is full, and the
//   transmit ring drops its oldest datagram if the driver does not drain it.
// - Dead link is final: the core stops sending (ikcp.c only sets `state`).
//   `dead_link == 0` switches the detection off.
// - Stream mode receive hands out any number of bytes, across segments, and
//   ignores `frg`; ikcp.c wants a buffer the size of the next segment.
//
// Names carry a `kcp_` prefix rather than a `kcp` namespace, which keeps
// `peerlink::kcp<Mode>` free for the reliability policy built on this core.
#ifndef PEERLINK_PROTO_KCP_HPP
#define PEERLINK_PROTO_KCP_HPP

#include <peerlink/error.hpp>
#include <peerlink/proto/kcp_segment.hpp>
#include <peerlink/time.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <system_error>

namespace peerlink {

/// The parameters of a KCP conversation.
///
/// The defaults are ikcp.c's defaults (`ikcp_create`). The fields map to ikcp's
/// setters: `ikcp_nodelay(nodelay, interval_ms, resend, no_cwnd)`,
/// `ikcp_wndsize(snd_wnd, rcv_wnd)`, `ikcp_setmtu(mtu)`, `kcp->stream`,
/// `kcp->dead_link`, `kcp->fastlimit`, `kcp->rx_minrto`.
///
/// The type is structural, so a preset can be a template argument.
struct kcp_settings {
    /// Conversation id; both peers must use the same one.
    std::uint32_t conv = 0;
    /// 0: normal retransmission (RTO doubles per timeout, minimum RTO 100 ms, first
    /// timeout delayed by rto/8). 1: no delay (RTO grows by half, minimum RTO 30 ms).
    /// 2: like 1, but the growth step is the current RTO estimate, not the segment's.
    int nodelay = 0;
    /// Time between flushes in ms (1..5000). ACKs and new data wait up to this long.
    std::uint32_t interval_ms = 100;
    /// Fast retransmit: resend a segment once this many later segments were acknowledged
    /// (0: off).
    std::uint32_t resend = 0;
    /// Fast retransmits allowed per segment (like ikcp's IKCP_FASTACK_LIMIT); <= 0: any.
    int fast_limit = 5;
    /// Switches the congestion window off: send as fast as both windows allow.
    bool no_cwnd = false;
    /// Send window in segments: at most this many segments in flight (1..65535).
    std::uint32_t snd_wnd = 32;
    /// Receive window in segments (1..65535): segments buffered for reordering and for a
    /// reader that is behind; a message may have at most `rcv_wnd - 1` fragments.
    std::uint32_t rcv_wnd = 128;
    /// Largest datagram this core writes, KCP headers included (50..65535). The MSS,
    /// the largest segment payload, is `mtu - 24`; segments from the peer may not be
    /// larger, so the peer's mtu must not exceed this one.
    std::uint32_t mtu = 1400;
    /// Stream mode: a byte stream without message boundaries, small writes merged into
    /// full segments. Off: message mode, each `send` is one message for one `receive`.
    bool stream = false;
    /// Declare the link dead once a segment has been sent this many times without an
    /// ACK (0: never).
    std::uint32_t dead_link = 20;
    /// Lower bound of the RTO in ms; 0: 30 with `nodelay`, 100 without (ikcp's rule).
    std::uint32_t min_rto_ms = 0;
    /// Send ACKs at the end of each `input()` instead of at the next flush: lower
    /// latency and RTT estimates without the interval, more ACK datagrams.
    bool ack_nodelay = false;
    /// Flush at once when an ACK moves the send window while segments wait in the
    /// queue, as kcp-go's `Input` does ("if window has slided, flush"), instead of at
    /// the next point of the interval grid. Bulk transfers then stop waiting up to
    /// `interval_ms` for each window's worth; only timing changes, not the wire format.
    bool flush_on_ack = false;
    /// Segments `send` may queue beyond those in flight (the backpressure bound); 0:
    /// max(snd_wnd, fragments of the largest message). Message mode raises it to the
    /// fragments of the largest message, so that one always fits an empty queue.
    std::uint32_t send_queue = 0;

    friend bool operator==(const kcp_settings&, const kcp_settings&) = default;
};

/// "Normal" mode: the original's `ikcp_nodelay(0, 40, 0, 0)` with its default
/// windows (32 send, 128 receive). Timeouts double, congestion control on, no
/// fast retransmit: gentle on shared links, slowest to recover from loss.
inline constexpr kcp_settings kcp_normal{
    .nodelay = 0, .interval_ms = 40, .resend = 0, .no_cwnd = false, .snd_wnd = 32, .rcv_wnd = 128};

/// "Fast" mode: `nodelay(1, 20, 2, 0)`, windows 128/128.
///
/// Why these: most of KCP's latency gain over TCP comes from `nodelay` (minimum RTO
/// 30 ms, back-off 1.5x instead of 2x) and fast retransmit after 2 skipped ACKs, so
/// Fast takes both from Turbo. A 20 ms flush interval halves Normal's ACK and send
/// delay while waking half as often as Turbo. It keeps the congestion window: that
/// is what makes Turbo unfair to other flows and wasteful on a congested path, so
/// Fast stays well-behaved on shared links. Windows of 128 segments (about 176 KB)
/// fill a 20 Mbit/s path at 70 ms RTT, four times Normal.
inline constexpr kcp_settings kcp_fast{
    .nodelay = 1, .interval_ms = 20, .resend = 2, .no_cwnd = false, .snd_wnd = 128, .rcv_wnd = 128};

/// "Turbo" mode: the original's fastest, `ikcp_nodelay(1, 10, 2, 1)`: no
/// congestion control, 10 ms flushes, fast retransmit after 2 skips. Windows of
/// 256 segments (about 350 KB in flight) fill 40 Mbit/s at 70 ms RTT.
inline constexpr kcp_settings kcp_turbo{
    .nodelay = 1, .interval_ms = 10, .resend = 2, .no_cwnd = true, .snd_wnd = 256, .rcv_wnd = 256};

/// Checks that every field of `s` is in its documented range.
/// @returns `error::invalid_config` if one is not (the core clamps such values).
std::error_code kcp_validate(const kcp_settings& s) noexcept;

/// Counters and estimates of one core, for logs and `stats()` of the connection.
struct kcp_stats {
    std::uint64_t segments_sent = 0;       ///< PUSH segments sent for the first time.
    std::uint64_t retransmits = 0;         ///< PUSH segments sent again (timeout or fast).
    std::uint64_t fast_retransmits = 0;    ///< Of which fast retransmits.
    std::uint64_t lost_segments = 0;       ///< Retransmits after a timeout (ikcp's `xmit`).
    std::uint64_t segments_received = 0;   ///< New PUSH segments accepted.
    std::uint64_t duplicate_segments = 0;  ///< PUSH segments received again, or outside the window.
    std::uint64_t acks_sent = 0;           ///< ACK segments written.
    std::uint64_t datagrams_sent = 0;      ///< Datagrams queued for `poll_transmit`.
    std::uint64_t datagrams_dropped = 0;   ///< Queued datagrams overwritten: not drained in time.
    std::uint64_t window_probes = 0;       ///< WASK segments sent.
    std::uint64_t buffer_allocations = 0;  ///< Buffers allocated (rings growing); not per segment.
    std::uint64_t allocation_failures = 0; ///< Growths refused by the allocator (see `send`).
    std::uint32_t srtt_ms = 0;             ///< Smoothed RTT.
    std::uint32_t rttvar_ms = 0;           ///< RTT variation.
    std::uint32_t rto_ms = 0;              ///< Current retransmission timeout.
    std::uint32_t cwnd = 0;                ///< Congestion window, segments.
    std::uint32_t ssthresh = 0;            ///< Slow-start threshold, segments.
    std::uint32_t remote_window = 0;       ///< The peer's last advertised free window.
    std::uint32_t in_flight = 0;           ///< Segments sent and not acknowledged.
    std::uint32_t queued = 0;              ///< Segments waiting for the window.
};

/// The buffers of a core, in entries and in bytes: what it holds now
/// (`kcp_core::capacity()`) or the most it can grow to (`kcp_core::max_capacity()`).
struct kcp_capacity {
    std::size_t send_slots = 0;     ///< Segments in flight plus queued, each of `mss` bytes.
    std::size_t receive_slots = 0;  ///< Out-of-order plus unread segments, each of `mss` bytes.
    std::size_t ack_slots = 0;      ///< ACKs collected between flushes.
    std::size_t transmit_slots = 0; ///< Datagrams of `mtu` bytes waiting for `poll_transmit`.
    std::size_t bytes = 0;          ///< All of it, in bytes.
    friend bool operator==(const kcp_capacity&, const kcp_capacity&) = default;
};

/// One side of a KCP conversation, as a sans-I/O state machine.
///
/// The driver's loop:
///
/// @code
/// peerlink::kcp_settings s = peerlink::kcp_fast;
/// s.conv = conv;
/// peerlink::kcp_core kcp(s, clock::now());
/// // on a datagram from the peer:   kcp.input(bytes, now);
/// // on the timer:                  kcp.handle_timeout(now);
/// // to write:                      if (kcp.send_capacity() >= n) kcp.send(data);
/// // to read:                       n = kcp.receive(buf, ec);
/// // after each of these calls:
/// while (std::size_t n = kcp.poll_transmit(buf)) socket.send(buf.first(n));
/// if (auto t = kcp.poll_timeout()) timer.expires_at(*t); else timer.cancel();
/// @endcode
///
/// Not thread-safe; never throws; never reads a clock: time comes in as `now`,
/// and timestamps on the wire are milliseconds since the `now` given to the
/// constructor, as u32 that wrap after 49.7 days.
///
/// Memory: the core allocates nothing when it is built. Its buffers (send ring,
/// receive ring, ACK list, transmit queue) are allocated when traffic first needs
/// them and grow 4x at a time up to `max_capacity()`; steady traffic allocates
/// nothing more. Call `shrink_to_fit()` when the conversation has gone quiet to
/// give the empty ones back. Allocation uses `new (std::nothrow)`: if it fails,
/// `send` returns `std::errc::not_enough_memory`, an arriving segment is dropped
/// unacknowledged (the peer resends it), and `stats().allocation_failures` counts.
class kcp_core {
public:
    /// Builds a core. Allocates nothing (see the class comment).
    /// @param s its settings; out-of-range fields are clamped (see `kcp_validate`).
    /// @param now the current time; the core's millisecond clock starts here.
    kcp_core(const kcp_settings& s, time_point now) noexcept;

    kcp_core(kcp_core&&) noexcept = default;
    kcp_core& operator=(kcp_core&&) noexcept = default;

    /// The settings in use, after clamping.
    const kcp_settings& settings() const noexcept { return settings_; }
    /// The conversation id.
    std::uint32_t conv() const noexcept { return settings_.conv; }
    /// Largest payload of one segment: `mtu - 24`.
    std::size_t mss() const noexcept { return mss_; }
    /// Message mode: the largest message `send` accepts (`max fragments * mss`).
    std::size_t max_message_size() const noexcept;

    /// @name Sending
    /// @{

    /// Queues bytes for sending; all of them or none. They leave with the next flush
    /// (on the interval grid: see `poll_timeout()`; at once with `flush(now)`), as
    /// far as the send, remote and congestion windows allow.
    ///
    /// Message mode: `data` is one message (empty allowed), delivered whole by one
    /// `receive` on the other side. Stream mode: `data` is appended to the stream
    /// (empty: nothing to do), merged with earlier small writes into full segments.
    ///
    /// @returns
    /// - `kcp_error::send_window_full`: it does not fit in `send_capacity()` now.
    ///   Wait until it does: the queue drains as the peer acknowledges.
    /// - `kcp_error::too_many_fragments`: the message is larger than
    ///   `max_message_size()`; it never fits.
    /// - `kcp_error::dead_link`: the link is dead (`is_dead()`).
    /// - `std::errc::not_enough_memory`: the send ring had to grow and the allocator
    ///   refused; nothing was queued.
    std::error_code send(std::span<const std::byte> data) noexcept;

    /// Bytes `send` accepts now. Stream mode: any write up to this size. Message mode:
    /// any message up to this size (0: not even an empty one). Grows when ACKs free
    /// the send window; 0 once the link is dead.
    std::size_t send_capacity() const noexcept;

    /// Segments queued or in flight (ikcp_waitsnd): 0 once the peer has everything.
    std::size_t waiting_segments() const noexcept { return nsnd_buf_ + nsnd_que_; }

    /// @}
    /// @name Receiving
    /// @{

    /// Feeds one datagram from the peer: one or more segments back to back.
    ///
    /// Segments are processed in order up to the first bad one; the bad one and
    /// everything after it change nothing. Trailing bytes shorter than a header are
    /// ignored, as ikcp.c and kcp-go do.
    ///
    /// @param datagram the bytes, as received (after any FEC, cipher and framing).
    /// @param now the time of arrival; ACKs measure the RTT with it.
    /// @returns `kcp_error::malformed_segment` (shorter than a header, or a length
    /// past the end), `kcp_error::unknown_command`, `kcp_error::conv_mismatch`,
    /// `kcp_error::segment_too_large` (longer than this side's `mss()`), or
    /// `kcp_error::too_many_fragments` (message mode: a fragment count the receive
    /// window can never hold). All map to `condition::malformed_input` except the
    /// last; the driver counts and drops such datagrams. Once the link is dead:
    /// `kcp_error::dead_link`, and the datagram is ignored.
    std::error_code input(std::span<const std::byte> datagram, time_point now) noexcept;

    /// True when `receive` has something: stream mode, at least one byte; message mode,
    /// a complete message (possibly empty).
    bool readable() const noexcept;

    /// Stream mode: bytes readable now. Message mode: size of the next complete
    /// message, 0 if there is none (or it is empty: see `readable`).
    std::size_t peek_size() const noexcept;

    /// Takes received data out of the core, freeing receive window.
    ///
    /// Stream mode: copies up to `out.size()` bytes. Message mode: copies the next
    /// whole message, or nothing.
    ///
    /// @returns the bytes copied, with `ec` clear; or 0 with `ec`:
    /// - `kcp_error::would_block`: nothing to receive yet (not readable).
    /// - `peerlink::error::buffer_too_small`: message mode, the message is larger than
    ///   `out` (see `peek_size()`); it stays queued.
    /// - `kcp_error::dead_link`: nothing left to receive and the link is dead.
    ///
    /// When this frees a receive window that was full, the next flush tells the peer
    /// (WINS): call `poll_timeout()` again afterwards.
    std::size_t receive(std::span<std::byte> out, std::error_code& ec) noexcept;

    /// @}
    /// @name Driving
    /// @{

    /// Runs the flush that is due (ikcp_update): when `now` has reached the flush time,
    /// writes pending ACKs, window probes, new segments the windows allow and
    /// retransmissions that are due into the transmit queue, and schedules the next
    /// flush `interval_ms` later. Does nothing before the flush time, or once dead.
    ///
    /// Call it when the time returned by `poll_timeout()` has come (earlier calls are
    /// harmless), then drain `poll_transmit()`.
    void handle_timeout(time_point now) noexcept;

    /// Flushes now, whatever the schedule (ikcp_flush): for a write that must leave at
    /// once, or an immediate ACK. Does not move the flush schedule. Then drain
    /// `poll_transmit()`.
    void flush(time_point now) noexcept;

    /// When `handle_timeout` must be called next (like ikcp_check, but exact).
    ///
    /// The time is a point of the flush grid (every `interval_ms`): the first one
    /// after work became pending (an ACK owed, data the windows let out, a window
    /// update owed), or after the first retransmission or window probe falls due.
    /// Nothing while there is nothing to do, or once the link is dead. A time in the
    /// past means "now". Call it after every other call (send, input, receive,
    /// handle_timeout, flush) and re-arm the timer with the answer.
    std::optional<time_point> poll_timeout() const noexcept;

    /// Takes the next datagram to send: at most `mtu` bytes, one or more segments.
    ///
    /// Call it after every other call until it returns 0, and send each datagram. The
    /// queue holds one flush's output and more; when it overflows the oldest datagram
    /// is dropped (counted in `stats().datagrams_dropped`) and KCP retransmits.
    ///
    /// @param out where to copy the datagram; `mtu` bytes always suffice.
    /// @returns its size; 0 if there is none, or if `out` is smaller than
    /// `next_transmit_size()` (the datagram stays queued).
    std::size_t poll_transmit(std::span<std::byte> out) noexcept;

    /// Size of the datagram `poll_transmit` returns next; 0 if none.
    std::size_t next_transmit_size() const noexcept { return tx_count_ ? tx_len_[tx_head_] : 0; }

    /// @}
    /// @name State
    /// @{

    /// True once a segment was sent `dead_link` times without an ACK. Final: the
    /// core then sends nothing more and asks for no timer; `send` fails and
    /// `receive` fails once the data already received is read. The connection
    /// should close with `error()` as the reason.
    bool is_dead() const noexcept { return dead_; }

    /// `kcp_error::dead_link` once dead, else clear.
    std::error_code error() const noexcept {
        return dead_ ? make_error_code(kcp_error::dead_link) : std::error_code{};
    }

    /// Counters and estimates.
    kcp_stats stats() const noexcept;

    /// The buffers allocated now: nothing for a new core, then what traffic needed.
    kcp_capacity capacity() const noexcept;

    /// The most the buffers grow to, from the settings: send ring
    /// `2^ceil(log2(snd_wnd + send queue))` and receive ring `2^ceil(log2(2 * rcv_wnd))`
    /// segments of `mss` bytes, `max(64, 2 * rcv_wnd)` ACKs, and a transmit queue of
    /// `snd_wnd` datagrams of `mtu` bytes plus room for the ACKs and probes of a flush.
    kcp_capacity max_capacity() const noexcept;

    /// Frees the buffers that hold nothing now: the send ring once everything sent
    /// was acknowledged (`waiting_segments() == 0`), the receive ring once everything
    /// received was read and no segment waits out of order, the ACK list and the
    /// transmit queue once drained. Buffers in use stay as they are. The next traffic
    /// allocates again, so call it when the conversation has gone quiet (a keepalive
    /// period without traffic, say), not after every message.
    /// @returns the bytes freed.
    std::size_t shrink_to_fit() noexcept;

    /// @}

private:
    struct send_slot {
        std::uint32_t sn = 0;
        std::uint32_t ts = 0;
        std::uint32_t resendts = 0;
        std::uint32_t rto = 0;
        std::uint32_t fastack = 0;
        std::uint32_t xmit = 0;
        std::uint32_t len = 0;
        std::uint8_t frg = 0;
        bool acked = false;
    };
    struct recv_slot {
        std::uint32_t sn = 0;
        std::uint32_t len = 0;
        std::uint8_t frg = 0;
        bool present = false;
    };
    struct ack_entry {
        std::uint32_t sn;
        std::uint32_t ts;
    };

    void set_now(time_point now) noexcept;
    send_slot& snd_slot(std::uint32_t sn) noexcept { return snd_slots_[sn & snd_mask_]; }
    std::byte* snd_data(std::uint32_t sn) noexcept {
        return snd_data_.get() + std::size_t(sn & snd_mask_) * mss_;
    }
    // Grow a buffer so that it holds `need` entries; false if the allocator refused.
    bool reserve_send(std::size_t need) noexcept;
    bool reserve_receive(std::size_t need) noexcept;
    bool reserve_acks() noexcept;
    bool reserve_transmit() noexcept;
    recv_slot& rcv_slot(std::uint32_t sn) noexcept { return rcv_slots_[sn & rcv_mask_]; }
    const recv_slot& rcv_slot(std::uint32_t sn) const noexcept {
        return rcv_slots_[sn & rcv_mask_];
    }
    std::byte* rcv_data(std::uint32_t sn) noexcept {
        return rcv_data_.get() + std::size_t(sn & rcv_mask_) * mss_;
    }
    std::uint32_t rcv_head() const noexcept { return rcv_nxt_ - nrcv_que_; }
    std::uint32_t window() const noexcept;
    std::uint16_t wnd_unused() const noexcept;
    std::uint32_t free_queue_slots() const noexcept { return queue_limit_ - nsnd_que_; }
    std::size_t message_size() const noexcept;

    void update_ack(std::int32_t rtt) noexcept;
    void parse_una(std::uint32_t una) noexcept;
    void parse_ack(std::uint32_t sn) noexcept;
    void parse_fastack(std::uint32_t sn, std::uint32_t ts) noexcept;
    void shrink_buf() noexcept;
    void push_ack(std::uint32_t sn, std::uint32_t ts) noexcept;
    void parse_data(const kcp_segment& seg) noexcept;
    void move_ready() noexcept;
    void pop_head() noexcept;

    void flush_all() noexcept;
    void flush_acks_only() noexcept;
    void write_acks(kcp_segment_header& h) noexcept;
    std::byte* tx_reserve(std::size_t n) noexcept;
    void tx_commit() noexcept;

    kcp_settings settings_;
    time_point origin_;
    std::int64_t now_ms_ = 0;   // ms since origin_, for scheduling
    std::uint32_t current_ = 0; // the same as a wrapping u32: wire timestamps
    std::uint32_t mss_ = 0;
    std::uint32_t max_fragments_ = 0;
    std::uint32_t queue_limit_ = 0;

    // Send ring: slot of sequence number sn at sn & snd_mask_. In flight:
    // [snd_una_, snd_nxt_); queued, numbered by the sn they will get:
    // [snd_nxt_, snd_nxt_ + nsnd_que_). snd_size_ slots (0 or a power of two),
    // at most snd_max_.
    std::unique_ptr<send_slot[]> snd_slots_;
    std::unique_ptr<std::byte[]> snd_data_;
    std::uint32_t snd_size_ = 0;
    std::uint32_t snd_max_ = 0;
    std::uint32_t snd_mask_ = 0;
    std::uint32_t snd_una_ = 0;
    std::uint32_t snd_nxt_ = 0;
    std::uint32_t nsnd_buf_ = 0; // in flight and not acknowledged
    std::uint32_t nsnd_que_ = 0;

    // Receive ring: readable queue [rcv_nxt_ - nrcv_que_, rcv_nxt_), out of order
    // segments in [rcv_nxt_, rcv_nxt_ + rcv_wnd). rcv_present_ segments are stored
    // (queue and out of order alike).
    std::unique_ptr<recv_slot[]> rcv_slots_;
    std::unique_ptr<std::byte[]> rcv_data_;
    std::uint32_t rcv_size_ = 0;
    std::uint32_t rcv_max_ = 0;
    std::uint32_t rcv_mask_ = 0;
    std::uint32_t rcv_present_ = 0;
    std::uint32_t rcv_nxt_ = 0;
    std::uint32_t nrcv_que_ = 0;
    std::uint32_t rcv_head_off_ = 0;  // bytes of the head segment already read (stream)
    std::size_t rcv_queue_bytes_ = 0; // bytes in the readable queue, rcv_head_off_ included

    std::unique_ptr<ack_entry[]> acks_;
    std::uint32_t nacks_ = 0;
    std::uint32_t ack_size_ = 0;
    std::uint32_t ack_max_ = 0;

    // Transmit ring of datagrams, mtu bytes each.
    std::unique_ptr<std::byte[]> tx_data_;
    std::unique_ptr<std::uint32_t[]> tx_len_;
    std::uint32_t tx_slots_ = 0;
    std::uint32_t tx_max_ = 0;
    std::uint32_t tx_head_ = 0;
    std::uint32_t tx_count_ = 0;
    std::uint32_t tx_open_ = 0; // bytes in the datagram being written after the queued ones

    std::uint32_t rmt_wnd_ = 0;
    std::uint32_t cwnd_ = 0;
    std::uint32_t incr_ = 0;
    std::uint32_t ssthresh_ = 0;
    std::int32_t rx_srtt_ = 0;
    std::int32_t rx_rttval_ = 0;
    std::uint32_t rx_rto_ = 0;
    std::uint32_t rx_minrto_ = 0;
    std::int64_t ts_flush_ = 0;
    std::int64_t ts_probe_ = 0;
    std::uint32_t probe_wait_ = 0;
    std::uint8_t probe_ = 0;
    std::int64_t earliest_resend_ = 0;
    bool fast_pending_ = false;
    bool dead_ = false;
    kcp_stats stats_;
};

} // namespace peerlink

#include <peerlink/proto/impl/kcp.hpp>

#endif // PEERLINK_PROTO_KCP_HPP
