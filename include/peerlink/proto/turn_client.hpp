// peerlink/proto/turn_client.hpp: the sans-I/O TURN client core (RFC 8656).
//
// `turn::client_core` holds one TURN allocation on one server, without sockets and
// without a clock. It runs the Allocate, Refresh, CreatePermission and ChannelBind
// transactions with the long-term credential mechanism, keeps the allocation, its
// permissions and its channels alive by refreshing them before they expire, frames
// application data as Send indications (before a channel is bound) or ChannelData
// (once it is), and turns Data indications and ChannelData from the server back into
// (peer, bytes).
//
// The driver feeds it and drains it (peerlink/net/turn_client.hpp is the Asio one):
//
// @code
// turn::client_config cfg;
// cfg.server = *endpoint::parse("192.0.2.1:3478", ec);
// cfg.username = "alice";
// cfg.password = "secret";
// turn::client_core turn(cfg);                 // framing::stream for TCP to the server
// turn.allocate(now);
// turn.handle_datagram(bytes, from, now);      // each UDP datagram from the server, or
// turn.handle_stream_bytes(bytes, now);        // each chunk read from the TCP stream
// turn.handle_timeout(now);                    // when poll_timeout() has passed
// while (auto e = turn.poll_event()) ...;      // allocated, data_received, error, ...
// while (auto t = turn.poll_transmit()) send(t->data, t->to);
// arm_timer(turn.poll_timeout());
// @endcode
//
// What it does, step by step (RFC sections of RFC 8656 unless told):
//
// - **Allocate** (§7): the first request carries no credentials. The server answers
//   401 with REALM and NONCE; the request is sent again with USERNAME, REALM, NONCE
//   and MESSAGE-INTEGRITY, keyed with MD5(username ":" realm ":" password) (RFC 8489
//   §9.2). A 401 to that second request means the user name or password is wrong:
//   `turn_error::unauthorized`. A 438 (stale nonce) to any request is answered by
//   sending it again with the new NONCE, up to `max_stale_nonce_retries` times in a
//   row (438s to requests that carried an older nonce are just sent again). If the
//   server announces RFC 8489's PASSWORD-ALGORITHMS (a nonce starting
//   with "obMatJos2"), the first algorithm of its list that this client knows (MD5 or
//   SHA-256) is used and both attributes are echoed. Requests carry
//   REQUESTED-TRANSPORT (UDP), LIFETIME (`client_config::lifetime`), and FINGERPRINT.
// - **Refresh** (§8): at `refresh_percent` (80%) of the lifetime the server granted.
//   A refresh that gets no answer is sent again (one answered 500 after a pause of
//   up to 5 s) until the allocation expires
//   (`turn_error::allocation_expired`). `deallocate()` sends a Refresh with LIFETIME 0.
// - **CreatePermission** (§9): one per peer IP address (permissions ignore ports),
//   refreshed every `permission_refresh` (4 min; a permission lasts 5 min).
// - **ChannelBind** (§12): channel numbers 0x4000 upwards, one per peer address and
//   port, never reused within the core; refreshed every `channel_refresh` (9 min; a
//   binding lasts 10 min). A bound channel also installs a permission for its peer's
//   IP address, which the core then refreshes like the others.
// - **Data** (§10, §12.4): `send` frames data to a peer as ChannelData once its
//   channel is bound, and as a Send indication before (only to a peer with a
//   permission, pending or installed). Received Data indications and ChannelData
//   become `data_received_event`s.
// - **Transactions** run on `stun::client_core` (peerlink/proto/stun_client.hpp): over
//   UDP requests are retransmitted at 0, 0.5, 1.5, 3.5, ... s and fail after 39.5 s
//   (RFC 8489 §6.2.1); over TCP (`stun::framing::stream`) they are sent once and fail
//   after 39.5 s (RFC 8489 §6.2.2). Responses to credentialed requests must carry a
//   valid MESSAGE-INTEGRITY (or be one of the unsignable 400, 401, 420, 438).
// - **TCP framing** (§12.5): the byte stream is cut into STUN messages and
//   ChannelData, which is padded to a multiple of 4 bytes both ways.
//
// Memory is allocated at construction only (transaction slots, the transmit ring, the
// event ring, the stream buffer, the permission and channel tables). Never throws
// after construction, never reads a clock, includes no Asio.
#ifndef PEERLINK_PROTO_TURN_CLIENT_HPP
#define PEERLINK_PROTO_TURN_CLIENT_HPP

#include <peerlink/endpoint.hpp>
#include <peerlink/error.hpp>
#include <peerlink/proto/stun.hpp>
#include <peerlink/proto/stun_client.hpp>
#include <peerlink/time.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <variant>
#include <vector>

namespace peerlink {

/// Errors of the TURN client.
///
/// Credential failures map onto `condition::authentication_failed`; a server that
/// does not answer, an allocation that expired and a lost TCP connection onto
/// `condition::peer_unreachable`; a server that refuses to relay onto
/// `condition::nat_traversal_failed`; a response without what it must carry onto
/// `condition::malformed_input`; the client's own limits onto
/// `condition::configuration_error`.
enum class turn_error {
    unauthorized = 1,      ///< 401 to a request with credentials: wrong user name or password.
    missing_credentials,   ///< The server asks for credentials (401) and none are configured.
    forbidden,             ///< 403: the server does not allow this (e.g. a denied peer address).
    wrong_credentials,     ///< 441: not the credentials the allocation was made with.
    stale_nonce,           ///< 438 again and again: the server keeps rejecting its own nonces.
    allocation_mismatch,   ///< 437: the server has no such allocation (or already has one).
    quota_reached,         ///< 486: the user has too many allocations on the server.
    insufficient_capacity, ///< 508: the server has no relay port left.
    unsupported_transport, ///< 442: the server does not relay UDP.
    address_family_not_supported, ///< 440: the server cannot relay that address family.
    peer_address_family_mismatch, ///< 443: a peer of another family than the relayed address.
    request_rejected,     ///< Another error response (300, 400, 420, 500, ...): see the code.
    bad_response,         ///< A response lacks an attribute it must carry (no relayed address).
    timeout,              ///< The server did not answer a request (39.5 s).
    allocation_expired,   ///< The allocation's lifetime ran out before a refresh succeeded.
    connection_lost,      ///< The TCP connection to the server closed, or its stream broke.
    not_allocated,        ///< The operation needs an allocation, and there is none.
    already_allocated,    ///< `allocate` while an allocation exists or is being made.
    no_permission,        ///< `send` to a peer without a permission or channel.
    too_many_peers,       ///< The permission or channel table of the client is full.
    no_channel_available, ///< Every channel number (0x4000..0x4FFF) has been used.
};

/// The category of `turn_error`.
const std::error_category& turn_error_category() noexcept;

inline std::error_code make_error_code(turn_error e) noexcept {
    return {static_cast<int>(e), turn_error_category()};
}

namespace turn {

/// A datagram (or stream bytes) for the driver to send to the server.
using transmit = stun::transmit;

/// The TURN operations, as named in error events.
enum class operation : std::uint8_t {
    allocate,
    refresh,
    create_permission,
    channel_bind,
    deallocate,
    connection, ///< The transport to the server (TCP closed, stream out of step).
};

/// "allocate", "refresh", ...
constexpr const char* to_string(operation op) noexcept {
    switch (op) {
    case operation::allocate:
        return "allocate";
    case operation::refresh:
        return "refresh";
    case operation::create_permission:
        return "create_permission";
    case operation::channel_bind:
        return "channel_bind";
    case operation::deallocate:
        return "deallocate";
    case operation::connection:
        return "connection";
    }
    return "unknown";
}

/// Where the client is.
enum class client_state : std::uint8_t {
    idle,         ///< No allocation; `allocate` starts one (also after a failed allocate).
    allocating,   ///< The Allocate transaction runs (maybe its credentialed retry).
    allocated,    ///< The allocation exists: permissions, channels and data work.
    deallocating, ///< The Refresh with LIFETIME 0 runs.
    closed,       ///< Deallocated.
    failed,       ///< The allocation was lost (refresh refused, expired, TCP closed).
};

/// Settings of a `client_core`.
struct client_config {
    /// The TURN server's address (the destination of every transmit).
    endpoint server;
    /// `datagram` for UDP to the server, `stream` for TCP (or TLS) to the server.
    stun::framing framing = stun::framing::datagram;
    /// The long-term credentials (already SASLprep'd; plain ASCII is unchanged).
    std::string username;
    std::string password;
    /// SOFTWARE in requests; "" for none.
    std::string software;
    /// The LIFETIME asked for in Allocate and Refresh; 0 to let the server choose.
    std::chrono::seconds lifetime{600};
    /// Refresh when this share of the granted lifetime has passed (1..99).
    unsigned refresh_percent = 80;
    /// The interval between CreatePermission refreshes (a permission lasts 300 s).
    duration permission_refresh = std::chrono::seconds(240);
    /// The interval between ChannelBind refreshes (a binding lasts 600 s).
    duration channel_refresh = std::chrono::seconds(540);
    /// Ask for a relayed address of this family (REQUESTED-ADDRESS-FAMILY); the
    /// server's default (IPv4) when not set.
    std::optional<ip_address::family> relay_family;
    /// End requests with FINGERPRINT.
    bool fingerprint = true;
    /// Retransmission over UDP (RFC 8489 §6.2.1): RTO, requests in all (Rc), final
    /// wait in RTOs (Rm). Over TCP: one request, `reliable_timeout` (Ti).
    duration rto = std::chrono::milliseconds(500);
    unsigned max_requests = 7;
    unsigned final_wait_factor = 16;
    duration reliable_timeout = std::chrono::milliseconds(39500);
    /// Consecutive 438 answers followed before giving up with `turn_error::stale_nonce`.
    unsigned max_stale_nonce_retries = 3;
    /// Peer IP addresses with a permission, and peer endpoints with a channel.
    std::size_t max_permissions = 32;
    std::size_t max_channels = 32;
    /// Transactions in flight at once; more requests wait for a free one.
    std::size_t max_transactions = 16;
    /// The largest application payload of `send` (at most 65535).
    std::size_t max_data_size = 2048;
    /// Outgoing data packets that can wait for the driver (`poll_transmit`).
    std::size_t transmit_slots = 64;
    /// Events that can wait for `poll_event`; more are dropped and counted.
    std::size_t event_slots = 64;
    /// Bytes of the TCP stream held until a whole frame is there (at least 65560,
    /// the largest frame; only allocated for `framing::stream`).
    std::size_t stream_buffer_size = 131072;
    /// Fills a span with random bytes (transaction ids). Empty: OpenSSL's RAND_bytes.
    std::function<void(std::span<std::byte>)> random;
};

/// The allocation exists. From `allocate`, once the server granted it.
struct allocated_event {
    endpoint relayed;  ///< XOR-RELAYED-ADDRESS: where peers send to reach this client.
    endpoint mapped;   ///< XOR-MAPPED-ADDRESS: this client as the server sees it.
    duration lifetime; ///< LIFETIME granted.
};

/// A Refresh succeeded (automatic or asked for with `refresh`).
struct refreshed_event {
    duration lifetime; ///< LIFETIME granted.
};

/// A permission for `peer`'s IP address is installed (after `create_permission`).
struct permission_created_event {
    endpoint peer; ///< As given to `create_permission` (the port means nothing).
};

/// A channel is bound to `peer` (after `bind_channel`); data to it goes as ChannelData.
struct channel_bound_event {
    endpoint peer;
    std::uint16_t channel = 0;
};

/// Data from a peer, relayed by the server.
struct data_received_event {
    endpoint peer;
    /// Views the datagram given to `handle_datagram`, or the core's stream buffer:
    /// valid until the next `handle_datagram` / `handle_stream_bytes` call (and, for a
    /// datagram, as long as the caller's buffer).
    std::span<const std::byte> data;
    std::uint16_t channel = 0; ///< The channel it came on; 0 for a Data indication.
};

/// An operation failed.
struct error_event {
    operation op{};
    std::error_code ec; ///< A `turn_error` (or `peerlink::error::crypto_failure`).
    endpoint peer;      ///< For create_permission and channel_bind.
    unsigned code = 0;  ///< The server's STUN error code (401, 437, ...), 0 if none.
    bool fatal = false; ///< The allocation is lost (state `failed`): nothing more works.
};

/// The allocation is gone after `deallocate` (the server confirmed, said it had none,
/// or the TCP connection closed).
struct deallocated_event {};

/// The events of a `client_core`.
using client_event =
    std::variant<allocated_event, refreshed_event, permission_created_event, channel_bound_event,
                 data_received_event, error_event, deallocated_event>;

/// Counters of a `client_core`; they only grow.
struct client_stats {
    std::uint64_t requests = 0;                ///< Transactions started (retries included).
    std::uint64_t retransmissions = 0;         ///< Requests sent again over UDP.
    std::uint64_t auth_challenges = 0;         ///< 401s answered with credentials.
    std::uint64_t stale_nonces = 0;            ///< 438s answered with the new nonce.
    std::uint64_t refreshes = 0;               ///< Successful Refreshes (LIFETIME > 0).
    std::uint64_t permission_refreshes = 0;    ///< Successful CreatePermissions (all).
    std::uint64_t channel_refreshes = 0;       ///< Successful ChannelBinds (all).
    std::uint64_t sent_indications = 0;        ///< Send indications handed out.
    std::uint64_t sent_channel_data = 0;       ///< ChannelData messages handed out.
    std::uint64_t received_indications = 0;    ///< Data indications received.
    std::uint64_t received_channel_data = 0;   ///< ChannelData messages received.
    std::uint64_t bytes_sent = 0;              ///< Application bytes given to `send`.
    std::uint64_t bytes_received = 0;          ///< Application bytes in data events.
    std::uint64_t dropped_send = 0;            ///< `send`s refused because the ring was full.
    std::uint64_t dropped_events = 0;          ///< Events lost because the event ring was full.
    std::uint64_t dropped_foreign = 0;         ///< Datagrams not from the server.
    std::uint64_t dropped_unknown_channel = 0; ///< ChannelData on a channel not bound.
    std::uint64_t dropped_malformed = 0;       ///< Frames that did not decode.
    std::uint64_t dropped_unexpected = 0;      ///< STUN messages this client has no use for.
};

/// The sans-I/O TURN client: one allocation on one server.
///
/// Not thread-safe. Never throws after construction; never reads a clock.
class client_core {
public:
    /// Allocates every buffer. Out-of-range settings are clamped to working values
    /// (`refresh_percent` to 1..99, `max_data_size` to 65535, table sizes to >= 1).
    /// @throws std::bad_alloc.
    explicit client_core(client_config cfg);

    const client_config& config() const noexcept { return cfg_; }
    client_state state() const noexcept { return state_; }

    /// @name Operations
    /// Each queues a request; the outcome comes as an event. Call `poll_transmit` and
    /// `poll_timeout` afterwards.
    /// @{

    /// Starts the allocation. Outcome: `allocated_event`, or `error_event` with
    /// `operation::allocate` (the state returns to `idle`: `allocate` may be called
    /// again).
    /// @returns `turn_error::already_allocated` unless the state is `idle`.
    std::error_code allocate(time_point now);

    /// Refreshes the allocation now, with `client_config::lifetime`. (Refreshes also
    /// happen on their own at `refresh_percent` of the lifetime.) Outcome:
    /// `refreshed_event` or a fatal `error_event` with `operation::refresh`.
    /// @returns `turn_error::not_allocated`. A refresh already running is not doubled.
    std::error_code refresh(time_point now);

    /// Installs (or refreshes now) a permission for `peer.address`. Outcome:
    /// `permission_created_event`, or `error_event` with `operation::create_permission`.
    /// @returns `turn_error::not_allocated`, `too_many_peers`, or
    /// `turn_error::peer_address_family_mismatch` (not the relayed address's family).
    std::error_code create_permission(const endpoint& peer, time_point now);

    /// Binds a channel to `peer` (or refreshes its binding now). Outcome:
    /// `channel_bound_event`, or `error_event` with `operation::channel_bind`.
    /// @returns `turn_error::not_allocated`, `too_many_peers`, `no_channel_available`,
    /// or `peer_address_family_mismatch`.
    std::error_code bind_channel(const endpoint& peer, time_point now);

    /// Deallocates: a Refresh with LIFETIME 0. Outcome: `deallocated_event` (also
    /// when the server answers 437: it had no allocation), or `error_event` with
    /// `operation::deallocate`; the state is `closed` either way.
    /// Permissions and channels are forgotten at once.
    /// @returns `turn_error::not_allocated` unless the state is `allocated`.
    std::error_code deallocate(time_point now);

    /// Queues `data` for `peer`: ChannelData if a channel is bound to exactly this
    /// endpoint, else a Send indication if a permission for its address exists or is
    /// being installed.
    /// @returns `turn_error::not_allocated`, `turn_error::no_permission`,
    /// `error::message_too_large` (over `max_data_size`), or
    /// `std::errc::operation_would_block` when the transmit ring is full (counted).
    std::error_code send(const endpoint& peer, std::span<const std::byte> data,
                         time_point now) noexcept;
    /// @}

    /// @name Input
    /// @{

    /// One UDP datagram received from `from` (framing::datagram only). Data events of
    /// an earlier datagram still undrained are dropped (counted): their views are stale.
    /// @returns true if it came from the server and was a STUN message or ChannelData
    /// (used or dropped as the stats say); false if it is not the TURN client's (from
    /// another address, or not STUN/ChannelData), so the caller may use it itself.
    bool handle_datagram(std::span<const std::byte> bytes, const endpoint& from,
                         time_point now) noexcept;

    /// Bytes read from the TCP stream (framing::stream only). They are copied into the
    /// stream buffer; whole frames are processed by `poll_event`, which must be drained
    /// before more bytes fit.
    /// @returns the bytes taken: fewer than given when the stream buffer is full (call
    /// again with the rest after draining `poll_event`); 0 after the stream broke.
    std::size_t handle_stream_bytes(std::span<const std::byte> bytes, time_point now) noexcept;

    /// The TCP connection to the server closed (or failed). The allocation is gone: a
    /// fatal `error_event` with `turn_error::connection_lost` (or `deallocated_event`
    /// during `deallocate`).
    void handle_stream_closed(time_point now) noexcept;

    /// Retransmits, refreshes and expires what is due. Call when `poll_timeout()` has
    /// passed.
    void handle_timeout(time_point now) noexcept;
    /// @}

    /// @name Output
    /// @{

    /// The next event. Call after every other call until it returns nothing, before
    /// `poll_transmit`: over TCP it is what processes the frames of the stream.
    std::optional<client_event> poll_event() noexcept;

    /// The next bytes to send to the server; the view is valid until the next call on
    /// the core. Call after `poll_event` returned nothing, until it returns nothing.
    std::optional<transmit> poll_transmit() noexcept;

    /// When `handle_timeout` must be called next; nothing when no timer runs. Call
    /// after draining `poll_event` and `poll_transmit`.
    std::optional<time_point> poll_timeout() const noexcept;
    /// @}

    /// @name Queries
    /// @{
    /// The relayed and mapped addresses (unset before the allocation exists).
    const endpoint& relayed() const noexcept { return relayed_; }
    const endpoint& mapped() const noexcept { return mapped_; }
    /// When the allocation expires unless refreshed.
    time_point expires_at() const noexcept { return expires_at_; }
    /// The channel bound to `peer`, if its ChannelBind succeeded.
    std::optional<std::uint16_t> channel_of(const endpoint& peer) const noexcept;
    /// Whether a permission for `peer.address` is installed.
    bool has_permission(const endpoint& peer) const noexcept;
    /// The realm the server named in its 401 ("" before).
    const std::string& realm() const noexcept { return realm_; }
    /// Outgoing data packets `send` can queue now.
    std::size_t send_capacity() const noexcept { return tx_slots_ - tx_count_; }
    const client_stats& stats() const noexcept;
    /// @}

private:
    enum class kind : std::uint8_t { allocate = 1, refresh, deallocate, permission, channel };
    enum class entry_state : std::uint8_t { unused, pending, active };
    struct permission_entry {
        entry_state state = entry_state::unused;
        bool in_flight = false, want_send = false, notify = false;
        std::uint32_t gen = 0;
        endpoint peer;
        time_point refresh_at{};
        stun::transaction_id id{};
    };
    struct channel_entry {
        entry_state state = entry_state::unused;
        bool in_flight = false, want_send = false, notify = false;
        std::uint32_t gen = 0;
        std::uint16_t number = 0;
        endpoint peer;
        time_point refresh_at{};
        stun::transaction_id id{};
    };

    bool has_credentials() const noexcept { return key_.size != 0; }
    void pump_requests(time_point now) noexcept;
    bool start_request(kind k, std::size_t index, time_point now) noexcept;
    void collect(time_point now) noexcept;
    void on_result(const stun::transaction_result& r, time_point now) noexcept;
    void on_allocate_result(const stun::transaction_result& r, bool credentialed,
                            time_point now) noexcept;
    bool take_challenge(const stun::message_view& m) noexcept;
    bool retry_stale(const stun::transaction_result& r) noexcept;
    void fail_allocation(operation op, std::error_code ec, unsigned code, time_point now) noexcept;
    void reset_tables() noexcept;
    void cancel_transactions() noexcept;
    bool process_frame(std::span<const std::byte> frame, time_point now) noexcept;
    void push_event(client_event e) noexcept;
    void drop_stale_data() noexcept;
    permission_entry* find_permission(const ip_address& a) noexcept;
    const permission_entry* find_permission(const ip_address& a) const noexcept;
    channel_entry* find_channel(const endpoint& e) noexcept;
    const channel_entry* find_channel(const endpoint& e) const noexcept;
    permission_entry* add_permission(const endpoint& peer) noexcept;
    void release_transmit() noexcept;
    std::uint64_t user_data(kind k, std::size_t index, std::uint32_t gen,
                            bool credentialed) const noexcept;

    client_config cfg_;
    stun::client_core stun_;
    client_state state_ = client_state::idle;

    // Credentials learned from the server's 401.
    std::string realm_, nonce_;
    stun::long_term_key_value key_{};
    std::vector<std::byte> password_algorithms_; // PASSWORD-ALGORITHMS to echo, if any
    std::optional<stun::password_algorithm> algorithm_;
    unsigned stale_retries_ = 0;
    std::uint8_t nonce_gen_ = 0; // changes with the nonce; sent requests remember theirs

    // The allocation.
    endpoint relayed_, mapped_;
    time_point expires_at_{}, refresh_at_{};
    std::uint32_t alloc_gen_ = 0;
    bool alloc_in_flight_ = false;
    bool want_alloc_op_ = false; // the request of state_ (allocate/refresh/deallocate)
    bool notify_refresh_ = false;
    stun::transaction_id alloc_id_{};

    std::vector<permission_entry> permissions_;
    std::vector<channel_entry> channels_;
    std::uint32_t next_channel_ = 0x4000;

    std::vector<std::byte> request_; // where requests are built

    // Outgoing data: a ring of fixed-size slots.
    std::vector<std::byte> tx_storage_;
    std::vector<std::size_t> tx_sizes_;
    std::size_t tx_slot_size_ = 0, tx_slots_ = 0, tx_head_ = 0, tx_count_ = 0;
    bool tx_returned_ = false;
    stun::transaction_id indication_id_{};
    std::uint64_t indication_counter_ = 0;

    // Events.
    std::vector<client_event> events_;
    std::size_t ev_head_ = 0, ev_count_ = 0;

    // The TCP stream: bytes [stream_begin_, stream_end_) wait to be framed.
    std::vector<std::byte> stream_;
    std::size_t stream_begin_ = 0, stream_end_ = 0;
    bool stream_broken_ = false;
    time_point stream_now_{};

    mutable client_stats stats_;
};

} // namespace turn
} // namespace peerlink

template <>
struct std::is_error_code_enum<peerlink::turn_error> : std::true_type {};

#include <peerlink/proto/impl/turn_client.hpp>

#endif // PEERLINK_PROTO_TURN_CLIENT_HPP
