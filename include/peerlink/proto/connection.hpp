// peerlink/proto/connection.hpp: the sans-I/O connection core.
//
// One `connection_core` is one connection to one peer, without sockets and
// without a clock. It owns the state machine (peerlink/state.hpp), runs the hello
// handshake, keepalives and the idle timeout, and pushes every packet through the
// pipeline: send: frame -> FEC -> cipher -> disguise -> wire; receive: the reverse.
//
// The driver (peer_connection) feeds it and drains it:
//
// @code
// core.handle_datagram(bytes, from, now);      // each datagram the socket received
// core.handle_timeout(now);                     // when poll_timeout() has passed
// for (i < core.transmit_count()) send(core.peek_transmit(i)); core.pop_transmits(n);
// while (auto e = core.poll_event()) ...;       // state changes for the application
// while (auto d = core.peek_datagram()) { deliver(*d); core.pop_datagram(); }
// @endcode
//
// Memory is allocated once, at construction: a ring of transmit slots and a ring
// of received datagrams. A full ring drops and counts (stats), it never grows.
#ifndef PEERLINK_PROTO_CONNECTION_HPP
#define PEERLINK_PROTO_CONNECTION_HPP

#include <peerlink/concepts.hpp>
#include <peerlink/config.hpp>
#include <peerlink/endpoint.hpp>
#include <peerlink/error.hpp>
#include <peerlink/identity.hpp>
#include <peerlink/policy/kcp.hpp>
#include <peerlink/proto/fec_ratio_controller.hpp>
#include <peerlink/proto/frame.hpp>
#include <peerlink/proto/kcp.hpp>
#include <peerlink/proto/packet_buffer.hpp>
#include <peerlink/state.hpp>
#include <peerlink/stats.hpp>
#include <peerlink/time.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <system_error>
#include <variant>
#include <vector>

namespace peerlink {

/// A packet for the driver to send.
struct transmit {
    std::span<const std::byte> data;
    endpoint to;
};

/// Something the application may want to know; drained with `poll_event`.
struct state_changed_event {
    state_kind from;
    state_kind to;
};

/// The packet pipeline of a connection, the same in both directions once agreed.
struct pipeline_features {
    bool fec = false;        ///< Senders add Reed-Solomon parity.
    bool disguise = false;   ///< Packets travel disguised (e.g. as DNS).
    bool cipher_off = false; ///< Packets travel unsealed (both sides allowed it).
    fec_ratio ratio{};       ///< The FEC ratio senders use.
    friend bool operator==(const pipeline_features&, const pipeline_features&) = default;
};

/// The pipeline changed (agreed at connect, or by a request of either side).
/// `ec` is `error::feature_refused` when the peer agreed to less than was asked, or
/// `error::handshake_timeout` when it never answered (nothing changed then).
struct features_changed_event {
    pipeline_features features;
    std::error_code ec;
};

/// The events of a connection core.
using core_event = std::variant<state_changed_event, features_changed_event>;

namespace detail {

/// A cipher policy that authenticates the peer with a handshake (Noise) before it seals.
template <class C>
concept handshaking_cipher = requires(C& c, const C& cc, const identity& me, packet_buffer& p,
                                      std::span<const std::byte> in, std::span<std::byte> out,
                                      std::size_t& n) {
    { c.configure(me, std::optional<peer_id>{}, true, in) } -> std::same_as<std::error_code>;
    { c.write_handshake(p, in) } -> std::same_as<std::error_code>;
    { c.read_handshake(in, out, n) } -> std::same_as<std::error_code>;
    { cc.handshake_done() } -> std::same_as<bool>;
    { cc.wants_handshake_write() } -> std::same_as<bool>;
    { C::is_stale(std::error_code{}) } -> std::same_as<bool>;
    { cc.remote_static() } -> std::same_as<std::optional<peer_id>>;
};

/// A FEC policy the connection can switch on and off and give a ratio.
template <class F>
concept switchable_fec = requires(F& f, fec_ratio r) {
    f.set_enabled(true);
    { f.set_ratio(r) } -> std::same_as<std::error_code>;
};

/// An obfuscation policy the connection can switch, with a role (initiator or
/// responder) and a test that tells its packets from plain ones.
template <class O>
concept switchable_obfuscation = requires(O& o, std::span<const std::byte> b) {
    o.set_enabled(true);
    o.configure(true);
    { O::recognizes(b) } -> std::same_as<bool>;
};

} // namespace detail

/// Sizes and identities a connection core is built with.
struct connection_settings {
    peer_id local_id;                ///< Our peer id, sent in hellos.
    std::uint64_t connection_id = 0; ///< Random per connection (the driver draws it).
    config cfg;                      ///< Timers, sizes and features (cfg.features).
    /// Our key pair: needed by a cipher policy with a handshake (Noise), whose
    /// handshake proves that we own `local_id`.
    std::optional<identity> local_identity;
    std::size_t transmit_slots = 1024; ///< Packets that can wait for the socket.
    std::size_t receive_slots = 512;   ///< Datagrams that can wait for the application.
};

/// The sans-I/O connection: the state machine, the handshake and the pipeline.
///
/// @tparam Reliability, Fec, Cipher, Obfuscation, Traversal Policies of those kinds.
///
/// With a reliable policy (`kcp<Settings>`) the core also runs a `kcp_core`, whose
/// segments travel in `reliable` frames beside the unreliable `data` frames.
///
/// Not thread-safe. Never throws after construction; never reads a clock.
template <reliability_policy Reliability, fec_policy Fec, cipher_policy Cipher,
          obfuscation_policy Obfuscation, traversal_policy Traversal>
class connection_core {
public:
    /// Whether the cipher runs a handshake (then packets carry an envelope byte).
    static constexpr bool handshakes = detail::handshaking_cipher<Cipher>;
    /// Whether FEC and disguise are compiled in and can be switched at run time.
    static constexpr bool has_fec = detail::switchable_fec<Fec>;
    static constexpr bool has_disguise = detail::switchable_obfuscation<Obfuscation>;
    static constexpr std::size_t envelope_size = handshakes ? frame::envelope::size : 0;

    /// Bytes the pipeline may add in front of a frame and behind it.
    static constexpr std::size_t pipeline_overhead = frame::header_size + Fec::max_overhead +
                                                     Cipher::max_overhead + envelope_size +
                                                     Obfuscation::max_overhead;

    /// Allocates the rings. @param now The time the connection starts.
    connection_core(const connection_settings& settings, time_point now);

    /// The largest application datagram `send_datagram` takes.
    std::size_t max_datagram_size() const noexcept { return max_payload_; }

    /// Starts connecting to the peer through the traversal policy.
    /// @param expected If set, only this peer is accepted (`error::unexpected_peer`
    ///        drops for others).
    /// @returns `error::already_connecting` unless the connection is idle, or the
    ///          traversal policy's error (then the connection fails).
    std::error_code connect(const traversal_request& request, std::optional<peer_id> expected,
                            time_point now);

    /// Waits for a peer's hello and answers it. @param expected As for `connect`.
    std::error_code accept(std::optional<peer_id> expected, time_point now);

    /// Closes in order: the peer is told with a close frame. Idempotent.
    void close(time_point now);

    /// Processes one datagram the transport received. The bytes may be changed in
    /// place (decryption). Bad packets are counted in `stats()` and dropped.
    void handle_datagram(std::span<std::byte> bytes, const endpoint& from, time_point now);

    /// Runs the timers that are due. Call when `poll_timeout()` has passed.
    void handle_timeout(time_point now);

    /// When `handle_timeout` must be called next; nothing when no timer runs.
    /// Call after every `handle_*`, `connect`, `accept`, `send_datagram` and `close`.
    std::optional<time_point> poll_timeout() const noexcept;

    /// Queues an application datagram for the peer.
    /// @returns `error::not_connected`, `error::message_too_large`, or
    ///          `std::errc::operation_would_block` when the transmit ring is full
    ///          (wait until `send_capacity()` is non-zero).
    std::error_code send_datagram(std::span<const std::byte> payload, time_point now);

    /// Packets that `send_datagram` can queue now.
    std::size_t send_capacity() const noexcept;

    /// @name Transmit ring
    /// Call after every `handle_*`, `connect`, `accept`, `send_datagram` and `close`:
    /// the driver sends `peek_transmit(0 .. transmit_count()-1)` in order, then pops
    /// those it is done with (sent, or dropped by the socket). Views stay valid until
    /// popped.
    /// @{
    std::size_t transmit_count() const noexcept { return tx_count_; }
    transmit peek_transmit(std::size_t i) const noexcept;
    void pop_transmits(std::size_t n) noexcept;
    /// @}

    /// @name Receive ring
    /// Datagrams for the application, oldest first. Call after every `handle_datagram`.
    /// @{
    std::optional<std::span<const std::byte>> peek_datagram() const noexcept;
    void pop_datagram() noexcept;
    /// @}

    /// @name Reliable channel
    /// Only with a reliable policy. Data written while the path is lost waits in
    /// KCP's queue and goes out once the path is back.
    /// @{
    static constexpr bool is_reliable = Reliability::is_reliable;

    /// Writes up to `bytes.size()` bytes of the stream (message mode: as one message
    /// of at most `max_message_size()` bytes). @returns the bytes taken; 0 with
    /// `std::errc::operation_would_block` when the send window is full, or with
    /// `error::not_connected` / the KCP error (dead link).
    std::size_t stream_write(std::span<const std::byte> bytes, time_point now, std::error_code& ec);

    /// Reads up to `out.size()` bytes of the stream (message mode: messages are read
    /// as a stream of bytes). @returns the bytes read; 0 with
    /// `std::errc::operation_would_block` when nothing is there yet, `asio`-style
    /// end of stream (`error::connection_closed`) once the peer closed and everything
    /// was read, or the KCP error.
    std::size_t stream_read(std::span<std::byte> out, std::error_code& ec);

    /// Sends one whole message (message mode only).
    /// @returns as `stream_write`, plus `kcp_error::too_many_fragments` if it is
    /// larger than `max_message_size()`.
    std::error_code send_message(std::span<const std::byte> message, time_point now);

    /// Receives one whole message (message mode only); `error::buffer_too_small`
    /// leaves it queued. `peek_message_size()` tells the size needed.
    std::size_t receive_message(std::span<std::byte> out, std::error_code& ec);
    std::size_t peek_message_size() const noexcept;

    /// The largest message, and the largest chunk `stream_write` takes at once.
    std::size_t max_message_size() const noexcept;

    /// Whether `stream_write` would take bytes now.
    bool stream_writable() const noexcept;
    /// Whether `stream_read` would return bytes, or an end, now.
    bool stream_readable() const noexcept;
    /// Whether the peer acknowledged everything written.
    bool all_acknowledged() const noexcept;

    /// Closes in order after everything written has been acknowledged (or after
    /// `cfg.timers.connect_timeout` more, whichever is first). The state becomes
    /// `closed` then; until then reads and the datagram path go on.
    void close_after_flush(time_point now);

    /// Moves KCP's waiting datagrams into transmit slots the driver freed. Call
    /// after `pop_transmits` when `transmit_count()` was at capacity.
    void refill(time_point now);

    /// KCP's counters (reliable policies only).
    kcp_stats reliable_stats() const noexcept { return kcp_->stats(); }
    /// @}

    /// @name Pipeline features
    /// FEC (and its ratio), the cipher and the disguise can be switched on a live
    /// connection. The side that asks sends a `features` frame until the peer answers
    /// with what it agreed to; the peer switches its own sending right after its
    /// answer, the asker when the answer arrives. Every packet says what it went
    /// through, so packets of both settings may cross on the way without a loss.
    /// @{

    /// Asks the peer to switch the pipeline to `wanted`.
    /// @returns `error::not_connected`; `error::feature_unavailable` for FEC or
    /// disguise not compiled in here or at the peer, or cipher off without a cipher
    /// that could be on; `error::operation_in_progress` while an earlier request is
    /// unanswered. The result comes as a `features_changed_event`.
    std::error_code request_features(const pipeline_features& wanted, time_point now);

    /// The pipeline agreed with the peer (the initial one from the configurations of
    /// both sides: FEC or disguise if either wants it and both have it; cipher off only
    /// if both allow it).
    const pipeline_features& features() const noexcept { return agreed_; }

    /// Whether a request is waiting for the peer's answer.
    bool features_pending() const noexcept { return proposal_.has_value(); }
    /// @}

    /// The next event for the application. Call after every `handle_*` and request.
    std::optional<core_event> poll_event() noexcept;

    const connection_state& state() const noexcept { return state_; }
    state_kind kind() const noexcept { return kind_of(state_); }
    /// The peer's id once its hello was accepted.
    const std::optional<peer_id>& remote_peer() const noexcept { return remote_; }
    /// The peer's address in use (connected), or the one being tried.
    const std::optional<endpoint>& remote_endpoint() const noexcept { return path_; }
    /// Counters and RTT. `state`/`path` names are filled in.
    const peerlink::stats& stats() const noexcept { return stats_; }

    Fec& fec() noexcept { return fec_; }
    Cipher& cipher() noexcept { return cipher_; }
    Obfuscation& obfuscation() noexcept { return obfuscation_; }
    Traversal& traversal() noexcept { return traversal_; }

private:
    struct slot {
        std::size_t offset = 0; // of the packet in the slot
        std::size_t size = 0;
        endpoint to;
    };

    std::uint64_t micros(time_point now) const noexcept;
    void apply(const connection_event& e, time_point now);
    void on_frame(const frame::any_frame& f, const endpoint& from, time_point now);
    void on_hello(const frame::hello& h, const endpoint& from, time_point now);
    void on_rtt_sample(std::uint64_t echo_us, time_point now) noexcept;
    bool peer_is_live() const noexcept;
    void start_attempt(time_point now);
    void send_hello(bool ack, std::uint64_t echo_us, const endpoint& to, time_point now);
    template <class Control>
    void send_control(const Control& c, const endpoint& to, time_point now);
    // Takes the next free transmit slot as a packet_buffer with headroom for the pipeline.
    std::optional<packet_buffer> open_slot() noexcept;
    // Runs a framed packet through FEC, cipher and disguise, and commits it (and any parity).
    void commit(packet_buffer& p, const endpoint& to, time_point now);
    void commit_one(packet_buffer& p, const endpoint& to, time_point now);
    // Puts a finished packet into the transmit ring.
    void push_slot(packet_buffer& p, const endpoint& to, time_point now);
    // Puts KCP's datagrams into reliable frames.
    void drain_reliable(time_point now);
    // Checks the KCP core for a dead link and a finished close_after_flush.
    void check_reliable(time_point now);
    bool stream_open() const noexcept;
    // Sends the close and repeats it until the peer answers (close_after_flush).
    void start_closing(time_point now);
    static constexpr unsigned max_close_tries = 8;
    static constexpr std::uint16_t close_reason_ack = 1;
    // Why nothing more can be read: would_block while the stream may still deliver.
    std::error_code end_of_stream() const noexcept;

    // Handshake (handshaking ciphers): our messages go out in `envelope::handshake`
    // packets; the last one is repeated until a sealed packet from the peer opens.
    void send_handshake(const endpoint& to, time_point now);
    void send_raw_handshake(const endpoint& to, time_point now);
    void send_reject(const endpoint& to, time_point now);
    void on_handshake(std::span<const std::byte> message, const endpoint& from, time_point now);
    bool accept_plain(time_point now) const noexcept;
    // Features.
    std::uint8_t hello_flags() const noexcept;
    void agree(const frame::hello& h, time_point now);
    void apply_features(const pipeline_features& f, time_point now);
    void on_features(const frame::features& f, const endpoint& from, time_point now);
    void push_event(const core_event& e) noexcept;
    void update_pipeline_stats() noexcept;
    static constexpr unsigned max_proposal_tries = 20;
    // Packets without the cipher are still taken this long after it was switched back on.
    static constexpr duration plain_grace = std::chrono::seconds(2);

    connection_settings settings_;
    time_point origin_;
    std::size_t slot_size_;
    std::size_t max_payload_;
    connection_state state_ = state::idle{};
    [[no_unique_address]] Fec fec_;
    [[no_unique_address]] Cipher cipher_;
    [[no_unique_address]] Obfuscation obfuscation_;
    [[no_unique_address]] Traversal traversal_;

    std::optional<peer_id> expected_;
    std::optional<peer_id> remote_;
    std::optional<std::uint64_t> remote_connection_id_;
    std::optional<endpoint> path_;
    bool listening_ = false;
    bool closing_sent_ = false;

    // Timers; time_point::max() when off.
    time_point next_hello_ = time_point::max();
    time_point attempt_deadline_ = time_point::max();
    time_point last_rx_{};
    time_point last_tx_{};

    struct no_reliable {};
    [[no_unique_address]] std::conditional_t<is_reliable, std::optional<kcp_core>, no_reliable>
        kcp_;
    // Message mode read as a stream: the message being read, and how far.
    std::vector<std::byte> staging_;
    std::size_t staging_off_ = 0, staging_len_ = 0;
    time_point close_deadline_ = time_point::max(); // close_after_flush pending
    bool peer_closed_ = false;
    unsigned close_tries_ = 0;
    time_point next_close_ = time_point::max();

    std::vector<std::byte> tx_storage_;
    std::vector<slot> tx_slots_;
    std::size_t tx_head_ = 0, tx_count_ = 0;

    std::vector<std::byte> rx_storage_;
    std::vector<std::size_t> rx_sizes_;
    std::size_t rx_head_ = 0, rx_count_ = 0;

    bool sealing_hello_ = false;
    std::vector<std::byte> hs_last_;
    bool hs_started_ = false;
    bool hs_initiator_ = false;
    bool hs_confirmed_ = false;
    bool hs_rejected_ = false; // the responder said our handshake failed
    std::optional<endpoint> hs_peer_;

    pipeline_features agreed_{};
    bool agreed_valid_ = false;
    std::uint8_t peer_flags_ = 0; // what the peer's hello said it has and wants
    std::optional<frame::features> proposal_;
    std::uint16_t next_sequence_ = 1;
    unsigned proposal_tries_ = 0;
    time_point next_proposal_ = time_point::max();
    std::optional<frame::features> last_answer_;
    // Adaptive FEC: loss of the peer's FEC packets, sampled every second.
    fec_ratio_controller ratio_control_;
    time_point next_loss_sample_ = time_point::max();
    std::uint64_t loss_expected_ = 0, loss_lost_ = 0;
    static constexpr duration loss_sample_interval = std::chrono::seconds(1);
    void sample_loss(time_point now);
    time_point plain_grace_until_{};

    // State changes come a few per call and are drained after each; a small ring.
    std::array<core_event, 16> events_{};
    std::size_t events_head_ = 0, events_count_ = 0;

    peerlink::stats stats_;
};

} // namespace peerlink

#include <peerlink/proto/impl/connection.hpp>

#endif // PEERLINK_PROTO_CONNECTION_HPP
