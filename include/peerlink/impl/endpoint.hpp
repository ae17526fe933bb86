// Implementation of peerlink/endpoint.hpp.
#ifndef PEERLINK_IMPL_ENDPOINT_HPP
#define PEERLINK_IMPL_ENDPOINT_HPP

#include <arpa/inet.h>

namespace peerlink {

inline std::optional<ip_address> ip_address::parse(std::string_view text, std::error_code& ec) {
    ec = make_error_code(error::invalid_endpoint);
    // inet_pton needs a terminated string; no address text is longer than this.
    char buf[64];
    std::uint32_t scope = 0;
    if (auto pct = text.find('%'); pct != std::string_view::npos) {
        auto s = text.substr(pct + 1);
        auto [p, e] = std::from_chars(s.data(), s.data() + s.size(), scope);
        if (e != std::errc{} || p != s.data() + s.size() || s.empty())
            return std::nullopt;
        text = text.substr(0, pct);
    }
    if (text.empty() || text.size() >= sizeof buf)
        return std::nullopt;
    text.copy(buf, text.size());
    buf[text.size()] = '\0';
    if (text.find(':') == std::string_view::npos) {
        std::array<std::uint8_t, 4> b{};
        if (scope != 0 || ::inet_pton(AF_INET, buf, b.data()) != 1)
            return std::nullopt;
        ec.clear();
        return v4(b);
    }
    std::array<std::uint8_t, 16> b{};
    if (::inet_pton(AF_INET6, buf, b.data()) != 1)
        return std::nullopt;
    ec.clear();
    return v6(b, scope);
}

inline std::string ip_address::to_string() const {
    char buf[INET6_ADDRSTRLEN + 16];
    if (::inet_ntop(is_v4() ? AF_INET : AF_INET6, bytes_.data(), buf, sizeof buf) == nullptr)
        return "?";
    std::string s = buf;
    if (is_v6() && scope_id_ != 0)
        s += "%" + std::to_string(scope_id_);
    return s;
}

inline std::optional<endpoint> endpoint::parse(std::string_view text, std::error_code& ec) {
    ec = make_error_code(error::invalid_endpoint);
    std::string_view host, port;
    if (!text.empty() && text.front() == '[') {
        auto close = text.find(']');
        if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
            return std::nullopt;
        host = text.substr(1, close - 1);
        port = text.substr(close + 2);
        if (host.find(':') == std::string_view::npos)
            return std::nullopt; // brackets are for IPv6 only
    } else {
        auto colon = text.rfind(':');
        if (colon == std::string_view::npos || text.find(':') != colon)
            return std::nullopt; // a bare IPv6 address needs brackets around it
        host = text.substr(0, colon);
        port = text.substr(colon + 1);
    }
    unsigned value = 0;
    auto [p, e] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (port.empty() || e != std::errc{} || p != port.data() + port.size() || value > 65535)
        return std::nullopt;
    auto address = ip_address::parse(host, ec);
    if (!address)
        return std::nullopt;
    return endpoint{*address, static_cast<std::uint16_t>(value)};
}

inline std::string endpoint::to_string() const {
    if (address.is_v6())
        return "[" + address.to_string() + "]:" + std::to_string(port);
    return address.to_string() + ":" + std::to_string(port);
}

} // namespace peerlink

#endif // PEERLINK_IMPL_ENDPOINT_HPP
