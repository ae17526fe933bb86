#include <peerlink/proto/frame.hpp>

#include "catch.hpp"

#include <array>
#include <vector>

namespace fr = peerlink::frame;
using peerlink::error;

namespace {
std::vector<std::byte> bytes(std::initializer_list<int> v) {
    std::vector<std::byte> out;
    for (int b : v)
        out.push_back(static_cast<std::byte>(b));
    return out;
}
} // namespace

TEST_CASE("frame: hello round trip with the documented byte layout", "[frame]") {
    std::array<std::byte, 128> storage{};
    peerlink::packet_buffer p(storage, 0);
    fr::hello h;
    for (std::size_t i = 0; i < 32; ++i)
        h.peer_id[i] = static_cast<std::uint8_t>(i);
    h.connection_id = 0x0102030405060708ull;
    h.timestamp_us = 42;
    h.echo_us = 7;
    h.features = fr::feature_bits::fec_capable | fr::feature_bits::fec_on;
    h.fec_data = 8;
    h.fec_parity = 2;
    h.is_ack = true;
    REQUIRE(!fr::encode(p, h));
    REQUIRE(p.size() == fr::header_size + fr::hello_body_size);
    auto d = p.data();
    CHECK(d[0] == std::byte{1});    // version
    CHECK(d[1] == std::byte{0x02}); // hello_ack
    CHECK(d[2 + 32] == std::byte{0x01});
    CHECK(d[2 + 39] == std::byte{0x08}); // big-endian connection id
    CHECK(d[2 + 47] == std::byte{42});
    CHECK(d[2 + 56] == std::byte{0x09}); // features
    CHECK(d[2 + 57] == std::byte{8});
    CHECK(d[2 + 58] == std::byte{2});

    std::error_code ec;
    auto f = fr::decode(p.data(), ec);
    REQUIRE(f);
    REQUIRE(std::holds_alternative<fr::hello>(*f));
    CHECK(std::get<fr::hello>(*f) == h);
}

TEST_CASE("frame: data payload gets a two-byte header in its headroom", "[frame]") {
    std::array<std::byte, 64> storage{};
    peerlink::packet_buffer p(storage, fr::header_size);
    auto payload = bytes({0xde, 0xad, 0xbe, 0xef});
    REQUIRE(p.append(payload));
    REQUIRE(!fr::prepend_header(p, fr::frame_type::data));
    CHECK(p.size() == 6);
    std::error_code ec;
    auto f = fr::decode(p.data(), ec);
    REQUIRE(f);
    auto& d = std::get<fr::data>(*f);
    REQUIRE(d.payload.size() == 4);
    CHECK(std::equal(d.payload.begin(), d.payload.end(), payload.begin()));

    peerlink::packet_buffer no_room(storage, 0);
    CHECK(fr::prepend_header(no_room, fr::frame_type::data) == error::buffer_too_small);
}

TEST_CASE("frame: ping, pong and close round trip", "[frame]") {
    std::array<std::byte, 32> storage{};
    std::error_code ec;
    peerlink::packet_buffer p(storage, 0);
    REQUIRE(!fr::encode(p, fr::ping{0xffffffffffffffffull}));
    CHECK(std::get<fr::ping>(*fr::decode(p.data(), ec)).timestamp_us == 0xffffffffffffffffull);
    p.reset(0);
    REQUIRE(!fr::encode(p, fr::pong{5}));
    CHECK(std::get<fr::pong>(*fr::decode(p.data(), ec)).echo_us == 5);
    p.reset(0);
    REQUIRE(!fr::encode(p, fr::close{300}));
    CHECK(std::get<fr::close>(*fr::decode(p.data(), ec)).reason == 300);

    for (bool ack : {false, true}) {
        p.reset(0);
        fr::features f{0xabcd, fr::feature_bits::cipher_off | fr::feature_bits::disguise_on, 4, 4,
                       ack};
        REQUIRE(!fr::encode(p, f));
        REQUIRE(p.size() == 7);
        CHECK(p.data()[1] == std::byte{static_cast<std::uint8_t>(ack ? 0x09 : 0x08)});
        CHECK(p.data()[2] == std::byte{0xab}); // big-endian sequence
        auto g = fr::decode(p.data(), ec);
        REQUIRE(g);
        CHECK(std::get<fr::features>(*g) == f);
    }

    std::array<std::byte, 5> tiny{};
    peerlink::packet_buffer small(tiny, 0);
    CHECK(fr::encode(small, fr::ping{1}) == error::buffer_too_small);
    CHECK(small.empty());
}

TEST_CASE("frame: bad input gives a clear error, never a read past the end", "[frame]") {
    struct bad_case {
        std::vector<std::byte> in;
        error expected;
    };
    std::vector<bad_case> cases = {
        {bytes({}), error::malformed_packet},
        {bytes({1}), error::malformed_packet},
        {bytes({2, 3}), error::unsupported_version},
        {bytes({1, 0x7f}), error::unknown_frame_type},
        {bytes({1, 0x00}), error::unknown_frame_type},
        {bytes({1, 0x05, 0, 0, 0}), error::malformed_packet},                   // short ping
        {bytes({1, 0x06, 0, 0, 0, 0, 0, 0, 0, 0, 0}), error::malformed_packet}, // long pong
        {bytes({1, 0x07, 0}), error::malformed_packet},                         // short close
        {bytes({1, 0x01, 0, 0}), error::malformed_packet},                      // short hello
        {bytes({1, 0x08, 0, 0, 0, 0}), error::malformed_packet},                // short features
        {bytes({1, 0x09, 0, 0, 0, 0, 0, 0}), error::malformed_packet},          // long ack
    };
    for (auto& c : cases) {
        std::error_code ec;
        CHECK_FALSE(fr::decode(c.in, ec));
        CHECK(ec == c.expected);
    }
    std::error_code ec;
    CHECK(fr::decode(bytes({1, 0x03}), ec)); // an empty datagram is valid
}
