// Implementation of peerlink/peer_connection.hpp: the thin Asio driver.
//
// Everything the connection decides is in connection_core; this file only moves
// bytes between the core and the transport, runs one timer, and completes the
// user's operations. The state lives in a shared `impl` so that the transport's
// and the timer's handlers keep it alive until they have run, even after the
// peer_connection is gone.
#ifndef PEERLINK_IMPL_PEER_CONNECTION_HPP
#define PEERLINK_IMPL_PEER_CONNECTION_HPP

#include <asio/error.hpp>
#include <asio/post.hpp>
#include <openssl/rand.h>

#include <array>
#include <cstring>
#include <vector>

namespace peerlink {

template <class... Policies>
struct peer_connection<Policies...>::impl : std::enable_shared_from_this<impl> {
    static constexpr std::size_t rx_batch = 32;
    static constexpr std::size_t tx_batch = 64;
    using timer_type = typename transport_type::timer_type;

    template <class... Args>
    impl(const identity& me, const config& cfg, Args&&... args)
        : transport(std::forward<Args>(args)...), core(settings_for(me, cfg), transport.now()),
          timer(transport.make_timer()),
          rx_storage(rx_batch * (cfg.transport.max_datagram_size + 1)) {
        auto size = cfg.transport.max_datagram_size + 1; // +1: a longer datagram is seen as one
        for (std::size_t i = 0; i < rx_batch; ++i)
            rx_slots[i].buffer = std::span<std::byte>(rx_storage.data() + i * size, size);
        core.pop_transmits(0);
    }

    static connection_settings settings_for(const identity& me, const config& cfg) {
        connection_settings s;
        s.local_id = me.id();
        s.local_identity = me;
        s.cfg = cfg;
        if (RAND_bytes(reinterpret_cast<unsigned char*>(&s.connection_id),
                       sizeof s.connection_id) != 1)
            s.connection_id = reinterpret_cast<std::uintptr_t>(&s) ^ 0x9e3779b97f4a7c15ull;
        return s;
    }

    void start() {
        if (receiving || closed)
            return;
        receiving = true;
        transport.async_receive(
            std::span<rx_slot>(rx_slots),
            [self = this->shared_from_this()](std::error_code ec, std::size_t n) {
                self->on_receive(ec, n);
            });
    }

    void on_receive(std::error_code ec, std::size_t n) {
        receiving = false;
        if (closed || ec == asio::error::operation_aborted)
            return;
        if (ec) {
            if (log.enabled(log_level::warning))
                log.log(log_level::warning, "peer_connection", "receive: " + ec.message());
        }
        auto now = transport.now();
        for (std::size_t i = 0; i < n && !ec; ++i) {
            auto& s = rx_slots[i];
            if (s.truncated || s.size > s.buffer.size() - 1) {
                ++truncated;
                continue;
            }
            core.handle_datagram(s.buffer.first(s.size), s.from, now);
        }
        pump();
        start();
    }

    // Moves everything the core has for the outside world: packets, events,
    // datagrams, completions, and the next timeout.
    void pump() {
        flush();
        while (auto e = core.poll_event())
            std::visit([this](const auto& ev) { this->on_event(ev); }, *e);
        deliver();
        if (send_op && core.send_capacity() > 0)
            finish_send();
        if constexpr (is_reliable) {
            try_read();
            try_write();
            if constexpr (has_messages) {
                try_send_message();
                try_receive_message();
            }
            flush();
        }
        if (is_terminal(core.kind())) // nothing more will happen: release the socket
            return shutdown();
        arm_timer();
    }

    // Copies a buffer sequence's first buffers (partial reads and writes are allowed,
    // so a fixed array suffices and no allocation is made per operation).
    template <class Buffer, class Sequence>
    static std::size_t gather(std::array<Buffer, 16>& out, const Sequence& seq) {
        std::size_t n = 0;
        for (auto it = asio::buffer_sequence_begin(seq);
             it != asio::buffer_sequence_end(seq) && n < out.size(); ++it)
            if (Buffer b(*it); b.size() != 0)
                out[n++] = b;
        return n;
    }

    // What a reliable operation completes with when the core said `ec`.
    static std::error_code stream_error(std::error_code ec) {
        if (ec == error::connection_closed)
            return asio::error::eof; // end of stream, as asio::async_read expects
        return ec;
    }

    void try_read() {
        if (!read_op)
            return;
        if (read_count == 0)
            return detail::complete_op(read_op, std::error_code{}, std::size_t{0});
        if (!core.stream_readable())
            return;
        std::size_t total = 0;
        std::error_code ec;
        for (std::size_t i = 0; i < read_count; ++i) {
            auto& b = read_bufs[i];
            auto n = core.stream_read(
                std::span<std::byte>(static_cast<std::byte*>(b.data()), b.size()), ec);
            total += n;
            if (n < b.size())
                break;
        }
        if (total)
            return detail::complete_op(read_op, std::error_code{}, total);
        if (ec != std::errc::operation_would_block)
            detail::complete_op(read_op, stream_error(ec), std::size_t{0});
    }

    void try_write() {
        if (!write_op)
            return;
        if (write_count == 0)
            return detail::complete_op(write_op, std::error_code{}, std::size_t{0});
        if (!core.stream_writable())
            return;
        std::size_t total = 0;
        std::error_code ec;
        auto now = transport.now();
        for (std::size_t i = 0; i < write_count; ++i) {
            auto& b = write_bufs[i];
            auto n = core.stream_write(
                std::span<const std::byte>(static_cast<const std::byte*>(b.data()), b.size()), now,
                ec);
            total += n;
            if (n < b.size())
                break;
        }
        if (total)
            return detail::complete_op(write_op, std::error_code{}, total);
        if (ec != std::errc::operation_would_block)
            detail::complete_op(write_op, stream_error(ec), std::size_t{0});
    }

    void try_send_message() {
        if constexpr (has_messages) {
            if (!msg_send_op || !core.stream_writable())
                return;
            auto ec = core.send_message(
                std::span<const std::byte>(static_cast<const std::byte*>(msg_send_buf.data()),
                                           msg_send_buf.size()),
                transport.now());
            if (ec != std::errc::operation_would_block)
                detail::complete_op(msg_send_op, stream_error(ec),
                                    ec ? std::size_t{0} : msg_send_buf.size());
        }
    }

    void try_receive_message() {
        if constexpr (has_messages) {
            if (!msg_recv_op || !core.stream_readable())
                return;
            std::error_code ec;
            auto n = core.receive_message(
                std::span<std::byte>(static_cast<std::byte*>(msg_recv_buf.data()),
                                     msg_recv_buf.size()),
                ec);
            if (ec == error::buffer_too_small)
                return detail::complete_op(msg_recv_op, ec, core.peek_message_size());
            if (ec != std::errc::operation_would_block)
                detail::complete_op(msg_recv_op, stream_error(ec), n);
        }
    }

    void flush() {
        while (!closed && !writable_wait && core.transmit_count() > 0) {
            std::size_t n = std::min(core.transmit_count(), tx_batch);
            for (std::size_t i = 0; i < n; ++i) {
                auto t = core.peek_transmit(i);
                batch[i] = tx_datagram{t.data, t.to};
            }
            std::error_code ec;
            std::size_t sent =
                transport.try_send(std::span<const tx_datagram>(batch.data(), n), ec);
            core.pop_transmits(sent);
            if constexpr (is_reliable)
                core.refill(transport.now()); // KCP datagrams waiting for free slots
            if (!ec)
                continue;
            if (ec == std::errc::operation_would_block) {
                ++would_block;
                writable_wait = true;
                transport.async_wait_writable(
                    [self = this->shared_from_this()](std::error_code wec) {
                        self->writable_wait = false;
                        if (!wec && !self->closed)
                            self->pump();
                    });
                return;
            }
            // That datagram failed (unreachable, wrong family): drop it, go on.
            ++send_errors;
            core.pop_transmits(1);
            if (log.enabled(log_level::debug))
                log.log(log_level::debug, "peer_connection", "send: " + ec.message());
        }
    }

    void on_event(const features_changed_event& e) {
        if (log.enabled(log_level::info))
            log.log(log_level::info, "peer_connection",
                    "pipeline: fec " + core.stats().fec + ", cipher " + core.stats().cipher +
                        ", disguise " + core.stats().disguise +
                        (e.ec ? " (" + e.ec.message() + ")" : std::string()));
    }

    void on_event(const state_changed_event& e) {
        if (log.enabled(log_level::info))
            log.log(log_level::info, "peer_connection",
                    std::string("state ") + std::string(to_string(e.from)) + " -> " +
                        std::string(to_string(e.to)));
        switch (e.to) {
        case state_kind::connected:
        case state_kind::relayed:
            detail::complete_op(connect_op, std::error_code{});
            break;
        case state_kind::waiting:
            detail::complete_op(connect_op, std::get<state::waiting>(core.state()).reason);
            break;
        case state_kind::failed:
        case state_kind::closed:
            if constexpr (is_reliable)
                detail::complete_op(close_op, core.all_acknowledged()
                                                  ? std::error_code{}
                                                  : make_error_code(error::handshake_timeout));
            detail::complete_op(connect_op, end_reason());
            detail::complete_op(recv_op, end_reason(), std::size_t{0});
            detail::complete_op(send_op, end_reason(), std::size_t{0});
            break;
        default:
            break;
        }
    }

    // Why the connection ended, as the user's operations see it.
    std::error_code end_reason() const {
        if (auto* c = std::get_if<state::closed>(&core.state()))
            return c->reason ? c->reason : make_error_code(error::not_connected);
        if (auto* f = std::get_if<state::failed>(&core.state()))
            return f->reason;
        return make_error_code(error::not_connected);
    }

    void deliver() {
        if (!recv_op)
            return;
        auto d = core.peek_datagram();
        if (!d)
            return;
        std::size_t n = std::min(d->size(), recv_buffer.size());
        if (n)
            std::memcpy(recv_buffer.data(), d->data(), n);
        std::error_code ec;
        if (n < d->size())
            ec = make_error_code(error::buffer_too_small);
        core.pop_datagram();
        detail::complete_op(recv_op, ec, n);
    }

    void finish_send() {
        auto ec = core.send_datagram(
            std::span<const std::byte>(static_cast<const std::byte*>(send_buffer.data()),
                                       send_buffer.size()),
            transport.now());
        detail::complete_op(send_op, ec, ec ? std::size_t{0} : send_buffer.size());
        flush();
    }

    void arm_timer() {
        auto next = core.poll_timeout();
        if (closed || !next) {
            if (armed != time_point::max()) {
                armed = time_point::max();
                timer.cancel();
            }
            return;
        }
        // Re-arm only for an earlier deadline: a timer that fires early is harmless
        // (handle_timeout does what is due), and not re-arming per packet saves work.
        if (*next >= armed)
            return;
        armed = *next;
        timer.cancel();
        timer.expires_at(*next);
        timer.async_wait([self = this->shared_from_this(), gen = ++timer_gen](std::error_code) {
            if (gen != self->timer_gen || self->closed)
                return;
            self->armed = time_point::max();
            self->core.handle_timeout(self->transport.now());
            self->pump();
        });
    }

    void shutdown() {
        if (closed)
            return;
        core.close(transport.now());
        flush();
        closed = true;
        abort_ops();
        timer.cancel();
        transport.close();
    }

    void abort_ops() {
        auto aborted = make_error_code(asio::error::operation_aborted);
        detail::complete_op(connect_op, aborted);
        detail::complete_op(recv_op, aborted, std::size_t{0});
        detail::complete_op(send_op, aborted, std::size_t{0});
        detail::complete_op(read_op, aborted, std::size_t{0});
        detail::complete_op(write_op, aborted, std::size_t{0});
        detail::complete_op(msg_send_op, aborted, std::size_t{0});
        detail::complete_op(msg_recv_op, aborted, std::size_t{0});
        detail::complete_op(close_op, aborted);
    }

    // Installs a cancellation handler that aborts the op in `which`. The work is
    // posted: completing from inside the slot's own handler would free it mid-call.
    template <class Handler, class Op>
    void on_cancel(Handler& h, Op impl::*which) {
        auto slot = asio::get_associated_cancellation_slot(h);
        if (!slot.is_connected())
            return;
        slot.assign([w = this->weak_from_this(), which](asio::cancellation_type) {
            if (auto self = w.lock())
                asio::post(self->transport.get_executor(), [self, which] {
                    auto& op = (*self).*which;
                    if constexpr (std::is_same_v<Op, detail::pending_op_ptr<std::error_code>>)
                        detail::complete_op(op, make_error_code(asio::error::operation_aborted));
                    else
                        detail::complete_op(op, make_error_code(asio::error::operation_aborted),
                                            std::size_t{0});
                });
        });
    }

    transport_type transport;
    core_type core;
    timer_type timer;
    std::vector<std::byte> rx_storage;
    std::array<rx_slot, rx_batch> rx_slots{};
    std::array<tx_datagram, tx_batch> batch{};
    logger log;
    bool receiving = false;
    bool writable_wait = false;
    bool closed = false;
    time_point armed = time_point::max();
    std::uint64_t timer_gen = 0;
    std::uint64_t truncated = 0, would_block = 0, send_errors = 0;

    detail::pending_op_ptr<std::error_code> connect_op;
    detail::pending_op_ptr<std::error_code, std::size_t> recv_op;
    detail::pending_op_ptr<std::error_code, std::size_t> send_op;
    asio::mutable_buffer recv_buffer;
    asio::const_buffer send_buffer;

    // The reliable channel's operations.
    detail::pending_op_ptr<std::error_code, std::size_t> read_op, write_op, msg_send_op,
        msg_recv_op;
    detail::pending_op_ptr<std::error_code> close_op;
    std::array<asio::mutable_buffer, 16> read_bufs{};
    std::array<asio::const_buffer, 16> write_bufs{};
    std::size_t read_count = 0, write_count = 0;
    asio::const_buffer msg_send_buf;
    asio::mutable_buffer msg_recv_buf;
};

template <class... Policies>
peer_connection<Policies...>::peer_connection(const executor_type& ex, const identity& me,
                                              const config& cfg)
    : impl_(std::make_shared<impl>(me, cfg, ex, cfg)) {
    static_assert(std::is_constructible_v<transport_type, const executor_type&, const config&>,
                  "peerlink::peer_connection: this transport is not made from an executor and "
                  "a config; use the with_transport constructor");
    impl_->start();
}

template <class... Policies>
template <class... Args>
peer_connection<Policies...>::peer_connection(with_transport_t, const identity& me,
                                              const config& cfg, Args&&... args)
    : impl_(std::make_shared<impl>(me, cfg, std::forward<Args>(args)...)) {
    impl_->start();
}

template <class... Policies>
peer_connection<Policies...>::~peer_connection() {
    if (impl_)
        impl_->shutdown();
}

template <class... Policies>
auto peer_connection<Policies...>::get_executor() const noexcept -> executor_type {
    return impl_->transport.get_executor();
}

template <class... Policies>
template <class CompletionToken>
auto peer_connection<Policies...>::async_connect(const endpoint& remote,
                                                 std::optional<peer_id> expected,
                                                 CompletionToken&& token) {
    auto init = [this](auto handler, endpoint remote, std::optional<peer_id> expected) {
        auto& s = *impl_;
        auto ex = s.transport.get_executor();
        std::error_code ec;
        if (s.connect_op)
            ec = make_error_code(error::operation_in_progress);
        else if (s.closed)
            ec = make_error_code(error::not_connected);
        else
            ec = s.core.connect(traversal_request{remote}, expected, s.transport.now());
        auto op = detail::make_pending_op<std::error_code>(std::move(handler), ex);
        if (ec) {
            detail::complete_op(op, ec);
        } else {
            s.connect_op = std::move(op);
        }
        if (!ec)
            s.pump();
    };
    return asio::async_initiate<CompletionToken, void(std::error_code)>(
        [this, init](auto handler, endpoint remote, std::optional<peer_id> expected) {
            impl_->on_cancel(handler, &impl::connect_op);
            init(std::move(handler), remote, expected);
        },
        token, remote, expected);
}

template <class... Policies>
template <class CompletionToken>
auto peer_connection<Policies...>::async_accept(std::optional<peer_id> expected,
                                                CompletionToken&& token) {
    return asio::async_initiate<CompletionToken, void(std::error_code)>(
        [this](auto handler, std::optional<peer_id> expected) {
            auto& s = *impl_;
            s.on_cancel(handler, &impl::connect_op);
            std::error_code ec;
            if (s.connect_op)
                ec = make_error_code(error::operation_in_progress);
            else if (s.closed)
                ec = make_error_code(error::not_connected);
            else
                ec = s.core.accept(expected, s.transport.now());
            auto op = detail::make_pending_op<std::error_code>(std::move(handler),
                                                               s.transport.get_executor());
            if (ec)
                detail::complete_op(op, ec);
            else
                s.connect_op = std::move(op);
        },
        token, expected);
}

template <class... Policies>
template <class CompletionToken>
auto peer_connection<Policies...>::async_send(asio::const_buffer datagram,
                                              CompletionToken&& token) {
    return asio::async_initiate<CompletionToken, void(std::error_code, std::size_t)>(
        [this](auto handler, asio::const_buffer datagram) {
            auto& s = *impl_;
            s.on_cancel(handler, &impl::send_op);
            auto op = detail::make_pending_op<std::error_code, std::size_t>(
                std::move(handler), s.transport.get_executor());
            if (s.send_op)
                return detail::complete_op(op, make_error_code(error::operation_in_progress),
                                           std::size_t{0});
            if (s.closed)
                return detail::complete_op(op, s.end_reason(), std::size_t{0});
            s.send_buffer = datagram;
            s.send_op = std::move(op);
            if (s.core.send_capacity() > 0 || datagram.size() > s.core.max_datagram_size() ||
                (s.core.kind() != state_kind::connected && s.core.kind() != state_kind::relayed))
                s.finish_send(); // completes now: queued, or an error
            s.arm_timer();
        },
        token, datagram);
}

template <class... Policies>
template <class CompletionToken>
auto peer_connection<Policies...>::async_receive(asio::mutable_buffer buffer,
                                                 CompletionToken&& token) {
    return asio::async_initiate<CompletionToken, void(std::error_code, std::size_t)>(
        [this](auto handler, asio::mutable_buffer buffer) {
            auto& s = *impl_;
            s.on_cancel(handler, &impl::recv_op);
            auto op = detail::make_pending_op<std::error_code, std::size_t>(
                std::move(handler), s.transport.get_executor());
            if (s.recv_op)
                return detail::complete_op(op, make_error_code(error::operation_in_progress),
                                           std::size_t{0});
            s.recv_buffer = buffer;
            s.recv_op = std::move(op);
            s.deliver();
            if (s.recv_op && (s.closed || is_terminal(s.core.kind())))
                detail::complete_op(s.recv_op, s.end_reason(), std::size_t{0});
        },
        token, buffer);
}

template <class... Policies>
template <class MutableBufferSequence, class CompletionToken>
auto peer_connection<Policies...>::async_read_some(const MutableBufferSequence& buffers,
                                                   CompletionToken&& token) {
    static_assert(is_reliable, "peerlink::peer_connection: the reliable channel needs a "
                               "reliability policy such as peerlink::kcp<...>");
    return asio::async_initiate<CompletionToken, void(std::error_code, std::size_t)>(
        [this](auto handler, const MutableBufferSequence& buffers) {
            auto& s = *impl_;
            s.on_cancel(handler, &impl::read_op);
            auto op = detail::make_pending_op<std::error_code, std::size_t>(
                std::move(handler), s.transport.get_executor());
            if (s.read_op)
                return detail::complete_op(op, make_error_code(error::operation_in_progress),
                                           std::size_t{0});
            s.read_count = impl::gather(s.read_bufs, buffers);
            s.read_op = std::move(op);
            s.try_read();
            s.arm_timer();
        },
        token, buffers);
}

template <class... Policies>
template <class ConstBufferSequence, class CompletionToken>
auto peer_connection<Policies...>::async_write_some(const ConstBufferSequence& buffers,
                                                    CompletionToken&& token) {
    static_assert(is_reliable, "peerlink::peer_connection: the reliable channel needs a "
                               "reliability policy such as peerlink::kcp<...>");
    return asio::async_initiate<CompletionToken, void(std::error_code, std::size_t)>(
        [this](auto handler, const ConstBufferSequence& buffers) {
            auto& s = *impl_;
            s.on_cancel(handler, &impl::write_op);
            auto op = detail::make_pending_op<std::error_code, std::size_t>(
                std::move(handler), s.transport.get_executor());
            if (s.write_op)
                return detail::complete_op(op, make_error_code(error::operation_in_progress),
                                           std::size_t{0});
            s.write_count = impl::gather(s.write_bufs, buffers);
            s.write_op = std::move(op);
            s.try_write();
            s.flush();
            s.arm_timer();
        },
        token, buffers);
}

template <class... Policies>
template <class CompletionToken>
auto peer_connection<Policies...>::async_send_message(asio::const_buffer message,
                                                      CompletionToken&& token) {
    static_assert(has_messages, "peerlink::peer_connection: whole messages need KCP in "
                                "message mode (kcp_settings::stream == false)");
    return asio::async_initiate<CompletionToken, void(std::error_code, std::size_t)>(
        [this](auto handler, asio::const_buffer message) {
            auto& s = *impl_;
            s.on_cancel(handler, &impl::msg_send_op);
            auto op = detail::make_pending_op<std::error_code, std::size_t>(
                std::move(handler), s.transport.get_executor());
            if (s.msg_send_op)
                return detail::complete_op(op, make_error_code(error::operation_in_progress),
                                           std::size_t{0});
            s.msg_send_buf = message;
            s.msg_send_op = std::move(op);
            s.try_send_message();
            s.flush();
            s.arm_timer();
        },
        token, message);
}

template <class... Policies>
template <class CompletionToken>
auto peer_connection<Policies...>::async_receive_message(asio::mutable_buffer buffer,
                                                         CompletionToken&& token) {
    static_assert(has_messages, "peerlink::peer_connection: whole messages need KCP in "
                                "message mode (kcp_settings::stream == false)");
    return asio::async_initiate<CompletionToken, void(std::error_code, std::size_t)>(
        [this](auto handler, asio::mutable_buffer buffer) {
            auto& s = *impl_;
            s.on_cancel(handler, &impl::msg_recv_op);
            auto op = detail::make_pending_op<std::error_code, std::size_t>(
                std::move(handler), s.transport.get_executor());
            if (s.msg_recv_op)
                return detail::complete_op(op, make_error_code(error::operation_in_progress),
                                           std::size_t{0});
            s.msg_recv_buf = buffer;
            s.msg_recv_op = std::move(op);
            s.try_receive_message();
            s.arm_timer();
        },
        token, buffer);
}

template <class... Policies>
std::size_t peer_connection<Policies...>::max_message_size() const noexcept {
    static_assert(is_reliable, "peerlink::peer_connection: the reliable channel needs a "
                               "reliability policy such as peerlink::kcp<...>");
    return impl_->core.max_message_size();
}

template <class... Policies>
template <class CompletionToken>
auto peer_connection<Policies...>::async_close(CompletionToken&& token) {
    static_assert(is_reliable, "peerlink::peer_connection: the reliable channel needs a "
                               "reliability policy such as peerlink::kcp<...>");
    return asio::async_initiate<CompletionToken, void(std::error_code)>(
        [this](auto handler) {
            auto& s = *impl_;
            s.on_cancel(handler, &impl::close_op);
            auto op = detail::make_pending_op<std::error_code>(std::move(handler),
                                                               s.transport.get_executor());
            if (s.close_op)
                return detail::complete_op(op, make_error_code(error::operation_in_progress));
            if (s.closed || is_terminal(s.core.kind()))
                return detail::complete_op(op, std::error_code{});
            s.close_op = std::move(op);
            s.core.close_after_flush(s.transport.now());
            s.pump();
        },
        token);
}

template <class... Policies>
void peer_connection<Policies...>::close() {
    impl_->shutdown();
}

template <class... Policies>
void peer_connection<Policies...>::cancel() {
    impl_->abort_ops();
}

template <class... Policies>
const connection_state& peer_connection<Policies...>::state() const noexcept {
    return impl_->core.state();
}

template <class... Policies>
std::error_code peer_connection<Policies...>::set_features(const pipeline_features& wanted) {
    auto ec = impl_->core.request_features(wanted, impl_->transport.now());
    impl_->pump();
    return ec;
}

template <class... Policies>
const pipeline_features& peer_connection<Policies...>::features() const noexcept {
    return impl_->core.features();
}

template <class... Policies>
bool peer_connection<Policies...>::features_pending() const noexcept {
    return impl_->core.features_pending();
}

template <class... Policies>
peerlink::stats peer_connection<Policies...>::stats() const {
    auto s = impl_->core.stats();
    s.dropped_truncated += impl_->truncated;
    s.send_would_block += impl_->would_block;
    s.dropped_send_errors += impl_->send_errors;
    s.local_endpoint = local_endpoint().to_string();
    return s;
}

template <class... Policies>
endpoint peer_connection<Policies...>::local_endpoint() const {
    return impl_->transport.local_endpoint();
}

template <class... Policies>
std::optional<peer_id> peer_connection<Policies...>::remote_peer() const {
    return impl_->core.remote_peer();
}

template <class... Policies>
std::size_t peer_connection<Policies...>::max_datagram_size() const noexcept {
    return impl_->core.max_datagram_size();
}

template <class... Policies>
void peer_connection<Policies...>::set_logger(logger l) {
    impl_->log = std::move(l);
}

template <class... Policies>
auto peer_connection<Policies...>::transport() noexcept -> transport_type& {
    return impl_->transport;
}

template <class... Policies>
auto peer_connection<Policies...>::core() noexcept -> core_type& {
    return impl_->core;
}

} // namespace peerlink

#endif // PEERLINK_IMPL_PEER_CONNECTION_HPP
