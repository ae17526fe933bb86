// Batched UDP system calls: sendmmsg/recvmmsg on Linux, one sendmsg/recvmsg per
// datagram elsewhere (or with PEERLINK_NO_MMSG, which tests the fallback on Linux).
#ifndef PEERLINK_NET_DETAIL_UDP_BATCH_SYSCALLS_HPP
#define PEERLINK_NET_DETAIL_UDP_BATCH_SYSCALLS_HPP

#include <peerlink/net/asio_endpoint.hpp>
#include <peerlink/net/transport.hpp>

#include <asio/ip/udp.hpp>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <span>

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#if defined(__linux__) && !defined(PEERLINK_NO_MMSG)
#define PEERLINK_DETAIL_UDP_MMSG 1
#else
#define PEERLINK_DETAIL_UDP_MMSG 0
#endif

namespace peerlink::detail {

inline constexpr std::size_t udp_max_batch = 64;

// The socket is non-blocking already; the flag also covers a descriptor that a
// user switched back to blocking through native_handle().
#if defined(MSG_DONTWAIT)
inline constexpr int udp_dontwait = MSG_DONTWAIT;
#else
inline constexpr int udp_dontwait = 0;
#endif

inline bool is_would_block(int err) noexcept {
    return err == EAGAIN || err == EWOULDBLOCK;
}

// Errors a socket reports later for an earlier send (ICMP port/host/net unreachable).
// A receive skips them: they say nothing about the datagrams queued behind them.
inline bool is_icmp_error(int err) noexcept {
    return err == ECONNREFUSED || err == ECONNRESET || err == EHOSTUNREACH || err == ENETUNREACH;
}

// Errors a send may return for an earlier datagram (the ICMP port unreachable it
// drew), not for the one at hand. Unreachable host or network is about this one.
inline bool is_stale_send_error(int err) noexcept {
    return err == ECONNREFUSED || err == ECONNRESET;
}

// Asio's endpoint is a union of sockaddr_in and sockaddr_in6: it serves as the
// message's name storage, so the conversion to peerlink::endpoint is from_asio's.
inline void prepare_receive(::msghdr& m, ::iovec& iov, asio::ip::udp::endpoint& name,
                            rx_slot& slot) noexcept {
    iov.iov_base = slot.buffer.data();
    iov.iov_len = slot.buffer.size();
    m = {};
    m.msg_name = name.data();
    m.msg_namelen = static_cast<socklen_t>(name.capacity());
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
}

inline void finish_receive(const ::msghdr& m, std::size_t len, asio::ip::udp::endpoint& name,
                           rx_slot& slot) {
    name.resize(m.msg_namelen);
    slot.from = from_asio(name);
    slot.size = std::min(len, slot.buffer.size());
    slot.truncated = (m.msg_flags & MSG_TRUNC) != 0;
}

inline void prepare_send(::msghdr& m, ::iovec& iov, const asio::ip::udp::endpoint& name,
                         const tx_datagram& d) noexcept {
    // sendmsg does not write through msg_iov or msg_name; the C API lacks const.
    iov.iov_base = const_cast<std::byte*>(d.data.data());
    iov.iov_len = d.data.size();
    m = {};
    m.msg_name = const_cast<asio::ip::udp::endpoint&>(name).data();
    m.msg_namelen = static_cast<socklen_t>(name.size());
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
}

// One attempt to receive up to slots.size() (<= udp_max_batch) datagrams without
// waiting. Returns how many slots were filled; 0 with `err` = errno otherwise.
inline std::size_t receive_datagrams(int fd, std::span<rx_slot> slots, int& err,
                                     std::uint64_t& syscalls) {
    asio::ip::udp::endpoint names[udp_max_batch];
    ::iovec iov[udp_max_batch];
    const std::size_t n = std::min(slots.size(), udp_max_batch);
    err = 0;
#if PEERLINK_DETAIL_UDP_MMSG
    ::mmsghdr msgs[udp_max_batch];
    for (std::size_t i = 0; i < n; ++i) {
        prepare_receive(msgs[i].msg_hdr, iov[i], names[i], slots[i]);
        msgs[i].msg_len = 0;
    }
    ++syscalls;
    const int r = ::recvmmsg(fd, msgs, static_cast<unsigned>(n), udp_dontwait, nullptr);
    if (r <= 0) {
        err = r < 0 ? errno : EAGAIN;
        return 0;
    }
    for (std::size_t i = 0; i < static_cast<std::size_t>(r); ++i)
        finish_receive(msgs[i].msg_hdr, msgs[i].msg_len, names[i], slots[i]);
    return static_cast<std::size_t>(r);
#else
    std::size_t got = 0;
    for (; got < n; ++got) {
        ::msghdr m;
        prepare_receive(m, iov[got], names[got], slots[got]);
        ++syscalls;
        const ::ssize_t r = ::recvmsg(fd, &m, udp_dontwait);
        if (r < 0) {
            // An error after the first datagram is left for the next attempt
            // (would-block) or was consumed by this call (ICMP): either way, report
            // what was received.
            err = got == 0 ? errno : 0;
            break;
        }
        finish_receive(m, static_cast<std::size_t>(r), names[got], slots[got]);
    }
    return got;
#endif
}

// One attempt to send `batch` (<= udp_max_batch datagrams) to `names` (the socket
// form of each destination). Returns how many were sent. When it is fewer than
// batch.size(), `err` is the error of the datagram at that index, or 0 when the
// system sent a prefix and keeps the error for the next call.
inline std::size_t send_datagrams(int fd, std::span<const tx_datagram> batch,
                                  const asio::ip::udp::endpoint* names, int& err,
                                  std::uint64_t& syscalls) {
    ::iovec iov[udp_max_batch];
    const std::size_t n = std::min(batch.size(), udp_max_batch);
    err = 0;
#if PEERLINK_DETAIL_UDP_MMSG
    ::mmsghdr msgs[udp_max_batch];
    for (std::size_t i = 0; i < n; ++i) {
        prepare_send(msgs[i].msg_hdr, iov[i], names[i], batch[i]);
        msgs[i].msg_len = 0;
    }
    ++syscalls;
    const int r = ::sendmmsg(fd, msgs, static_cast<unsigned>(n), udp_dontwait);
    if (r < 0) {
        err = errno;
        return 0;
    }
    return static_cast<std::size_t>(r);
#else
    for (std::size_t i = 0; i < n; ++i) {
        ::msghdr m;
        prepare_send(m, iov[i], names[i], batch[i]);
        ++syscalls;
        if (::sendmsg(fd, &m, udp_dontwait) < 0) {
            err = errno;
            return i;
        }
    }
    return n;
#endif
}

} // namespace peerlink::detail

#endif // PEERLINK_NET_DETAIL_UDP_BATCH_SYSCALLS_HPP
