#include <peerlink/stats.hpp>

#include "catch.hpp"

#include <cstdint>
#include <limits>

using nlohmann::json;
using peerlink::stats;
using namespace std::chrono_literals;

namespace {

stats sample() {
    stats s;
    s.packets_sent = 1;
    s.packets_received = 2;
    s.bytes_sent = 3;
    s.bytes_received = 4;
    s.datagrams_sent = 5;
    s.datagrams_received = 6;
    s.dropped_malformed = 7;
    s.dropped_unexpected_peer = 8;
    s.dropped_send_errors = 9;
    s.dropped_truncated = 10;
    s.dropped_receive_queue_full = 11;
    s.send_would_block = std::numeric_limits<std::uint64_t>::max(); // survives JSON intact
    s.srtt = 23456us;
    s.min_rtt = 20001us;
    s.last_rtt = 25000us;
    s.state = "connected";
    s.path = "relayed";
    s.local_endpoint = "10.0.0.2:40000";
    s.remote_endpoint = "[2001:db8::7]:51234";
    s.dropped_unauthenticated = 12;
    s.fec_recovered = 13;
    s.cipher = "noise-xx";
    s.fec = "8:2";
    s.disguise = "on";
    return s;
}

} // namespace

TEST_CASE("stats defaults", "[stats]") {
    stats s;
    CHECK(s.packets_sent == 0);
    CHECK(s.send_would_block == 0);
    CHECK(s.srtt == 0us);
    CHECK(s.path == "none");
    CHECK(s.state == "idle");
    CHECK(s.remote_endpoint.empty());
    CHECK(s.cipher == "none");
    CHECK(s.fec == "off");
    CHECK(s.disguise == "off");
}

TEST_CASE("stats round-trip through JSON with every field set", "[stats]") {
    const stats s = sample();
    json j = s;
    CHECK(j.size() == 24); // every field written, no more
    CHECK(j["packets_sent"] == 1);
    CHECK(j["dropped_truncated"] == 10);
    CHECK(j["dropped_receive_queue_full"] == 11);
    CHECK(j["send_would_block"] == std::numeric_limits<std::uint64_t>::max());
    CHECK(j["srtt_us"] == 23456);
    CHECK(j["min_rtt_us"] == 20001);
    CHECK(j["last_rtt_us"] == 25000);
    CHECK(j["path"] == "relayed");
    CHECK(j["remote_endpoint"] == "[2001:db8::7]:51234");
    CHECK(j["dropped_unauthenticated"] == 12);
    CHECK(j["fec_recovered"] == 13);
    CHECK(j["cipher"] == "noise-xx");
    CHECK(j["fec"] == "8:2");
    CHECK(j["disguise"] == "on");

    CHECK(j.get<stats>() == s);
    CHECK(json::parse(j.dump()).get<stats>() == s);

    // Each field matters to equality, so the round trip above checked all of them.
    stats other = s;
    other.dropped_send_errors = 0;
    CHECK(other != s);
    other = s;
    other.last_rtt = 1us;
    CHECK(other != s);
}

TEST_CASE("stats from_json keeps defaults for missing keys and ignores unknown ones", "[stats]") {
    json j = {{"bytes_sent", 99}, {"srtt_us", 5}, {"from_a_newer_version", 1}};
    stats s = j.get<stats>();
    stats expected;
    expected.bytes_sent = 99;
    expected.srtt = 5us;
    CHECK(s == expected);

    json signed_count = {{"packets_sent", std::int64_t{42}}}; // built in code, not parsed
    CHECK(signed_count.get<stats>().packets_sent == 42);
}

TEST_CASE("stats from_json rejects wrong types", "[stats]") {
    for (const char* text : {R"({"packets_sent": -1})", R"({"packets_sent": 1.5})",
                             R"({"packets_sent": true})", R"({"bytes_received": "7"})",
                             R"({"srtt_us": 1.5})", R"({"srtt_us": 18446744073709551615})",
                             R"({"state": 3})", R"({"path": null})", R"([])"}) {
        INFO(text);
        CHECK_THROWS_AS(json::parse(text).get<stats>(), json::type_error);
    }
    try {
        (void)json::parse(R"({"dropped_malformed": -3})").get<stats>();
        FAIL("no exception");
    } catch (const json::type_error& e) {
        CHECK(std::string(e.what()).find("stats.dropped_malformed") != std::string::npos);
    }
}
