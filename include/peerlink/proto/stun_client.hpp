// peerlink/proto/stun_client.hpp: the sans-I/O STUN client transaction core.
//
// `stun::client_core` runs STUN client transactions (RFC 8489 §6.2) without sockets
// and without a clock. The caller starts a transaction with a request (a Binding
// request built by `start_binding`, or any request it encoded itself: TURN
// Allocate, an ICE check, ...), then feeds the core and drains it:
//
// @code
// stun::client_core c;                               // RTO 500 ms, Rc = 7, Rm = 16
// auto id = c.start_binding(server, now, ec);
// while (auto t = c.poll_transmit()) send(t->data, t->to);   // after every call
// c.handle_datagram(bytes, from, now);               // each datagram received
// c.handle_timeout(now);                             // when poll_timeout() has passed
// while (auto r = c.poll_event())                    // finished transactions
//     if (!r->ec) use(stun::decode_binding_response(*r->response, ec));
// @endcode
//
// Retransmission (RFC 8489 §6.2.1), over UDP: the request is sent at 0, RTO, 3 RTO,
// 7 RTO, ... (the interval doubles), `max_requests` (Rc) times in all; if no response
// has come `final_wait_factor` (Rm) times RTO after the last one, the transaction
// fails with `stun_error::transaction_timeout`. With the defaults (RTO 500 ms, Rc 7,
// Rm 16) that is requests at 0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s and failure at 39.5 s.
// Over TCP/TLS (`client_config::reliable`) the request is sent once and the
// transaction fails after `reliable_timeout` (Ti, 39.5 s).
//
// Responses are matched by transaction id only (a response may come from another
// address than the request went to: RFC 5780's CHANGE-REQUEST). A response is
// ignored, and the transaction goes on waiting, when its FINGERPRINT is present and
// wrong, when it is not a response of the request's method, when it does not decode,
// or, for a transaction started with an integrity key, when its MESSAGE-INTEGRITY
// (-SHA256) is missing or wrong (RFC 8489 §9.1.4, §9.2.5; error responses 400, 401,
// 420 and 438 are accepted without one, as the server cannot sign them).
// Datagrams that are not STUN, or not for a running transaction, are left to the
// caller: `handle_datagram` returns false.
//
// Memory is allocated at construction only: `max_transactions` slots of
// `max_message_size` bytes each (OpenSSL makes a short-lived HMAC context when a
// response's integrity is checked). Never throws after construction, never reads a
// clock, includes no Asio.
#ifndef PEERLINK_PROTO_STUN_CLIENT_HPP
#define PEERLINK_PROTO_STUN_CLIENT_HPP

#include <peerlink/endpoint.hpp>
#include <peerlink/error.hpp>
#include <peerlink/proto/stun.hpp>
#include <peerlink/time.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string_view>
#include <system_error>
#include <vector>

namespace peerlink::stun {

/// A datagram for the driver to send.
struct transmit {
    std::span<const std::byte> data;
    endpoint to;
};

/// Timers and sizes of a `client_core`.
struct client_config {
    /// The initial retransmission timeout (RTO). RFC 8489 recommends 500 ms.
    duration rto = std::chrono::milliseconds(500);
    /// Requests sent in all, the first included (Rc). At least 1.
    unsigned max_requests = 7;
    /// The wait after the last request, in multiples of `rto` (Rm).
    unsigned final_wait_factor = 16;
    /// Over TCP or TLS: send once, no retransmission, fail after `reliable_timeout`.
    bool reliable = false;
    /// Ti, the transaction timeout over a reliable transport.
    duration reliable_timeout = std::chrono::milliseconds(39500);
    /// Transactions that can run at once (slots allocated at construction).
    std::size_t max_transactions = 16;
    /// Largest request and response held, in bytes (per slot).
    std::size_t max_message_size = 2048;
    /// Largest integrity key a transaction may carry, in bytes (per slot).
    std::size_t max_key_size = 256;
    /// Fills a span with random bytes, for transaction ids. Empty: OpenSSL's RAND_bytes.
    std::function<void(std::span<std::byte>)> random;
};

/// Per-transaction options of `client_core::start`.
struct transaction_options {
    /// If not empty, responses must carry a MESSAGE-INTEGRITY(-SHA256) that verifies
    /// with this key (short-term: the password; long-term: `long_term_key`). Copied.
    std::span<const std::byte> integrity_key;
    /// Returned in the result, for the caller to tell its transactions apart.
    std::uint64_t user_data = 0;
};

/// What `client_core::start_binding` puts in a Binding request.
struct binding_request {
    /// RFC 5780 CHANGE-REQUEST; not sent when both flags are false.
    change_request change{};
    /// RFC 5780 RESPONSE-PORT; not sent when 0.
    std::uint16_t response_port = 0;
    /// RFC 5780 PADDING bytes; not sent when 0.
    std::size_t padding = 0;
    /// SOFTWARE; not sent when empty.
    std::string_view software;
    /// End the request with FINGERPRINT.
    bool fingerprint = true;
    /// Returned in the result.
    std::uint64_t user_data = 0;
};

/// A finished transaction, from `client_core::poll_event`.
struct transaction_result {
    transaction_id id{};
    std::uint64_t user_data = 0;
    endpoint to;   ///< Where the request went.
    endpoint from; ///< Where the response came from (unset without a response).
    /// {} for a success response; the `stun_error` of an error response's code
    /// (`stun_error::unauthorized` for 401, `error_response` for codes without an
    /// enumerator); `stun_error::transaction_timeout` when nothing came.
    std::error_code ec;
    /// The response (success or error), when one came. It views the core's copy,
    /// valid until the next call of `poll_event`, `handle_datagram`,
    /// `handle_timeout`, `start`, `start_binding` or `cancel`.
    std::optional<message_view> response;
    unsigned requests_sent = 0; ///< Transmissions, the first included.
    duration elapsed{};         ///< From the first transmission to the response (or timeout).
    /// From the last transmission to the response. Ambiguous when `requests_sent > 1`
    /// (which transmission was answered is unknown, Karn's algorithm).
    duration rtt{};
};

/// Counters of a `client_core`; they only grow.
struct client_stats {
    std::uint64_t transactions = 0;        ///< Transactions started.
    std::uint64_t requests_sent = 0;       ///< Requests handed out by `poll_transmit`.
    std::uint64_t retransmissions = 0;     ///< Of those, repeats.
    std::uint64_t responses = 0;           ///< Responses accepted (success and error).
    std::uint64_t timeouts = 0;            ///< Transactions that got no response.
    std::uint64_t cancelled = 0;           ///< Transactions cancelled.
    std::uint64_t ignored_unknown = 0;     ///< STUN responses for no running transaction.
    std::uint64_t ignored_malformed = 0;   ///< For a transaction, but not decodable / wrong method.
    std::uint64_t ignored_fingerprint = 0; ///< With a wrong FINGERPRINT.
    std::uint64_t ignored_integrity = 0;   ///< Without or with a wrong MESSAGE-INTEGRITY.
    std::uint64_t ignored_too_large = 0;   ///< Larger than `max_message_size`.
};

/// The sans-I/O STUN client: concurrent transactions with retransmission.
///
/// Not thread-safe. Never throws after construction; never reads a clock.
class client_core {
public:
    /// Allocates the slots.
    /// @throws std::bad_alloc. A config with `max_requests == 0`, `rto <= 0`,
    /// `max_transactions == 0` or `max_message_size < 20` is corrected to the smallest
    /// working value.
    explicit client_core(client_config cfg = {});

    const client_config& config() const noexcept { return cfg_; }

    /// A fresh random transaction id, from `client_config::random`.
    transaction_id new_transaction_id();

    /// Starts a transaction for `request`, a STUN request the caller encoded (with an
    /// id from `new_transaction_id()`). The bytes are copied; the first transmission
    /// is ready at once (`poll_transmit`).
    /// @returns {} or `std::errc::invalid_argument` (not a decodable request),
    /// `error::message_too_large` (over `max_message_size`, or a key over
    /// `max_key_size`), `stun_error::duplicate_transaction` or
    /// `stun_error::too_many_transactions`.
    std::error_code start(std::span<const std::byte> request, const endpoint& to, time_point now,
                          const transaction_options& options = {});

    /// Encodes a Binding request as `r` says and starts it.
    /// @returns its transaction id, or nothing with `ec` set as for `start` (or
    /// `error::buffer_too_small` when the padding does not fit `max_message_size`).
    std::optional<transaction_id> start_binding(const endpoint& to, time_point now,
                                                std::error_code& ec, const binding_request& r = {});

    /// Stops a transaction without an event. @returns whether it was running.
    bool cancel(const transaction_id& id) noexcept;

    /// Feeds one received datagram.
    /// @returns true when it was a STUN response for a running transaction (accepted
    /// or ignored as the header comment says); false when the caller may hand it to
    /// someone else (not STUN, a request or indication, an unknown transaction).
    bool handle_datagram(std::span<const std::byte> bytes, const endpoint& from,
                         time_point now) noexcept;

    /// Retransmits and times out what is due. Call when `poll_timeout()` has passed.
    void handle_timeout(time_point now) noexcept;

    /// The next datagram to send; the view is valid until the next call on the core.
    /// Call after every `start*`, `handle_*` until it returns nothing.
    std::optional<transmit> poll_transmit() noexcept;

    /// When `handle_timeout` must be called next; nothing when no transaction runs.
    /// Call after every `start*`, `handle_*` and `cancel`.
    std::optional<time_point> poll_timeout() const noexcept;

    /// The next finished transaction, oldest first. Call after every `handle_*`.
    std::optional<transaction_result> poll_event() noexcept;

    /// Transactions started and not yet finished.
    std::size_t active_transactions() const noexcept;

    const client_stats& stats() const noexcept { return stats_; }

private:
    enum class slot_state : std::uint8_t { free, running, done, delivered };
    struct slot {
        slot_state state = slot_state::free;
        bool needs_send = false;
        bool has_key = false;
        transaction_id id{};
        endpoint to, from;
        std::vector<std::byte> buf;
        std::size_t size = 0;
        std::vector<std::byte> key;
        std::uint64_t user_data = 0;
        unsigned sent = 0;
        duration interval{};
        time_point deadline{}, first_sent{}, last_sent{}, finished{};
        std::error_code ec;
        std::optional<message_view> response;
        std::uint64_t done_seq = 0;
    };

    void release_delivered() noexcept;
    slot* find_running(const transaction_id& id) noexcept;
    void finish(slot& s, std::error_code ec, time_point now) noexcept;

    client_config cfg_;
    std::vector<slot> slots_;
    client_stats stats_;
    std::uint64_t done_seq_ = 0;
    std::uint64_t id_counter_ = 0;
};

/// What a Binding success response tells.
struct binding_result {
    /// XOR-MAPPED-ADDRESS, or MAPPED-ADDRESS from an RFC 3489 server.
    endpoint mapped;
    /// RESPONSE-ORIGIN (RFC 5780), or SOURCE-ADDRESS (RFC 3489): where it was sent from.
    std::optional<endpoint> response_origin;
    /// OTHER-ADDRESS (RFC 5780), or CHANGED-ADDRESS (RFC 3489): the server's alternate
    /// address and port; present only when the server supports NAT discovery.
    std::optional<endpoint> other_address;
};

/// Reads a Binding success response.
/// @returns the result, or nothing with `ec` = `stun_error::attribute_missing` (no
/// mapped address), `bad_attribute_value`, or `std::errc::invalid_argument` (not a
/// Binding success response).
std::optional<binding_result> decode_binding_response(const message_view& m,
                                                      std::error_code& ec) noexcept;

} // namespace peerlink::stun

#include <peerlink/proto/impl/stun_client.hpp>

#endif // PEERLINK_PROTO_STUN_CLIENT_HPP
