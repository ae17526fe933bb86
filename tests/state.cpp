#include <peerlink/state.hpp>

#include "catch.hpp"

#include <array>
#include <climits>
#include <iterator>
#include <string>
#include <utility>

using namespace std::chrono_literals;
using peerlink::connection_event;
using peerlink::connection_state;
using peerlink::event_kind;
using peerlink::kind_of;
using peerlink::state_kind;
using peerlink::to_string;
using peerlink::transition;
using peerlink::transition_context;
namespace st = peerlink::state;
namespace ev = peerlink::event;

namespace {

constexpr std::size_t state_count = 10;
constexpr std::size_t event_count = 11;

const peerlink::endpoint path_a{peerlink::ip_address::v4({198, 51, 100, 7}), 4000};
const peerlink::endpoint path_b{peerlink::ip_address::v4({198, 51, 100, 8}), 4001};
const peerlink::endpoint relay_a{peerlink::ip_address::v4({203, 0, 113, 9}), 3478};
const peerlink::endpoint relay_b{peerlink::ip_address::v4({203, 0, 113, 10}), 3479};

const peerlink::time_point t0 = peerlink::time_point{} + 10000s;

std::error_code ec(peerlink::error e) {
    return make_error_code(e);
}

// One state of each kind, with data that no transition would produce from these
// events at `now` below, so "unchanged" can be checked by equality.
connection_state sample_state(state_kind k) {
    using peerlink::error;
    switch (k) {
    case state_kind::idle:
        return st::idle{};
    case state_kind::signaling:
        return st::signaling{2, t0};
    case state_kind::gathering:
        return st::gathering{2, t0, true};
    case state_kind::punching:
        return st::punching{2, t0, true};
    case state_kind::connected:
        return st::connected{path_a, t0};
    case state_kind::relayed:
        return st::relayed{relay_a, t0};
    case state_kind::reconnecting:
        return st::reconnecting{1, 2, t0, ec(error::peer_timeout)};
    case state_kind::waiting:
        return st::waiting{2, 120s, t0 + 120s, ec(error::handshake_timeout),
                           state_kind::reconnecting};
    case state_kind::failed:
        return st::failed{ec(error::crypto_failure)};
    case state_kind::closed:
        return st::closed{ec(error::connection_closed)};
    }
    FAIL("bad state kind");
    return {};
}

connection_event sample_event(event_kind k) {
    using peerlink::error;
    switch (k) {
    case event_kind::connect_requested:
        return ev::connect_requested{true};
    case event_kind::signaling_done:
        return ev::signaling_done{};
    case event_kind::candidates_gathered:
        return ev::candidates_gathered{};
    case event_kind::direct_path_found:
        return ev::direct_path_found{path_b};
    case event_kind::relay_allocated:
        return ev::relay_allocated{relay_b};
    case event_kind::attempt_failed:
        return ev::attempt_failed{ec(error::handshake_timeout)};
    case event_kind::path_lost:
        return ev::path_lost{ec(error::peer_timeout)};
    case event_kind::retry_timer_fired:
        return ev::retry_timer_fired{};
    case event_kind::close_requested:
        return ev::close_requested{};
    case event_kind::peer_closed:
        return ev::peer_closed{};
    case event_kind::fatal_error:
        return ev::fatal_error{ec(error::invalid_config)};
    }
    FAIL("bad event kind");
    return {};
}

// ignored: the result equals the input. handled: the result has kind `to` and differs
// from the input (new data even where the kind stays the same).
enum effect { ignored, handled };

struct row {
    state_kind from;
    event_kind event;
    state_kind to;
    effect what;
};

using S = state_kind;
using E = event_kind;

// The whole table, written out by hand: every (state, event) pair exactly once.
constexpr row table[] = {
    {S::idle, E::connect_requested, S::signaling, handled},
    {S::idle, E::signaling_done, S::idle, ignored},
    {S::idle, E::candidates_gathered, S::idle, ignored},
    {S::idle, E::direct_path_found, S::idle, ignored},
    {S::idle, E::relay_allocated, S::idle, ignored},
    {S::idle, E::attempt_failed, S::idle, ignored},
    {S::idle, E::path_lost, S::idle, ignored},
    {S::idle, E::retry_timer_fired, S::idle, ignored},
    {S::idle, E::close_requested, S::closed, handled},
    {S::idle, E::peer_closed, S::idle, ignored},
    {S::idle, E::fatal_error, S::failed, handled},

    {S::signaling, E::connect_requested, S::signaling, ignored},
    {S::signaling, E::signaling_done, S::gathering, handled},
    {S::signaling, E::candidates_gathered, S::signaling, ignored},
    {S::signaling, E::direct_path_found, S::connected, handled},
    {S::signaling, E::relay_allocated, S::relayed, handled},
    {S::signaling, E::attempt_failed, S::waiting, handled},
    {S::signaling, E::path_lost, S::signaling, ignored},
    {S::signaling, E::retry_timer_fired, S::signaling, ignored},
    {S::signaling, E::close_requested, S::closed, handled},
    {S::signaling, E::peer_closed, S::closed, handled},
    {S::signaling, E::fatal_error, S::failed, handled},

    {S::gathering, E::connect_requested, S::gathering, ignored},
    {S::gathering, E::signaling_done, S::gathering, ignored},
    {S::gathering, E::candidates_gathered, S::punching, handled},
    {S::gathering, E::direct_path_found, S::connected, handled},
    {S::gathering, E::relay_allocated, S::relayed, handled},
    {S::gathering, E::attempt_failed, S::waiting, handled},
    {S::gathering, E::path_lost, S::gathering, ignored},
    {S::gathering, E::retry_timer_fired, S::gathering, ignored},
    {S::gathering, E::close_requested, S::closed, handled},
    {S::gathering, E::peer_closed, S::closed, handled},
    {S::gathering, E::fatal_error, S::failed, handled},

    {S::punching, E::connect_requested, S::punching, ignored},
    {S::punching, E::signaling_done, S::punching, ignored},
    {S::punching, E::candidates_gathered, S::punching, ignored},
    {S::punching, E::direct_path_found, S::connected, handled},
    {S::punching, E::relay_allocated, S::relayed, handled},
    {S::punching, E::attempt_failed, S::waiting, handled},
    {S::punching, E::path_lost, S::punching, ignored},
    {S::punching, E::retry_timer_fired, S::punching, ignored},
    {S::punching, E::close_requested, S::closed, handled},
    {S::punching, E::peer_closed, S::closed, handled},
    {S::punching, E::fatal_error, S::failed, handled},

    {S::connected, E::connect_requested, S::connected, ignored},
    {S::connected, E::signaling_done, S::connected, ignored},
    {S::connected, E::candidates_gathered, S::connected, ignored},
    {S::connected, E::direct_path_found, S::connected, handled},
    {S::connected, E::relay_allocated, S::connected, ignored},
    {S::connected, E::attempt_failed, S::connected, ignored},
    {S::connected, E::path_lost, S::reconnecting, handled},
    {S::connected, E::retry_timer_fired, S::connected, ignored},
    {S::connected, E::close_requested, S::closed, handled},
    {S::connected, E::peer_closed, S::closed, handled},
    {S::connected, E::fatal_error, S::failed, handled},

    {S::relayed, E::connect_requested, S::relayed, ignored},
    {S::relayed, E::signaling_done, S::relayed, ignored},
    {S::relayed, E::candidates_gathered, S::relayed, ignored},
    {S::relayed, E::direct_path_found, S::connected, handled},
    {S::relayed, E::relay_allocated, S::relayed, handled},
    {S::relayed, E::attempt_failed, S::relayed, ignored},
    {S::relayed, E::path_lost, S::reconnecting, handled},
    {S::relayed, E::retry_timer_fired, S::relayed, ignored},
    {S::relayed, E::close_requested, S::closed, handled},
    {S::relayed, E::peer_closed, S::closed, handled},
    {S::relayed, E::fatal_error, S::failed, handled},

    {S::reconnecting, E::connect_requested, S::reconnecting, ignored},
    {S::reconnecting, E::signaling_done, S::reconnecting, ignored},
    {S::reconnecting, E::candidates_gathered, S::reconnecting, ignored},
    {S::reconnecting, E::direct_path_found, S::connected, handled},
    {S::reconnecting, E::relay_allocated, S::relayed, handled},
    {S::reconnecting, E::attempt_failed, S::reconnecting, handled},
    {S::reconnecting, E::path_lost, S::reconnecting, ignored},
    {S::reconnecting, E::retry_timer_fired, S::reconnecting, ignored},
    {S::reconnecting, E::close_requested, S::closed, handled},
    {S::reconnecting, E::peer_closed, S::closed, handled},
    {S::reconnecting, E::fatal_error, S::failed, handled},

    {S::waiting, E::connect_requested, S::waiting, ignored},
    {S::waiting, E::signaling_done, S::waiting, ignored},
    {S::waiting, E::candidates_gathered, S::waiting, ignored},
    {S::waiting, E::direct_path_found, S::connected, handled},
    {S::waiting, E::relay_allocated, S::relayed, handled},
    {S::waiting, E::attempt_failed, S::waiting, ignored},
    {S::waiting, E::path_lost, S::waiting, ignored},
    {S::waiting, E::retry_timer_fired, S::reconnecting, handled},
    {S::waiting, E::close_requested, S::closed, handled},
    {S::waiting, E::peer_closed, S::closed, handled},
    {S::waiting, E::fatal_error, S::failed, handled},

    {S::failed, E::connect_requested, S::failed, ignored},
    {S::failed, E::signaling_done, S::failed, ignored},
    {S::failed, E::candidates_gathered, S::failed, ignored},
    {S::failed, E::direct_path_found, S::failed, ignored},
    {S::failed, E::relay_allocated, S::failed, ignored},
    {S::failed, E::attempt_failed, S::failed, ignored},
    {S::failed, E::path_lost, S::failed, ignored},
    {S::failed, E::retry_timer_fired, S::failed, ignored},
    {S::failed, E::close_requested, S::failed, ignored},
    {S::failed, E::peer_closed, S::failed, ignored},
    {S::failed, E::fatal_error, S::failed, ignored},

    {S::closed, E::connect_requested, S::closed, ignored},
    {S::closed, E::signaling_done, S::closed, ignored},
    {S::closed, E::candidates_gathered, S::closed, ignored},
    {S::closed, E::direct_path_found, S::closed, ignored},
    {S::closed, E::relay_allocated, S::closed, ignored},
    {S::closed, E::attempt_failed, S::closed, ignored},
    {S::closed, E::path_lost, S::closed, ignored},
    {S::closed, E::retry_timer_fired, S::closed, ignored},
    {S::closed, E::close_requested, S::closed, ignored},
    {S::closed, E::peer_closed, S::closed, ignored},
    {S::closed, E::fatal_error, S::closed, ignored},
};

// Drives `s` through `e` at time `now` with the default backoff settings.
connection_state step(const connection_state& s, const connection_event& e,
                      peerlink::time_point now, unsigned max_reconnect_attempts = 3) {
    transition_context ctx{.now = now, .max_reconnect_attempts = max_reconnect_attempts};
    return transition(s, e, ctx);
}

template <class T>
const T& as(const connection_state& s) {
    INFO("state is " << std::string(to_string(kind_of(s))));
    REQUIRE(std::holds_alternative<T>(s));
    return std::get<T>(s);
}

} // namespace

TEST_CASE("state table lists every state and event pair exactly once", "[state]") {
    STATIC_REQUIRE(std::variant_size_v<connection_state> == state_count);
    STATIC_REQUIRE(std::variant_size_v<connection_event> == event_count);
    STATIC_REQUIRE(std::size(table) == state_count * event_count);

    std::array<std::array<int, event_count>, state_count> seen{};
    for (const row& r : table)
        ++seen.at(static_cast<std::size_t>(r.from)).at(static_cast<std::size_t>(r.event));
    for (std::size_t s = 0; s < state_count; ++s)
        for (std::size_t e = 0; e < event_count; ++e) {
            INFO(std::string(to_string(static_cast<state_kind>(s)))
                 << " x " << std::string(to_string(static_cast<event_kind>(e))));
            CHECK(seen[s][e] == 1);
        }
}

TEST_CASE("state transition follows the table for every state and event", "[state]") {
    const transition_context ctx{.now = t0 + 5s};
    for (const row& r : table) {
        const connection_state from = sample_state(r.from);
        const connection_event event = sample_event(r.event);
        REQUIRE(kind_of(from) == r.from);
        REQUIRE(kind_of(event) == r.event);
        INFO(std::string(to_string(r.from)) << " x " << std::string(to_string(r.event)));

        const connection_state to = transition(from, event, ctx);
        CHECK(to_string(kind_of(to)) == to_string(r.to));
        if (r.what == ignored)
            CHECK(to == from);
        else
            CHECK(to != from);
    }
}

TEST_CASE("state first connect through signaling reaches connected", "[state]") {
    connection_state s = st::idle{};
    s = step(s, ev::connect_requested{true}, t0);
    CHECK(as<st::signaling>(s) == st::signaling{0, t0});

    s = step(s, ev::signaling_done{}, t0 + 1s);
    CHECK(as<st::gathering>(s) == st::gathering{0, t0 + 1s, true});

    s = step(s, ev::candidates_gathered{}, t0 + 2s);
    CHECK(as<st::punching>(s) == st::punching{0, t0 + 2s, true});

    s = step(s, ev::direct_path_found{path_a}, t0 + 3s);
    CHECK(as<st::connected>(s).path == path_a);
    CHECK(as<st::connected>(s).since == t0 + 3s);

    // The peer's NAT rebinds: same connection, new path, same `since`.
    s = step(s, ev::direct_path_found{path_b}, t0 + 60s);
    CHECK(as<st::connected>(s).path == path_b);
    CHECK(as<st::connected>(s).since == t0 + 3s);

    // A connected connection has no use for a relay, nor for a failed probe.
    CHECK(step(s, ev::relay_allocated{relay_a}, t0 + 61s) == s);
    CHECK(step(s, ev::attempt_failed{ec(peerlink::error::handshake_timeout)}, t0 + 61s) == s);
}

TEST_CASE("state direct-only connect skips signaling, also on retry", "[state]") {
    connection_state s = step(st::idle{}, ev::connect_requested{false}, t0);
    CHECK(as<st::gathering>(s) == st::gathering{0, t0, false});

    s = step(s, ev::candidates_gathered{}, t0 + 1s);
    CHECK(as<st::punching>(s) == st::punching{0, t0 + 1s, false});

    s = step(s, ev::attempt_failed{ec(peerlink::error::handshake_timeout)}, t0 + 5s);
    const auto& w = as<st::waiting>(s);
    CHECK(w.resume == state_kind::gathering);
    CHECK(w.attempt == 0);
    CHECK(w.delay == 30s);
    CHECK(w.until == t0 + 35s);
    CHECK(w.reason == peerlink::error::handshake_timeout);

    s = step(s, ev::retry_timer_fired{}, t0 + 35s);
    CHECK(as<st::gathering>(s) == st::gathering{1, t0 + 35s, false});
}

TEST_CASE("state relay fallback, relay change and upgrade to direct", "[state]") {
    connection_state s = st::punching{0, t0, true};
    s = step(s, ev::relay_allocated{relay_a}, t0 + 4s);
    CHECK(as<st::relayed>(s) == st::relayed{relay_a, t0 + 4s});

    // Failed tries to go direct keep the relay.
    CHECK(step(s, ev::attempt_failed{ec(peerlink::error::handshake_timeout)}, t0 + 30s) == s);

    s = step(s, ev::relay_allocated{relay_b}, t0 + 40s);
    CHECK(as<st::relayed>(s) == st::relayed{relay_b, t0 + 4s});

    s = step(s, ev::direct_path_found{path_a}, t0 + 90s);
    CHECK(as<st::connected>(s) == st::connected{path_a, t0 + 90s});
}

TEST_CASE("state first connect failures back off 30 s doubling up to 1 h", "[state]") {
    using std::chrono::seconds;
    // Written out, not computed: the delays of waits 0..11 with the defaults.
    const seconds expected[] = {30s,   60s,   120s,  240s,  480s,  960s,
                                1920s, 3600s, 3600s, 3600s, 3600s, 3600s};
    const auto reason = ec(peerlink::error::handshake_timeout);

    connection_state s = st::signaling{0, t0};
    peerlink::time_point now = t0 + 10s;
    unsigned wait = 0;
    for (seconds delay : expected) {
        INFO("wait " << wait);
        s = step(s, ev::attempt_failed{reason}, now);
        const auto& w = as<st::waiting>(s);
        CHECK(w.attempt == wait);
        CHECK(w.delay == delay);
        CHECK(w.until == now + delay);
        CHECK(w.reason == reason);
        CHECK(w.resume == state_kind::signaling);

        now = w.until;
        s = step(s, ev::retry_timer_fired{}, now);
        ++wait;
        CHECK(as<st::signaling>(s) == st::signaling{wait, now});
        // Walk the other first-connect states on the way, they keep the count.
        s = step(s, ev::signaling_done{}, now + 1s);
        CHECK(as<st::gathering>(s).retries == wait);
        s = step(s, ev::candidates_gathered{}, now + 2s);
        CHECK(as<st::punching>(s).retries == wait);
        now += 10s;
    }
}

TEST_CASE("state lost path reconnects, waits, and reconnects again", "[state]") {
    using peerlink::error;
    connection_state s = st::connected{path_a, t0};
    s = step(s, ev::path_lost{ec(error::peer_timeout)}, t0 + 100s);
    CHECK(as<st::reconnecting>(s) == st::reconnecting{0, 0, t0 + 100s, ec(error::peer_timeout)});

    s = step(s, ev::attempt_failed{ec(error::handshake_timeout)}, t0 + 110s);
    CHECK(as<st::reconnecting>(s) ==
          st::reconnecting{1, 0, t0 + 110s, ec(error::handshake_timeout)});
    s = step(s, ev::attempt_failed{ec(error::unexpected_peer)}, t0 + 120s);
    CHECK(as<st::reconnecting>(s) == st::reconnecting{2, 0, t0 + 120s, ec(error::unexpected_peer)});

    // Third failed try of three: wait 30 s.
    s = step(s, ev::attempt_failed{ec(error::handshake_timeout)}, t0 + 130s);
    CHECK(as<st::waiting>(s) ==
          st::waiting{0, 30s, t0 + 160s, ec(error::handshake_timeout), state_kind::reconnecting});

    s = step(s, ev::retry_timer_fired{}, t0 + 160s);
    CHECK(as<st::reconnecting>(s) ==
          st::reconnecting{0, 1, t0 + 160s, ec(error::handshake_timeout)});
    for (int i = 0; i < 3; ++i)
        s = step(s, ev::attempt_failed{ec(error::peer_timeout)}, t0 + 170s);
    CHECK(as<st::waiting>(s) ==
          st::waiting{1, 60s, t0 + 230s, ec(error::peer_timeout), state_kind::reconnecting});

    s = step(s, ev::retry_timer_fired{}, t0 + 230s);
    CHECK(as<st::reconnecting>(s).retries == 2);
    s = step(s, ev::relay_allocated{relay_a}, t0 + 231s);
    CHECK(as<st::relayed>(s) == st::relayed{relay_a, t0 + 231s});

    // A new outage starts its counters afresh.
    s = step(s, ev::path_lost{ec(error::peer_timeout)}, t0 + 500s);
    CHECK(as<st::reconnecting>(s) == st::reconnecting{0, 0, t0 + 500s, ec(error::peer_timeout)});
}

TEST_CASE("state max_reconnect_attempts counts the tries before a wait", "[state]") {
    const auto reason = ec(peerlink::error::peer_timeout);
    const connection_state start = st::reconnecting{0, 0, t0, reason};
    for (unsigned max : {0u, 1u}) {
        INFO("max " << max);
        CHECK(kind_of(step(start, ev::attempt_failed{reason}, t0, max)) == state_kind::waiting);
    }
    connection_state s = step(start, ev::attempt_failed{reason}, t0, 2);
    CHECK(as<st::reconnecting>(s).attempt == 1);
    s = step(s, ev::attempt_failed{reason}, t0, 2);
    CHECK(kind_of(s) == state_kind::waiting);
}

TEST_CASE("state counters and times saturate instead of wrapping", "[state]") {
    const auto reason = ec(peerlink::error::peer_timeout);
    connection_state s = st::reconnecting{UINT_MAX, UINT_MAX, t0, reason};
    s = step(s, ev::attempt_failed{reason}, t0, UINT_MAX);
    CHECK(as<st::waiting>(s).attempt == UINT_MAX);
    CHECK(as<st::waiting>(s).delay == 3600s);

    s = step(s, ev::retry_timer_fired{}, t0);
    CHECK(as<st::reconnecting>(s).retries == UINT_MAX);

    // `until` pins at the end of time rather than wrapping into the past.
    const auto late = peerlink::time_point::max() - 10s;
    transition_context ctx{.now = late, .backoff_max = peerlink::duration::max()};
    s = transition(st::punching{0, late, true}, ev::attempt_failed{reason}, ctx);
    CHECK(as<st::waiting>(s).delay == 30s);
    CHECK(as<st::waiting>(s).until == peerlink::time_point::max());

    ctx.backoff_initial = peerlink::duration::max();
    ctx.now = t0;
    s = transition(st::punching{0, t0, true}, ev::attempt_failed{reason}, ctx);
    CHECK(as<st::waiting>(s).delay == peerlink::duration::max());
    CHECK(as<st::waiting>(s).until == peerlink::time_point::max());
}

TEST_CASE("state close, peer close and fatal error carry their reasons", "[state]") {
    using peerlink::error;
    connection_state s = step(st::idle{}, ev::close_requested{}, t0);
    CHECK(!as<st::closed>(s).reason);

    s = step(st::waiting{}, ev::close_requested{}, t0);
    CHECK(!as<st::closed>(s).reason);

    s = step(st::punching{}, ev::peer_closed{}, t0);
    CHECK(as<st::closed>(s).reason == error::connection_closed);

    s = step(st::relayed{relay_a, t0}, ev::fatal_error{ec(error::invalid_config)}, t0);
    CHECK(as<st::failed>(s).reason == error::invalid_config);
    CHECK(as<st::failed>(s).reason == peerlink::condition::configuration_error);

    // Terminal: a closed connection cannot be reopened or failed afterwards.
    const connection_state closed = st::closed{};
    CHECK(step(closed, ev::connect_requested{true}, t0) == closed);
    CHECK(step(closed, ev::fatal_error{ec(error::crypto_failure)}, t0) == closed);
    const connection_state failed = st::failed{ec(error::crypto_failure)};
    CHECK(step(failed, ev::close_requested{}, t0) == failed);
}

TEST_CASE("state backoff_delay doubles, caps and never overflows", "[state]") {
    using peerlink::backoff_delay;
    using peerlink::duration;
    STATIC_REQUIRE(backoff_delay(0, 30s, 1h) == 30s);
    STATIC_REQUIRE(backoff_delay(1, 30s, 1h) == 60s);
    STATIC_REQUIRE(backoff_delay(2, 30s, 1h) == 120s);
    CHECK(backoff_delay(3, 30s, 1h) == 240s);
    CHECK(backoff_delay(6, 30s, 1h) == 1920s);
    CHECK(backoff_delay(7, 30s, 1h) == 3600s); // 3840 s capped
    CHECK(backoff_delay(8, 30s, 1h) == 3600s);
    for (unsigned attempt : {40u, 62u, 63u, 64u, 65u, 1000u, UINT_MAX}) {
        INFO("attempt " << attempt);
        CHECK(backoff_delay(attempt, 30s, 1h) == 3600s);
        CHECK(backoff_delay(attempt, 1ns, duration::max()) ==
              (attempt < 63 ? duration(std::int64_t{1} << attempt) : duration::max()));
    }
    CHECK(backoff_delay(62, 1ns, duration::max()) == duration(std::int64_t{1} << 62));
    CHECK(backoff_delay(0, 2h, 1h) == 1h);    // initial above the cap
    CHECK(backoff_delay(1, 45min, 1h) == 1h); // not a power of two of the cap
    CHECK(backoff_delay(UINT_MAX, 0s, 1h) == 0s);
    CHECK(backoff_delay(3, -5s, 1h) == 0s);
    CHECK(backoff_delay(3, 30s, -1h) == 0s);
}

TEST_CASE("state kinds mirror the variant indices and have names", "[state]") {
    using peerlink::event_kind_from_string;
    using peerlink::state_kind_from_string;
    using peerlink::to_string;
    using std::variant_alternative_t;
    // Each index written out next to its struct.
    STATIC_REQUIRE(std::is_same_v<variant_alternative_t<0, connection_state>, st::idle>);
    STATIC_REQUIRE(std::is_same_v<variant_alternative_t<1, connection_state>, st::signaling>);
    STATIC_REQUIRE(std::is_same_v<variant_alternative_t<2, connection_state>, st::gathering>);
    STATIC_REQUIRE(std::is_same_v<variant_alternative_t<3, connection_state>, st::punching>);
    STATIC_REQUIRE(std::is_same_v<variant_alternative_t<4, connection_state>, st::connected>);
    STATIC_REQUIRE(std::is_same_v<variant_alternative_t<5, connection_state>, st::relayed>);
    STATIC_REQUIRE(std::is_same_v<variant_alternative_t<6, connection_state>, st::reconnecting>);
    STATIC_REQUIRE(std::is_same_v<variant_alternative_t<7, connection_state>, st::waiting>);
    STATIC_REQUIRE(std::is_same_v<variant_alternative_t<8, connection_state>, st::failed>);
    STATIC_REQUIRE(std::is_same_v<variant_alternative_t<9, connection_state>, st::closed>);
    STATIC_REQUIRE(static_cast<int>(state_kind::idle) == 0);
    STATIC_REQUIRE(static_cast<int>(state_kind::punching) == 3);
    STATIC_REQUIRE(static_cast<int>(state_kind::waiting) == 7);
    STATIC_REQUIRE(static_cast<int>(state_kind::closed) == 9);
    STATIC_REQUIRE(static_cast<int>(event_kind::connect_requested) == 0);
    STATIC_REQUIRE(static_cast<int>(event_kind::path_lost) == 6);
    STATIC_REQUIRE(static_cast<int>(event_kind::fatal_error) == 10);
    STATIC_REQUIRE(std::is_same_v<variant_alternative_t<6, connection_event>, ev::path_lost>);
    // kind_of is constexpr, but a connection_state holds std::error_code (no constexpr
    // constructor), so only GCC takes one in a constant expression; the per-alternative
    // `kind` is checked at compile time and kind_of at run time below.
    STATIC_REQUIRE(st::punching::kind == state_kind::punching);
    STATIC_REQUIRE(st::closed::kind == state_kind::closed);
    STATIC_REQUIRE(ev::retry_timer_fired::kind == event_kind::retry_timer_fired);
    STATIC_REQUIRE(to_string(state_kind::reconnecting) == "reconnecting");
    STATIC_REQUIRE(to_string(event_kind::direct_path_found) == "direct_path_found");
    STATIC_REQUIRE(state_kind_from_string("waiting") == state_kind::waiting);
    STATIC_REQUIRE(!state_kind_from_string("Waiting"));
    STATIC_REQUIRE(peerlink::is_terminal(state_kind::failed));
    STATIC_REQUIRE(!peerlink::is_terminal(state_kind::waiting));
    STATIC_REQUIRE(noexcept(transition(std::declval<const connection_state&>(),
                                       std::declval<const connection_event&>(),
                                       std::declval<const transition_context&>())));

    const std::string_view state_names[] = {"idle",      "signaling", "gathering",    "punching",
                                            "connected", "relayed",   "reconnecting", "waiting",
                                            "failed",    "closed"};
    STATIC_REQUIRE(std::size(state_names) == state_count);
    for (std::size_t i = 0; i < state_count; ++i) {
        const auto k = static_cast<state_kind>(i);
        CHECK(to_string(k) == state_names[i]);
        CHECK(state_kind_from_string(state_names[i]) == k);
        CHECK(kind_of(sample_state(k)) == k);
    }
    const std::string_view event_names[] = {
        "connect_requested", "signaling_done", "candidates_gathered", "direct_path_found",
        "relay_allocated",   "attempt_failed", "path_lost",           "retry_timer_fired",
        "close_requested",   "peer_closed",    "fatal_error"};
    STATIC_REQUIRE(std::size(event_names) == event_count);
    for (std::size_t i = 0; i < event_count; ++i) {
        const auto k = static_cast<event_kind>(i);
        CHECK(to_string(k) == event_names[i]);
        CHECK(event_kind_from_string(event_names[i]) == k);
        CHECK(kind_of(sample_event(k)) == k);
    }
    CHECK(to_string(static_cast<state_kind>(200)) == "unknown");
    CHECK(to_string(static_cast<event_kind>(200)) == "unknown");
    for (std::string_view bad : {"", "unknown", "idle ", "Connected", "peer_closed"})
        CHECK_FALSE(state_kind_from_string(bad));
    CHECK_FALSE(event_kind_from_string("idle"));
}
