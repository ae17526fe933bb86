// The Asio side of a STUN client operation (a Binding, a NAT discovery): one receive
// loop and one timer around a sans-I/O job, over an asio UDP socket or a peerlink
// transport policy. The job decides everything; this only moves bytes and time.
//
// A job provides: start(now), handle_datagram(bytes, from, now), handle_timeout(now),
// poll_transmit() -> optional<stun::transmit>, poll_timeout() -> optional<time_point>,
// done(), error() and result().
#ifndef PEERLINK_NET_DETAIL_STUN_OPERATION_HPP
#define PEERLINK_NET_DETAIL_STUN_OPERATION_HPP

#include <peerlink/detail/pending_op.hpp>
#include <peerlink/endpoint.hpp>
#include <peerlink/net/asio_endpoint.hpp>
#include <peerlink/net/transport.hpp>
#include <peerlink/proto/stun_client.hpp>
#include <peerlink/time.hpp>

#include <asio/associated_cancellation_slot.hpp>
#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/error.hpp>
#include <asio/ip/udp.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>

#include <array>
#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <system_error>
#include <type_traits>

namespace peerlink::detail {

// How a STUN operation uses a socket or a transport.
template <class Socket>
struct stun_io;

template <>
struct stun_io<asio::ip::udp::socket> {
    using executor_type = asio::ip::udp::socket::executor_type;
    using timer_type = asio::steady_timer;

    explicit stun_io(asio::ip::udp::socket& s) : socket(s) {}

    executor_type get_executor() { return socket.get_executor(); }
    time_point now() const { return clock::now(); }
    timer_type make_timer() { return timer_type(socket.get_executor()); }
    endpoint local_endpoint() {
        std::error_code ec;
        auto e = socket.local_endpoint(ec);
        return ec ? endpoint{} : from_asio(e);
    }

    // Errors other than a full buffer mean the destination cannot be reached at all.
    std::error_code send(std::span<const std::byte> data, const endpoint& to) {
        std::error_code ec;
        auto local = socket.local_endpoint(ec);
        if (ec)
            return ec;
        asio::ip::udp::endpoint dst = to_asio(to);
        if (local.address().is_v6() && to.address.is_v4())
            dst = {asio::ip::make_address_v6(asio::ip::v4_mapped, dst.address().to_v4()), to.port};
        socket.send_to(asio::buffer(data.data(), data.size()), dst, 0, ec);
        if (ec == std::errc::operation_would_block || ec == asio::error::would_block)
            ec.clear();
        return ec;
    }

    template <class Handler>
    void async_receive(std::span<std::byte> buf, asio::cancellation_slot slot, Handler&& h) {
        socket.async_receive_from(asio::buffer(buf.data(), buf.size()), from_,
                                  asio::bind_cancellation_slot(slot, std::forward<Handler>(h)));
    }
    endpoint last_from() const { return from_asio(from_); }

    asio::ip::udp::socket& socket;
    asio::ip::udp::endpoint from_;
};

template <transport_policy Transport>
struct stun_io<Transport> {
    using executor_type = typename Transport::executor_type;
    using timer_type = typename Transport::timer_type;

    explicit stun_io(Transport& t) : transport(t) {}

    executor_type get_executor() { return transport.get_executor(); }
    time_point now() const { return transport.now(); }
    timer_type make_timer() { return transport.make_timer(); }
    endpoint local_endpoint() { return transport.local_endpoint(); }

    std::error_code send(std::span<const std::byte> data, const endpoint& to) {
        tx_datagram d{data, to};
        std::error_code ec;
        transport.try_send(std::span<const tx_datagram>(&d, 1), ec);
        if (ec == std::errc::operation_would_block)
            ec.clear();
        return ec;
    }

    template <class Handler>
    void async_receive(std::span<std::byte> buf, asio::cancellation_slot slot, Handler&& h) {
        slot_ = rx_slot{};
        slot_.buffer = buf;
        transport.async_receive(
            std::span<rx_slot>(&slot_, 1),
            asio::bind_cancellation_slot(slot, [this, h = std::forward<Handler>(h)](
                                                   std::error_code ec, std::size_t n) mutable {
                // A truncated datagram is not a whole STUN message: report it empty.
                h(ec, n == 1 && !slot_.truncated ? slot_.size : std::size_t{0});
            }));
    }
    endpoint last_from() const { return slot_.from; }

    Transport& transport;
    rx_slot slot_;
};

// Runs `Job` on `Io` until the job is done, the socket fails, or the user cancels,
// then completes the handler with (error, result) once the receive and the timer
// have both finished, so the socket is free again when the handler runs.
template <class Socket, class Job>
class stun_operation : public std::enable_shared_from_this<stun_operation<Socket, Job>> {
public:
    using result_type = decltype(std::declval<Job&>().result());
    using io_type = stun_io<Socket>;

    stun_operation(Socket& s, Job job) : io_(s), job_(std::move(job)), timer_(io_.make_timer()) {}

    template <class Handler>
    void start(Handler&& handler) {
        auto ex = io_.get_executor();
        auto slot = asio::get_associated_cancellation_slot(handler);
        if (slot.is_connected())
            slot.assign([w = this->weak_from_this(), ex](asio::cancellation_type) {
                // Posted: completing from inside the slot's own handler would free it.
                if (auto self = w.lock())
                    asio::post(ex, [self] {
                        self->finish(make_error_code(asio::error::operation_aborted));
                    });
            });
        op_ = make_pending_op<std::error_code, result_type>(std::forward<Handler>(handler), ex);
        job_.start(io_.now(), io_.local_endpoint());
        receive();
        pump();
    }

private:
    void receive() {
        ++outstanding_;
        io_.async_receive(std::span<std::byte>(rx_), rx_cancel_.slot(),
                          [self = this->shared_from_this()](std::error_code ec, std::size_t n) {
                              self->on_receive(ec, n);
                          });
    }

    void on_receive(std::error_code ec, std::size_t n) {
        --outstanding_;
        if (finishing_)
            return maybe_complete();
        if (ec == asio::error::operation_aborted || ec == asio::error::bad_descriptor)
            return finish(ec); // the socket was closed or the receive cancelled
        // Other errors (an ICMP error reported on a connected socket) only mean that
        // nothing came: the job's timers deal with that.
        if (!ec && n != 0)
            job_.handle_datagram(std::span<const std::byte>(rx_.data(), n), io_.last_from(),
                                 io_.now());
        pump();
        if (!finishing_)
            receive();
    }

    void pump() {
        if (finishing_)
            return;
        while (auto t = job_.poll_transmit())
            if (auto ec = io_.send(t->data, t->to))
                return finish(ec);
        if (job_.done())
            return finish({});
        arm();
    }

    void arm() {
        auto next = job_.poll_timeout();
        if (!next || (waiting_ && *next == armed_))
            return;
        armed_ = *next;
        waiting_ = true;
        timer_.expires_at(*next); // cancels the wait for the previous deadline, if any
        ++outstanding_;
        timer_.async_wait([self = this->shared_from_this(), gen = ++gen_](std::error_code) {
            self->on_timer(gen);
        });
    }

    void on_timer(std::uint64_t gen) {
        --outstanding_;
        if (finishing_)
            return maybe_complete();
        if (gen != gen_)
            return; // superseded by a re-arm
        waiting_ = false;
        job_.handle_timeout(io_.now());
        pump();
    }

    void finish(std::error_code ec) {
        if (finishing_)
            return;
        finishing_ = true;
        ec_ = ec;
        rx_cancel_.emit(asio::cancellation_type::terminal);
        timer_.cancel();
        maybe_complete();
    }

    void maybe_complete() {
        if (outstanding_ != 0 || !op_)
            return;
        complete_op(op_, ec_ ? ec_ : job_.error(), job_.result());
    }

    io_type io_;
    Job job_;
    typename io_type::timer_type timer_;
    asio::cancellation_signal rx_cancel_;
    pending_op_ptr<std::error_code, result_type> op_;
    std::array<std::byte, 2049> rx_{}; // one more than any STUN response we take
    std::error_code ec_;
    time_point armed_{};
    std::uint64_t gen_ = 0;
    int outstanding_ = 0;
    bool waiting_ = false;
    bool finishing_ = false;
};

// Starts a stun_operation for `job` on `socket` with the user's handler.
template <class Socket, class Job, class Handler>
void start_stun_operation(Socket& socket, Job job, Handler&& handler) {
    auto op = std::make_shared<stun_operation<Socket, Job>>(socket, std::move(job));
    op->start(std::forward<Handler>(handler));
}

} // namespace peerlink::detail

#endif // PEERLINK_NET_DETAIL_STUN_OPERATION_HPP
