// Implementation of peerlink/net/udp_transport.hpp.
#ifndef PEERLINK_NET_IMPL_UDP_TRANSPORT_HPP
#define PEERLINK_NET_IMPL_UDP_TRANSPORT_HPP

#include <peerlink/net/detail/udp_batch_syscalls.hpp>

#include <asio/cancellation_type.hpp>
#include <asio/compose.hpp>
#include <asio/error.hpp>
#include <asio/ip/v6_only.hpp>
#include <asio/post.hpp>
#include <asio/socket_base.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

namespace peerlink {

static_assert(udp_transport::max_batch == detail::udp_max_batch);

namespace detail {

inline bool is_icmp_error(const std::error_code& ec) noexcept {
    return (ec.category() == asio::error::get_system_category() ||
            ec.category() == std::system_category()) &&
           is_icmp_error(ec.value());
}

// Where a port-range search starts. Not secret, only spread out, so that transports
// opened together do not all probe the same first port.
inline std::uint32_t port_search_start(const void* salt) noexcept {
    std::uint64_t x = static_cast<std::uint64_t>(clock::now().time_since_epoch().count()) ^
                      static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(salt));
    x += 0x9e3779b97f4a7c15ull; // splitmix64 finaliser
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return static_cast<std::uint32_t>(x ^ (x >> 31));
}

struct udp_receive_op {
    udp_receive_op(udp_transport* t, std::span<rx_slot> s) noexcept : transport(t), slots(s) {}

    udp_transport* transport;
    std::span<rx_slot> slots;
    enum class step : unsigned char { start, waiting, done } next = step::start;
    std::error_code result;
    std::size_t filled = 0;

    template <class Self>
    void operator()(Self& self, std::error_code ec = {}) {
        switch (next) {
        case step::start:
            // Try before waiting, as Asio's sockets do: under load the datagrams are
            // already queued. A result found now is posted, never delivered inline, and
            // posted to the I/O executor: the handler's own executor may run it on
            // another thread (use_future's runs it on Asio's system thread pool).
            if (slots.empty() || try_receive()) {
                next = step::done;
                asio::post(transport->get_executor(), std::move(self));
                return;
            }
            break;
        case step::waiting:
            // After close() the transport may be gone: touch it only on success.
            if (ec && !is_icmp_error(ec)) {
                self.complete(ec, 0);
                return;
            }
            if (self.get_cancellation_state().cancelled() != asio::cancellation_type::none) {
                self.complete(asio::error::operation_aborted, 0);
                return;
            }
            if (try_receive()) {
                self.complete(result, filled);
                return;
            }
            break; // a spurious wake-up: wait again
        case step::done:
            self.complete(result, filled);
            return;
        }
        next = step::waiting;
        transport->socket_.async_wait(asio::socket_base::wait_read, std::move(self));
    }

    bool try_receive() {
        filled = transport->receive_now(slots, result);
        return result != std::errc::operation_would_block;
    }
};

} // namespace detail

inline udp_transport::udp_transport(executor_type ex) : socket_(std::move(ex)) {}

inline udp_transport::udp_transport(executor_type ex, const options& o) : socket_(std::move(ex)) {
    std::error_code ec;
    open(o, ec);
    if (ec)
        throw std::system_error(ec, "peerlink::udp_transport: cannot open a UDP socket on '" +
                                        (o.bind_address.empty() ? "*" : o.bind_address) +
                                        "' port " + std::to_string(o.port_min) + ".." +
                                        std::to_string(o.port_max));
}

inline void udp_transport::open(const options& o, std::error_code& ec) {
    if (socket_.is_open()) {
        ec = asio::error::already_open;
        return;
    }
    const std::uint16_t lo = o.port_min;
    const std::uint16_t hi = o.port_max == 0 ? o.port_min : o.port_max;
    if ((lo == 0 && hi != 0) || lo > hi) {
        ec = error::invalid_config;
        return;
    }
    std::string_view text = o.bind_address;
    if (text.size() >= 2 && text.front() == '[' && text.back() == ']')
        text = text.substr(1, text.size() - 2);

    if (text.empty()) {
        if (o.ipv6) {
            if (open_socket({asio::ip::udp::v6(), 0}, true, lo, hi, o.socket_buffer_bytes, ec))
                return;
            // No IPv6 on this system (or no dual stack): all peers are IPv4 peers then.
        }
        open_socket({asio::ip::udp::v4(), 0}, false, lo, hi, o.socket_buffer_bytes, ec);
        return;
    }
    const auto parsed = ip_address::parse(text, ec);
    if (!parsed)
        return;
    const ip_address address = detail::unmap_v4(*parsed);
    if (address.is_v6() && !o.ipv6) {
        ec = error::address_family_not_enabled;
        return;
    }
    const bool dual = address.is_v6() && address.is_unspecified();
    open_socket(to_asio(endpoint{address, 0}), dual, lo, hi, o.socket_buffer_bytes, ec);
}

// Returns true once the socket is open, bound or not; false (with ec) when it could not
// even be opened for that family, which lets open() fall back to IPv4.
inline bool udp_transport::open_socket(asio::ip::udp::endpoint where, bool dual, std::uint16_t lo,
                                       std::uint16_t hi, int buffer_bytes, std::error_code& ec) {
    socket_.open(where.protocol(), ec);
    if (!ec && where.address().is_v6())
        socket_.set_option(asio::ip::v6_only(!dual), ec);
    if (ec) {
        std::error_code ignored;
        socket_.close(ignored);
        return false;
    }
    if (buffer_bytes > 0) {
        // Best effort: the system caps these (net.core.rmem_max) and that is fine.
        std::error_code ignored;
        socket_.set_option(asio::socket_base::receive_buffer_size(buffer_bytes), ignored);
        socket_.set_option(asio::socket_base::send_buffer_size(buffer_bytes), ignored);
    }
    socket_.non_blocking(true, ec);
    if (!ec) {
        if (lo == 0) {
            socket_.bind(where, ec);
        } else {
            const std::uint32_t count = std::uint32_t{hi} - lo + 1;
            const std::uint32_t start = detail::port_search_start(this) % count;
            for (std::uint32_t i = 0; i < count; ++i) {
                where.port(static_cast<std::uint16_t>(lo + (start + i) % count));
                socket_.bind(where, ec);
                // A port another socket holds, or one this process may not bind: next.
                if (ec != asio::error::address_in_use && ec != asio::error::access_denied)
                    break;
            }
            if (ec == asio::error::address_in_use || ec == asio::error::access_denied)
                ec = error::no_port_available;
        }
    }
    asio::ip::udp::endpoint bound;
    if (!ec)
        bound = socket_.local_endpoint(ec);
    if (ec) {
        std::error_code ignored;
        socket_.close(ignored);
        return true;
    }
    local_ = from_asio(bound);
    v6_socket_ = where.address().is_v6();
    dual_stack_ = dual;
    return true;
}

inline void udp_transport::close() noexcept {
    std::error_code ignored;
    socket_.close(ignored);
    local_ = {};
    v6_socket_ = false;
    dual_stack_ = false;
}

template <class Token>
auto udp_transport::async_receive(std::span<rx_slot> slots, Token&& token) {
    return asio::async_compose<Token, void(std::error_code, std::size_t)>(
        detail::udp_receive_op{this, slots}, token, socket_);
}

template <class Token>
auto udp_transport::async_wait_writable(Token&& token) {
    return socket_.async_wait(asio::socket_base::wait_write, std::forward<Token>(token));
}

inline std::size_t udp_transport::receive_now(std::span<rx_slot> slots, std::error_code& ec) {
    if (!socket_.is_open()) {
        ec = asio::error::bad_descriptor;
        return 0;
    }
    for (std::size_t skipped = 0;;) {
        int err = 0;
        const std::size_t got =
            detail::receive_datagrams(socket_.native_handle(), slots, err, syscalls_received_);
        if (got > 0) {
            ec.clear();
            return got;
        }
        // Each ICMP error is reported once; skip it and look for datagrams behind it.
        if (err == EINTR || (detail::is_icmp_error(err) && ++skipped < max_batch))
            continue;
        if (detail::is_would_block(err) || detail::is_icmp_error(err))
            ec = std::make_error_code(std::errc::operation_would_block);
        else
            ec.assign(err, std::system_category());
        return 0;
    }
}

inline bool udp_transport::to_socket_endpoint(const endpoint& to, asio::ip::udp::endpoint& out,
                                              std::error_code& ec) const noexcept {
    const ip_address a = detail::unmap_v4(to.address);
    if (a.is_v6() != v6_socket_ && !(a.is_v4() && dual_stack_)) {
        ec = error::address_family_not_enabled;
        return false;
    }
    if (a.is_v4() && v6_socket_)
        out = {
            asio::ip::make_address_v6(asio::ip::v4_mapped, asio::ip::address_v4(a.to_v4_bytes())),
            to.port};
    else
        out = to_asio(endpoint{a, to.port});
    return true;
}

inline std::size_t udp_transport::try_send(std::span<const tx_datagram> batch,
                                           std::error_code& ec) {
    ec.clear();
    if (!socket_.is_open()) {
        ec = asio::error::bad_descriptor;
        return 0;
    }
    asio::ip::udp::endpoint names[max_batch];
    std::size_t sent = 0;
    std::size_t skipped = 0;
    while (sent < batch.size()) {
        const auto rest = batch.subspan(sent, std::min(batch.size() - sent, max_batch));
        std::error_code bad_destination;
        std::size_t n = 0;
        while (n < rest.size() && to_socket_endpoint(rest[n].to, names[n], bad_destination))
            ++n;
        if (n > 0) {
            int err = 0;
            const std::size_t done = detail::send_datagrams(socket_.native_handle(), rest.first(n),
                                                            names, err, syscalls_sent_);
            sent += done;
            if (done < n) {
                // err == 0: the system sent a prefix and keeps the error for the next call.
                if (err == 0 || err == EINTR || (detail::is_stale_send_error(err) && ++skipped < 4))
                    continue;
                if (detail::is_would_block(err))
                    ec = std::make_error_code(std::errc::operation_would_block);
                else
                    ec.assign(err, std::system_category());
                return sent;
            }
        }
        if (bad_destination) {
            ec = bad_destination;
            return sent;
        }
    }
    return sent;
}

} // namespace peerlink

#endif // PEERLINK_NET_IMPL_UDP_TRANSPORT_HPP
