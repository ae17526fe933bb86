#include <peerlink/config.hpp>

#include "catch.hpp"

#include <string>

using nlohmann::json;
using peerlink::config;
using namespace std::chrono_literals;

namespace {

config non_default_config() {
    config c;
    c.transport.bind_address = "::1";
    c.transport.port_min = 40000;
    c.transport.port_max = 40100;
    c.transport.ipv6 = true;
    c.transport.max_datagram_size = 1200;
    c.transport.socket_buffer_bytes = 0;
    c.timers.connect_timeout = 5000ms;
    c.timers.hello_interval = 100ms;
    c.timers.keepalive_interval = 1000ms;
    c.timers.idle_timeout = 3000ms;
    c.timers.backoff_initial = 1000ms;
    c.timers.backoff_max = 60000ms;
    c.features = {true, false, false, true}; // fec, not adaptive, no cipher, disguise
    c.signaling.url = "wss://signal.example/peerlink";
    c.stun.servers = {"stun:198.18.0.1:3478", "stun:[2001:db8::1]:3478"};
    c.turn.servers = {{"turn:198.18.0.1:3478", "alice", "s3cret"},
                      {"turns:198.18.0.2:5349", "bob", ""}};
    return c;
}

} // namespace

TEST_CASE("config defaults are the documented values and valid", "[config]") {
    config c;
    CHECK(c.transport.bind_address.empty());
    CHECK(c.transport.port_min == 0);
    CHECK(c.transport.port_max == 0);
    CHECK(c.transport.ipv6);
    CHECK(c.transport.max_datagram_size == 1400);
    CHECK(c.transport.socket_buffer_bytes == 4 * 1024 * 1024);
    CHECK(c.timers.connect_timeout == 10s);
    CHECK(c.timers.hello_interval == 250ms);
    CHECK(c.timers.keepalive_interval == 15s);
    CHECK(c.timers.idle_timeout == 45s);
    CHECK(c.timers.backoff_initial == 30s);
    CHECK(c.timers.backoff_max == 1h);
    CHECK_FALSE(c.features.fec);
    CHECK(c.features.fec_adaptive);
    CHECK(c.features.cipher);
    CHECK_FALSE(c.features.disguise);
    CHECK(c.signaling.url.empty());
    CHECK(c.stun.servers.empty());
    CHECK(c.turn.servers.empty());

    std::error_code ec = peerlink::error::invalid_key;
    std::string what = "untouched";
    CHECK(validate(c, ec, &what));
    CHECK(!ec);
}

TEST_CASE("config round-trips through JSON", "[config]") {
    for (const config& c : {config{}, non_default_config()}) {
        json j = c;
        CHECK(j["timers"]["connect_timeout_ms"] == c.timers.connect_timeout.count());
        CHECK(j["transport"]["port_max"] == c.transport.port_max);
        std::error_code ec;
        std::string what;
        auto back = peerlink::config_from_json(j, ec, &what);
        INFO(what);
        REQUIRE(back);
        CHECK(!ec);
        CHECK(*back == c);
        CHECK(j.get<config>() == c);
        // Through text too, as a configuration file would.
        CHECK(json::parse(j.dump()).get<config>() == c);
    }
    CHECK(non_default_config() != config{});
}

TEST_CASE("config keys missing from JSON keep their defaults", "[config]") {
    std::error_code ec;
    auto empty = peerlink::config_from_json(json::object(), ec);
    REQUIRE(empty);
    CHECK(*empty == config{});

    auto partial = peerlink::config_from_json(
        json::parse(R"({"transport": {"port_min": 5000, "port_max": 5010},
                        "features": {"fec": true}, "timers": {}})"),
        ec);
    REQUIRE(partial);
    config expected;
    expected.transport.port_min = 5000;
    expected.transport.port_max = 5010;
    expected.features.fec = true;
    CHECK(*partial == expected);
}

TEST_CASE("config_from_json names the bad key for each wrong type or range", "[config]") {
    struct bad_case {
        const char* json_text;
        const char* what;
    };
    const bad_case cases[] = {
        // Not objects.
        {R"([])", "the configuration must be a JSON object"},
        {R"({"transport": []})", "transport must be an object"},
        {R"({"turn": null})", "turn must be an object"},
        // Wrong types.
        {R"({"transport": {"port_min": "80"}})",
         "transport.port_min must be an integer in 0..65535"},
        {R"({"transport": {"port_min": 1.5}})",
         "transport.port_min must be an integer in 0..65535"},
        {R"({"transport": {"port_min": true}})",
         "transport.port_min must be an integer in 0..65535"},
        {R"({"transport": {"port_max": 65536}})",
         "transport.port_max must be an integer in 0..65535"},
        {R"({"transport": {"port_max": -1}})", "transport.port_max must be an integer in 0..65535"},
        {R"({"transport": {"ipv6": 1}})", "transport.ipv6 must be a boolean"},
        {R"({"transport": {"bind_address": 0}})", "transport.bind_address must be a string"},
        {R"({"transport": {"max_datagram_size": -5}})",
         "transport.max_datagram_size must be an integer in 0.."},
        {R"({"transport": {"socket_buffer_bytes": 2147483648}})",
         "transport.socket_buffer_bytes must be an integer in -2147483648..2147483647"},
        {R"({"timers": {"idle_timeout_ms": "45s"}})",
         "timers.idle_timeout_ms must be an integer number of milliseconds"},
        {R"({"timers": {"idle_timeout_ms": 45000.5}})",
         "timers.idle_timeout_ms must be an integer number of milliseconds"},
        {R"({"features": {"fec": "yes"}})", "features.fec must be a boolean"},
        {R"({"features": {"cipher": 0}})", "features.cipher must be a boolean"},
        {R"({"signaling": {"url": null}})", "signaling.url must be a string"},
        {R"({"stun": {"servers": "stun:a:3478"}})", "stun.servers must be an array of strings"},
        {R"({"stun": {"servers": ["stun:a:3478", 7]}})", "stun.servers[1] must be a string"},
        {R"({"turn": {"servers": {}}})", "turn.servers must be an array of objects"},
        {R"({"turn": {"servers": ["turn:a"]}})", "turn.servers[0] must be an object"},
        {R"({"turn": {"servers": [{"url": "turn:a", "password": 5}]}})",
         "turn.servers[0].password must be a string"},
        // Out of range and cross-field rules.
        {R"({"transport": {"port_min": 6000, "port_max": 5000}})",
         "transport.port_min must be <= transport.port_max"},
        {R"({"transport": {"port_min": 6000}})",
         "transport.port_min must be <= transport.port_max"},
        {R"({"transport": {"port_max": 6000}})", "transport.port_min must be >= 1 when"},
        {R"({"transport": {"bind_address": "localhost"}})",
         "transport.bind_address must be empty or an IP address, not 'localhost'"},
        {R"({"transport": {"bind_address": "::", "ipv6": false}})",
         "transport.bind_address is an IPv6 address but transport.ipv6 is false"},
        {R"({"transport": {"max_datagram_size": 100}})",
         "transport.max_datagram_size must be in 512..65507"},
        {R"({"transport": {"max_datagram_size": 65508}})",
         "transport.max_datagram_size must be in 512..65507"},
        {R"({"transport": {"socket_buffer_bytes": -1}})",
         "transport.socket_buffer_bytes must be in 0.."},
        {R"({"timers": {"connect_timeout_ms": 0}})",
         "timers.connect_timeout_ms must be in 1..86400000"},
        {R"({"timers": {"hello_interval_ms": -250}})",
         "timers.hello_interval_ms must be in 1..86400000"},
        {R"({"timers": {"backoff_max_ms": 86400001}})",
         "timers.backoff_max_ms must be in 1..86400000"},
        {R"({"timers": {"hello_interval_ms": 10001}})",
         "timers.hello_interval_ms must be <= timers.connect_timeout_ms"},
        {R"({"timers": {"keepalive_interval_ms": 45000}})",
         "timers.keepalive_interval_ms must be < timers.idle_timeout_ms"},
        {R"({"timers": {"backoff_initial_ms": 3600001}})",
         "timers.backoff_initial_ms must be <= timers.backoff_max_ms"},
        {R"({"stun": {"servers": [""]}})", "stun.servers[0] must not be empty"},
        {R"({"turn": {"servers": [{"url": "turn:a"}, {"username": "bob"}]}})",
         "turn.servers[1].url must not be empty"},
    };
    for (const auto& bad : cases) {
        INFO(bad.json_text);
        std::error_code ec;
        std::string what;
        CHECK_FALSE(peerlink::config_from_json(json::parse(bad.json_text), ec, &what));
        CHECK(ec == peerlink::error::invalid_config);
        CHECK(ec == peerlink::condition::configuration_error);
        CHECK(what.rfind(bad.what, 0) == 0);            // starts with the expected sentence
        CHECK(what == what.substr(0, what.find('\n'))); // one line
    }
}

TEST_CASE("config_from_json rejects unknown keys at every level", "[config]") {
    const std::pair<const char*, const char*> cases[] = {
        {R"({"transprt": {}})", "unknown key transprt"},
        {R"({"transport": {"prot_min": 1}})", "unknown key transport.prot_min"},
        // The unit suffix is part of the key: a bare name is a typo, not a default.
        {R"({"timers": {"connect_timeout": 1000}})", "unknown key timers.connect_timeout"},
        {R"({"features": {"compression": true}})", "unknown key features.compression"},
        {R"({"signaling": {"uri": "ws://a"}})", "unknown key signaling.uri"},
        {R"({"stun": {"server": []}})", "unknown key stun.server"},
        {R"({"turn": {"servers": [{"url": "turn:a", "user": "alice"}]}})",
         "unknown key turn.servers[0].user"},
    };
    for (const auto& [text, expected] : cases) {
        INFO(text);
        std::error_code ec;
        std::string what;
        CHECK_FALSE(peerlink::config_from_json(json::parse(text), ec, &what));
        CHECK(ec == peerlink::error::invalid_config);
        CHECK(what == expected);
    }
}

TEST_CASE("config from_json throws system_error naming the key", "[config]") {
    json j = json::parse(R"({"transport": {"port_min": 9, "port_max": 8}})");
    try {
        (void)j.get<config>();
        FAIL("no exception");
    } catch (const std::system_error& e) {
        CHECK(e.code() == peerlink::error::invalid_config);
        CHECK(std::string(e.what()).find("transport.port_min must be <= transport.port_max") !=
              std::string::npos);
    }
    // Without the `what` out-parameter the code is still reported.
    std::error_code ec;
    CHECK_FALSE(peerlink::config_from_json(j, ec));
    CHECK(ec == peerlink::error::invalid_config);
}

TEST_CASE("validate checks a config built in code", "[config]") {
    config c = non_default_config();
    std::error_code ec;
    std::string what;
    REQUIRE(validate(c, ec, &what));

    c.timers.idle_timeout = 0ms;
    CHECK_FALSE(validate(c, ec, &what));
    CHECK(ec == peerlink::error::invalid_config);
    CHECK(what == "timers.idle_timeout_ms must be in 1..86400000");

    c = non_default_config();
    c.transport.bind_address = "10.0.0.1:80";
    CHECK_FALSE(validate(c, ec));
    CHECK(ec == peerlink::error::invalid_config);

    c.transport.bind_address = "fe80::1%2";
    CHECK(validate(c, ec));
    CHECK(!ec);
}
