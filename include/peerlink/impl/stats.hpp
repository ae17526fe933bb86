// Implementation of peerlink/stats.hpp.
#ifndef PEERLINK_IMPL_STATS_HPP
#define PEERLINK_IMPL_STATS_HPP

#include <string>
#include <string_view>
#include <utility>

namespace peerlink {
namespace detail {

// One table drives both directions so a new counter cannot be written but not read.
template <class Stats, class F>
void for_each_stats_counter(Stats& s, F&& f) {
    f("packets_sent", s.packets_sent);
    f("packets_received", s.packets_received);
    f("bytes_sent", s.bytes_sent);
    f("bytes_received", s.bytes_received);
    f("datagrams_sent", s.datagrams_sent);
    f("datagrams_received", s.datagrams_received);
    f("dropped_malformed", s.dropped_malformed);
    f("dropped_unexpected_peer", s.dropped_unexpected_peer);
    f("dropped_send_errors", s.dropped_send_errors);
    f("dropped_truncated", s.dropped_truncated);
    f("send_would_block", s.send_would_block);
    f("dropped_receive_queue_full", s.dropped_receive_queue_full);
    f("dropped_unauthenticated", s.dropped_unauthenticated);
    f("fec_recovered", s.fec_recovered);
}

template <class Stats, class F>
void for_each_stats_duration(Stats& s, F&& f) {
    f("srtt_us", s.srtt);
    f("min_rtt_us", s.min_rtt);
    f("last_rtt_us", s.last_rtt);
}

template <class Stats, class F>
void for_each_stats_text(Stats& s, F&& f) {
    f("state", s.state);
    f("path", s.path);
    f("local_endpoint", s.local_endpoint);
    f("remote_endpoint", s.remote_endpoint);
    f("cipher", s.cipher);
    f("fec", s.fec);
    f("disguise", s.disguise);
}

[[noreturn]] inline void stats_type_error(const nlohmann::json& j, std::string_view key,
                                          const char* expected) {
    throw nlohmann::json::type_error::create(
        302, "stats." + std::string(key) + " must be " + expected, &j);
}

} // namespace detail

inline void to_json(nlohmann::json& j, const stats& s) {
    j = nlohmann::json::object();
    detail::for_each_stats_counter(s, [&](const char* key, std::uint64_t v) { j[key] = v; });
    detail::for_each_stats_duration(
        s, [&](const char* key, std::chrono::microseconds v) { j[key] = v.count(); });
    detail::for_each_stats_text(s, [&](const char* key, const std::string& v) { j[key] = v; });
}

inline void from_json(const nlohmann::json& j, stats& s) {
    if (!j.is_object())
        throw nlohmann::json::type_error::create(302, "stats must be an object", &j);
    // nlohmann's own get<std::uint64_t>() would turn -1 into 2^64-1 and true into 1.
    detail::for_each_stats_counter(s, [&](const char* key, std::uint64_t& v) {
        auto it = j.find(key);
        if (it == j.end())
            return;
        if (!it->is_number_unsigned() && !(it->is_number_integer() && it->get<std::int64_t>() >= 0))
            detail::stats_type_error(*it, key, "a non-negative integer");
        v = it->is_number_unsigned() ? it->get<std::uint64_t>()
                                     : static_cast<std::uint64_t>(it->get<std::int64_t>());
    });
    detail::for_each_stats_duration(s, [&](const char* key, std::chrono::microseconds& v) {
        auto it = j.find(key);
        if (it == j.end())
            return;
        if (!it->is_number_integer() ||
            (it->is_number_unsigned() && !std::in_range<std::int64_t>(it->get<std::uint64_t>())))
            detail::stats_type_error(*it, key, "an integer number of microseconds");
        v = std::chrono::microseconds(it->get<std::int64_t>());
    });
    detail::for_each_stats_text(s, [&](const char* key, std::string& v) {
        auto it = j.find(key);
        if (it == j.end())
            return;
        if (!it->is_string())
            detail::stats_type_error(*it, key, "a string");
        v = it->get<std::string>();
    });
}

} // namespace peerlink

#endif // PEERLINK_IMPL_STATS_HPP
