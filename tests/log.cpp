#include <peerlink/log.hpp>

#include "catch.hpp"

#include <string>
#include <vector>

using peerlink::log_level;
using peerlink::logger;

namespace {

struct record {
    log_level level;
    std::string component;
    std::string message;
};

constexpr log_level all_levels[] = {log_level::trace,   log_level::debug, log_level::info,
                                    log_level::warning, log_level::error, log_level::off};

} // namespace

TEST_CASE("log_level names", "[log]") {
    CHECK(to_string(log_level::trace) == "trace");
    CHECK(to_string(log_level::debug) == "debug");
    CHECK(to_string(log_level::info) == "info");
    CHECK(to_string(log_level::warning) == "warning");
    CHECK(to_string(log_level::error) == "error");
    CHECK(to_string(log_level::off) == "off");
    STATIC_REQUIRE(peerlink::to_string(log_level::warning) == "warning");
}

TEST_CASE("a default logger is disabled at every level", "[log]") {
    const logger log;
    for (log_level level : all_levels) {
        CHECK_FALSE(log.enabled(level));
        log.log(level, "test", "dropped"); // no hook: must not crash or print
    }
    CHECK(log.min_level() == log_level::info);
}

TEST_CASE("logger passes messages at or above its minimum level", "[log]") {
    std::vector<record> got;
    logger log(
        [&](log_level l, std::string_view c, std::string_view m) {
            got.push_back({l, std::string(c), std::string(m)});
        },
        log_level::info);

    CHECK_FALSE(log.enabled(log_level::trace));
    CHECK_FALSE(log.enabled(log_level::debug));
    CHECK(log.enabled(log_level::info));
    CHECK(log.enabled(log_level::warning));
    CHECK(log.enabled(log_level::error));
    CHECK_FALSE(log.enabled(log_level::off));

    for (log_level level : all_levels)
        log.log(level, "kcp", std::string("at ") + std::string(to_string(level)));
    REQUIRE(got.size() == 3);
    CHECK(got[0].level == log_level::info);
    CHECK(got[0].component == "kcp");
    CHECK(got[0].message == "at info");
    CHECK(got[1].level == log_level::warning);
    CHECK(got[2].level == log_level::error);
    CHECK(got[2].message == "at error");

    got.clear();
    log.set_min_level(log_level::trace);
    for (log_level level : all_levels)
        log.log(level, "stun", "x");
    CHECK(got.size() == 5); // every level but off

    got.clear();
    log.set_min_level(log_level::off);
    for (log_level level : all_levels) {
        CHECK_FALSE(log.enabled(level));
        log.log(level, "stun", "x");
    }
    CHECK(got.empty());
}

TEST_CASE("logger hook can be replaced and removed; copies share nothing", "[log]") {
    int first = 0;
    int second = 0;
    logger log([&](log_level, std::string_view, std::string_view) { ++first; }, log_level::debug);
    log.log(log_level::debug, "a", "1");
    logger copy = log;
    log.set_hook([&](log_level, std::string_view, std::string_view) { ++second; });
    log.log(log_level::debug, "a", "2");
    copy.log(log_level::debug, "a", "3"); // the copy keeps the original hook
    CHECK(first == 2);
    CHECK(second == 1);

    log.set_hook({});
    CHECK_FALSE(log.enabled(log_level::error));
    log.log(log_level::error, "a", "4");
    CHECK(second == 1);

    logger empty_hook(logger::hook_type{}, log_level::trace);
    CHECK_FALSE(empty_hook.enabled(log_level::error));
}
