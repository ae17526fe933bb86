#include <peerlink/endpoint.hpp>

#include "catch.hpp"

using peerlink::endpoint;
using peerlink::ip_address;

TEST_CASE("endpoint parses and prints IPv4 and IPv6", "[endpoint]") {
    std::error_code ec;
    auto v4 = endpoint::parse("127.0.0.1:4242", ec);
    REQUIRE(v4);
    CHECK(!ec);
    CHECK(v4->address == ip_address::loopback_v4());
    CHECK(v4->port == 4242);
    CHECK(v4->to_string() == "127.0.0.1:4242");

    auto v6 = endpoint::parse("[::1]:65535", ec);
    REQUIRE(v6);
    CHECK(v6->address == ip_address::loopback_v6());
    CHECK(v6->address.is_loopback());
    CHECK(v6->to_string() == "[::1]:65535");

    auto scoped = endpoint::parse("[fe80::1%3]:1", ec);
    REQUIRE(scoped);
    CHECK(scoped->address.scope_id() == 3);
    CHECK(scoped->to_string() == "[fe80::1%3]:1");
}

TEST_CASE("endpoint rejects malformed text with invalid_endpoint", "[endpoint]") {
    for (const char* bad :
         {"", "1.2.3.4", "1.2.3.4:", "1.2.3.4:65536", "1.2.3.4:-1", "::1:80", "[1.2.3.4]:80",
          "[::1]80", "[::1", "300.1.1.1:1", "1.2.3.4:8x", "host.example:80", "1.2.3.4%1:80"}) {
        std::error_code ec;
        INFO(bad);
        CHECK_FALSE(endpoint::parse(bad, ec));
        CHECK(ec == peerlink::error::invalid_endpoint);
        CHECK(ec == peerlink::condition::malformed_input);
    }
}
