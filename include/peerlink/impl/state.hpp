// Implementation of peerlink/state.hpp.
#ifndef PEERLINK_IMPL_STATE_HPP
#define PEERLINK_IMPL_STATE_HPP

#include <limits>
#include <type_traits>

namespace peerlink {

namespace detail {

// Each alternative's `kind` must equal its index, so that kind_of can be a cast
// and the enums can cross the C ABI as the variant index.
template <class Variant, std::size_t... I>
constexpr bool kinds_are_indices(std::index_sequence<I...>) noexcept {
    return ((static_cast<std::size_t>(std::variant_alternative_t<I, Variant>::kind) == I) && ...);
}

static_assert(std::variant_size_v<connection_state> ==
              static_cast<std::size_t>(state_kind::closed) + 1);
static_assert(kinds_are_indices<connection_state>(
    std::make_index_sequence<std::variant_size_v<connection_state>>{}));
static_assert(std::variant_size_v<connection_event> ==
              static_cast<std::size_t>(event_kind::fatal_error) + 1);
static_assert(kinds_are_indices<connection_event>(
    std::make_index_sequence<std::variant_size_v<connection_event>>{}));

template <class T, class... Ts>
concept one_of = (std::is_same_v<T, Ts> || ...);

// The states of the first connect, before any path existed.
template <class S>
concept first_connect_state = one_of<S, state::signaling, state::gathering, state::punching>;

// The states that take a path as soon as one works.
template <class S>
concept path_seeking_state =
    first_connect_state<S> || one_of<S, state::reconnecting, state::waiting>;

template <class S>
concept live_state = !one_of<S, state::failed, state::closed>;

constexpr unsigned saturating_increment(unsigned n) noexcept {
    return n == std::numeric_limits<unsigned>::max() ? n : n + 1;
}

// A user may set backoff_max to duration::max(); `until` then pins at the end of time
// instead of wrapping into the past. `d` is never negative (backoff_delay), so
// `max() - d` cannot wrap.
constexpr time_point saturating_add(time_point t, duration d) noexcept {
    if (t > time_point::max() - d)
        return time_point::max();
    return t + d;
}

inline state::waiting make_waiting(unsigned attempt, std::error_code reason, state_kind resume,
                                   const transition_context& ctx) noexcept {
    const duration delay = backoff_delay(attempt, ctx.backoff_initial, ctx.backoff_max);
    return {attempt, delay, saturating_add(ctx.now, delay), reason, resume};
}

// One overload per row of the table in state.hpp; the first template is every "-".
struct transition_visitor {
    const transition_context& ctx;

    template <class S, class E>
    connection_state operator()(const S& s, const E&) const noexcept {
        return s;
    }

    connection_state operator()(const state::idle&,
                                const event::connect_requested& e) const noexcept {
        if (e.needs_signaling)
            return state::signaling{0, ctx.now};
        return state::gathering{0, ctx.now, false};
    }

    connection_state operator()(const state::signaling& s,
                                const event::signaling_done&) const noexcept {
        return state::gathering{s.retries, ctx.now, true};
    }

    connection_state operator()(const state::gathering& s,
                                const event::candidates_gathered&) const noexcept {
        return state::punching{s.retries, ctx.now, s.needs_signaling};
    }

    template <path_seeking_state S>
    connection_state operator()(const S&, const event::direct_path_found& e) const noexcept {
        return state::connected{e.path, ctx.now};
    }

    template <path_seeking_state S>
    connection_state operator()(const S&, const event::relay_allocated& e) const noexcept {
        return state::relayed{e.relay, ctx.now};
    }

    connection_state operator()(const state::connected& s,
                                const event::direct_path_found& e) const noexcept {
        return state::connected{e.path, s.since};
    }

    connection_state operator()(const state::relayed&,
                                const event::direct_path_found& e) const noexcept {
        return state::connected{e.path, ctx.now};
    }

    connection_state operator()(const state::relayed& s,
                                const event::relay_allocated& e) const noexcept {
        return state::relayed{e.relay, s.since};
    }

    template <first_connect_state S>
    connection_state operator()(const S& s, const event::attempt_failed& e) const noexcept {
        state_kind resume = state_kind::signaling;
        if constexpr (!std::is_same_v<S, state::signaling>)
            resume = s.needs_signaling ? state_kind::signaling : state_kind::gathering;
        return make_waiting(s.retries, e.reason, resume, ctx);
    }

    connection_state operator()(const state::reconnecting& s,
                                const event::attempt_failed& e) const noexcept {
        // Written so that no counter can wrap, whatever the caller put in `s`.
        if (ctx.max_reconnect_attempts > 0 && s.attempt < ctx.max_reconnect_attempts - 1)
            return state::reconnecting{s.attempt + 1, s.retries, ctx.now, e.reason};
        return make_waiting(s.retries, e.reason, state_kind::reconnecting, ctx);
    }

    template <class S>
    requires one_of<S, state::connected, state::relayed>
        connection_state operator()(const S&, const event::path_lost& e) const noexcept {
        return state::reconnecting{0, 0, ctx.now, e.reason};
    }

    connection_state operator()(const state::waiting& s,
                                const event::retry_timer_fired&) const noexcept {
        const unsigned retries = saturating_increment(s.attempt);
        switch (s.resume) {
        case state_kind::signaling:
            return state::signaling{retries, ctx.now};
        case state_kind::gathering:
            return state::gathering{retries, ctx.now, false};
        default:
            return state::reconnecting{0, retries, ctx.now, s.reason};
        }
    }

    template <live_state S>
    connection_state operator()(const S&, const event::close_requested&) const noexcept {
        return state::closed{};
    }

    template <live_state S>
    requires(!std::is_same_v<S, state::idle>) connection_state
    operator()(const S&, const event::peer_closed&) const noexcept {
        return state::closed{make_error_code(error::connection_closed)};
    }

    template <live_state S>
    connection_state operator()(const S&, const event::fatal_error& e) const noexcept {
        return state::failed{e.reason};
    }
};

} // namespace detail

constexpr state_kind kind_of(const connection_state& s) noexcept {
    return static_cast<state_kind>(s.index());
}

constexpr event_kind kind_of(const connection_event& e) noexcept {
    return static_cast<event_kind>(e.index());
}

constexpr std::string_view to_string(state_kind k) noexcept {
    switch (k) {
    case state_kind::idle:
        return "idle";
    case state_kind::signaling:
        return "signaling";
    case state_kind::gathering:
        return "gathering";
    case state_kind::punching:
        return "punching";
    case state_kind::connected:
        return "connected";
    case state_kind::relayed:
        return "relayed";
    case state_kind::reconnecting:
        return "reconnecting";
    case state_kind::waiting:
        return "waiting";
    case state_kind::failed:
        return "failed";
    case state_kind::closed:
        return "closed";
    }
    return "unknown";
}

constexpr std::string_view to_string(event_kind k) noexcept {
    switch (k) {
    case event_kind::connect_requested:
        return "connect_requested";
    case event_kind::signaling_done:
        return "signaling_done";
    case event_kind::candidates_gathered:
        return "candidates_gathered";
    case event_kind::direct_path_found:
        return "direct_path_found";
    case event_kind::relay_allocated:
        return "relay_allocated";
    case event_kind::attempt_failed:
        return "attempt_failed";
    case event_kind::path_lost:
        return "path_lost";
    case event_kind::retry_timer_fired:
        return "retry_timer_fired";
    case event_kind::close_requested:
        return "close_requested";
    case event_kind::peer_closed:
        return "peer_closed";
    case event_kind::fatal_error:
        return "fatal_error";
    }
    return "unknown";
}

// One spelling per kind: reuse to_string rather than a second list of names.
constexpr std::optional<state_kind> state_kind_from_string(std::string_view name) noexcept {
    for (std::size_t i = 0; i < std::variant_size_v<connection_state>; ++i) {
        const auto k = static_cast<state_kind>(i);
        if (to_string(k) == name)
            return k;
    }
    return std::nullopt;
}

constexpr std::optional<event_kind> event_kind_from_string(std::string_view name) noexcept {
    for (std::size_t i = 0; i < std::variant_size_v<connection_event>; ++i) {
        const auto k = static_cast<event_kind>(i);
        if (to_string(k) == name)
            return k;
    }
    return std::nullopt;
}

constexpr bool is_terminal(state_kind k) noexcept {
    return k == state_kind::failed || k == state_kind::closed;
}

constexpr duration backoff_delay(unsigned attempt, duration initial, duration max) noexcept {
    using rep = duration::rep;
    const rep first = initial.count() < 0 ? 0 : initial.count();
    const rep cap = max.count() < 0 ? 0 : max.count();
    if (first == 0)
        return duration::zero();
    if (first >= cap)
        return duration(cap);
    // first * 2^attempt > cap  <=>  first > cap / 2^attempt (integer division), and a shift
    // of the width of rep or more already exceeds any cap since first > 0 here.
    if (attempt >= static_cast<unsigned>(std::numeric_limits<rep>::digits))
        return duration(cap);
    if (first > (cap >> attempt))
        return duration(cap);
    return duration(first << attempt);
}

inline connection_state transition(const connection_state& s, const connection_event& e,
                                   const transition_context& ctx) noexcept {
    return std::visit(detail::transition_visitor{ctx}, s, e);
}

} // namespace peerlink

#endif // PEERLINK_IMPL_STATE_HPP
