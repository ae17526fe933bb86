// peerlink/peer_connection.hpp: a connection to one peer, on the caller's executor.
#ifndef PEERLINK_PEER_CONNECTION_HPP
#define PEERLINK_PEER_CONNECTION_HPP

#include <peerlink/concepts.hpp>
#include <peerlink/config.hpp>
#include <peerlink/detail/pending_op.hpp>
#include <peerlink/detail/policy_list.hpp>
#include <peerlink/endpoint.hpp>
#include <peerlink/error.hpp>
#include <peerlink/identity.hpp>
#include <peerlink/log.hpp>
#include <peerlink/net/transport.hpp>
#include <peerlink/net/udp_transport.hpp>
#include <peerlink/policy/datagram_only.hpp>
#include <peerlink/policy/direct_only.hpp>
#include <peerlink/policy/kcp.hpp>
#include <peerlink/policy/no_cipher.hpp>
#include <peerlink/policy/no_fec.hpp>
#include <peerlink/policy/no_obfuscation.hpp>
#include <peerlink/proto/connection.hpp>
#include <peerlink/state.hpp>
#include <peerlink/stats.hpp>

#include <asio/async_result.hpp>
#include <asio/buffer.hpp>

#include <memory>
#include <optional>
#include <system_error>

namespace peerlink {

/// The policies a `peer_connection` uses for the kinds it is not given.
struct default_policies {
    using transport = udp_transport;
    using reliability = datagram_only;
    using fec = no_fec;
    using cipher = no_cipher;
    using obfuscation = no_obfuscation;
    using traversal = direct_only;
};

/// Tag for the constructor that builds the transport from arguments of its own.
struct with_transport_t {
    explicit with_transport_t() = default;
};
inline constexpr with_transport_t with_transport{};

/// A connection to one peer: finds a path, keeps it alive, and moves datagrams.
///
/// @tparam Policies Up to one policy of each kind (peerlink/concepts.hpp), in any
/// order; a kind not given takes its `default_policies` member.
///
/// @par Example
/// @code
/// asio::io_context io;
/// peerlink::peer_connection<> conn(io.get_executor(), peerlink::identity::generate(), cfg);
/// conn.async_connect(peer_endpoint, [](std::error_code ec) { ... });
/// io.run();
/// @endcode
///
/// @par Thread safety
/// Distinct objects: safe. Shared objects: unsafe; use a strand.
///
/// @par Asynchronous operations
/// Every `async_*` function follows Asio's completion-token rules: callbacks,
/// `asio::use_awaitable`, `asio::use_future` and `asio::deferred` work; the
/// handler's associated executor, allocator and cancellation slot are honoured;
/// the handler never runs inside the initiating call. At most one operation of
/// each kind may be pending: a second gets `error::operation_in_progress`.
/// Destroying the connection completes pending operations with
/// `asio::error::operation_aborted`.
template <class... Policies>
class peer_connection {
    static_assert((policy<Policies> && ...),
                  "peerlink::peer_connection: every template argument must be a policy: a type "
                  "with `using policy_kind = peerlink::<kind>_tag;` for one of transport_tag, "
                  "reliability_tag, fec_tag, cipher_tag, obfuscation_tag, traversal_tag");
    static_assert(detail::unique_kinds_v<Policies...>,
                  "peerlink::peer_connection: two policies of the same kind were given; give at "
                  "most one policy per kind (transport, reliability, fec, cipher, obfuscation, "
                  "traversal)");

public:
    using transport_type =
        detail::find_kind_t<transport_tag, default_policies::transport, Policies...>;
    using reliability_type =
        detail::find_kind_t<reliability_tag, default_policies::reliability, Policies...>;
    using fec_type = detail::find_kind_t<fec_tag, default_policies::fec, Policies...>;
    using cipher_type = detail::find_kind_t<cipher_tag, default_policies::cipher, Policies...>;
    using obfuscation_type =
        detail::find_kind_t<obfuscation_tag, default_policies::obfuscation, Policies...>;
    using traversal_type =
        detail::find_kind_t<traversal_tag, default_policies::traversal, Policies...>;

    static_assert(transport_policy<transport_type>,
                  "peerlink::peer_connection: the transport policy does not meet "
                  "peerlink::transport_policy (see peerlink/net/transport.hpp)");
    static_assert(reliability_policy<reliability_type>,
                  "peerlink::peer_connection: the reliability policy does not meet "
                  "peerlink::reliability_policy");
    static_assert(fec_policy<fec_type>,
                  "peerlink::peer_connection: the fec policy does not meet peerlink::fec_policy");
    static_assert(cipher_policy<cipher_type>, "peerlink::peer_connection: the cipher policy does "
                                              "not meet peerlink::cipher_policy");
    static_assert(obfuscation_policy<obfuscation_type>,
                  "peerlink::peer_connection: the obfuscation policy does not meet "
                  "peerlink::obfuscation_policy");
    static_assert(traversal_policy<traversal_type>,
                  "peerlink::peer_connection: the traversal policy does not meet "
                  "peerlink::traversal_policy");
    static_assert(!reliability_type::is_reliable || kcp_reliability<reliability_type>,
                  "peerlink::peer_connection: a reliable policy must name its KCP settings "
                  "(see peerlink::kcp<Settings>)");

    using executor_type = typename transport_type::executor_type;
    using core_type =
        connection_core<reliability_type, fec_type, cipher_type, obfuscation_type, traversal_type>;
    /// Whether the connection has a reliable channel (a `kcp<...>` reliability policy).
    static constexpr bool is_reliable = reliability_type::is_reliable;
    /// Whether whole messages can be sent on the reliable channel (KCP message mode).
    static constexpr bool has_messages = [] {
        if constexpr (is_reliable)
            return !reliability_type::settings.stream;
        else
            return false;
    }();

    /// Opens the transport from `cfg.transport` on `ex`.
    /// @throws std::system_error if the socket cannot be opened or bound.
    peer_connection(const executor_type& ex, const identity& me, const config& cfg);

    /// Builds the transport as `transport_type(args...)`, e.g. a `sim_transport` on
    /// a `sim_network`: `peer_connection<sim_transport>(with_transport, me, cfg, net, ep)`.
    template <class... Args>
    peer_connection(with_transport_t, const identity& me, const config& cfg, Args&&... args);

    peer_connection(const peer_connection&) = delete;
    peer_connection& operator=(const peer_connection&) = delete;
    peer_connection(peer_connection&&) noexcept = default;
    /// Closes this connection (as the destructor does), then takes `other`'s.
    peer_connection& operator=(peer_connection&& other) noexcept {
        if (this != &other) {
            if (impl_)
                impl_->shutdown();
            impl_ = std::move(other.impl_);
        }
        return *this;
    }

    /// Closes the connection (the peer is told) and aborts pending operations.
    ~peer_connection();

    executor_type get_executor() const noexcept;

    /// Connects to the peer at `remote` (traversal `direct_only`: the address is known).
    ///
    /// Completion signature: `void(std::error_code)`. Success once the peer has
    /// answered the hello (state `connected`). Errors: `error::handshake_timeout`
    /// when no answer came within `cfg.timers.connect_timeout` (the connection then
    /// waits and retries by itself, see `state()`), `error::unexpected_peer`
    /// never (such packets are dropped), `error::already_connecting`,
    /// `asio::error::operation_aborted` on cancellation or close.
    ///
    /// @param expected If set, only the peer with this id is accepted.
    /// @par Per-operation cancellation
    /// All cancellation types; the connection attempt itself goes on.
    template <class CompletionToken = asio::default_completion_token_t<executor_type>>
    auto async_connect(const endpoint& remote, std::optional<peer_id> expected = std::nullopt,
                       CompletionToken&& token = asio::default_completion_token_t<executor_type>{});

    /// Waits for a peer to connect to this one's local endpoint.
    ///
    /// Completion signature: `void(std::error_code)`. Success once a hello was
    /// answered; `remote_peer()` then names the peer.
    template <class CompletionToken = asio::default_completion_token_t<executor_type>>
    auto async_accept(std::optional<peer_id> expected = std::nullopt,
                      CompletionToken&& token = asio::default_completion_token_t<executor_type>{});

    /// Sends one unreliable datagram. It may be lost, duplicated or reordered.
    ///
    /// Completion signature: `void(std::error_code, std::size_t bytes)`. Completes
    /// when the datagram is queued for the socket; waits while the queue is full.
    /// Errors: `error::not_connected`, `error::message_too_large` (larger than
    /// `max_datagram_size()`), `error::operation_in_progress`, `operation_aborted`.
    template <class CompletionToken = asio::default_completion_token_t<executor_type>>
    auto async_send(asio::const_buffer datagram,
                    CompletionToken&& token = asio::default_completion_token_t<executor_type>{});

    /// Receives one datagram from the peer.
    ///
    /// Completion signature: `void(std::error_code, std::size_t bytes)`. Errors:
    /// `error::buffer_too_small` (the datagram was cut to the buffer's size),
    /// `error::connection_closed` (the peer closed), `error::not_connected` (we
    /// closed, or the connection failed), `error::operation_in_progress`,
    /// `operation_aborted` (cancelled: no datagram is lost, the next receive gets it).
    template <class CompletionToken = asio::default_completion_token_t<executor_type>>
    auto async_receive(asio::mutable_buffer buffer,
                       CompletionToken&& token = asio::default_completion_token_t<executor_type>{});

    /// @name Reliable channel (with a `kcp<...>` reliability policy)
    /// The connection is an Asio AsyncReadStream and AsyncWriteStream: `asio::async_read`
    /// and `asio::async_write` work on it. Bytes written before the path is lost are
    /// kept and sent once it is back; nothing written is lost or duplicated.
    /// @{

    /// Reads some bytes of the reliable stream.
    ///
    /// Completion signature: `void(std::error_code, std::size_t bytes)`. Errors:
    /// `asio::error::eof` once the peer closed in order and every byte was read;
    /// `error::not_connected` (we closed, or the connection failed); the KCP error of
    /// a dead link (`condition::peer_unreachable`); `error::operation_in_progress`;
    /// `operation_aborted` on cancellation (no byte is lost).
    template <class MutableBufferSequence,
              class CompletionToken = asio::default_completion_token_t<executor_type>>
    auto
    async_read_some(const MutableBufferSequence& buffers,
                    CompletionToken&& token = asio::default_completion_token_t<executor_type>{});

    /// Writes some bytes to the reliable stream.
    ///
    /// Completion signature: `void(std::error_code, std::size_t bytes)`. Completes as
    /// soon as KCP's send window takes at least one byte: this is the backpressure,
    /// nothing is buffered beyond the window. Errors as for `async_read_some`.
    template <class ConstBufferSequence,
              class CompletionToken = asio::default_completion_token_t<executor_type>>
    auto
    async_write_some(const ConstBufferSequence& buffers,
                     CompletionToken&& token = asio::default_completion_token_t<executor_type>{});

    /// Sends one whole message on the reliable channel; the peer receives it whole.
    ///
    /// Completion signature: `void(std::error_code, std::size_t bytes)`. Waits while
    /// the send window is full. Errors: `kcp_error::too_many_fragments` when larger
    /// than `max_message_size()`, others as for `async_write_some`.
    template <class CompletionToken = asio::default_completion_token_t<executor_type>>
    auto
    async_send_message(asio::const_buffer message,
                       CompletionToken&& token = asio::default_completion_token_t<executor_type>{});

    /// Receives one whole message from the reliable channel.
    ///
    /// Completion signature: `void(std::error_code, std::size_t bytes)`. Errors:
    /// `error::buffer_too_small` (the message stays queued; `bytes` is its size),
    /// others as for `async_read_some`.
    template <class CompletionToken = asio::default_completion_token_t<executor_type>>
    auto async_receive_message(
        asio::mutable_buffer buffer,
        CompletionToken&& token = asio::default_completion_token_t<executor_type>{});

    /// The largest message `async_send_message` takes.
    std::size_t max_message_size() const noexcept;

    /// Closes in order once the peer has acknowledged every byte written (or
    /// `cfg.timers.connect_timeout` later at most), then tells the peer.
    ///
    /// Completion signature: `void(std::error_code)`: success when the close was sent
    /// with everything acknowledged, `error::handshake_timeout` when it was sent
    /// without, `error::operation_in_progress`, `operation_aborted`.
    template <class CompletionToken = asio::default_completion_token_t<executor_type>>
    auto async_close(CompletionToken&& token = asio::default_completion_token_t<executor_type>{});
    /// @}

    /// Closes in order: tells the peer, aborts pending operations. Idempotent.
    void close();

    /// Aborts every pending operation with `operation_aborted`; the connection stays.
    void cancel();

    /// @name Pipeline features
    /// FEC, the cipher and the disguise, when compiled in, can be switched on a live
    /// connection; the peer agrees in-band (see connection_core::request_features).
    /// @{
    /// Asks the peer to switch to `wanted`. The answer changes `features()`; the log
    /// says what was agreed. @returns `error::not_connected`,
    /// `error::feature_unavailable`, `error::operation_in_progress`, `error::invalid_config`.
    std::error_code set_features(const pipeline_features& wanted);
    /// The pipeline agreed with the peer.
    const pipeline_features& features() const noexcept;
    /// Whether a `set_features` waits for the peer's answer.
    bool features_pending() const noexcept;
    /// @}

    /// The current state (a `std::variant`; `kind_of(state())` names it).
    const connection_state& state() const noexcept;
    /// Counters, RTT, state and path.
    peerlink::stats stats() const;
    /// The local address the transport is bound to.
    endpoint local_endpoint() const;
    /// The peer's id, once a hello was accepted.
    std::optional<peer_id> remote_peer() const;
    /// The largest datagram `async_send` takes.
    std::size_t max_datagram_size() const noexcept;
    /// Installs the logging hook. Nothing is logged without one.
    void set_logger(logger l);

    transport_type& transport() noexcept;
    core_type& core() noexcept;

private:
    struct impl;
    std::shared_ptr<impl> impl_;
};

} // namespace peerlink

#include <peerlink/impl/peer_connection.hpp>

#endif // PEERLINK_PEER_CONNECTION_HPP
