// Implementation of peerlink/net/punch_session.hpp.
#ifndef PEERLINK_NET_IMPL_PUNCH_SESSION_HPP
#define PEERLINK_NET_IMPL_PUNCH_SESSION_HPP

#include <optional>

namespace peerlink {

struct punch_session::impl : std::enable_shared_from_this<impl> {
    struct sock {
        explicit sock(asio::ip::udp::socket s) : s(std::move(s)) {}
        asio::ip::udp::socket s;
        std::array<std::byte, 2048> buf{};
        asio::ip::udp::endpoint from;
    };
    impl(asio::ip::udp::socket main, ice::punch_config cfg)
        : ex(main.get_executor()), timer(ex), core(std::move(cfg)) {
        socks.push_back(std::make_unique<sock>(std::move(main)));
    }

    executor_type ex;
    asio::steady_timer timer;
    ice::punch_core core;
    std::vector<std::unique_ptr<sock>> socks;
    done_handler done;
    data_handler data;
    bool running = false, stopped = false;
    std::optional<time_point> armed;

    void receive(std::size_t i) {
        auto& k = *socks[i];
        k.s.async_receive_from(
            asio::buffer(k.buf), k.from,
            [self = shared_from_this(), i](std::error_code ec, std::size_t n) {
                if (self->stopped)
                    return;
                if (ec == asio::error::operation_aborted)
                    return;
                if (!ec) {
                    auto& k = *self->socks[i];
                    const auto from = from_asio(k.from);
                    const std::span<const std::byte> bytes(k.buf.data(), n);
                    const auto id = static_cast<ice::socket_id>(i);
                    if (!self->core.handle_datagram(bytes, from, id, clock::now()) && self->data)
                        self->data(bytes, from, id);
                    if (self->stopped)
                        return;
                    self->flush();
                }
                self->receive(i);
            });
    }

    void open_sockets(const ice::sockets_requested& r) {
        std::error_code ec;
        const auto local = socks[0]->s.local_endpoint(ec);
        if (ec)
            return;
        for (unsigned n = 0; n < r.count; ++n) {
            asio::ip::udp::socket s(ex);
            s.open(local.protocol(), ec);
            if (!ec)
                s.bind(asio::ip::udp::endpoint(local.address(), 0), ec);
            if (ec)
                break; // fewer sockets than asked: allowed
            socks.push_back(std::make_unique<sock>(std::move(s)));
            const auto id = static_cast<ice::socket_id>(socks.size() - 1);
            core.add_socket(
                id, local.address().is_v4() ? ip_address::family::v4 : ip_address::family::v6,
                clock::now());
            if (running)
                receive(id);
        }
    }

    void flush() {
        for (int round = 0; round < 4; ++round) {
            while (auto t = core.poll_transmit()) {
                if (t->socket >= socks.size())
                    continue;
                std::error_code ec;
                socks[t->socket]->s.send_to(asio::buffer(t->data.data(), t->data.size()),
                                            to_asio(t->to), 0, ec);
            }
            bool more = false;
            while (auto e = core.poll_event()) {
                more = true;
                if (auto* r = std::get_if<ice::sockets_requested>(&*e)) {
                    open_sockets(*r);
                } else if (auto* c = std::get_if<ice::connected>(&*e)) {
                    if (auto h = std::exchange(done, nullptr))
                        h({}, c->pair);
                } else if (auto* f = std::get_if<ice::failed>(&*e)) {
                    if (auto h = std::exchange(done, nullptr))
                        h(f->ec, {});
                }
                if (stopped)
                    return;
            }
            if (!more)
                break;
        }
        arm();
    }

    void arm() {
        auto t = core.poll_timeout();
        if (!t || stopped) {
            if (armed)
                timer.cancel();
            armed.reset();
            return;
        }
        if (armed && *armed == *t)
            return;
        armed = *t;
        timer.expires_at(*t);
        timer.async_wait([self = shared_from_this()](std::error_code ec) {
            if (ec || self->stopped)
                return;
            self->armed.reset();
            self->core.handle_timeout(clock::now());
            self->flush();
        });
    }
};

inline punch_session::punch_session(asio::ip::udp::socket main, ice::punch_config cfg)
    : impl_(std::make_shared<impl>(std::move(main), std::move(cfg))) {}

inline punch_session::~punch_session() {
    stop();
}

inline punch_session::executor_type punch_session::get_executor() const noexcept {
    return impl_->ex;
}
inline ice::punch_core& punch_session::core() noexcept {
    return impl_->core;
}
inline asio::ip::udp::socket& punch_session::socket(ice::socket_id id) {
    return impl_->socks.at(id)->s;
}
inline std::size_t punch_session::socket_count() const noexcept {
    return impl_->socks.size();
}
inline void punch_session::on_data(data_handler h) {
    impl_->data = std::move(h);
}

inline std::error_code punch_session::start(time_point at, done_handler h) {
    impl_->done = std::move(h);
    if (auto ec = impl_->core.start(at, clock::now()))
        return ec;
    impl_->running = true;
    for (std::size_t i = 0; i < impl_->socks.size(); ++i)
        impl_->receive(i);
    impl_->flush();
    return {};
}

inline void punch_session::flush() {
    impl_->flush();
}

inline std::error_code punch_session::send(ice::socket_id id, std::span<const std::byte> data,
                                           const endpoint& to) {
    std::error_code ec;
    if (id >= impl_->socks.size())
        return make_error_code(error::invalid_config);
    impl_->socks[id]->s.send_to(asio::buffer(data.data(), data.size()), to_asio(to), 0, ec);
    return ec;
}

inline void punch_session::stop() noexcept {
    if (!impl_ || impl_->stopped)
        return;
    impl_->stopped = true;
    std::error_code ec;
    impl_->timer.cancel();
    for (auto& s : impl_->socks)
        s->s.close(ec);
}

} // namespace peerlink

#endif // PEERLINK_NET_IMPL_PUNCH_SESSION_HPP
