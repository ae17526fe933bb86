// Implementation of peerlink/config.hpp.
#ifndef PEERLINK_IMPL_CONFIG_HPP
#define PEERLINK_IMPL_CONFIG_HPP

#include <peerlink/endpoint.hpp>

#include <initializer_list>
#include <limits>
#include <string_view>
#include <type_traits>
#include <utility>

namespace peerlink {
namespace detail {

inline constexpr std::size_t min_datagram_size = 512;
inline constexpr std::size_t max_udp_payload = 65507; // the largest IPv4 UDP payload
inline constexpr int max_socket_buffer_bytes = 1 << 30;
// A day is longer than any sensible timer and keeps later arithmetic in nanoseconds
// far from overflow.
inline constexpr std::chrono::milliseconds max_config_duration{24 * 3600 * 1000};

// Reports the first problem found; every reader returns false once one is seen.
class config_reader {
public:
    config_reader(std::error_code& ec, std::string* what) noexcept : ec_(ec), what_(what) {}

    bool fail(std::string message) {
        ec_ = make_error_code(error::invalid_config);
        if (what_)
            *what_ = std::move(message);
        return false;
    }

    // An object with no key outside `known`.
    bool section(const nlohmann::json& j, const std::string& path,
                 std::initializer_list<std::string_view> known) {
        if (!j.is_object())
            return fail(path + " must be an object");
        for (const auto& item : j.items()) {
            bool found = false;
            for (std::string_view k : known)
                found = found || item.key() == k;
            if (!found)
                return fail("unknown key " + join(path, item.key()));
        }
        return true;
    }

    bool read(const nlohmann::json& obj, const std::string& path, std::string_view key,
              std::string& out) {
        auto it = obj.find(key);
        if (it == obj.end())
            return true;
        if (!it->is_string())
            return fail(join(path, key) + " must be a string");
        out = it->get<std::string>();
        return true;
    }

    bool read(const nlohmann::json& obj, const std::string& path, std::string_view key, bool& out) {
        auto it = obj.find(key);
        if (it == obj.end())
            return true;
        if (!it->is_boolean())
            return fail(join(path, key) + " must be a boolean");
        out = it->get<bool>();
        return true;
    }

    template <class T>
    requires std::is_integral_v<T>
    bool read(const nlohmann::json& obj, const std::string& path, std::string_view key, T& out) {
        auto it = obj.find(key);
        if (it == obj.end())
            return true;
        auto v = integer<T>(*it);
        if (!v)
            return fail(join(path, key) + " must be an integer in " +
                        std::to_string(std::numeric_limits<T>::min()) + ".." +
                        std::to_string(std::numeric_limits<T>::max()));
        out = *v;
        return true;
    }

    bool read(const nlohmann::json& obj, const std::string& path, std::string_view key,
              std::chrono::milliseconds& out) {
        auto it = obj.find(key);
        if (it == obj.end())
            return true;
        auto v = integer<std::chrono::milliseconds::rep>(*it);
        if (!v)
            return fail(join(path, key) + " must be an integer number of milliseconds");
        out = std::chrono::milliseconds(*v);
        return true;
    }

    bool read(const nlohmann::json& obj, const std::string& path, std::string_view key,
              std::vector<std::string>& out) {
        auto it = obj.find(key);
        if (it == obj.end())
            return true;
        if (!it->is_array())
            return fail(join(path, key) + " must be an array of strings");
        std::vector<std::string> result;
        for (std::size_t i = 0; i < it->size(); ++i) {
            const auto& v = (*it)[i];
            if (!v.is_string())
                return fail(join(path, key) + "[" + std::to_string(i) + "] must be a string");
            result.push_back(v.get<std::string>());
        }
        out = std::move(result);
        return true;
    }

    bool read(const nlohmann::json& obj, const std::string& path, std::string_view key,
              std::vector<turn_server>& out) {
        auto it = obj.find(key);
        if (it == obj.end())
            return true;
        const std::string list = join(path, key);
        if (!it->is_array())
            return fail(list + " must be an array of objects");
        std::vector<turn_server> result;
        for (std::size_t i = 0; i < it->size(); ++i) {
            const std::string p = list + "[" + std::to_string(i) + "]";
            turn_server s;
            const auto& v = (*it)[i];
            if (!section(v, p, {"url", "username", "password"}) || !read(v, p, "url", s.url) ||
                !read(v, p, "username", s.username) || !read(v, p, "password", s.password))
                return false;
            result.push_back(std::move(s));
        }
        out = std::move(result);
        return true;
    }

    // nlohmann's get<int>() would accept true and truncate 1.5; only JSON integers that
    // fit the field are taken.
    template <class T>
    static std::optional<T> integer(const nlohmann::json& v) {
        if (v.is_number_unsigned()) {
            auto u = v.get<std::uint64_t>();
            if (std::in_range<T>(u))
                return static_cast<T>(u);
        } else if (v.is_number_integer()) {
            auto i = v.get<std::int64_t>();
            if (std::in_range<T>(i))
                return static_cast<T>(i);
        }
        return std::nullopt;
    }

    static std::string join(std::string_view path, std::string_view key) {
        std::string s(path);
        s += '.';
        s += key;
        return s;
    }

private:
    std::error_code& ec_;
    std::string* what_;
};

} // namespace detail

inline bool validate(const config& cfg, std::error_code& ec, std::string* what) {
    detail::config_reader r(ec, what);
    const auto& t = cfg.transport;
    if (!t.bind_address.empty()) {
        std::error_code parse_ec;
        auto address = ip_address::parse(t.bind_address, parse_ec);
        if (!address)
            return r.fail("transport.bind_address must be empty or an IP address, not '" +
                          t.bind_address + "'");
        if (address->is_v6() && !t.ipv6)
            return r.fail("transport.bind_address is an IPv6 address but transport.ipv6 is false");
    }
    if (t.port_min > t.port_max)
        return r.fail("transport.port_min must be <= transport.port_max");
    if (t.port_min == 0 && t.port_max != 0)
        return r.fail("transport.port_min must be >= 1 when transport.port_max is set "
                      "(0 and 0 mean an ephemeral port)");
    if (t.max_datagram_size < detail::min_datagram_size ||
        t.max_datagram_size > detail::max_udp_payload)
        return r.fail("transport.max_datagram_size must be in " +
                      std::to_string(detail::min_datagram_size) + ".." +
                      std::to_string(detail::max_udp_payload));
    if (t.socket_buffer_bytes < 0 || t.socket_buffer_bytes > detail::max_socket_buffer_bytes)
        return r.fail("transport.socket_buffer_bytes must be in 0.." +
                      std::to_string(detail::max_socket_buffer_bytes) + " (0 keeps the system's)");

    const auto& m = cfg.timers;
    const std::pair<std::chrono::milliseconds, const char*> durations[] = {
        {m.connect_timeout, "timers.connect_timeout_ms"},
        {m.hello_interval, "timers.hello_interval_ms"},
        {m.keepalive_interval, "timers.keepalive_interval_ms"},
        {m.idle_timeout, "timers.idle_timeout_ms"},
        {m.backoff_initial, "timers.backoff_initial_ms"},
        {m.backoff_max, "timers.backoff_max_ms"},
    };
    for (const auto& [value, name] : durations)
        if (value.count() < 1 || value > detail::max_config_duration)
            return r.fail(std::string(name) + " must be in 1.." +
                          std::to_string(detail::max_config_duration.count()));
    if (m.hello_interval > m.connect_timeout)
        return r.fail("timers.hello_interval_ms must be <= timers.connect_timeout_ms");
    if (m.keepalive_interval >= m.idle_timeout)
        return r.fail("timers.keepalive_interval_ms must be < timers.idle_timeout_ms");
    if (m.backoff_initial > m.backoff_max)
        return r.fail("timers.backoff_initial_ms must be <= timers.backoff_max_ms");

    for (std::size_t i = 0; i < cfg.stun.servers.size(); ++i)
        if (cfg.stun.servers[i].empty())
            return r.fail("stun.servers[" + std::to_string(i) + "] must not be empty");
    for (std::size_t i = 0; i < cfg.turn.servers.size(); ++i)
        if (cfg.turn.servers[i].url.empty())
            return r.fail("turn.servers[" + std::to_string(i) + "].url must not be empty");
    ec.clear();
    return true;
}

inline std::optional<config> config_from_json(const nlohmann::json& j, std::error_code& ec,
                                              std::string* what) {
    detail::config_reader r(ec, what);
    config cfg;
    if (!j.is_object()) {
        r.fail("the configuration must be a JSON object");
        return std::nullopt;
    }
    for (const auto& item : j.items()) {
        const std::string& key = item.key();
        const nlohmann::json& v = item.value();
        bool ok = false;
        if (key == "transport") {
            auto& t = cfg.transport;
            ok = r.section(v, key,
                           {"bind_address", "port_min", "port_max", "ipv6", "max_datagram_size",
                            "socket_buffer_bytes"}) &&
                 r.read(v, key, "bind_address", t.bind_address) &&
                 r.read(v, key, "port_min", t.port_min) && r.read(v, key, "port_max", t.port_max) &&
                 r.read(v, key, "ipv6", t.ipv6) &&
                 r.read(v, key, "max_datagram_size", t.max_datagram_size) &&
                 r.read(v, key, "socket_buffer_bytes", t.socket_buffer_bytes);
        } else if (key == "timers") {
            auto& m = cfg.timers;
            ok = r.section(v, key,
                           {"connect_timeout_ms", "hello_interval_ms", "keepalive_interval_ms",
                            "idle_timeout_ms", "backoff_initial_ms", "backoff_max_ms"}) &&
                 r.read(v, key, "connect_timeout_ms", m.connect_timeout) &&
                 r.read(v, key, "hello_interval_ms", m.hello_interval) &&
                 r.read(v, key, "keepalive_interval_ms", m.keepalive_interval) &&
                 r.read(v, key, "idle_timeout_ms", m.idle_timeout) &&
                 r.read(v, key, "backoff_initial_ms", m.backoff_initial) &&
                 r.read(v, key, "backoff_max_ms", m.backoff_max);
        } else if (key == "features") {
            auto& f = cfg.features;
            ok = r.section(v, key, {"fec", "fec_adaptive", "cipher", "disguise"}) &&
                 r.read(v, key, "fec", f.fec) && r.read(v, key, "fec_adaptive", f.fec_adaptive) &&
                 r.read(v, key, "cipher", f.cipher) && r.read(v, key, "disguise", f.disguise);
        } else if (key == "signaling") {
            ok = r.section(v, key, {"url"}) && r.read(v, key, "url", cfg.signaling.url);
        } else if (key == "stun") {
            ok = r.section(v, key, {"servers"}) && r.read(v, key, "servers", cfg.stun.servers);
        } else if (key == "turn") {
            ok = r.section(v, key, {"servers"}) && r.read(v, key, "servers", cfg.turn.servers);
        } else {
            r.fail("unknown key " + key);
        }
        if (!ok)
            return std::nullopt;
    }
    if (!validate(cfg, ec, what))
        return std::nullopt;
    return cfg;
}

inline void to_json(nlohmann::json& j, const config& cfg) {
    const auto& t = cfg.transport;
    const auto& m = cfg.timers;
    nlohmann::json turn = nlohmann::json::array();
    for (const auto& s : cfg.turn.servers)
        turn.push_back({{"url", s.url}, {"username", s.username}, {"password", s.password}});
    j = {
        {"transport",
         {{"bind_address", t.bind_address},
          {"port_min", t.port_min},
          {"port_max", t.port_max},
          {"ipv6", t.ipv6},
          {"max_datagram_size", t.max_datagram_size},
          {"socket_buffer_bytes", t.socket_buffer_bytes}}},
        {"timers",
         {{"connect_timeout_ms", m.connect_timeout.count()},
          {"hello_interval_ms", m.hello_interval.count()},
          {"keepalive_interval_ms", m.keepalive_interval.count()},
          {"idle_timeout_ms", m.idle_timeout.count()},
          {"backoff_initial_ms", m.backoff_initial.count()},
          {"backoff_max_ms", m.backoff_max.count()}}},
        {"features",
         {{"fec", cfg.features.fec},
          {"fec_adaptive", cfg.features.fec_adaptive},
          {"cipher", cfg.features.cipher},
          {"disguise", cfg.features.disguise}}},
        {"signaling", {{"url", cfg.signaling.url}}},
        {"stun", {{"servers", cfg.stun.servers}}},
        {"turn", {{"servers", std::move(turn)}}},
    };
}

inline void from_json(const nlohmann::json& j, config& cfg) {
    std::error_code ec;
    std::string what;
    auto parsed = config_from_json(j, ec, &what);
    if (!parsed)
        throw std::system_error(ec, what);
    cfg = std::move(*parsed);
}

} // namespace peerlink

#endif // PEERLINK_IMPL_CONFIG_HPP
