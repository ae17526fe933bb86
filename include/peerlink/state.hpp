// peerlink/state.hpp: the connection state machine, as data.
//
// A connection is always in exactly one state. Each state is a struct that holds
// what that state needs (the path in use, the attempt counters, the error that led
// there); `connection_state` is the variant of all of them. The things that happen
// to a connection are events, also structs, gathered in `connection_event`. The
// function `transition` maps a state and an event to the next state. It is pure:
// no I/O, no clock (the time comes in `transition_context::now`), no allocation,
// no exception. The connection core feeds it the events its sub-cores report and
// acts on the state it returns; the tests check it as a table.
//
// `state_kind` and `event_kind` name the alternatives for logs, statistics and the
// C ABI; their values are the variants' indices.
//
// @par The transition table
// Every (state, event) pair not listed leaves the state unchanged (equal to its input):
// the event makes no sense there.
//
// @code
// state            event                 next state
// ---------------  --------------------  ----------------------------------------------
// idle             connect_requested     signaling, or gathering if !needs_signaling
// signaling        signaling_done        gathering
// gathering        candidates_gathered   punching
// signaling,       direct_path_found     connected{path}
//   gathering,     relay_allocated       relayed{relay}
//   punching       attempt_failed        waiting{attempt = retries}
// connected        direct_path_found     connected{new path}     (path migration)
//                  path_lost             reconnecting{attempt 0, reason}
// relayed          direct_path_found     connected{path}         (upgrade)
//                  relay_allocated       relayed{new relay}
//                  path_lost             reconnecting{attempt 0, reason}
// reconnecting     direct_path_found     connected{path}
//                  relay_allocated       relayed{relay}
//                  attempt_failed        reconnecting{attempt + 1}, or after
//                                        max_reconnect_attempts tries waiting{retries}
// waiting          direct_path_found     connected{path}
//                  relay_allocated       relayed{relay}
//                  retry_timer_fired     `resume`{retries = attempt + 1}
// all but failed,  close_requested       closed{}                (no reason)
//   closed         fatal_error           failed{reason}
// all but idle,    peer_closed           closed{error::connection_closed}
//   failed, closed
// failed, closed   (any)                 unchanged               (terminal)
// @endcode
//
// - `connect_requested` goes to `signaling` when the peer is found through a
//   signaling server, and straight to `gathering` otherwise (a direct-only
//   connection to a known address gathers its host candidates, then punches).
// - A usable path is always taken: `direct_path_found` leads to `connected` and
//   `relay_allocated` to `relayed` from every state that is looking for a path
//   (and from `waiting`, where the peer may reach us first). From `relayed`,
//   `direct_path_found` is the upgrade to a direct path; in `connected` it means
//   the path moved (the peer's NAT rebound it), as `relay_allocated` in `relayed`
//   means the relay changed; both keep `since`. A connected connection ignores
//   `relay_allocated`: a direct path beats a relay.
// - `attempt_failed` in `signaling`, `gathering` or `punching` (the first
//   connect, relay included, found no path) goes to `waiting`. In `reconnecting`
//   it tries again, up to `max_reconnect_attempts` tries, then goes to `waiting`.
//   In `connected` and `relayed` it is a failed upgrade or probe and changes
//   nothing.
// - `waiting` lasts `backoff_delay(attempt, backoff_initial, backoff_max)`:
//   30 s, 60 s, 120 s, ... capped at 1 h with the defaults. `retry_timer_fired`
//   then resumes where the failed round began (`waiting::resume`): `signaling` or
//   `gathering` for a connection never established, `reconnecting` for one that was.
// - `close_requested` closes every state but the terminal ones with no reason;
//   `peer_closed` closes every state that has a peer with `error::connection_closed`;
//   `fatal_error` moves every non-terminal state to `failed`.
// - `failed` and `closed` are terminal: every event leaves them unchanged.
//
// @par Example
// @code
// peerlink::transition_context ctx{.now = now};
// peerlink::connection_state st = peerlink::state::idle{};
// st = peerlink::transition(st, peerlink::event::connect_requested{true}, ctx);
// log("state: {}", peerlink::to_string(peerlink::kind_of(st))); // "signaling"
// @endcode
#ifndef PEERLINK_STATE_HPP
#define PEERLINK_STATE_HPP

#include <peerlink/endpoint.hpp>
#include <peerlink/error.hpp>
#include <peerlink/time.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <system_error>
#include <utility>
#include <variant>

namespace peerlink {

/// The kind of a connection state. The value of each enumerator is the index of
/// its struct in `connection_state`.
enum class state_kind : std::uint8_t {
    idle,
    signaling,
    gathering,
    punching,
    connected,
    relayed,
    reconnecting,
    waiting,
    failed,
    closed,
};

/// The kind of a connection event. The value of each enumerator is the index of
/// its struct in `connection_event`.
enum class event_kind : std::uint8_t {
    connect_requested,
    signaling_done,
    candidates_gathered,
    direct_path_found,
    relay_allocated,
    attempt_failed,
    path_lost,
    retry_timer_fired,
    close_requested,
    peer_closed,
    fatal_error,
};

/// The states of a connection. Each struct holds what its state needs;
/// `since` is always the time the connection entered that state.
namespace state {

/// Created, not asked to connect yet.
struct idle {
    static constexpr state_kind kind = state_kind::idle;
    friend bool operator==(const idle&, const idle&) = default;
};

/// Exchanging candidates with the peer through the signaling server.
struct signaling {
    static constexpr state_kind kind = state_kind::signaling;
    /// How many times the connection has waited and tried again (0 on the first try).
    unsigned retries = 0;
    time_point since{};
    friend bool operator==(const signaling&, const signaling&) = default;
};

/// Gathering local candidates (host addresses, STUN server-reflexive addresses).
struct gathering {
    static constexpr state_kind kind = state_kind::gathering;
    /// How many times the connection has waited and tried again (0 on the first try).
    unsigned retries = 0;
    time_point since{};
    /// Whether this connect went through `signaling`; a retry starts there again.
    bool needs_signaling = false;
    friend bool operator==(const gathering&, const gathering&) = default;
};

/// Sending connectivity checks to the peer's candidates to open the NATs.
struct punching {
    static constexpr state_kind kind = state_kind::punching;
    /// How many times the connection has waited and tried again (0 on the first try).
    unsigned retries = 0;
    time_point since{};
    /// Whether this connect went through `signaling`; a retry starts there again.
    bool needs_signaling = false;
    friend bool operator==(const punching&, const punching&) = default;
};

/// Talking to the peer over a direct UDP path.
struct connected {
    static constexpr state_kind kind = state_kind::connected;
    /// The peer's address on the direct path.
    endpoint path;
    time_point since{};
    friend bool operator==(const connected&, const connected&) = default;
};

/// Talking to the peer through a TURN relay, while still trying to go direct.
struct relayed {
    static constexpr state_kind kind = state_kind::relayed;
    /// The relay's address (the TURN server's allocation).
    endpoint relay;
    time_point since{};
    friend bool operator==(const relayed&, const relayed&) = default;
};

/// The path was lost; looking for a new one (direct or relayed) without waiting.
struct reconnecting {
    static constexpr state_kind kind = state_kind::reconnecting;
    /// The try within this round, from 0; after `max_reconnect_attempts` tries the
    /// connection waits.
    unsigned attempt = 0;
    /// How many times the connection has waited and tried again in this outage.
    unsigned retries = 0;
    time_point since{};
    /// Why: the `path_lost` reason, then the reason of the last failed try.
    std::error_code reason;
    friend bool operator==(const reconnecting&, const reconnecting&) = default;
};

/// Backing off after a round of tries found no path; `retry_timer_fired` ends it.
struct waiting {
    static constexpr state_kind kind = state_kind::waiting;
    /// The index of this wait in the current outage, from 0.
    unsigned attempt = 0;
    /// `backoff_delay(attempt, backoff_initial, backoff_max)`.
    duration delay{};
    /// When the driver must fire the retry timer: entry time + `delay`, saturated.
    time_point until{};
    /// The reason of the failed try that led here.
    std::error_code reason;
    /// Where `retry_timer_fired` goes: `signaling`, `gathering` or `reconnecting`.
    state_kind resume = state_kind::reconnecting;
    friend bool operator==(const waiting&, const waiting&) = default;
};

/// Stopped by an error nothing can recover from. Terminal.
struct failed {
    static constexpr state_kind kind = state_kind::failed;
    std::error_code reason;
    friend bool operator==(const failed&, const failed&) = default;
};

/// Closed in order. Terminal.
struct closed {
    static constexpr state_kind kind = state_kind::closed;
    /// Empty when we closed; `error::connection_closed` when the peer did.
    std::error_code reason;
    friend bool operator==(const closed&, const closed&) = default;
};

} // namespace state

/// The state of a connection; the alternatives are in `state_kind` order.
using connection_state =
    std::variant<state::idle, state::signaling, state::gathering, state::punching, state::connected,
                 state::relayed, state::reconnecting, state::waiting, state::failed, state::closed>;

/// The events that move a connection from state to state.
namespace event {

/// The application asked to connect.
struct connect_requested {
    static constexpr event_kind kind = event_kind::connect_requested;
    /// Whether the peer is found through a signaling server (else its address is known).
    bool needs_signaling = true;
    friend bool operator==(const connect_requested&, const connect_requested&) = default;
};

/// The candidates were exchanged through the signaling server.
struct signaling_done {
    static constexpr event_kind kind = event_kind::signaling_done;
    friend bool operator==(const signaling_done&, const signaling_done&) = default;
};

/// The local candidates are known.
struct candidates_gathered {
    static constexpr event_kind kind = event_kind::candidates_gathered;
    friend bool operator==(const candidates_gathered&, const candidates_gathered&) = default;
};

/// A connectivity check succeeded: the peer answers directly at `path`.
struct direct_path_found {
    static constexpr event_kind kind = event_kind::direct_path_found;
    endpoint path;
    friend bool operator==(const direct_path_found&, const direct_path_found&) = default;
};

/// A relayed path to the peer works, through the allocation at `relay`.
struct relay_allocated {
    static constexpr event_kind kind = event_kind::relay_allocated;
    endpoint relay;
    friend bool operator==(const relay_allocated&, const relay_allocated&) = default;
};

/// A try found no path: signaling, gathering or punching failed, and the relay too
/// (or no relay is configured). While connected or relayed: an upgrade or probe failed.
struct attempt_failed {
    static constexpr event_kind kind = event_kind::attempt_failed;
    std::error_code reason;
    friend bool operator==(const attempt_failed&, const attempt_failed&) = default;
};

/// The path in use stopped working (e.g. `error::peer_timeout`).
struct path_lost {
    static constexpr event_kind kind = event_kind::path_lost;
    std::error_code reason;
    friend bool operator==(const path_lost&, const path_lost&) = default;
};

/// The timer armed for `state::waiting::until` expired.
struct retry_timer_fired {
    static constexpr event_kind kind = event_kind::retry_timer_fired;
    friend bool operator==(const retry_timer_fired&, const retry_timer_fired&) = default;
};

/// The application asked to close.
struct close_requested {
    static constexpr event_kind kind = event_kind::close_requested;
    friend bool operator==(const close_requested&, const close_requested&) = default;
};

/// The peer closed the connection in order.
struct peer_closed {
    static constexpr event_kind kind = event_kind::peer_closed;
    friend bool operator==(const peer_closed&, const peer_closed&) = default;
};

/// An error nothing can recover from (bad configuration, the peer failed to
/// authenticate, the socket cannot be opened).
struct fatal_error {
    static constexpr event_kind kind = event_kind::fatal_error;
    std::error_code reason;
    friend bool operator==(const fatal_error&, const fatal_error&) = default;
};

} // namespace event

/// An event for `transition`; the alternatives are in `event_kind` order.
using connection_event =
    std::variant<event::connect_requested, event::signaling_done, event::candidates_gathered,
                 event::direct_path_found, event::relay_allocated, event::attempt_failed,
                 event::path_lost, event::retry_timer_fired, event::close_requested,
                 event::peer_closed, event::fatal_error>;

/// What `transition` needs besides the state and the event.
struct transition_context {
    /// The current time; entered states record it, `waiting::until` starts from it.
    time_point now{};
    /// The first backoff delay.
    duration backoff_initial = std::chrono::seconds(30);
    /// The longest backoff delay.
    duration backoff_max = std::chrono::hours(1);
    /// How many tries `reconnecting` makes before it waits (0 and 1 both mean one).
    unsigned max_reconnect_attempts = 3;
};

/// The kind of a state: `static_cast<state_kind>(s.index())`.
constexpr state_kind kind_of(const connection_state& s) noexcept;

/// The kind of an event: `static_cast<event_kind>(e.index())`.
constexpr event_kind kind_of(const connection_event& e) noexcept;

/// The name of a state kind, spelled as its enumerator ("reconnecting").
/// @returns "unknown" for a value outside the enumeration.
constexpr std::string_view to_string(state_kind k) noexcept;

/// The name of an event kind, spelled as its enumerator ("path_lost").
/// @returns "unknown" for a value outside the enumeration.
constexpr std::string_view to_string(event_kind k) noexcept;

/// The state kind named `name` (as printed by `to_string`), or nothing.
constexpr std::optional<state_kind> state_kind_from_string(std::string_view name) noexcept;

/// The event kind named `name` (as printed by `to_string`), or nothing.
constexpr std::optional<event_kind> event_kind_from_string(std::string_view name) noexcept;

/// Whether a state is terminal (`failed` or `closed`): no event leaves it.
constexpr bool is_terminal(state_kind k) noexcept;

/// The delay of the wait numbered `attempt` (from 0): `initial * 2^attempt`, at most
/// `max`. Exact and free of overflow for every `attempt`; negative arguments count
/// as zero.
///
/// With the defaults: 30 s, 60 s, 120 s, 240 s, 480 s, 960 s, 1920 s, then 3600 s.
constexpr duration backoff_delay(unsigned attempt, duration initial, duration max) noexcept;

/// The state a connection in state `s` enters when event `e` happens.
///
/// Follows the table at the top of this header. An event that makes no sense in
/// `s` returns `s` unchanged, so `transition(s, e, ctx) == s` tells the caller it
/// was ignored (for logs). Entered states record `ctx.now` in `since`.
///
/// @param s The current state.
/// @param e The event.
/// @param ctx The current time and the backoff settings.
/// @returns The next state.
connection_state transition(const connection_state& s, const connection_event& e,
                            const transition_context& ctx) noexcept;

} // namespace peerlink

#include <peerlink/impl/state.hpp>

#endif // PEERLINK_STATE_HPP
