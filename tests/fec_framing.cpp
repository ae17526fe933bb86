#include <peerlink/proto/fec_framing.hpp>

#include "catch.hpp"

#include <array>
#include <vector>

using peerlink::error;
using peerlink::packet_buffer;
namespace fec = peerlink::fec;

namespace {
std::vector<std::byte> bytes(std::initializer_list<int> v) {
    std::vector<std::byte> out;
    for (int b : v)
        out.push_back(static_cast<std::byte>(b));
    return out;
}
} // namespace

TEST_CASE("fec_framing: kcp-go data packet bytes", "[fec][frame]") {
    std::array<std::byte, 64> storage{};
    packet_buffer p(storage, 16);
    REQUIRE(p.append(bytes({0xaa, 0xbb, 0xcc})));
    REQUIRE(!fec::prepend_kcp_data(p, 0x01020304));
    // seqid LE, type 0x00f1 LE, size = payload + 2 LE, payload.
    CHECK(std::vector<std::byte>(p.data().begin(), p.data().end()) ==
          bytes({0x04, 0x03, 0x02, 0x01, 0xf1, 0x00, 0x05, 0x00, 0xaa, 0xbb, 0xcc}));
    std::error_code ec;
    auto pk = fec::decode_kcp(p.data(), ec);
    REQUIRE(pk);
    CHECK(!ec);
    CHECK(pk->header == fec::kcp_header{0x01020304, fec::shard_type::data});
    CHECK(pk->shard.size() == 5);
    REQUIRE(pk->payload.size() == 3);
    CHECK(pk->payload[0] == std::byte{0xaa});

    packet_buffer no_room(storage, 7);
    REQUIRE(no_room.append(bytes({1})));
    CHECK(fec::prepend_kcp_data(no_room, 1) == error::buffer_too_small);
    CHECK(no_room.size() == 1);
}

TEST_CASE("fec_framing: kcp-go parity packets and what is not FEC", "[fec][frame]") {
    std::array<std::byte, 6> h{};
    fec::write_kcp_header(h, {13, fec::shard_type::parity});
    CHECK(std::vector<std::byte>(h.begin(), h.end()) == bytes({13, 0, 0, 0, 0xf2, 0x00}));
    auto parity = bytes({13, 0, 0, 0, 0xf2, 0x00, 9, 9, 9});
    std::error_code ec;
    auto pk = fec::decode_kcp(parity, ec);
    REQUIRE(pk);
    CHECK(pk->header.type == fec::shard_type::parity);
    CHECK(pk->shard.size() == 3);
    CHECK(pk->payload.empty());
    // A KCP segment: conv, then cmd 81 (PUSH) and frg at bytes 4..5.
    CHECK(!fec::is_kcp_packet(bytes({1, 0, 0, 0, 81, 0, 0, 1})));
    CHECK(!fec::is_kcp_packet(bytes({1, 0, 0, 0, 0xf1, 1})));
    CHECK(!fec::is_kcp_packet(bytes({1, 0, 0, 0, 0xf1})));
    CHECK(!fec::decode_kcp(bytes({1, 0, 0, 0, 81, 0, 0, 1}), ec));
    CHECK(ec == error::malformed_packet);
    // Data packets: size shorter than 2, or not the packet's length.
    CHECK(!fec::decode_kcp(bytes({0, 0, 0, 0, 0xf1, 0, 2}), ec));
    CHECK(!fec::decode_kcp(bytes({0, 0, 0, 0, 0xf1, 0, 4, 0, 1}), ec));
    CHECK(fec::decode_kcp(bytes({0, 0, 0, 0, 0xf1, 0, 2, 0}), ec)); // empty payload
}

TEST_CASE("fec_framing: rebuilt kcp-go shards drop their padding", "[fec][frame]") {
    auto shard = bytes({5, 0, 'a', 'b', 'c', 0, 0, 0});
    auto pl = fec::kcp_shard_payload(shard);
    REQUIRE(pl);
    CHECK(pl->size() == 3);
    CHECK(!fec::kcp_shard_payload(bytes({1, 0, 7})));    // size < 2
    CHECK(!fec::kcp_shard_payload(bytes({9, 0, 7, 7}))); // size > shard
    CHECK(!fec::kcp_shard_payload(bytes({2})));
    CHECK(fec::kcp_shard_payload(bytes({2, 0}))->empty());
}

TEST_CASE("fec_framing: peerlink data packet bytes", "[fec][frame]") {
    std::array<std::byte, 64> storage{};
    packet_buffer p(storage, 16);
    REQUIRE(p.append(bytes({1, 2, 3})));
    const fec::header h{fec::shard_type::data, 10, 3, 9, 0x0a0b0c0d};
    REQUIRE(!fec::prepend_data(p, h));
    CHECK(std::vector<std::byte>(p.data().begin(), p.data().end()) ==
          bytes({0xf1, 10, 3, 9, 0x0a, 0x0b, 0x0c, 0x0d, 0x00, 0x03, 1, 2, 3}));
    std::error_code ec;
    auto pk = fec::decode(p.data(), ec);
    REQUIRE(pk);
    CHECK(pk->header == h);
    CHECK(pk->shard.size() == 5);
    CHECK(pk->payload.size() == 3);
    packet_buffer no_room(storage, 9);
    CHECK(fec::prepend_data(no_room, h) == error::buffer_too_small);
}

TEST_CASE("fec_framing: peerlink headers are checked", "[fec][frame]") {
    using fec::shard_type;
    CHECK(fec::valid({shard_type::data, 10, 3, 0, 0}));
    CHECK(fec::valid({shard_type::data, 10, 3, 9, 0}));
    CHECK(fec::valid({shard_type::parity, 10, 3, 10, 0}));
    CHECK(fec::valid({shard_type::parity, 10, 3, 12, 0}));
    CHECK(fec::valid({shard_type::parity, 128, 127, 254, 0}));
    CHECK(!fec::valid({shard_type::parity, 10, 3, 13, 0})); // past the group
    CHECK(!fec::valid({shard_type::parity, 10, 3, 9, 0}));  // a data place
    CHECK(!fec::valid({shard_type::data, 10, 3, 10, 0}));   // a parity place
    CHECK(!fec::valid({shard_type::data, 0, 3, 0, 0}));     // no data
    CHECK(!fec::valid({shard_type::data, 10, 0, 0, 0}));    // no parity
    CHECK(!fec::valid({shard_type::data, 128, 128, 0, 0})); // 256 shards
    CHECK(!fec::valid({static_cast<shard_type>(0x01), 1, 1, 0, 0}));

    std::error_code ec;
    auto parity = bytes({0xf2, 4, 4, 5, 0, 0, 0, 1, 7, 7});
    auto pk = fec::decode(parity, ec);
    REQUIRE(pk);
    CHECK(pk->header.index == 5);
    CHECK(pk->shard.size() == 2);
    CHECK(!fec::decode(bytes({0xf2, 4, 4, 8, 0, 0, 0, 1, 7, 7}), ec));
    CHECK(ec == error::malformed_packet);
    CHECK(!fec::decode(bytes({0xf1, 4, 4, 0, 0, 0, 0, 1, 0}), ec));       // no size field
    CHECK(!fec::decode(bytes({0xf1, 4, 4, 0, 0, 0, 0, 1, 0, 2, 9}), ec)); // size 2, 1 byte
    CHECK(!fec::decode(bytes({0xf1, 4, 4, 0, 0, 0, 0}), ec));             // short header
    CHECK(!fec::is_packet(bytes({0x01, 0x03})));                          // a peerlink frame
    CHECK(fec::decode(bytes({0xf1, 4, 4, 0, 0, 0, 0, 1, 0, 0}), ec));     // empty payload

    std::array<std::byte, 8> out{};
    fec::write_header(out, {shard_type::parity, 6, 3, 7, 0xfffffffe});
    CHECK(std::vector<std::byte>(out.begin(), out.end()) ==
          bytes({0xf2, 6, 3, 7, 0xff, 0xff, 0xff, 0xfe}));
}

TEST_CASE("fec_framing: rebuilt peerlink shards drop their padding", "[fec][frame]") {
    auto pl = fec::shard_payload(bytes({0, 2, 'x', 'y', 0, 0}));
    REQUIRE(pl);
    CHECK(pl->size() == 2);
    CHECK(!fec::shard_payload(bytes({0, 5, 1, 2})));
    CHECK(!fec::shard_payload(bytes({0})));
}
