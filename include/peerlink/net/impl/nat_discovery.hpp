// Implementation of peerlink/net/nat_discovery.hpp.
#ifndef PEERLINK_NET_IMPL_NAT_DISCOVERY_HPP
#define PEERLINK_NET_IMPL_NAT_DISCOVERY_HPP

#include <asio/ip/udp.hpp>

#include <memory>
#include <utility>

namespace peerlink {

namespace detail {

// The source address the system would use toward `to` (a connected UDP socket
// learns it from the routing table; nothing is sent).
template <class Executor>
std::optional<ip_address> route_source(const Executor& ex, const endpoint& to) {
    std::error_code ec;
    asio::ip::udp::socket probe(ex);
    probe.open(to.address.is_v4() ? asio::ip::udp::v4() : asio::ip::udp::v6(), ec);
    if (!ec)
        probe.connect(to_asio(to), ec);
    if (ec)
        return std::nullopt;
    auto local = probe.local_endpoint(ec);
    if (ec)
        return std::nullopt;
    return from_asio(local.address());
}

// The discovery as a job for stun_operation. The core is on the heap: it owns a
// client_core whose slots it hands out views of, and the job is moved once.
class nat_discovery_job {
public:
    template <class Executor>
    nat_discovery_job(const Executor& ex, const endpoint& server, const nat_discovery_options& o)
        : server_(server), options_(o), route_([ex, server] { return route_source(ex, server); }) {}

    void start(time_point now, const endpoint& bound) {
        nat_discovery_config cfg;
        cfg.server = server_;
        cfg.stun = options_.stun;
        cfg.software = options_.software;
        cfg.filtering = options_.filtering;
        cfg.mapping = options_.mapping;
        cfg.local = options_.local.value_or(bound);
        if (!options_.local && cfg.local.address.is_unspecified())
            if (auto a = route_())
                cfg.local.address = *a;
        core_ = std::make_unique<nat_discovery_core>(std::move(cfg));
        core_->start(now);
    }
    void handle_datagram(std::span<const std::byte> bytes, const endpoint& from, time_point now) {
        core_->handle_datagram(bytes, from, now);
    }
    void handle_timeout(time_point now) { core_->handle_timeout(now); }
    std::optional<stun::transmit> poll_transmit() { return core_->poll_transmit(); }
    std::optional<time_point> poll_timeout() const { return core_->poll_timeout(); }
    bool done() const noexcept { return core_ && core_->done(); }
    std::error_code error() const noexcept { return {}; }
    nat_report result() const { return core_ ? core_->report() : nat_report{}; }

private:
    endpoint server_;
    nat_discovery_options options_;
    std::function<std::optional<ip_address>()> route_;
    std::unique_ptr<nat_discovery_core> core_;
};

template <class Socket>
struct initiate_discover_nat {
    using executor_type = typename Socket::executor_type;
    Socket* socket;

    executor_type get_executor() const noexcept { return socket->get_executor(); }

    template <class Handler>
    void operator()(Handler&& handler, const endpoint& server,
                    const nat_discovery_options& options) const {
        start_stun_operation(*socket, nat_discovery_job(socket->get_executor(), server, options),
                             std::forward<Handler>(handler));
    }
};

} // namespace detail

template <stun_socket Socket, class Token>
auto async_discover_nat(Socket& socket, const endpoint& server,
                        const nat_discovery_options& options, Token&& token) {
    return asio::async_initiate<Token, void(std::error_code, nat_report)>(
        detail::initiate_discover_nat<Socket>{&socket}, token, server, options);
}

} // namespace peerlink

#endif // PEERLINK_NET_IMPL_NAT_DISCOVERY_HPP
