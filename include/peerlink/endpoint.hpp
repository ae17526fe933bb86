// peerlink/endpoint.hpp: IP addresses and UDP endpoints without Asio.
//
// The sans-I/O cores name peers by `peerlink::endpoint`, a small value type that
// holds an IPv4 or IPv6 address and a port. The Asio drivers convert to and from
// `asio::ip::udp::endpoint` (see peerlink/net/asio_endpoint.hpp).
#ifndef PEERLINK_ENDPOINT_HPP
#define PEERLINK_ENDPOINT_HPP

#include <peerlink/error.hpp>

#include <array>
#include <charconv>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

namespace peerlink {

/// An IPv4 or IPv6 address. IPv4 is held as-is, not as an IPv4-mapped IPv6 address.
class ip_address {
public:
    enum class family : std::uint8_t { v4 = 4, v6 = 6 };

    /// The IPv4 "any" address 0.0.0.0.
    constexpr ip_address() noexcept = default;

    /// An IPv4 address from its four bytes in network order.
    static constexpr ip_address v4(std::array<std::uint8_t, 4> b) noexcept {
        ip_address a;
        a.family_ = family::v4;
        for (std::size_t i = 0; i < 4; ++i)
            a.bytes_[i] = b[i];
        return a;
    }

    /// An IPv6 address from its sixteen bytes in network order.
    static constexpr ip_address v6(const std::array<std::uint8_t, 16>& b,
                                   std::uint32_t scope_id = 0) noexcept {
        ip_address a;
        a.family_ = family::v6;
        a.bytes_ = b;
        a.scope_id_ = scope_id;
        return a;
    }

    static constexpr ip_address loopback_v4() noexcept { return v4({127, 0, 0, 1}); }
    static constexpr ip_address loopback_v6() noexcept {
        std::array<std::uint8_t, 16> b{};
        b[15] = 1;
        return v6(b);
    }
    static constexpr ip_address any_v4() noexcept { return v4({0, 0, 0, 0}); }
    static constexpr ip_address any_v6() noexcept { return v6({}); }

    /// Parses "a.b.c.d" or an IPv6 text ("::1", "fe80::1%3" with a numeric scope).
    /// @returns the address, or nothing with `ec` set to `error::invalid_endpoint`.
    static std::optional<ip_address> parse(std::string_view text, std::error_code& ec);

    constexpr family get_family() const noexcept { return family_; }
    constexpr bool is_v4() const noexcept { return family_ == family::v4; }
    constexpr bool is_v6() const noexcept { return family_ == family::v6; }
    constexpr std::uint32_t scope_id() const noexcept { return scope_id_; }

    /// The address bytes in network order: 4 for IPv4, 16 for IPv6.
    constexpr const std::uint8_t* data() const noexcept { return bytes_.data(); }
    constexpr std::size_t size() const noexcept { return is_v4() ? 4 : 16; }
    constexpr std::array<std::uint8_t, 4> to_v4_bytes() const noexcept {
        return {bytes_[0], bytes_[1], bytes_[2], bytes_[3]};
    }
    constexpr const std::array<std::uint8_t, 16>& to_v6_bytes() const noexcept { return bytes_; }

    constexpr bool is_loopback() const noexcept {
        if (is_v4())
            return bytes_[0] == 127;
        return *this == loopback_v6();
    }
    constexpr bool is_unspecified() const noexcept {
        for (std::size_t i = 0; i < size(); ++i)
            if (bytes_[i] != 0)
                return false;
        return true;
    }

    /// "a.b.c.d" or the RFC 5952 text of an IPv6 address.
    std::string to_string() const;

    friend constexpr bool operator==(const ip_address&, const ip_address&) noexcept = default;
    friend constexpr auto operator<=>(const ip_address&, const ip_address&) noexcept = default;

private:
    family family_ = family::v4;
    std::array<std::uint8_t, 16> bytes_{};
    std::uint32_t scope_id_ = 0;
};

/// A UDP endpoint: an address and a port.
struct endpoint {
    ip_address address;
    std::uint16_t port = 0;

    /// Parses "a.b.c.d:port" or "[v6]:port".
    /// @returns the endpoint, or nothing with `ec` set to `error::invalid_endpoint`.
    static std::optional<endpoint> parse(std::string_view text, std::error_code& ec);

    /// "a.b.c.d:port" or "[v6]:port".
    std::string to_string() const;

    friend constexpr bool operator==(const endpoint&, const endpoint&) noexcept = default;
    friend constexpr auto operator<=>(const endpoint&, const endpoint&) noexcept = default;
};

} // namespace peerlink

template <>
struct std::hash<peerlink::endpoint> {
    std::size_t operator()(const peerlink::endpoint& e) const noexcept {
        std::size_t h = 1469598103934665603ull; // FNV-1a over address, family and port
        auto mix = [&](std::uint8_t b) {
            h = (h ^ b) * 1099511628211ull;
        };
        for (std::size_t i = 0; i < e.address.size(); ++i)
            mix(e.address.data()[i]);
        mix(static_cast<std::uint8_t>(e.address.get_family()));
        mix(static_cast<std::uint8_t>(e.port >> 8));
        mix(static_cast<std::uint8_t>(e.port));
        return h;
    }
};

#include <peerlink/impl/endpoint.hpp>

#endif // PEERLINK_ENDPOINT_HPP
