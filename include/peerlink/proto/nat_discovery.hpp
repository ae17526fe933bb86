// peerlink/proto/nat_discovery.hpp: NAT behaviour discovery (RFC 5780), sans-I/O.
//
// `nat_discovery_core` runs the tests of RFC 5780 §4 from one local socket against a
// STUN server that supports RFC 5780 (it answers with OTHER-ADDRESS and honours
// CHANGE-REQUEST; peerlink's own `stun::server_core` with an alternate address does,
// so does coturn listening on two addresses), and classifies the NAT in front of the
// socket in RFC 4787's terms:
//
// - Test I: a Binding request to the server's primary address and port (PA:PP). No
//   answer at all: UDP is blocked. The answer gives the mapped address M1 and the
//   server's alternate address and port (AA:AP, OTHER-ADDRESS; without it the server
//   cannot do the rest). M1 equal to the socket's own address: there is no NAT, and
//   mapping is endpoint-independent by definition.
// - Filtering (§4.4), run first because the mapping tests open the NAT to the
//   alternate address: test II asks the server to answer from AA:AP
//   (CHANGE-REQUEST change-IP and change-port), test III from PA:AP (change-port).
//   An answer to II: endpoint-independent filtering; else an answer to III:
//   address-dependent; else address-and-port-dependent. Answers must come from the
//   address asked for, or they prove nothing.
// - Mapping (§4.3): test II sends to AA:PP, test III to AA:AP. M2 == M1:
//   endpoint-independent mapping; else M3 == M2: address-dependent; else
//   address-and-port-dependent.
//
// A negative filtering result costs a full transaction timeout, so the default
// timers are shorter than a plain STUN client's (RTO 250 ms, 5 requests, a final
// wait of 8 RTO: 5.75 s per unanswered test); tests that can run together do.
//
// The core is driven like every peerlink core:
//
// @code
// nat_discovery_config cfg;
// cfg.server = stun_server;          // PA:PP
// cfg.local = socket_local_endpoint; // to tell "no NAT" (a concrete address, not 0.0.0.0)
// nat_discovery_core d(cfg);
// d.start(now);
// while (!d.done()) {
//     while (auto t = d.poll_transmit()) send(t->data, t->to);
//     wait for a datagram (d.handle_datagram(bytes, from, now)) or d.poll_timeout()
//     (d.handle_timeout(now));
// }
// std::cout << d.report().to_string();
// @endcode
//
// The Asio driver is `peerlink::async_discover_nat` (peerlink/net/nat_discovery.hpp).
// Never throws after construction, never reads a clock, includes no Asio.
#ifndef PEERLINK_PROTO_NAT_DISCOVERY_HPP
#define PEERLINK_PROTO_NAT_DISCOVERY_HPP

#include <peerlink/endpoint.hpp>
#include <peerlink/proto/stun_client.hpp>
#include <peerlink/time.hpp>

#include <nlohmann/json.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

namespace peerlink {

/// How a NAT maps one internal address and port to external ones (RFC 4787 §4.1).
enum class nat_mapping : std::uint8_t {
    unknown,                   ///< Not measured (no answer, or the server lacks RFC 5780).
    endpoint_independent,      ///< One mapping for every destination (or no NAT at all).
    address_dependent,         ///< A mapping per destination address.
    address_and_port_dependent ///< A mapping per destination address and port.
};

/// Which inbound packets a NAT lets through to a mapping (RFC 4787 §5).
enum class nat_filtering : std::uint8_t {
    unknown,                   ///< Not measured.
    endpoint_independent,      ///< From anyone.
    address_dependent,         ///< From addresses the inside sent to.
    address_and_port_dependent ///< From addresses and ports the inside sent to.
};

/// The classic (RFC 3489) name of a NAT, from its mapping and filtering.
enum class nat_type : std::uint8_t {
    unknown,                ///< Not enough was measured.
    udp_blocked,            ///< No UDP answer at all.
    open_internet,          ///< No NAT, no filtering.
    symmetric_udp_firewall, ///< No NAT, but a filtering firewall.
    full_cone,              ///< EI mapping, EI filtering.
    restricted_cone,        ///< EI mapping, address-dependent filtering.
    port_restricted_cone,   ///< EI mapping, address-and-port-dependent filtering.
    symmetric,              ///< Mapping that depends on the destination.
};

/// "endpoint-independent", "address-dependent", "address-and-port-dependent", "unknown".
std::string_view to_string(nat_mapping m) noexcept;
std::string_view to_string(nat_filtering f) noexcept;
/// "full cone", "restricted cone", "port-restricted cone", "symmetric", "udp-blocked",
/// "open internet", "symmetric udp firewall", "unknown".
std::string_view to_string(nat_type t) noexcept;

/// What NAT behaviour discovery found.
struct nat_report {
    bool udp_blocked = false;       ///< Test I got no answer.
    std::optional<bool> behind_nat; ///< Mapped address != local; unknown without both.
    bool rfc5780 = false;           ///< The server gave OTHER-ADDRESS.
    nat_mapping mapping = nat_mapping::unknown;
    nat_filtering filtering = nat_filtering::unknown;
    endpoint local;                                   ///< The socket's address, as configured.
    endpoint server;                                  ///< PA:PP.
    std::optional<endpoint> other_address;            ///< AA:AP, from OTHER-ADDRESS.
    std::optional<endpoint> mapped;                   ///< Test I's mapped address (M1).
    std::optional<endpoint> mapped_alternate_address; ///< Mapping test II (to AA:PP), M2.
    std::optional<endpoint> mapped_alternate_both;    ///< Mapping test III (to AA:AP), M3.
    /// Why something could not be measured: a server error response (e.g.
    /// `stun_error::unknown_attribute` for CHANGE-REQUEST), a malformed answer. Empty
    /// when every test ran (a blocked UDP path is a result, not an error).
    std::error_code error;
    duration elapsed{}; ///< From `start` to the verdict.

    /// The classic name of the NAT.
    nat_type type() const noexcept;
    /// A few lines of text, e.g. "NAT type: port-restricted cone\nmapping: ...".
    std::string to_string() const;
};

/// The report as JSON: `{"nat_type": "full cone", "udp_blocked": false,
/// "behind_nat": true, "rfc5780": true, "mapping": "endpoint-independent",
/// "filtering": "endpoint-independent", "local": "10.0.0.2:5000", "server": ...,
/// "other_address": ..., "mapped": ..., "mapped_alternate_address": ...,
/// "mapped_alternate_both": ..., "error": null, "elapsed_ms": 12}`. Absent values are null.
void to_json(nlohmann::json& j, const nat_report& r);

/// Configuration of a `nat_discovery_core`.
struct nat_discovery_config {
    /// The STUN server's primary address and port (PA:PP).
    endpoint server;
    /// The local socket's address; an unspecified address leaves `behind_nat` unknown.
    endpoint local;
    /// Timers of each test's transaction (see the header comment for the defaults).
    stun::client_config stun = default_stun_config();
    /// SOFTWARE in the requests; "" for none.
    std::string software;
    /// Run the filtering tests (§4.4).
    bool filtering = true;
    /// Run the mapping tests (§4.3).
    bool mapping = true;

    /// RTO 250 ms, 5 requests, final wait 8 RTO.
    static stun::client_config default_stun_config() {
        stun::client_config c;
        c.rto = std::chrono::milliseconds(250);
        c.max_requests = 5;
        c.final_wait_factor = 8;
        c.max_transactions = 4;
        c.max_message_size = 1024;
        return c;
    }
};

/// The sans-I/O NAT behaviour discovery.
///
/// Not thread-safe. Never throws after construction; never reads a clock.
class nat_discovery_core {
public:
    explicit nat_discovery_core(nat_discovery_config cfg);

    /// Sends test I. Calling it again does nothing.
    void start(time_point now);

    /// Feeds a received datagram. @returns whether it was an answer to one of the tests.
    bool handle_datagram(std::span<const std::byte> bytes, const endpoint& from,
                         time_point now) noexcept;
    /// Call when `poll_timeout()` has passed.
    void handle_timeout(time_point now) noexcept;
    /// The next request to send; valid until the next call. Call after every
    /// `start` and `handle_*` until it returns nothing.
    std::optional<stun::transmit> poll_transmit() noexcept { return client_.poll_transmit(); }
    /// When `handle_timeout` is due; nothing when done.
    std::optional<time_point> poll_timeout() const noexcept { return client_.poll_timeout(); }
    /// The report, once, when the discovery is done. Call after every `handle_*`.
    std::optional<nat_report> poll_event();

    bool done() const noexcept { return phase_ == phase::done; }
    /// The report so far (final once `done()`).
    const nat_report& report() const noexcept { return report_; }
    const stun::client_stats& stun_stats() const noexcept { return client_.stats(); }

private:
    enum class phase : std::uint8_t { idle, test1, filtering, mapping, done };
    enum test : std::uint64_t { test_1 = 1, filter_2, filter_3, map_2, map_3, count };
    struct outcome {
        bool finished = false;
        std::error_code ec;
        endpoint from;
        std::optional<stun::binding_result> binding;
    };

    void run(time_point now) noexcept;
    void send(test t, const endpoint& to, stun::change_request change, time_point now) noexcept;
    void on_test1(time_point now) noexcept;
    void start_filtering(time_point now) noexcept;
    void on_filtering(time_point now) noexcept;
    void start_mapping(time_point now) noexcept;
    void on_mapping(time_point now) noexcept;
    void finish(time_point now) noexcept;

    nat_discovery_config cfg_;
    stun::client_core client_;
    phase phase_ = phase::idle;
    std::array<outcome, count> results_{};
    std::array<std::optional<stun::transaction_id>, count> ids_{};
    nat_report report_;
    time_point started_{};
    bool reported_ = false;
};

} // namespace peerlink

#include <peerlink/proto/impl/nat_discovery.hpp>

#endif // PEERLINK_PROTO_NAT_DISCOVERY_HPP
