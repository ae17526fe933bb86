// Implementation of peerlink/net/kcp_session.hpp: the thin Asio driver of a kcp_core.
//
// The state lives in a shared `impl` so that the transport's and the timer's
// handlers keep it alive until they have run, even after the kcp_session is gone
// (the same scheme as peer_connection).
#ifndef PEERLINK_NET_IMPL_KCP_SESSION_HPP
#define PEERLINK_NET_IMPL_KCP_SESSION_HPP

#include <asio/associated_allocator.hpp>
#include <asio/associated_cancellation_slot.hpp>
#include <asio/associated_executor.hpp>
#include <asio/dispatch.hpp>
#include <asio/error.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/post.hpp>

#include <algorithm>
#include <array>
#include <cstring>
#include <span>
#include <type_traits>
#include <utility>

namespace peerlink {

namespace detail {

// Wraps a user's handler so that pending_op posts its completion to the I/O executor,
// from where it is dispatched to the handler's own executor: what Asio's I/O objects
// do. A handler whose executor is the system executor (use_future) then runs on the
// I/O thread, and so does the next step of a composed operation (asio::async_read),
// which the session, not thread-safe, needs.
template <class Handler, class IoExecutor>
struct kcp_session_handler {
    Handler handler;
    IoExecutor io_ex;
    asio::executor_work_guard<asio::associated_executor_t<Handler, IoExecutor>> work;

    kcp_session_handler(Handler&& h, const IoExecutor& ex)
        : handler(std::move(h)), io_ex(ex), work(asio::get_associated_executor(handler, ex)) {}

    using executor_type = IoExecutor;
    executor_type get_executor() const noexcept { return io_ex; }

    using cancellation_slot_type = asio::associated_cancellation_slot_t<Handler>;
    cancellation_slot_type get_cancellation_slot() const noexcept {
        return asio::get_associated_cancellation_slot(handler);
    }

    using allocator_type = asio::associated_allocator_t<Handler>;
    allocator_type get_allocator() const noexcept {
        return asio::get_associated_allocator(handler);
    }

    void operator()(std::error_code ec, std::size_t n) {
        auto w = std::move(work);
        asio::dispatch(w.get_executor(),
                       [h = std::move(handler), ec, n]() mutable { std::move(h)(ec, n); });
    }
};

} // namespace detail

template <class Transport>
struct kcp_session<Transport>::impl : std::enable_shared_from_this<impl> {
    // Asio's reactive sockets also gather at most a fixed number of buffers per call.
    static constexpr std::size_t max_buffers = 16;
    using timer_type = typename Transport::timer_type;
    using op_ptr = detail::pending_op_ptr<std::error_code, std::size_t>;

    template <class... Args>
    impl(const kcp_settings& s, std::optional<endpoint> r, Args&&... args)
        : transport(std::forward<Args>(args)...), core(s, transport.now()),
          timer(transport.make_timer()), remote(r) {
        mtu = core.settings().mtu;
        // +1: a datagram longer than mtu shows up as longer, not as a cut mtu.
        const std::size_t rx_size = mtu + 1;
        rx_storage = std::make_unique_for_overwrite<std::byte[]>(rx_batch * rx_size);
        for (std::size_t i = 0; i < rx_batch; ++i)
            rx_slots[i].buffer = std::span<std::byte>(rx_storage.get() + i * rx_size, rx_size);
        tx_storage = std::make_unique_for_overwrite<std::byte[]>(tx_batch * mtu);
        if (!core.settings().stream) {
            // The core accepts messages of up to min(rcv_wnd, 256) fragments; a reader
            // with a smaller buffer gets one through here.
            stage_size = std::min<std::size_t>(core.settings().rcv_wnd, 256) * core.mss();
            stage = std::make_unique_for_overwrite<std::byte[]>(stage_size);
        }
    }

    void start_receive() {
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
        if (closed || ec == asio::error::operation_aborted || ec == asio::error::bad_descriptor)
            return; // closed, possibly through transport()
        if (ec) {
            // The transport already skips ICMP errors; anything else is counted and
            // the loop goes on, as Asio's own servers do.
            ++st.receive_errors;
            n = 0;
        }
        ++st.receive_batches;
        const auto now = transport.now();
        const std::uint32_t conv = core.conv();
        for (std::size_t i = 0; i < n; ++i) {
            auto& s = rx_slots[i];
            if (remote && s.from != *remote) {
                ++st.datagrams_foreign;
                continue;
            }
            if (s.truncated || s.size > mtu) {
                ++st.datagrams_truncated;
                continue;
            }
            const auto data = std::span<const std::byte>(s.buffer.data(), s.size);
            if (!remote) {
                const auto c = kcp_peek_conv(data);
                if (!c) {
                    ++st.datagrams_malformed;
                    continue;
                }
                if (*c != conv) {
                    ++st.datagrams_bad_conv;
                    continue;
                }
                remote = s.from;
            }
            const auto e = core.input(data, now);
            if (!e)
                ++st.datagrams_received;
            else if (e == kcp_error::conv_mismatch)
                ++st.datagrams_bad_conv;
            else
                ++st.datagrams_malformed;
        }
        pump();
        start_receive();
    }

    // Moves everything the core has: user data both ways, datagrams, the next timeout.
    void pump() {
        if (closed)
            return;
        std::error_code ec;
        std::size_t n = 0;
        if (read_op && try_read(ec, n))
            detail::complete_op(read_op, ec, n);
        if (write_op && try_write(ec, n))
            detail::complete_op(write_op, ec, n);
        flush_tx();
        arm_timer();
    }

    bool try_read(std::error_code& ec, std::size_t& n) {
        ec.clear();
        n = 0;
        const bool stream = core.settings().stream;
        for (std::size_t i = 0; i < nrbufs; ++i) {
            auto* p = static_cast<std::byte*>(rbufs[i].data());
            const std::size_t size = rbufs[i].size();
            std::size_t off = 0;
            while (off < size) {
                if (stage_pos < stage_len) {
                    const std::size_t k = std::min(size - off, stage_len - stage_pos);
                    std::memcpy(p + off, stage.get() + stage_pos, k);
                    stage_pos += k;
                    off += k;
                    continue;
                }
                std::error_code rec;
                if (stream) {
                    const std::size_t k = core.receive({p + off, size - off}, rec);
                    if (k == 0)
                        break;
                    off += k;
                    continue;
                }
                if (!core.readable())
                    break;
                const std::size_t m = core.peek_size();
                if (m > 0 && m <= size - off) {
                    off += core.receive({p + off, size - off}, rec);
                } else {
                    // Too large for what is left of the buffer (or empty: dropped here,
                    // since a 0-byte read means end of stream to asio::async_read).
                    stage_len = core.receive({stage.get(), stage_size}, rec);
                    stage_pos = 0;
                    if (rec) // cannot happen: the stage holds any message the core accepts
                        break;
                }
            }
            n += off;
            if (off < size)
                break;
        }
        if (n > 0)
            return true;
        if (core.is_dead()) {
            ec = make_error_code(kcp_error::dead_link);
            return true;
        }
        return false;
    }

    bool try_write(std::error_code& ec, std::size_t& n) {
        ec.clear();
        n = 0;
        if (core.is_dead()) {
            ec = make_error_code(kcp_error::dead_link);
            return true;
        }
        const bool stream = core.settings().stream;
        const std::size_t mss = core.mss();
        for (std::size_t i = 0; i < nwbufs; ++i) {
            const auto* p = static_cast<const std::byte*>(wbufs[i].data());
            std::size_t left = wbufs[i].size();
            while (left > 0) {
                std::size_t k = std::min(left, core.send_capacity());
                if (!stream) // like kcp-go's Write: messages of one segment
                    k = std::min(k, mss);
                if (k == 0 || core.send({p, k}))
                    return n > 0;
                p += k;
                left -= k;
                n += k;
            }
        }
        return n > 0;
    }

    void flush_tx() {
        if (!remote)
            return; // a listener without a peer yet: the core keeps its datagrams
        while (!closed && !writable_wait) {
            if (tx_pos == tx_len) {
                tx_pos = tx_len = 0;
                while (tx_len < tx_batch) {
                    std::byte* slot = tx_storage.get() + tx_len * mtu;
                    const std::size_t k = core.poll_transmit({slot, mtu});
                    if (k == 0)
                        break;
                    batch[tx_len++] = tx_datagram{{slot, k}, *remote};
                }
                if (tx_len == 0)
                    return;
            }
            std::error_code ec;
            ++st.send_batches;
            const std::size_t sent = transport.try_send(
                std::span<const tx_datagram>(batch.data() + tx_pos, tx_len - tx_pos), ec);
            tx_pos += sent;
            st.datagrams_sent += sent;
            if (!ec)
                continue;
            if (ec == std::errc::operation_would_block) {
                ++st.send_would_block;
                writable_wait = true;
                transport.async_wait_writable([self = this->shared_from_this()](std::error_code) {
                    self->writable_wait = false;
                    self->pump();
                });
                return;
            }
            if (ec == asio::error::bad_descriptor)
                return;       // closed under us
            ++st.send_errors; // that datagram only: drop it, KCP retransmits
            ++tx_pos;
        }
    }

    void arm_timer() {
        const auto next = core.poll_timeout();
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

    template <class Handler, class Buffers>
    void start(read_op_tag, Handler&& h, const Buffers& buffers) {
        on_cancel(h, &impl::read_op);
        auto op = make_op(std::forward<Handler>(h));
        if (read_op)
            return detail::complete_op(op, make_error_code(error::operation_in_progress),
                                       std::size_t{0});
        if (closed)
            return detail::complete_op(op, make_error_code(error::not_connected), std::size_t{0});
        nrbufs = 0;
        std::size_t total = 0;
        for (auto it = asio::buffer_sequence_begin(buffers);
             it != asio::buffer_sequence_end(buffers) && nrbufs < max_buffers; ++it) {
            asio::mutable_buffer b(*it);
            if (b.size() == 0)
                continue;
            rbufs[nrbufs++] = b;
            total += b.size();
        }
        if (total == 0)
            return detail::complete_op(op, std::error_code{}, std::size_t{0});
        read_op = std::move(op);
        pump();
    }

    template <class Handler, class Buffers>
    void start(write_op_tag, Handler&& h, const Buffers& buffers) {
        on_cancel(h, &impl::write_op);
        auto op = make_op(std::forward<Handler>(h));
        if (write_op)
            return detail::complete_op(op, make_error_code(error::operation_in_progress),
                                       std::size_t{0});
        if (closed)
            return detail::complete_op(op, make_error_code(error::not_connected), std::size_t{0});
        nwbufs = 0;
        std::size_t total = 0;
        for (auto it = asio::buffer_sequence_begin(buffers);
             it != asio::buffer_sequence_end(buffers) && nwbufs < max_buffers; ++it) {
            asio::const_buffer b(*it);
            if (b.size() == 0)
                continue;
            wbufs[nwbufs++] = b;
            total += b.size();
        }
        if (total == 0)
            return detail::complete_op(op, std::error_code{}, std::size_t{0});
        write_op = std::move(op);
        pump();
    }

    template <class Handler>
    op_ptr make_op(Handler&& h) {
        using io_executor = typename Transport::executor_type;
        return detail::make_pending_op<std::error_code, std::size_t>(
            detail::kcp_session_handler<std::decay_t<Handler>, io_executor>(
                std::forward<Handler>(h), transport.get_executor()),
            transport.get_executor());
    }

    // Installs a cancellation handler that aborts the op in `which`. The work is
    // posted: completing from inside the slot's own handler would free it mid-call.
    template <class Handler>
    void on_cancel(Handler& h, op_ptr impl::*which) {
        auto slot = asio::get_associated_cancellation_slot(h);
        if (!slot.is_connected())
            return;
        slot.assign([w = this->weak_from_this(), which](asio::cancellation_type) {
            if (auto self = w.lock())
                asio::post(self->transport.get_executor(), [self, which] {
                    detail::complete_op((*self).*which,
                                        make_error_code(asio::error::operation_aborted),
                                        std::size_t{0});
                });
        });
    }

    void abort_ops() {
        const auto aborted = make_error_code(asio::error::operation_aborted);
        detail::complete_op(read_op, aborted, std::size_t{0});
        detail::complete_op(write_op, aborted, std::size_t{0});
    }

    void shutdown() {
        if (closed)
            return;
        // A last flush, as kcp-go's Close does: the peer gets the ACKs it is owed.
        if (!core.is_dead()) {
            core.flush(transport.now());
            flush_tx();
        }
        closed = true;
        abort_ops();
        timer.cancel();
        transport.close();
    }

    Transport transport;
    kcp_core core;
    timer_type timer;
    std::optional<endpoint> remote;
    std::size_t mtu = 0;

    std::unique_ptr<std::byte[]> rx_storage;
    std::array<rx_slot, rx_batch> rx_slots{};
    std::unique_ptr<std::byte[]> tx_storage;
    std::array<tx_datagram, tx_batch> batch{};
    std::size_t tx_pos = 0, tx_len = 0; // batch[tx_pos, tx_len) is still to send

    // Message mode: the rest of a message larger than the reader's buffer.
    std::unique_ptr<std::byte[]> stage;
    std::size_t stage_size = 0, stage_pos = 0, stage_len = 0;

    op_ptr read_op, write_op;
    std::array<asio::mutable_buffer, max_buffers> rbufs{};
    std::array<asio::const_buffer, max_buffers> wbufs{};
    std::size_t nrbufs = 0, nwbufs = 0;

    bool receiving = false;
    bool writable_wait = false;
    bool closed = false;
    time_point armed = time_point::max();
    std::uint64_t timer_gen = 0;
    kcp_session_stats st;
};

template <class Transport>
template <class Op>
struct kcp_session<Transport>::initiation {
    std::shared_ptr<impl> self;

    using executor_type = typename kcp_session::executor_type;
    executor_type get_executor() const noexcept { return self->transport.get_executor(); }

    template <class Handler, class Buffers>
    void operator()(Handler&& h, const Buffers& buffers) const {
        self->start(Op{}, std::forward<Handler>(h), buffers);
    }
};

template <class Transport>
template <class... Args>
kcp_session<Transport>::kcp_session(const kcp_settings& settings, std::optional<endpoint> remote,
                                    Args&&... transport_args)
    : impl_(std::make_shared<impl>(settings, remote, std::forward<Args>(transport_args)...)) {
    impl_->start_receive();
}

template <class Transport>
kcp_session<Transport>::~kcp_session() {
    if (impl_)
        impl_->shutdown();
}

template <class Transport>
auto kcp_session<Transport>::get_executor() const noexcept -> executor_type {
    return impl_->transport.get_executor();
}

template <class Transport>
template <class MutableBufferSequence, class Token>
auto kcp_session<Transport>::async_read_some(const MutableBufferSequence& buffers, Token&& token) {
    return asio::async_initiate<Token, void(std::error_code, std::size_t)>(
        initiation<read_op_tag>{impl_}, token, buffers);
}

template <class Transport>
template <class ConstBufferSequence, class Token>
auto kcp_session<Transport>::async_write_some(const ConstBufferSequence& buffers, Token&& token) {
    return asio::async_initiate<Token, void(std::error_code, std::size_t)>(
        initiation<write_op_tag>{impl_}, token, buffers);
}

template <class Transport>
void kcp_session<Transport>::cancel() {
    impl_->abort_ops();
}

template <class Transport>
void kcp_session<Transport>::close() {
    impl_->shutdown();
}

template <class Transport>
bool kcp_session<Transport>::is_open() const noexcept {
    return !impl_->closed;
}

template <class Transport>
std::optional<endpoint> kcp_session<Transport>::remote_endpoint() const {
    return impl_->remote;
}

template <class Transport>
endpoint kcp_session<Transport>::local_endpoint() const {
    return impl_->transport.local_endpoint();
}

template <class Transport>
const kcp_core& kcp_session<Transport>::core() const noexcept {
    return impl_->core;
}

template <class Transport>
kcp_session_stats kcp_session<Transport>::stats() const {
    kcp_session_stats s = impl_->st;
    s.kcp = impl_->core.stats();
    return s;
}

template <class Transport>
auto kcp_session<Transport>::transport() noexcept -> transport_type& {
    return impl_->transport;
}

} // namespace peerlink

#endif // PEERLINK_NET_IMPL_KCP_SESSION_HPP
