// peerlink/proto/punch.hpp: the sans-I/O connectivity core: coordinated simultaneous
// hole punching with authenticated ICE-style checks (RFC 8445 §6-7), nomination, and
// two strategies for symmetric NATs.
//
// Both peers exchange, over signaling: their ufrag and password, their candidates
// (trickled, see peerlink/proto/candidates.hpp), what their NAT's mapping does
// (`nat_info`, from two STUN servers) and an agreed start time. Each then runs a
// `punch_core`:
//
// @code
// ice::punch_core core(cfg);                       // cfg: role, credentials, timers
// core.set_remote_credentials(ufrag, pwd);
// core.set_remote_nat(remote_nat);
// for (auto& c : local) core.add_local_candidate(c);
// for (auto& c : remote) core.add_remote_candidate(c, now);   // any time, also later
// core.start(agreed_start, now);                   // nothing is sent before agreed_start
// loop:
//   while (auto t = core.poll_transmit()) sockets[t->socket].send_to(t->data, t->to);
//   while (auto e = core.poll_event()) ...         // sockets_requested / connected / failed
//   timer.expires_at(*core.poll_timeout());
//   core.handle_datagram(bytes, from, socket, now) // every datagram (false: not ours)
//   core.handle_timeout(now)                       // when the timer fires
// @endcode
//
// **Checks.** A check is a STUN Binding request from one local socket to one remote
// candidate, carrying USERNAME "remote-ufrag:local-ufrag", PRIORITY, ICE-CONTROLLING or
// ICE-CONTROLLED with the tie-breaker, USE-CANDIDATE when nominating, then
// MESSAGE-INTEGRITY (HMAC-SHA1 keyed with the remote password) and FINGERPRINT. A
// request whose USERNAME, MESSAGE-INTEGRITY or FINGERPRINT is missing or wrong is
// dropped without an answer and counted (`punch_stats::auth_failures`), as are
// responses not signed with the peer's password: a stranger who sees the candidates
// cannot make us select a path through it. Responses must come from the address the
// check went to (RFC 8445 §7.2.5.2.1).
//
// **Pairs** are (local socket, remote address), ordered by the RFC 8445 §6.1.2.3 pair
// priority; a socket's local priority is its best candidate's of that family. A
// check from an unknown address of the peer adds a peer-reflexive remote candidate
// and a pair, and triggers a check on it at once.
//
// **Timing.** Nothing is sent before the start time. Each pair sends a burst of
// `burst_size` checks `burst_interval` apart (3 x 50 ms), then backs off: 200, 400,
// 800, 1600, 1600 ... ms, until the punch succeeds or `punch_timeout` after the start
// has passed; then `failed{punch_error::timeout}` (condition `nat_traversal_failed`:
// the connection falls back to TURN). A pair added later (trickle) starts at once.
//
// **Nomination** (controlling side): `nomination_delay` after the first pair
// succeeded (at once if it is the top pair), the best succeeded pair is nominated:
// the highest pair priority, unless another pair's RTT is shorter by more than
// `rtt_margin` and less than half of it. Its checks then carry USE-CANDIDATE; the
// response selects it (`connected`). The controlled side selects a pair when an
// authenticated check with USE-CANDIDATE arrives on it. Role conflicts (both sides
// controlling or both controlled) are resolved by the tie-breaker (RFC 8445
// §7.3.1.1): 487 Role Conflict, and the side with the smaller tie-breaker switches
// (`role_changed`).
//
// **Symmetric NATs.** From `nat_info` (the mapped ports two STUN servers saw for one
// socket): endpoint-dependent mapping = "symmetric".
//
// - Port prediction (remote side symmetric): the remote's next mappings are guessed
//   from its last two, `last + k * delta` for k = 1..`prediction_ports` (8), and
//   checked from the main socket. It finds NATs that allocate sequentially; against a
//   NAT that allocates at random (like the lab's) it costs 8 checks and finds nothing.
// - Birthday (one side symmetric, the other endpoint-independent): the symmetric side
//   asks its driver for `birthday_sockets` (256) extra sockets (`sockets_requested`)
//   and checks the peer's server-reflexive address from each, opening 256 mappings on
//   its NAT, each accepting only the peer's address. The other side sends
//   `birthday_probes` (2048) checks to distinct random ports of the symmetric side's
//   public address, `spray_batch` (16) every `spray_interval` (8 ms): about 1 s,
//   starting `spray_delay` (100 ms) after the start, and stopping as soon as any pair
//   works (when our NAT filters less than port-restricted, plain checks get through
//   first and the spray never starts). One hit opens the path (the hit
//   socket answers and then checks through the hole the probe made). With n mappings
//   among N = 64512 ports and k distinct probes, P(failure) = C(N-n, k) / C(N, k)
//   ~ (1 - n/N)^k: n = 257, k = 2048 gives 3e-4 (99.97% success); k = 1024 gives 1.7%.
//   Cost: 256 sockets x (3 + backoff) checks on one side, 2048 probes on the other.
// - Both sides symmetric with random allocation: a path needs a flow A->B and a flow
//   B->A whose random ports match on both ends, probability ~ a*b/N^2 for a and b
//   probes: ~65000 probes per side for 63%. Not attempted beyond port prediction (the
//   connection falls back to TURN); see the lab's results.
//
// Sans-I/O: no socket, no clock, no Asio, never throws after construction. Buffers are
// allocated when the core is built, pairs when candidates are added; nothing per
// packet.
#ifndef PEERLINK_PROTO_PUNCH_HPP
#define PEERLINK_PROTO_PUNCH_HPP

#include <peerlink/endpoint.hpp>
#include <peerlink/error.hpp>
#include <peerlink/proto/candidates.hpp>
#include <peerlink/proto/stun.hpp>
#include <peerlink/time.hpp>

#include <nlohmann/json.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <variant>
#include <vector>

namespace peerlink {

/// Errors of the connectivity core.
enum class punch_error {
    timeout = 1,           ///< No pair was selected within the punch timeout (-> TURN).
    bad_credentials,       ///< A ufrag or password that is empty or too long (ufrag <= 64,
                           ///< password 22..128 characters, RFC 8445 §5.3).
    no_remote_credentials, ///< `start` before `set_remote_credentials`.
    too_many_pairs,        ///< A candidate would exceed `punch_config::max_pairs`.
    family_mismatch,       ///< A candidate whose family no local socket has (kept; no pair).
};

/// The category of `punch_error`.
const std::error_category& punch_error_category() noexcept;

inline std::error_code make_error_code(punch_error e) noexcept {
    return {static_cast<int>(e), punch_error_category()};
}

namespace ice {

/// What a NAT's mapping does, as seen from two STUN servers (RFC 4787 §4.1).
enum class mapping_behaviour : std::uint8_t {
    unknown,              ///< Not measured (one server, or none answered).
    endpoint_independent, ///< Both servers saw the same address and port (cones, no NAT).
    endpoint_dependent,   ///< They saw different ports: a symmetric NAT.
};

/// Our NAT as measured, sent to the peer over signaling.
struct nat_info {
    mapping_behaviour mapping = mapping_behaviour::unknown;
    /// The mapped ports of one socket towards the STUN servers, in the order asked;
    /// two or more allow port prediction.
    std::vector<std::uint16_t> mapped_ports;
};
/// JSON: {"mapping":"independent"|"dependent"|"unknown","ports":[40000,40001]}.
nlohmann::json to_json(const nat_info& n);
/// @returns the info, or nothing (`error::malformed_packet`).
std::optional<nat_info> nat_info_from_json(const nlohmann::json& j, std::error_code& ec);

/// Role, credentials, timers and limits of a `punch_core`.
struct punch_config {
    /// The initial role (RFC 8445 §6.1.1); conflicts are resolved at run time.
    bool controlling = true;
    /// The tie-breaker; 0: a random one.
    std::uint64_t tie_breaker = 0;
    /// Our short-term credentials, sent to the peer over signaling. Empty: random
    /// ones (8 and 24 characters), readable with `local_ufrag()` / `local_password()`.
    std::string local_ufrag, local_password;

    /// Checks per pair in the first burst, and their spacing.
    unsigned burst_size = 3;
    duration burst_interval = std::chrono::milliseconds(50);
    /// After the burst: the first backoff interval, doubled up to `backoff_max`.
    duration backoff_initial = std::chrono::milliseconds(200);
    duration backoff_max = std::chrono::milliseconds(1600);
    /// From the start time to `failed{punch_error::timeout}`.
    duration punch_timeout = std::chrono::seconds(5);
    /// Wait after the first success before nominating (better pairs may follow).
    duration nomination_delay = std::chrono::milliseconds(60);
    /// A pair must be faster by this much (and by half) to win over priority.
    duration rtt_margin = std::chrono::milliseconds(20);
    /// Pairs in all (each a few dozen bytes).
    std::size_t max_pairs = 2048;

    /// Our NAT (from two STUN servers); drives the symmetric strategies.
    nat_info local_nat;
    /// Port prediction: ports guessed past the peer's last mapping.
    unsigned prediction_ports = 8;
    /// Birthday strategy: extra sockets asked for when we are the symmetric side (0: off).
    unsigned birthday_sockets = 256;
    /// Birthday strategy: probes to random ports when the peer is the symmetric side (0: off).
    unsigned birthday_probes = 2048;
    unsigned spray_batch = 16;
    duration spray_interval = std::chrono::milliseconds(8);
    duration spray_delay = std::chrono::milliseconds(100);

    /// Fills a span with random bytes (transaction ids, tie-breaker, ports, credentials).
    /// Empty: OpenSSL's RAND_bytes.
    std::function<void(std::span<std::byte>)> random;
};

/// A datagram for the driver to send from socket `socket`.
struct punch_transmit {
    std::span<const std::byte> data; ///< Valid until the next call on the core.
    endpoint to;
    socket_id socket = 0;
};

/// A candidate pair as reported.
struct pair_info {
    socket_id socket = 0;
    endpoint remote;
    std::uint64_t priority = 0;
    candidate_type local_type = candidate_type::host;
    candidate_type remote_type = candidate_type::host;
    std::optional<endpoint> mapped; ///< Our address as the peer saw it (XOR-MAPPED-ADDRESS).
    std::optional<duration> rtt;    ///< Smoothed, once a check was answered.
};

/// The driver must open `count` more UDP sockets of `family` (ephemeral ports, same
/// bind address) and call `add_socket` for each. Opening fewer is allowed.
struct sockets_requested {
    unsigned count = 0;
    ip_address::family family = ip_address::family::v4;
};
/// A pair was selected: send from `pair.socket` to `pair.remote`. Checks stop; the
/// core keeps answering the peer's checks.
struct connected {
    pair_info pair;
};
/// No pair could be selected. `ec` is `punch_error::timeout`.
struct failed {
    std::error_code ec;
};
/// The role changed after a conflict.
struct role_changed {
    bool controlling = false;
};
using punch_event = std::variant<sockets_requested, connected, failed, role_changed>;

/// Counters; they only grow.
struct punch_stats {
    std::uint64_t checks_sent = 0;        ///< Binding requests (pairs and spray).
    std::uint64_t spray_sent = 0;         ///< Of those, birthday probes.
    std::uint64_t predicted_pairs = 0;    ///< Pairs from port prediction.
    std::uint64_t requests_received = 0;  ///< Authenticated checks from the peer.
    std::uint64_t responses_sent = 0;     ///< Answers (success and 487).
    std::uint64_t responses_received = 0; ///< Authenticated answers to our checks.
    std::uint64_t auth_failures = 0;      ///< Checks/answers with bad USERNAME/MI/FINGERPRINT.
    std::uint64_t malformed = 0;          ///< STUN-looking datagrams that did not decode.
    std::uint64_t role_conflicts = 0;     ///< 487s sent or received.
    std::uint64_t peer_reflexive = 0;     ///< Remote candidates learned from checks.
    std::uint64_t dropped_responses = 0;  ///< Answers dropped: response queue full.
};

/// The state of a `punch_core`.
enum class punch_state { idle, waiting, checking, connected, failed };

/// The connectivity core. Not thread-safe; never throws after construction.
class punch_core {
public:
    /// @throws std::bad_alloc only.
    explicit punch_core(punch_config cfg);

    const std::string& local_ufrag() const noexcept { return cfg_.local_ufrag; }
    const std::string& local_password() const noexcept { return cfg_.local_password; }
    bool controlling() const noexcept { return cfg_.controlling; }
    std::uint64_t tie_breaker() const noexcept { return cfg_.tie_breaker; }
    punch_state state() const noexcept { return state_; }
    const punch_stats& stats() const noexcept { return stats_; }

    /// The peer's ufrag and password from signaling.
    /// @returns {} or `punch_error::bad_credentials`.
    std::error_code set_remote_credentials(std::string_view ufrag, std::string_view password);
    /// The peer's NAT from signaling (before `start` for the strategies to use it).
    void set_remote_nat(const nat_info& n);

    /// A local candidate (host, server-reflexive, relayed) on socket `c.socket`.
    /// The first candidate of a socket makes the socket known.
    /// @returns {} or `punch_error::too_many_pairs`.
    std::error_code add_local_candidate(const candidate& c, time_point now);
    /// A remote candidate from signaling; at any time (trickle). Pairs with every
    /// local socket of its family; checked at once when already started.
    /// @returns {}, `punch_error::too_many_pairs` or `family_mismatch`.
    std::error_code add_remote_candidate(const candidate& c, time_point now);
    /// A socket the driver opened after `sockets_requested` (no candidate of its own).
    void add_socket(socket_id id, ip_address::family f, time_point now);

    /// Starts at `at` (the agreed time; `at <= now`: at once). Asks for sockets
    /// (`sockets_requested`) now if the birthday strategy needs them.
    /// @returns {} or `punch_error::no_remote_credentials`.
    std::error_code start(time_point at, time_point now);

    /// Feeds a datagram received on `socket` from `from`.
    /// @returns true if it was a STUN message for this core (used or dropped); false
    /// for anything else (application data, another STUN client's responses).
    bool handle_datagram(std::span<const std::byte> bytes, const endpoint& from, socket_id socket,
                         time_point now) noexcept;
    /// Does what is due. Call when `poll_timeout()` has passed.
    void handle_timeout(time_point now) noexcept;
    /// The next datagram; call after every other call until it returns nothing.
    std::optional<punch_transmit> poll_transmit() noexcept;
    /// When `handle_timeout` must be called; nothing when nothing is pending.
    /// Call after every other call.
    std::optional<time_point> poll_timeout() const noexcept;
    /// The next event; call after every other call.
    std::optional<punch_event> poll_event() noexcept;

    /// The selected pair once connected.
    const std::optional<pair_info>& selected() const noexcept { return selected_; }
    /// Every pair, highest priority first (for logs and tests).
    std::vector<pair_info> pairs() const;

private:
    enum class pair_state : std::uint8_t { waiting, succeeded };
    struct local_socket {
        socket_id id = 0;
        ip_address::family family = ip_address::family::v4;
        std::uint32_t priority = 0;
        candidate_type type = candidate_type::host;
    };
    struct check_pair {
        std::size_t sock = 0; // index in sockets_
        endpoint remote;
        std::uint32_t remote_priority = 0;
        candidate_type remote_type = candidate_type::host;
        pair_state state = pair_state::waiting;
        bool due = false;
        bool nominating = false;
        std::uint32_t nominate_from_us = 0; // checks sent at or after this carry USE-CANDIDATE
        unsigned sent = 0;
        time_point next_send{};
        std::optional<duration> rtt;
        std::optional<endpoint> mapped;
    };
    struct response_slot {
        std::array<std::byte, 160> buf{};
        std::size_t size = 0;
        endpoint to;
        socket_id socket = 0;
    };

    std::uint64_t priority_of(const check_pair& p) const noexcept;
    pair_info info_of(const check_pair& p) const;
    std::size_t find_socket(socket_id id) const noexcept;
    std::size_t find_pair(std::size_t sock, const endpoint& remote) const noexcept;
    std::error_code add_pair(std::size_t sock, const endpoint& remote, std::uint32_t prio,
                             candidate_type type, time_point now, std::size_t& index);
    void pair_remote_with_socket(std::size_t sock, time_point now);
    duration interval_after(unsigned sent) const noexcept;
    std::uint32_t us_since_start(time_point t) const noexcept;
    void fill_random(std::span<std::byte> out) noexcept;
    std::uint64_t next_random() noexcept;
    void handle_request(const stun::message_view& m, const endpoint& from, std::size_t sock,
                        time_point now) noexcept;
    void handle_response(const stun::message_view& m, const endpoint& from, std::size_t sock,
                         time_point now) noexcept;
    void queue_response(const stun::message_view& req, const endpoint& to, socket_id socket,
                        unsigned error_code) noexcept;
    std::size_t encode_check(std::span<std::byte> out, const check_pair& p, std::size_t index,
                             bool use_candidate, const endpoint& to, socket_id socket) noexcept;
    void select(std::size_t index, time_point now);
    void maybe_nominate(time_point now) noexcept;
    void switch_role() noexcept;
    void start_strategies(time_point now);

    punch_config cfg_;
    punch_state state_ = punch_state::idle;
    std::string remote_ufrag_, remote_password_;
    std::string username_out_; // "remote:local", in our checks
    std::string username_in_;  // "local:remote", expected in the peer's checks
    nat_info remote_nat_;
    std::vector<local_socket> sockets_;
    std::vector<candidate> remote_candidates_;
    std::vector<check_pair> pairs_;
    std::vector<response_slot> responses_;
    std::size_t resp_head_ = 0, resp_count_ = 0;
    std::vector<std::byte> scratch_;
    std::vector<punch_event> events_;
    std::size_t event_head_ = 0;
    std::size_t cursor_ = 0;
    bool any_due_ = false;
    time_point start_{}, now_{};
    std::optional<time_point> nominate_at_;
    std::optional<std::size_t> nominated_;
    std::optional<pair_info> selected_;
    std::array<std::byte, 4> tag_{};
    std::uint64_t rng_ = 0;
    // Birthday spray (we are the cone side).
    std::vector<std::uint64_t> spray_used_; // bitmap of ports already probed
    std::vector<ip_address> spray_targets_;
    unsigned spray_left_ = 0, spray_batch_left_ = 0;
    std::size_t spray_sock_ = 0;
    time_point spray_next_{};
    bool sockets_asked_ = false;
    punch_stats stats_;
};

} // namespace ice
} // namespace peerlink

template <>
struct std::is_error_code_enum<peerlink::punch_error> : std::true_type {};

#include <peerlink/proto/impl/punch.hpp>

#endif // PEERLINK_PROTO_PUNCH_HPP
