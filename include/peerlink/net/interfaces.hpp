// peerlink/net/interfaces.hpp: the addresses of the local network interfaces, and the
// host candidates they give.
//
// A thin wrapper over getifaddrs(3) (POSIX; Linux, the BSDs, macOS). The sans-I/O
// choice of which addresses become candidates is `ice::gather_host_candidates`
// (peerlink/proto/candidates.hpp); this header only reads the system.
//
// @par Example
// @code
// std::error_code ec;
// auto cands = peerlink::gather_host_candidates(cfg.transport, socket_port, ec);
// for (auto& c : cands) signaling.send(peerlink::ice::to_json(c));
// @endcode
#ifndef PEERLINK_NET_INTERFACES_HPP
#define PEERLINK_NET_INTERFACES_HPP

#include <peerlink/config.hpp>
#include <peerlink/proto/candidates.hpp>

#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>

#include <cerrno>
#include <cstring>
#include <system_error>
#include <vector>

namespace peerlink {

/// Every IPv4 and IPv6 address of every interface, in the system's order.
/// @param ec cleared, or the errno of getifaddrs (as `std::system_category`).
inline std::vector<ice::interface_address> list_interfaces(std::error_code& ec) {
    std::vector<ice::interface_address> out;
    ifaddrs* list = nullptr;
    if (::getifaddrs(&list) != 0) {
        ec = std::error_code(errno, std::system_category());
        return out;
    }
    ec.clear();
    for (ifaddrs* i = list; i; i = i->ifa_next) {
        if (!i->ifa_addr)
            continue;
        ice::interface_address a;
        a.name = i->ifa_name ? i->ifa_name : "";
        a.index = i->ifa_name ? ::if_nametoindex(i->ifa_name) : 0;
        a.loopback = (i->ifa_flags & IFF_LOOPBACK) != 0;
        a.up = (i->ifa_flags & IFF_UP) != 0;
        if (i->ifa_addr->sa_family == AF_INET) {
            const auto* s = reinterpret_cast<const sockaddr_in*>(i->ifa_addr);
            std::array<std::uint8_t, 4> b;
            std::memcpy(b.data(), &s->sin_addr, 4);
            a.address = ip_address::v4(b);
        } else if (i->ifa_addr->sa_family == AF_INET6) {
            const auto* s = reinterpret_cast<const sockaddr_in6*>(i->ifa_addr);
            std::array<std::uint8_t, 16> b;
            std::memcpy(b.data(), &s->sin6_addr, 16);
            a.address = ip_address::v6(b, s->sin6_scope_id);
        } else {
            continue;
        }
        out.push_back(std::move(a));
    }
    ::freeifaddrs(list);
    return out;
}

/// The host candidates of a socket bound as `t` says (`bind_address`, `ipv6`) on
/// `port` (the port the socket got from `port_min..port_max`).
/// @param include_loopback also 127.0.0.1 / ::1 (tests on one machine).
/// @param ec cleared, or the error of `list_interfaces`.
inline std::vector<ice::candidate> gather_host_candidates(const transport_config& t,
                                                          std::uint16_t port, std::error_code& ec,
                                                          bool include_loopback = false,
                                                          ice::socket_id socket = 0) {
    auto ifs = list_interfaces(ec);
    if (ec)
        return {};
    ice::host_gather_options o;
    o.bind_address = t.bind_address;
    o.ipv6 = t.ipv6;
    o.include_loopback = include_loopback;
    o.port = port;
    o.socket = socket;
    return ice::gather_host_candidates(ifs, o);
}

} // namespace peerlink

#endif // PEERLINK_NET_INTERFACES_HPP
