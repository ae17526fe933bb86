// Implementation of peerlink/net/stun_server.hpp.
#ifndef PEERLINK_NET_IMPL_STUN_SERVER_HPP
#define PEERLINK_NET_IMPL_STUN_SERVER_HPP

#include <asio/error.hpp>
#include <asio/post.hpp>

#include <stdexcept>
#include <system_error>
#include <vector>

namespace peerlink {

// Shared with the receive handlers, which keep it alive after the server is gone.
struct stun_server::impl : std::enable_shared_from_this<impl> {
    static constexpr std::size_t batch = 16;

    struct socket_state {
        std::unique_ptr<udp_transport> transport;
        std::vector<std::byte> storage;
        std::array<rx_slot, batch> slots{};
    };

    impl(executor_type ex, stun::server_config cfg, std::size_t max_datagram)
        : ex(std::move(ex)), core(std::move(cfg)), max_datagram(max_datagram) {}

    void start(std::size_t count) {
        for (std::size_t i = 0; i < count; ++i) {
            auto& s = sockets[i];
            s.storage.resize(batch * (max_datagram + 1)); // +1: a longer datagram shows
            for (std::size_t k = 0; k < batch; ++k)
                s.slots[k].buffer = std::span<std::byte>(s.storage.data() + k * (max_datagram + 1),
                                                         max_datagram + 1);
            receive(i);
        }
    }

    void receive(std::size_t i) {
        if (stopped)
            return;
        sockets[i].transport->async_receive(
            std::span<rx_slot>(sockets[i].slots),
            [self = shared_from_this(), i](std::error_code ec, std::size_t n) {
                self->on_receive(i, ec, n);
            });
    }

    void on_receive(std::size_t i, std::error_code ec, std::size_t n) {
        if (stopped || ec == asio::error::operation_aborted)
            return;
        if (ec) {
            ++stats.receive_errors;
            // Retry from the executor, not from this stack, in case it fails at once.
            return asio::post(ex, [self = shared_from_this(), i] { self->receive(i); });
        }
        const auto on = static_cast<stun::server_socket>(i);
        for (std::size_t k = 0; k < n; ++k) {
            auto& slot = sockets[i].slots[k];
            ++stats.received;
            if (slot.truncated || slot.size > max_datagram) {
                ++stats.truncated;
                continue;
            }
            core.handle_datagram(slot.buffer.first(slot.size), slot.from, on);
            flush();
        }
        receive(i);
    }

    void flush() {
        while (auto t = core.poll_transmit()) {
            auto& s = sockets[static_cast<std::size_t>(t->via)];
            tx_datagram d{t->data, t->to};
            std::error_code ec;
            if (s.transport && s.transport->try_send(std::span<const tx_datagram>(&d, 1), ec) == 1)
                ++stats.sent;
            else
                ++stats.send_errors; // a full buffer too: the client will retransmit
        }
    }

    void stop() noexcept {
        stopped = true;
        for (auto& s : sockets)
            if (s.transport)
                s.transport->close();
    }

    executor_type ex;
    stun::server_core core;
    std::size_t max_datagram;
    std::array<socket_state, 4> sockets;
    stun_server_stats stats;
    bool stopped = false;
};

inline stun_server::stun_server(executor_type ex) : ex_(std::move(ex)) {}

inline stun_server::stun_server(executor_type ex, const options& o) : ex_(std::move(ex)) {
    std::error_code ec;
    open(o, ec);
    if (ec)
        throw std::system_error(ec, "peerlink::stun_server");
}

inline stun_server::~stun_server() {
    stop();
}

inline bool stun_server::is_open() const noexcept {
    return impl_ && !impl_->stopped;
}

inline bool stun_server::rfc5780() const noexcept {
    return is_open() && impl_->core.rfc5780();
}

inline endpoint stun_server::local_endpoint(stun::server_socket s) const noexcept {
    if (!is_open())
        return {};
    auto& t = impl_->sockets[impl_->core.rfc5780() ? static_cast<std::size_t>(s) : 0].transport;
    return t ? t->local_endpoint() : endpoint{};
}

inline stun_server_stats stun_server::stats() const noexcept {
    if (!impl_)
        return {};
    auto s = impl_->stats;
    s.core = impl_->core.stats();
    return s;
}

inline void stun_server::stop() noexcept {
    if (impl_)
        impl_->stop(); // kept: stats() still reports after stop
}

inline void stun_server::open(const options& o, std::error_code& ec) {
    if (is_open()) {
        ec = asio::error::already_open;
        return;
    }
    stun::server_config cfg;
    cfg.primary = o.primary;
    cfg.alternate = o.alternate;
    cfg.software = o.software;
    cfg.mapped_address = o.mapped_address;
    cfg.max_message_size = o.max_datagram_size;
    if (o.alternate) {
        // Validate with stand-in ports: the real ones may not be chosen yet.
        auto check = cfg;
        check.primary.port = 1;
        check.alternate->port = 2;
        if (o.primary.port != 0 && o.alternate->port != 0)
            check = cfg;
        if ((ec = stun::server_core::check_config(check)))
            return;
    }

    auto open_one = [&](std::unique_ptr<udp_transport>& t, const endpoint& where) {
        t = std::make_unique<udp_transport>(ex_);
        udp_transport::options u;
        u.bind_address = where.address.to_string();
        u.ipv6 = where.address.is_v6();
        u.port_min = where.port; // 0: the system's choice; otherwise exactly this port
        u.port_max = 0;
        u.socket_buffer_bytes = 1 << 20;
        std::error_code e;
        t->open(u, e);
        return e;
    };

    std::array<std::unique_ptr<udp_transport>, 4> t;
    const int attempts = o.alternate && (o.primary.port == 0 || o.alternate->port == 0) ? 32 : 1;
    for (int attempt = 0; attempt < attempts; ++attempt) {
        for (auto& x : t)
            x.reset();
        if ((ec = open_one(t[0], o.primary)))
            return;
        if (!o.alternate)
            break;
        const std::uint16_t pp = t[0]->local_endpoint().port;
        if ((ec = open_one(t[1], {o.primary.address, o.alternate->port})))
            return;
        const std::uint16_t ap = t[1]->local_endpoint().port;
        ec = open_one(t[2], {o.alternate->address, pp});
        if (!ec)
            ec = open_one(t[3], {o.alternate->address, ap});
        if (!ec) {
            cfg.primary.port = pp;
            cfg.alternate->port = ap;
            break;
        }
        // A system-chosen port may be taken on the other address: try other ports.
        if (ec != std::errc::address_in_use && ec != asio::error::address_in_use)
            return;
        if (attempt + 1 == attempts) {
            ec = make_error_code(error::no_port_available);
            return;
        }
    }
    if (!o.alternate) {
        cfg.primary.port = t[0]->local_endpoint().port;
        cfg.alternate.reset();
    }

    auto im = std::make_shared<impl>(ex_, cfg, o.max_datagram_size);
    for (std::size_t i = 0; i < 4; ++i)
        im->sockets[i].transport = std::move(t[i]);
    im->start(o.alternate ? 4 : 1);
    impl_ = std::move(im);
    ec.clear();
}

} // namespace peerlink

#endif // PEERLINK_NET_IMPL_STUN_SERVER_HPP
