// Implementation of peerlink/net/turn_client.hpp: the thin Asio driver.
//
// Everything TURN decides is in turn::client_core; this file moves bytes between the
// core and the socket, runs one timer, and completes the user's operations. The state
// lives in a shared impl so the socket's and the timer's handlers keep it alive until
// they have run, even after the turn_client is gone.
#ifndef PEERLINK_NET_IMPL_TURN_CLIENT_HPP
#define PEERLINK_NET_IMPL_TURN_CLIENT_HPP

#include <asio/associated_cancellation_slot.hpp>
#include <asio/error.hpp>
#include <asio/post.hpp>
#include <asio/write.hpp>

#include <algorithm>
#include <array>
#include <cstring>
#include <optional>
#include <utility>
#include <vector>

namespace peerlink {

namespace detail {

class turn_client_impl : public std::enable_shared_from_this<turn_client_impl> {
public:
    using executor_type = asio::any_io_executor;
    static constexpr std::size_t rx_size = 65536;
    static constexpr std::size_t receive_slots = 64;
    static constexpr std::size_t tcp_write_limit = std::size_t{4} << 20;

    // An operation waiting for the core, with an id so that a cancellation posted for
    // an op that has completed since never hits its successor.
    template <class... Args>
    struct tracked {
        std::uint64_t id = 0;
        endpoint peer;
        pending_op_ptr<Args...> op;
    };

    turn_client_impl(asio::ip::udp::socket s, const endpoint& server, turn::client_config cfg)
        : ex(s.get_executor()), core(configure(std::move(cfg), server, stun::framing::datagram)),
          udp(std::move(s)), timer(ex) {
        init();
    }
    turn_client_impl(asio::ip::tcp::socket s, const endpoint& server, turn::client_config cfg)
        : ex(s.get_executor()), core(configure(std::move(cfg), server, stun::framing::stream)),
          tcp(std::move(s)), timer(ex) {
        init();
    }

    static turn::client_config configure(turn::client_config c, const endpoint& server,
                                         stun::framing f) {
        c.server = server;
        c.framing = f;
        return c;
    }

    void init() {
        rx.resize(rx_size);
        slot_size = core.config().max_data_size;
        rq.resize(slot_size * receive_slots);
        if (tcp) {
            wqueue.reserve(8192);
            wactive.reserve(8192);
        }
    }

    time_point now() const { return clock::now(); }

    // --- operations -----------------------------------------------------------------

    template <class Handler>
    void start_allocate(Handler&& h) {
        const auto id = on_cancel(h, [](turn_client_impl& s, std::uint64_t id) {
            if (s.allocate_op.op && s.allocate_op.id == id)
                complete_op(s.allocate_op.op, aborted(), endpoint{});
        });
        auto op = make_pending_op<std::error_code, endpoint>(std::forward<Handler>(h), ex);
        std::error_code ec = refuse();
        if (!ec && allocate_op.op)
            ec = make_error_code(error::operation_in_progress);
        if (!ec && (core.state() != turn::client_state::idle || connecting))
            ec = make_error_code(turn_error::already_allocated);
        if (!ec && udp && !udp->is_open()) {
            udp->open(core.config().server.address.is_v4() ? asio::ip::udp::v4()
                                                           : asio::ip::udp::v6(),
                      ec);
        }
        if (ec)
            return complete_op(op, ec, endpoint{});
        allocate_op = {id, {}, std::move(op)};
        if (udp) {
            udp->non_blocking(true, ec);
            server_udp = to_asio(core.config().server);
            std::error_code lec;
            const auto local = udp->local_endpoint(lec);
            if (!lec && local.address().is_v6() && core.config().server.address.is_v4())
                server_udp = {
                    asio::ip::make_address_v6(asio::ip::v4_mapped, server_udp.address().to_v4()),
                    server_udp.port()};
            start_receive();
            return begin_allocate();
        }
        std::error_code rec;
        if (tcp->is_open() && (tcp->remote_endpoint(rec), !rec)) {
            start_receive();
            return begin_allocate();
        }
        connecting = true;
        const asio::ip::tcp::endpoint to(to_asio(core.config().server.address),
                                         core.config().server.port);
        tcp->async_connect(to, [self = shared_from_this()](std::error_code cec) {
            self->connecting = false;
            if (self->closed)
                return;
            if (cec) {
                if (self->allocate_op.op)
                    complete_op(self->allocate_op.op, cec, endpoint{});
                return;
            }
            std::error_code nec;
            self->tcp->set_option(asio::ip::tcp::no_delay(true), nec);
            self->start_receive();
            if (self->allocate_op.op) // not cancelled while connecting
                self->begin_allocate();
        });
    }

    void begin_allocate() {
        if (auto ec = core.allocate(now()))
            complete_op(allocate_op.op, ec, endpoint{});
        pump();
    }

    template <class Handler>
    void start_refresh(Handler&& h) {
        const auto id = on_cancel(h, [](turn_client_impl& s, std::uint64_t id) {
            if (s.refresh_op.op && s.refresh_op.id == id)
                complete_op(s.refresh_op.op, aborted());
        });
        auto op = make_pending_op<std::error_code>(std::forward<Handler>(h), ex);
        std::error_code ec = refuse();
        if (!ec && refresh_op.op)
            ec = make_error_code(error::operation_in_progress);
        if (!ec)
            ec = core.refresh(now());
        if (ec)
            return complete_op(op, ec);
        refresh_op = {id, {}, std::move(op)};
        pump();
    }

    template <class Handler>
    void start_create_permission(Handler&& h, const endpoint& peer) {
        const auto id = on_cancel(h, [](turn_client_impl& s, std::uint64_t id) {
            for (auto& o : s.perm_ops)
                if (o.op && o.id == id)
                    complete_op(o.op, aborted());
            s.tidy();
        });
        auto op = make_pending_op<std::error_code>(std::forward<Handler>(h), ex);
        std::error_code ec = refuse();
        if (!ec)
            ec = core.create_permission(peer, now());
        if (ec)
            return complete_op(op, ec);
        perm_ops.push_back({id, peer, std::move(op)});
        pump();
    }

    template <class Handler>
    void start_bind_channel(Handler&& h, const endpoint& peer) {
        const auto id = on_cancel(h, [](turn_client_impl& s, std::uint64_t id) {
            for (auto& o : s.chan_ops)
                if (o.op && o.id == id)
                    complete_op(o.op, aborted(), std::uint16_t{0});
            s.tidy();
        });
        auto op = make_pending_op<std::error_code, std::uint16_t>(std::forward<Handler>(h), ex);
        std::error_code ec = refuse();
        if (!ec)
            ec = core.bind_channel(peer, now());
        if (ec)
            return complete_op(op, ec, std::uint16_t{0});
        chan_ops.push_back({id, peer, std::move(op)});
        pump();
    }

    template <class Handler>
    void start_receive_from(Handler&& h, asio::mutable_buffer buffer) {
        const auto id = on_cancel(h, [](turn_client_impl& s, std::uint64_t id) {
            if (s.recv_op.op && s.recv_op.id == id)
                complete_op(s.recv_op.op, aborted(), std::size_t{0}, endpoint{});
        });
        auto op =
            make_pending_op<std::error_code, std::size_t, endpoint>(std::forward<Handler>(h), ex);
        if (recv_op.op)
            return complete_op(op, make_error_code(error::operation_in_progress), std::size_t{0},
                               endpoint{});
        if (closed)
            return complete_op(op, aborted(), std::size_t{0}, endpoint{});
        if (rq_count != 0) {
            const std::size_t slot = rq_head;
            rq_head = (rq_head + 1) % receive_slots;
            --rq_count;
            std::error_code ec;
            const std::size_t n = copy_out(
                buffer, std::span<const std::byte>(rq.data() + slot * slot_size, rq_size[slot]),
                ec);
            return complete_op(op, ec, n, rq_peer[slot]);
        }
        if (terminal)
            return complete_op(op, terminal, std::size_t{0}, endpoint{});
        recv_op = {id, {}, std::move(op)};
        recv_buf = buffer;
    }

    template <class Handler>
    void start_deallocate(Handler&& h) {
        const auto id = on_cancel(h, [](turn_client_impl& s, std::uint64_t id) {
            if (s.dealloc_op.op && s.dealloc_op.id == id)
                complete_op(s.dealloc_op.op, aborted());
        });
        auto op = make_pending_op<std::error_code>(std::forward<Handler>(h), ex);
        std::error_code ec = refuse();
        if (!ec && dealloc_op.op)
            ec = make_error_code(error::operation_in_progress);
        if (!ec)
            ec = core.deallocate(now());
        if (ec)
            return complete_op(op, ec);
        dealloc_op = {id, {}, std::move(op)};
        // The core forgot its permissions and channels: their operations end here.
        end_peer_ops(make_error_code(turn_error::not_allocated));
        pump();
    }

    std::error_code send_to(const endpoint& peer, std::span<const std::byte> data) {
        if (closed)
            return aborted();
        auto ec = core.send(peer, data, now());
        if (ec == std::errc::operation_would_block) {
            ++st.send_drops;
            ec.clear();
        }
        if (!ec)
            pump();
        return ec;
    }

    void close() {
        if (closed)
            return;
        closed = true;
        std::error_code ec;
        timer.cancel();
        if (udp)
            udp->close(ec);
        if (tcp)
            tcp->close(ec);
        fail_all(aborted());
    }

    // --- moving bytes ---------------------------------------------------------------

    void start_receive() {
        if (receiving || closed)
            return;
        receiving = true;
        if (udp)
            udp->async_receive_from(asio::buffer(rx), rx_from,
                                    [self = shared_from_this()](std::error_code ec, std::size_t n) {
                                        self->on_datagram(ec, n);
                                    });
        else
            tcp->async_read_some(asio::buffer(rx),
                                 [self = shared_from_this()](std::error_code ec, std::size_t n) {
                                     self->on_stream(ec, n);
                                 });
    }

    void on_datagram(std::error_code ec, std::size_t n) {
        receiving = false;
        if (closed || ec == asio::error::operation_aborted || ec == asio::error::bad_descriptor)
            return;
        // Other errors (an ICMP error reported for an earlier send) only mean that
        // nothing came: the core's timers deal with lost requests.
        if (ec)
            ++st.socket_errors;
        else
            core.handle_datagram(std::span<const std::byte>(rx.data(), n), from_asio(rx_from),
                                 now());
        pump();
        start_receive();
    }

    void on_stream(std::error_code ec, std::size_t n) {
        receiving = false;
        if (closed)
            return;
        if (ec) {
            if (ec != asio::error::eof)
                ++st.socket_errors;
            core.handle_stream_closed(now());
            return pump();
        }
        std::span<const std::byte> rest(rx.data(), n);
        while (!rest.empty()) {
            const std::size_t k = core.handle_stream_bytes(rest, now());
            rest = rest.subspan(k);
            pump(); // draining the events frees the stream buffer for the rest
            if (k == 0)
                return; // the stream broke: the core reported it
        }
        start_receive();
    }

    void pump() {
        if (closed)
            return;
        for (int round = 0; round < 64; ++round) {
            bool any = false;
            while (auto e = core.poll_event()) {
                any = true;
                on_event(*e);
            }
            while (auto t = core.poll_transmit()) {
                any = true;
                transmit(t->data);
            }
            if (!any)
                break;
        }
        arm_timer();
    }

    void transmit(std::span<const std::byte> data) {
        if (udp) {
            std::error_code ec;
            udp->send_to(asio::buffer(data.data(), data.size()), server_udp, 0, ec);
            if (ec == asio::error::would_block || ec == asio::error::try_again)
                ++st.send_drops;
            else if (ec)
                ++st.socket_errors;
            return;
        }
        // Over TCP nothing is retransmitted: requests are always queued, data beyond
        // the limit is dropped like a full UDP socket would.
        const bool request =
            stun::classify_packet(data) == stun::packet_kind::stun && data.size() >= 2 &&
            stun::class_of(peerlink::detail::load_be<std::uint16_t>(data.data())) ==
                stun::message_class::request;
        if (!request && wqueue.size() + data.size() > tcp_write_limit) {
            ++st.send_drops;
            return;
        }
        wqueue.insert(wqueue.end(), data.begin(), data.end());
        if (!writing && !connecting)
            start_write();
    }

    void start_write() {
        if (wqueue.empty() || closed)
            return;
        writing = true;
        std::swap(wqueue, wactive);
        wqueue.clear();
        asio::async_write(*tcp, asio::buffer(wactive),
                          [self = shared_from_this()](std::error_code ec, std::size_t) {
                              self->writing = false;
                              if (self->closed)
                                  return;
                              if (ec) {
                                  ++self->st.socket_errors;
                                  self->core.handle_stream_closed(self->now());
                                  return self->pump();
                              }
                              self->start_write();
                          });
    }

    void arm_timer() {
        const auto next = core.poll_timeout();
        if (!next || closed || (timer_waiting && *next == armed))
            return;
        armed = *next;
        timer_waiting = true;
        timer.expires_at(*next); // cancels the wait for the previous deadline
        timer.async_wait([self = shared_from_this(), gen = ++timer_gen](std::error_code) {
            if (gen != self->timer_gen || self->closed)
                return; // superseded by a re-arm, or closed
            self->timer_waiting = false;
            self->core.handle_timeout(self->now());
            self->pump();
        });
    }

    // --- completing operations ------------------------------------------------------

    void on_event(const turn::client_event& e) {
        if (auto* a = std::get_if<turn::allocated_event>(&e)) {
            complete_op(allocate_op.op, std::error_code{}, a->relayed);
        } else if (std::holds_alternative<turn::refreshed_event>(e)) {
            complete_op(refresh_op.op, std::error_code{});
        } else if (auto* p = std::get_if<turn::permission_created_event>(&e)) {
            for (auto& o : perm_ops)
                if (o.op && o.peer.address == p->peer.address)
                    complete_op(o.op, std::error_code{});
        } else if (auto* c = std::get_if<turn::channel_bound_event>(&e)) {
            for (auto& o : chan_ops)
                if (o.op && o.peer == c->peer)
                    complete_op(o.op, std::error_code{}, c->channel);
        } else if (auto* d = std::get_if<turn::data_received_event>(&e)) {
            deliver(d->peer, d->data);
        } else if (auto* err = std::get_if<turn::error_event>(&e)) {
            switch (err->op) {
            case turn::operation::allocate:
                complete_op(allocate_op.op, err->ec, endpoint{});
                break;
            case turn::operation::refresh:
                complete_op(refresh_op.op, err->ec);
                break;
            case turn::operation::create_permission:
                for (auto& o : perm_ops)
                    if (o.op && o.peer.address == err->peer.address)
                        complete_op(o.op, err->ec);
                break;
            case turn::operation::channel_bind:
                for (auto& o : chan_ops)
                    if (o.op && o.peer == err->peer)
                        complete_op(o.op, err->ec, std::uint16_t{0});
                break;
            case turn::operation::deallocate:
                complete_op(dealloc_op.op, err->ec);
                fail_all(make_error_code(turn_error::not_allocated));
                break;
            case turn::operation::connection:
                break;
            }
            if (err->fatal)
                fail_all(err->ec);
        } else if (std::holds_alternative<turn::deallocated_event>(e)) {
            complete_op(dealloc_op.op, std::error_code{});
            fail_all(make_error_code(turn_error::not_allocated));
        }
        tidy();
    }

    void deliver(const endpoint& peer, std::span<const std::byte> data) {
        if (recv_op.op && rq_count == 0) {
            std::error_code ec;
            const std::size_t n = copy_out(recv_buf, data, ec);
            return complete_op(recv_op.op, ec, n, peer);
        }
        if (rq_count == receive_slots || data.size() > slot_size) {
            ++st.receive_drops;
            return;
        }
        const std::size_t slot = (rq_head + rq_count) % receive_slots;
        if (!data.empty())
            std::memcpy(rq.data() + slot * slot_size, data.data(), data.size());
        rq_size[slot] = data.size();
        rq_peer[slot] = peer;
        ++rq_count;
    }

    std::size_t copy_out(asio::mutable_buffer to, std::span<const std::byte> data,
                         std::error_code& ec) {
        const std::size_t n = std::min(to.size(), data.size());
        if (n != 0)
            std::memcpy(to.data(), data.data(), n);
        if (n < data.size()) {
            ++st.truncated;
            ec = make_error_code(error::buffer_too_small);
        }
        return n;
    }

    void end_peer_ops(std::error_code ec) {
        for (auto& o : perm_ops)
            complete_op(o.op, ec);
        for (auto& o : chan_ops)
            complete_op(o.op, ec, std::uint16_t{0});
        tidy();
    }

    // The allocation is over (lost, released, or the client closed): everything
    // pending ends with `ec`, and so will every later operation.
    void fail_all(std::error_code ec) {
        if (!terminal)
            terminal = ec;
        complete_op(allocate_op.op, ec, endpoint{});
        complete_op(refresh_op.op, ec);
        complete_op(dealloc_op.op, ec);
        end_peer_ops(ec);
        complete_op(recv_op.op, ec, std::size_t{0}, endpoint{});
    }

    void tidy() {
        std::erase_if(perm_ops, [](const auto& o) { return !o.op; });
        std::erase_if(chan_ops, [](const auto& o) { return !o.op; });
    }

    std::error_code refuse() const {
        if (closed)
            return aborted();
        return terminal;
    }

    static std::error_code aborted() { return make_error_code(asio::error::operation_aborted); }

    // Registers a cancellation handler for the op about to be made from `h`; returns
    // the op's id. `f(impl, id)` runs posted, never inside the slot's own handler.
    template <class Handler, class F>
    std::uint64_t on_cancel(Handler& h, F f) {
        const std::uint64_t id = ++next_op_id;
        auto slot = asio::get_associated_cancellation_slot(h);
        if (slot.is_connected())
            slot.assign([w = weak_from_this(), f, id](asio::cancellation_type) {
                if (auto self = w.lock())
                    asio::post(self->ex, [self, f, id] { f(*self, id); });
            });
        return id;
    }

    executor_type ex;
    turn::client_core core;
    std::optional<asio::ip::udp::socket> udp;
    std::optional<asio::ip::tcp::socket> tcp;
    asio::steady_timer timer;
    asio::ip::udp::endpoint server_udp;
    asio::ip::udp::endpoint rx_from;
    std::vector<std::byte> rx;
    std::vector<std::byte> wqueue, wactive;

    // Data waiting for async_receive_from.
    std::vector<std::byte> rq;
    std::size_t slot_size = 0;
    std::array<std::size_t, receive_slots> rq_size{};
    std::array<endpoint, receive_slots> rq_peer{};
    std::size_t rq_head = 0, rq_count = 0;

    tracked<std::error_code, endpoint> allocate_op;
    tracked<std::error_code> refresh_op, dealloc_op;
    std::vector<tracked<std::error_code>> perm_ops;
    std::vector<tracked<std::error_code, std::uint16_t>> chan_ops;
    tracked<std::error_code, std::size_t, endpoint> recv_op;
    asio::mutable_buffer recv_buf;
    std::uint64_t next_op_id = 0;

    std::error_code terminal;
    turn_client_stats st;
    time_point armed{};
    std::uint64_t timer_gen = 0;
    bool timer_waiting = false;
    bool receiving = false;
    bool writing = false;
    bool connecting = false;
    bool closed = false;
};

} // namespace detail

template <class F>
struct turn_client::initiation {
    using executor_type = turn_client::executor_type;
    std::shared_ptr<detail::turn_client_impl> impl;
    F f;

    executor_type get_executor() const noexcept { return impl->ex; }

    template <class Handler, class... Args>
    void operator()(Handler&& h, Args&&... args) const {
        f(*impl, std::forward<Handler>(h), std::forward<Args>(args)...);
    }
};

inline turn_client::turn_client(asio::ip::udp::socket socket, const endpoint& server,
                                turn::client_config cfg)
    : impl_(std::make_shared<detail::turn_client_impl>(std::move(socket), server, std::move(cfg))) {
}

inline turn_client::turn_client(asio::ip::tcp::socket socket, const endpoint& server,
                                turn::client_config cfg)
    : impl_(std::make_shared<detail::turn_client_impl>(std::move(socket), server, std::move(cfg))) {
}

inline turn_client& turn_client::operator=(turn_client&& other) noexcept {
    if (this != &other) {
        if (impl_)
            impl_->close();
        impl_ = std::move(other.impl_);
    }
    return *this;
}

inline turn_client::~turn_client() {
    if (impl_)
        impl_->close();
}

inline turn_client::executor_type turn_client::get_executor() const noexcept {
    return impl_->ex;
}

inline bool turn_client::is_tcp() const noexcept {
    return impl_->tcp.has_value();
}

inline std::error_code turn_client::send_to(const endpoint& peer, std::span<const std::byte> data) {
    return impl_->send_to(peer, data);
}

inline void turn_client::close() {
    impl_->close();
}

inline endpoint turn_client::relayed_endpoint() const {
    return impl_->core.relayed();
}
inline endpoint turn_client::mapped_endpoint() const {
    return impl_->core.mapped();
}

inline endpoint turn_client::local_endpoint() const {
    std::error_code ec;
    if (impl_->udp) {
        auto e = impl_->udp->local_endpoint(ec);
        return ec ? endpoint{} : from_asio(e);
    }
    auto e = impl_->tcp->local_endpoint(ec);
    return ec ? endpoint{} : endpoint{from_asio(e.address()), e.port()};
}

inline turn::client_state turn_client::state() const {
    return impl_->core.state();
}

inline turn_client_stats turn_client::stats() const {
    turn_client_stats s = impl_->st;
    s.core = impl_->core.stats();
    return s;
}

template <class Token>
auto turn_client::async_allocate(Token&& token) {
    auto f = [](detail::turn_client_impl& s, auto&& h) {
        s.start_allocate(std::forward<decltype(h)>(h));
    };
    return asio::async_initiate<Token, void(std::error_code, endpoint)>(
        initiation<decltype(f)>{impl_, f}, token);
}

template <class Token>
auto turn_client::async_refresh(Token&& token) {
    auto f = [](detail::turn_client_impl& s, auto&& h) {
        s.start_refresh(std::forward<decltype(h)>(h));
    };
    return asio::async_initiate<Token, void(std::error_code)>(initiation<decltype(f)>{impl_, f},
                                                              token);
}

template <class Token>
auto turn_client::async_create_permission(const endpoint& peer, Token&& token) {
    auto f = [](detail::turn_client_impl& s, auto&& h, const endpoint& p) {
        s.start_create_permission(std::forward<decltype(h)>(h), p);
    };
    return asio::async_initiate<Token, void(std::error_code)>(initiation<decltype(f)>{impl_, f},
                                                              token, peer);
}

template <class Token>
auto turn_client::async_bind_channel(const endpoint& peer, Token&& token) {
    auto f = [](detail::turn_client_impl& s, auto&& h, const endpoint& p) {
        s.start_bind_channel(std::forward<decltype(h)>(h), p);
    };
    return asio::async_initiate<Token, void(std::error_code, std::uint16_t)>(
        initiation<decltype(f)>{impl_, f}, token, peer);
}

template <class Token>
auto turn_client::async_receive_from(asio::mutable_buffer buffer, Token&& token) {
    auto f = [](detail::turn_client_impl& s, auto&& h, asio::mutable_buffer b) {
        s.start_receive_from(std::forward<decltype(h)>(h), b);
    };
    return asio::async_initiate<Token, void(std::error_code, std::size_t, endpoint)>(
        initiation<decltype(f)>{impl_, f}, token, buffer);
}

template <class Token>
auto turn_client::async_deallocate(Token&& token) {
    auto f = [](detail::turn_client_impl& s, auto&& h) {
        s.start_deallocate(std::forward<decltype(h)>(h));
    };
    return asio::async_initiate<Token, void(std::error_code)>(initiation<decltype(f)>{impl_, f},
                                                              token);
}

} // namespace peerlink

#endif // PEERLINK_NET_IMPL_TURN_CLIENT_HPP
