// peerlink/net/asio_endpoint.hpp: converting endpoints between peerlink and Asio.
//
// The sans-I/O cores name peers by `peerlink::endpoint`; the Asio drivers talk to
// sockets through `asio::ip::udp::endpoint`. These functions convert between the
// two. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, what a dual-stack socket
// reports for an IPv4 peer) always comes back as the plain IPv4 address, so one
// peer has one name whichever socket it was seen on.
//
// @par Example
// @code
// asio::ip::udp::endpoint from;
// std::size_t n = socket.receive_from(asio::buffer(buf), from);
// peerlink::endpoint peer = peerlink::from_asio(from);  // 192.0.2.1:5000, not [::ffff:...]
// socket.send_to(asio::buffer(reply), peerlink::to_asio(peer));
// @endcode
#ifndef PEERLINK_NET_ASIO_ENDPOINT_HPP
#define PEERLINK_NET_ASIO_ENDPOINT_HPP

#include <peerlink/endpoint.hpp>

#include <asio/ip/address.hpp>
#include <asio/ip/udp.hpp>

#include <array>
#include <cstdint>

namespace peerlink {

namespace detail {

// True for ::ffff:a.b.c.d. Such an address held in a peerlink::endpoint names an IPv4 peer.
inline constexpr bool is_v4_mapped(const ip_address& a) noexcept {
    if (!a.is_v6())
        return false;
    const auto& b = a.to_v6_bytes();
    for (std::size_t i = 0; i < 10; ++i)
        if (b[i] != 0)
            return false;
    return b[10] == 0xff && b[11] == 0xff;
}

// The plain IPv4 address of ::ffff:a.b.c.d; any other address unchanged.
inline constexpr ip_address unmap_v4(const ip_address& a) noexcept {
    if (!is_v4_mapped(a))
        return a;
    const auto& b = a.to_v6_bytes();
    return ip_address::v4({b[12], b[13], b[14], b[15]});
}

} // namespace detail

/// Converts an address to Asio's. IPv4 stays IPv4; an IPv6 address keeps its scope id.
inline asio::ip::address to_asio(const ip_address& a) {
    if (a.is_v4())
        return asio::ip::address_v4(a.to_v4_bytes());
    return asio::ip::address_v6(a.to_v6_bytes(), a.scope_id());
}

/// Converts an Asio address. An IPv4-mapped IPv6 address becomes plain IPv4.
inline ip_address from_asio(const asio::ip::address& a) {
    if (a.is_v4())
        return ip_address::v4(a.to_v4().to_bytes());
    const asio::ip::address_v6 v6 = a.to_v6();
    return detail::unmap_v4(
        ip_address::v6(v6.to_bytes(), static_cast<std::uint32_t>(v6.scope_id())));
}

/// Converts an endpoint to Asio's UDP endpoint, without changing its family.
inline asio::ip::udp::endpoint to_asio(const endpoint& e) {
    return {to_asio(e.address), e.port};
}

/// Converts an Asio UDP endpoint. An IPv4-mapped IPv6 address becomes plain IPv4.
inline endpoint from_asio(const asio::ip::udp::endpoint& e) {
    return {from_asio(e.address()), e.port()};
}

} // namespace peerlink

#endif // PEERLINK_NET_ASIO_ENDPOINT_HPP
