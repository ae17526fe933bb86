#include <peerlink/proto/stun.hpp>

#include "catch.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace stun = peerlink::stun;
using peerlink::endpoint;
using peerlink::ip_address;
using peerlink::stun_error;
using stun::attribute_type;

namespace {

std::vector<std::byte> hex(std::string_view text) {
    std::vector<std::byte> out;
    auto nibble = [](char c) {
        return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
    };
    for (std::size_t i = 0; i < text.size();) {
        if (text[i] == ' ' || text[i] == '\n') {
            ++i;
            continue;
        }
        out.push_back(
            std::byte(static_cast<unsigned char>(nibble(text[i]) * 16 + nibble(text[i + 1]))));
        i += 2;
    }
    return out;
}

std::span<const std::byte> bytes_of(std::string_view s) {
    return std::as_bytes(std::span<const char>(s.data(), s.size()));
}

stun::transaction_id tid(std::span<const std::byte> message) {
    stun::transaction_id id;
    std::memcpy(id.data(), message.data() + 8, 12);
    return id;
}

endpoint ep(const char* text) {
    std::error_code ec;
    return *endpoint::parse(text, ec);
}

// RFC 5769 §2.1: a Binding request with ICE attributes, short-term credentials.
const std::vector<std::byte> sample_request = hex("000100582112a442b7e7a701bc34d686fa87dfae"
                                                  "802200105354554e207465737420636c69656e74"
                                                  "002400046e0001ff80290008932ff9b151263b36"
                                                  "000600096576746a3a68367659202020"
                                                  "000800149aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a2"
                                                  "80280004e57a3bcf");
// §2.2: the IPv4 response, mapped address 192.0.2.1:32853.
const std::vector<std::byte> sample_ipv4_response =
    hex("0101003c2112a442b7e7a701bc34d686fa87dfae"
        "8022000b7465737420766563746f7220"
        "002000080001a147e112a643"
        "000800142b91f599fd9e90c38c7489f92af9ba53f06be7d7"
        "80280004c07d4c96");
// §2.3: the IPv6 response, mapped address [2001:db8:1234:5678:11:2233:4455:6677]:32853.
const std::vector<std::byte> sample_ipv6_response =
    hex("010100482112a442b7e7a701bc34d686fa87dfae"
        "8022000b7465737420766563746f7220"
        "002000140002a1470113a9faa5d3f179bc25f4b5bed2b9d9"
        "00080014a382954e4be67bf11784c97c8292c275bfe3ed41"
        "80280004c8fb0b4c");
// §2.4: a request with long-term credentials (no FINGERPRINT).
const std::vector<std::byte> sample_long_term_request =
    hex("000100602112a44278ad3433c6ad72c029da412e"
        "00060012e3839ee38388e383aae38383e382afe382b90000"
        "0015001c662f2f3439396b39353464364f4c33346f4c394653547679363473410014000b6578616d706c652e6f"
        "726700"
        "00080014f67024656dd64a3e02b8e0712e85c9a28ca89666");

constexpr std::string_view short_term_password = "VOkJxbRl1RmTxUk/WvJxBt";
constexpr std::string_view lt_username = "\xe3\x83\x9e\xe3\x83\x88\xe3\x83\xaa\xe3\x83\x83\xe3\x82"
                                         "\xaf\xe3\x82\xb9"; // マトリックス
constexpr std::string_view lt_password = "TheMatrIX";        // after SASLprep
constexpr std::string_view lt_realm = "example.org";
constexpr std::string_view lt_nonce = "f//499k954d6OL34oL9FSTvy64sA";

} // namespace

TEST_CASE("stun: RFC 5769 sample request decodes, authenticates and re-encodes", "[stun]") {
    std::error_code ec;
    auto m = stun::decode(sample_request, ec);
    REQUIRE(m);
    CHECK(!ec);
    CHECK(m->get_method() == stun::method::binding);
    CHECK(m->is_request());
    CHECK(m->type() == 0x0001);
    CHECK(!m->is_classic());
    CHECK(m->transaction() == tid(sample_request));

    auto sw = m->find(attribute_type::software);
    REQUIRE(sw);
    CHECK(stun::decode_string(*sw) == "STUN test client");
    auto prio = m->find(attribute_type::priority);
    REQUIRE(prio);
    CHECK(stun::decode_u32(*prio, ec) == 0x6e0001ffu);
    auto ctl = m->find(attribute_type::ice_controlled);
    REQUIRE(ctl);
    CHECK(stun::decode_u64(*ctl, ec) == 0x932ff9b151263b36ull);
    auto user = m->find(attribute_type::username);
    REQUIRE(user);
    CHECK(stun::decode_string(*user) == "evtj:h6vY"); // padding bytes are 0x20, ignored

    CHECK(!stun::verify_fingerprint(*m));
    CHECK(!stun::verify_integrity(*m, stun::short_term_key(short_term_password)));
    CHECK(stun::verify_integrity(*m, stun::short_term_key("wrong")) ==
          stun_error::integrity_mismatch);
    CHECK(stun::verify_integrity(*m, stun::short_term_key("wrong")) ==
          peerlink::condition::authentication_failed);
    CHECK(stun::verify_integrity(*m, stun::short_term_key(short_term_password),
                                 stun::integrity_kind::sha256) == stun_error::integrity_missing);

    // The same bytes from the writer (the vector pads with spaces).
    std::array<std::byte, 256> buf;
    stun::message_writer w(buf, stun::method::binding, stun::message_class::request,
                           m->transaction());
    w.set_padding_byte(std::byte{0x20})
        .add_string(attribute_type::software, "STUN test client")
        .add_u32(attribute_type::priority, 0x6e0001ff)
        .add_u64(attribute_type::ice_controlled, 0x932ff9b151263b36ull)
        .add_string(attribute_type::username, "evtj:h6vY")
        .add_message_integrity(stun::short_term_key(short_term_password))
        .add_fingerprint();
    auto n = w.finish(ec);
    REQUIRE(!ec);
    REQUIRE(n == sample_request.size());
    CHECK(std::equal(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n),
                     sample_request.begin()));
}

TEST_CASE("stun: RFC 5769 IPv4 and IPv6 responses decode and re-encode", "[stun]") {
    struct sample {
        const std::vector<std::byte>* bytes;
        const char* mapped;
    };
    for (auto s : {sample{&sample_ipv4_response, "192.0.2.1:32853"},
                   sample{&sample_ipv6_response, "[2001:db8:1234:5678:11:2233:4455:6677]:32853"}}) {
        INFO(s.mapped);
        std::error_code ec;
        auto m = stun::decode(*s.bytes, ec);
        REQUIRE(m);
        CHECK(m->is_success_response());
        CHECK(m->get_method() == stun::method::binding);
        auto xa = m->find(attribute_type::xor_mapped_address);
        REQUIRE(xa);
        auto mapped = stun::decode_xor_address(*xa, *m, ec);
        REQUIRE(mapped);
        CHECK(*mapped == ep(s.mapped));
        CHECK(stun::decode_string(*m->find(attribute_type::software)) == "test vector");
        CHECK(!stun::verify_fingerprint(*m));
        CHECK(!stun::verify_integrity(*m, stun::short_term_key(short_term_password)));

        std::array<std::byte, 256> buf;
        stun::message_writer w(buf, stun::method::binding, stun::message_class::success_response,
                               m->transaction());
        w.set_padding_byte(std::byte{0x20})
            .add_string(attribute_type::software, "test vector")
            .add_xor_address(attribute_type::xor_mapped_address, ep(s.mapped))
            .add_message_integrity(stun::short_term_key(short_term_password))
            .add_fingerprint();
        auto n = w.finish(ec);
        REQUIRE(n == s.bytes->size());
        CHECK(std::equal(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n),
                         s.bytes->begin()));
    }
}

TEST_CASE("stun: RFC 5769 long-term credential request", "[stun]") {
    std::error_code ec;
    auto m = stun::decode(sample_long_term_request, ec);
    REQUIRE(m);
    CHECK(stun::decode_string(*m->find(attribute_type::username)) == lt_username);
    CHECK(stun::decode_string(*m->find(attribute_type::nonce)) == lt_nonce);
    CHECK(stun::decode_string(*m->find(attribute_type::realm)) == lt_realm);
    CHECK(stun::verify_fingerprint(*m) == stun_error::fingerprint_missing);

    auto key = stun::long_term_key(lt_username, lt_realm, lt_password, ec);
    REQUIRE(key);
    CHECK(key->size == 16);
    CHECK(!stun::verify_integrity(*m, key->span()));
    auto other = stun::long_term_key(lt_username, lt_realm, "TheMatrix", ec);
    CHECK(stun::verify_integrity(*m, other->span()) == stun_error::integrity_mismatch);

    std::array<std::byte, 256> buf;
    stun::message_writer w(buf, stun::method::binding, stun::message_class::request,
                           m->transaction());
    w.add_string(attribute_type::username, lt_username)
        .add_string(attribute_type::nonce, lt_nonce)
        .add_string(attribute_type::realm, lt_realm)
        .add_message_integrity(key->span());
    auto n = w.finish(ec);
    REQUIRE(n == sample_long_term_request.size());
    CHECK(std::equal(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n),
                     sample_long_term_request.begin()));
}

TEST_CASE("stun: RFC 8489 USERHASH and SHA-256 long-term key", "[stun]") {
    std::error_code ec;
    // RFC 8489 Appendix B.1: USERHASH, NONCE, REALM, MESSAGE-INTEGRITY-SHA256.
    const auto b1 = hex("000100882112a44278ad3433c6ad72c029da412e"
                        "001e00204a3cf38fef6992bda952c6780417da0f24819415569e60b205c46e41407f1704"
                        "001500296f624d61744a6f733241414143662f2f3439396b3935346436"
                        "4f4c33346f4c394653547679363473410000000014000b6578616d706c652e6f726700"
                        "001c0020fd8c273860d2e18ebca4c89b6973befa7ee8ecc69e9642db326fab65a0b955ba");
    auto m = stun::decode(b1, ec);
    REQUIRE(m);
    auto h = stun::userhash(lt_username, lt_realm, ec);
    REQUIRE(h);
    auto uh = m->find(attribute_type::userhash);
    REQUIRE(uh);
    CHECK(std::equal(h->begin(), h->end(), uh->value.begin(), uh->value.end()));
    CHECK(stun::decode_string(*m->find(attribute_type::nonce)) ==
          "obMatJos2AAACf//499k954d6OL34oL9FSTvy64sA");
    // The appendix's MAC was computed with the MD5 long-term key, not the SHA-256 one
    // its text names: it verifies with MD5(username:realm:password).
    auto md5_key = stun::long_term_key(lt_username, lt_realm, lt_password, ec);
    CHECK(!stun::verify_integrity(*m, md5_key->span()));
    CHECK(stun::verify_integrity(*m, md5_key->span(), stun::integrity_kind::sha1) ==
          stun_error::integrity_missing);

    auto k = stun::long_term_key(lt_username, lt_realm, lt_password, ec,
                                 stun::password_algorithm::sha256);
    REQUIRE(k);
    CHECK(k->size == 32);
    // A request with USERHASH and MESSAGE-INTEGRITY-SHA256 round-trips and verifies;
    // a truncated MAC (16 bytes) too.
    for (std::size_t mac : {32u, 16u}) {
        std::array<std::byte, 256> buf;
        stun::message_writer w(buf, stun::method::binding, stun::message_class::request,
                               stun::transaction_id{});
        w.add_bytes(attribute_type::userhash, *h)
            .add_string(attribute_type::nonce, "obMatJos2AAACf//499k954d6OL34oL9FSTvy64sA")
            .add_string(attribute_type::realm, lt_realm)
            .add_message_integrity_sha256(k->span(), mac)
            .add_fingerprint();
        auto n = w.finish(ec);
        REQUIRE(n > 0);
        auto m = stun::decode(std::span(buf.data(), n), ec);
        REQUIRE(m);
        CHECK(!stun::verify_integrity(*m, k->span()));
        CHECK(!stun::verify_fingerprint(*m));
        CHECK(stun::verify_integrity(*m, k->span(), stun::integrity_kind::sha1) ==
              stun_error::integrity_missing);
        auto key2 =
            stun::long_term_key(lt_username, lt_realm, "x", ec, stun::password_algorithm::sha256);
        CHECK(stun::verify_integrity(*m, key2->span()) == stun_error::integrity_mismatch);
    }
}

TEST_CASE("stun: message type encodes method and class", "[stun]") {
    using stun::message_class;
    using stun::method;
    CHECK(stun::message_type(method::binding, message_class::request) == 0x0001);
    CHECK(stun::message_type(method::binding, message_class::indication) == 0x0011);
    CHECK(stun::message_type(method::binding, message_class::success_response) == 0x0101);
    CHECK(stun::message_type(method::binding, message_class::error_response) == 0x0111);
    CHECK(stun::message_type(method::allocate, message_class::request) == 0x0003);
    CHECK(stun::message_type(method::allocate, message_class::error_response) == 0x0113);
    CHECK(stun::message_type(method::send, message_class::indication) == 0x0016);
    CHECK(stun::message_type(method::data, message_class::indication) == 0x0017);
    CHECK(stun::message_type(method::channel_bind, message_class::success_response) == 0x0109);
    for (unsigned m = 0; m < 0x1000; m += 7)
        for (unsigned c = 0; c < 4; ++c) {
            auto t = stun::message_type(static_cast<method>(m), static_cast<message_class>(c));
            CHECK((t & 0xc000) == 0);
            CHECK(stun::method_of(t) == static_cast<method>(m));
            CHECK(stun::class_of(t) == static_cast<message_class>(c));
        }
}

TEST_CASE("stun: every attribute round-trips through the writer and the decoders", "[stun]") {
    std::error_code ec;
    const stun::transaction_id id = tid(sample_request);
    const auto v4 = ep("198.51.100.7:3478");
    const auto v6 = ep("[2001:db8::1:2]:65535");
    const std::array<std::byte, 8> token{std::byte{1}, std::byte{2}, std::byte{3}, std::byte{4},
                                         std::byte{5}, std::byte{6}, std::byte{7}, std::byte{8}};
    const std::array<attribute_type, 3> unknown{
        attribute_type::even_port, static_cast<attribute_type>(0x7777), attribute_type::icmp};
    const std::array<std::byte, 3> params{std::byte{9}, std::byte{8}, std::byte{7}};
    const std::array<stun::password_algorithm_entry, 3> algs{
        {{stun::password_algorithm::sha256, {}},
         {stun::password_algorithm::md5, {}},
         {static_cast<stun::password_algorithm>(0x7001), params}}};
    std::vector<std::byte> payload(37);
    for (std::size_t i = 0; i < payload.size(); ++i)
        payload[i] = std::byte(static_cast<unsigned char>(i * 7));

    std::array<std::byte, 1024> buf;
    stun::message_writer w(buf, stun::method::allocate, stun::message_class::error_response, id);
    w.add_address(attribute_type::mapped_address, v4)
        .add_xor_address(attribute_type::xor_mapped_address, v6)
        .add_string(attribute_type::username, "alice")
        .add_bytes(attribute_type::userhash, std::array<std::byte, 32>{})
        .add_error_code(401)
        .add_string(attribute_type::realm, "example.org")
        .add_string(attribute_type::nonce, "n0nce")
        .add_password_algorithms(algs)
        .add_password_algorithm(algs[2])
        .add_unknown_attributes(unknown)
        .add_string(attribute_type::software, "peerlink test")
        .add_address(attribute_type::alternate_server, v6)
        .add_string(attribute_type::alternate_domain, "turn.example.org")
        .add_change_request({true, false})
        .add_address(attribute_type::response_origin, v4)
        .add_address(attribute_type::other_address, v6)
        .add_response_port(4242)
        .add_padding(5)
        .add_channel_number(0x4001)
        .add_u32(attribute_type::lifetime, 600)
        .add_xor_address(attribute_type::xor_peer_address, v4)
        .add_bytes(attribute_type::data, payload)
        .add_xor_address(attribute_type::xor_relayed_address, v6)
        .add_address_family(attribute_type::requested_address_family, ip_address::family::v6)
        .add_even_port(true)
        .add_requested_transport(17)
        .add_empty(attribute_type::dont_fragment)
        .add_bytes(attribute_type::reservation_token, token)
        .add_address_family(attribute_type::additional_address_family, ip_address::family::v6)
        .add_address_error_code(ip_address::family::v6, 440, "no v6 here")
        .add_icmp({3, 4, 1400})
        .add_u32(attribute_type::priority, 0x7e7f00ff)
        .add_empty(attribute_type::use_candidate)
        .add_u64(attribute_type::ice_controlled, 0x0102030405060708ull)
        .add_u64(attribute_type::ice_controlling, 0xfffefdfcfbfaf9f8ull)
        .add_u32(attribute_type::connection_id, 77)
        .add_message_integrity(stun::short_term_key("pw"))
        .add_message_integrity_sha256(stun::short_term_key("pw"), 24)
        .add_fingerprint();
    auto n = w.finish(ec);
    REQUIRE(!ec);
    auto m = stun::decode(std::span(buf.data(), n), ec);
    REQUIRE(m);
    CHECK(m->get_method() == stun::method::allocate);
    CHECK(m->is_error_response());
    CHECK(!stun::verify_fingerprint(*m));
    CHECK(!stun::verify_integrity(*m, stun::short_term_key("pw")));
    CHECK(!stun::verify_integrity(*m, stun::short_term_key("pw"), stun::integrity_kind::sha1));
    CHECK(stun::verify_integrity(*m, stun::short_term_key("pW")) == stun_error::integrity_mismatch);

    auto get = [&](attribute_type t) {
        auto a = m->find(t);
        INFO(stun::to_string(t));
        REQUIRE(a);
        return *a;
    };
    CHECK(stun::decode_address(get(attribute_type::mapped_address), ec) == v4);
    CHECK(stun::decode_xor_address(get(attribute_type::xor_mapped_address), *m, ec) == v6);
    // The XOR form really is XORed: read in clear it is another address.
    CHECK(stun::decode_address(get(attribute_type::xor_mapped_address), ec) != v6);
    CHECK(stun::decode_string(get(attribute_type::username)) == "alice");
    CHECK(get(attribute_type::userhash).value.size() == 32);
    auto code = stun::decode_error_code(get(attribute_type::error_code), ec);
    REQUIRE(code);
    CHECK(code->code == 401);
    CHECK(code->reason == "Unauthorized");
    CHECK(stun::error_from_code(code->code) == stun_error::unauthorized);
    CHECK(stun::decode_string(get(attribute_type::realm)) == "example.org");
    CHECK(stun::decode_string(get(attribute_type::nonce)) == "n0nce");
    auto pa = stun::decode_password_algorithms(get(attribute_type::password_algorithms), ec);
    REQUIRE(pa);
    REQUIRE(pa->count == 3);
    CHECK(pa->entries[0].algorithm == stun::password_algorithm::sha256);
    CHECK(pa->entries[1].algorithm == stun::password_algorithm::md5);
    CHECK(pa->entries[2].parameters.size() == 3);
    CHECK(pa->entries[2].parameters[2] == std::byte{7});
    CHECK(pa->contains(stun::password_algorithm::md5));
    auto pa1 = stun::decode_password_algorithm(get(attribute_type::password_algorithm), ec);
    REQUIRE(pa1);
    CHECK(static_cast<unsigned>(pa1->algorithm) == 0x7001);
    CHECK(pa1->parameters.size() == 3);
    auto ua = stun::decode_unknown_attributes(get(attribute_type::unknown_attributes), ec);
    REQUIRE(ua);
    REQUIRE(ua->size() == 3);
    CHECK((*ua)[1] == static_cast<attribute_type>(0x7777));
    CHECK(ua->contains(attribute_type::icmp));
    CHECK(stun::decode_string(get(attribute_type::software)) == "peerlink test");
    CHECK(stun::decode_address(get(attribute_type::alternate_server), ec) == v6);
    CHECK(stun::decode_string(get(attribute_type::alternate_domain)) == "turn.example.org");
    CHECK(stun::decode_change_request(get(attribute_type::change_request), ec) ==
          stun::change_request{true, false});
    CHECK(stun::decode_address(get(attribute_type::response_origin), ec) == v4);
    CHECK(stun::decode_address(get(attribute_type::other_address), ec) == v6);
    CHECK(stun::decode_response_port(get(attribute_type::response_port), ec) == 4242);
    CHECK(get(attribute_type::padding).value.size() == 5);
    CHECK(stun::decode_channel_number(get(attribute_type::channel_number), ec) == 0x4001);
    CHECK(stun::decode_u32(get(attribute_type::lifetime), ec) == 600u);
    CHECK(stun::decode_xor_address(get(attribute_type::xor_peer_address), *m, ec) == v4);
    auto data = get(attribute_type::data).value;
    CHECK(std::equal(data.begin(), data.end(), payload.begin(), payload.end()));
    CHECK(stun::decode_xor_address(get(attribute_type::xor_relayed_address), *m, ec) == v6);
    CHECK(stun::decode_address_family(get(attribute_type::requested_address_family), ec) ==
          ip_address::family::v6);
    CHECK(stun::decode_even_port(get(attribute_type::even_port), ec) == true);
    CHECK(stun::decode_requested_transport(get(attribute_type::requested_transport), ec) == 17);
    CHECK(get(attribute_type::dont_fragment).value.empty());
    CHECK(stun::decode_u64(get(attribute_type::reservation_token), ec) == 0x0102030405060708ull);
    CHECK(stun::decode_address_family(get(attribute_type::additional_address_family), ec) ==
          ip_address::family::v6);
    auto aec = stun::decode_address_error_code(get(attribute_type::address_error_code), ec);
    REQUIRE(aec);
    CHECK(aec->code == 440);
    CHECK(aec->family == ip_address::family::v6);
    CHECK(aec->reason == "no v6 here");
    CHECK(stun::decode_icmp(get(attribute_type::icmp), ec) == stun::icmp_value{3, 4, 1400});
    CHECK(stun::decode_u32(get(attribute_type::priority), ec) == 0x7e7f00ffu);
    CHECK(get(attribute_type::use_candidate).value.empty());
    CHECK(stun::decode_u64(get(attribute_type::ice_controlled), ec) == 0x0102030405060708ull);
    CHECK(stun::decode_u64(get(attribute_type::ice_controlling), ec) == 0xfffefdfcfbfaf9f8ull);
    CHECK(stun::decode_u32(get(attribute_type::connection_id), ec) == 77u);
    CHECK(get(attribute_type::message_integrity_sha256).value.size() == 24);

    // Iteration sees every attribute once, in order, each known to the codec.
    std::size_t count = 0;
    for (const auto& a : *m) {
        CHECK(stun::is_known(a.type));
        ++count;
    }
    CHECK(count == 39);
    CHECK(stun::to_string(static_cast<attribute_type>(0xc0de)) == "0xc0de");
    CHECK_FALSE(stun::is_known(static_cast<attribute_type>(0xc0de)));
    CHECK(stun::is_comprehension_required(attribute_type::priority));
    CHECK_FALSE(stun::is_comprehension_required(attribute_type::ice_controlled));
}

TEST_CASE("stun: the writer appends to a packet_buffer and reports misuse", "[stun]") {
    std::error_code ec;
    std::array<std::byte, 128> storage;
    peerlink::packet_buffer p(storage, 8);
    const std::array<std::byte, 3> prefix{std::byte{1}, std::byte{2}, std::byte{3}};
    REQUIRE(p.append(prefix));
    stun::transaction_id id{};
    id[0] = std::byte{0x42};
    {
        stun::message_writer w(p, stun::method::binding, stun::message_class::indication, id);
        w.add_string(attribute_type::software, "x");
        CHECK(p.size() == 3); // nothing appended before finish()
        CHECK(w.finish(ec) == 28);
        CHECK(!ec);
    }
    CHECK(p.size() == 31);
    auto m = stun::decode(p.data().subspan(3), ec);
    REQUIRE(m);
    CHECK(m->is_indication());
    CHECK(m->transaction() == id);

    // Too small: sticky error, finish reports it.
    std::array<std::byte, 30> small;
    stun::message_writer w2(small, stun::method::binding, stun::message_class::request, id);
    w2.add_string(attribute_type::software, "this does not fit").add_fingerprint();
    CHECK(w2.finish(ec) == 0);
    CHECK(ec == peerlink::error::buffer_too_small);

    std::array<std::byte, 10> tiny;
    stun::message_writer w3(tiny, stun::method::binding, stun::message_class::request, id);
    CHECK(w3.finish(ec) == 0);
    CHECK(ec == peerlink::error::buffer_too_small);

    // Nothing after FINGERPRINT; only the integrity attributes after MESSAGE-INTEGRITY.
    std::array<std::byte, 256> buf;
    stun::message_writer w4(buf, stun::method::binding, stun::message_class::request, id);
    w4.add_fingerprint().add_string(attribute_type::software, "late");
    CHECK(w4.finish(ec) == 0);
    CHECK(ec == stun_error::attribute_after_end);
    stun::message_writer w5(buf, stun::method::binding, stun::message_class::request, id);
    w5.add_message_integrity(stun::short_term_key("k")).add_empty(attribute_type::use_candidate);
    CHECK(w5.finish(ec) == 0);
    CHECK(ec == stun_error::attribute_after_end);
    stun::message_writer w6(buf, stun::method::binding, stun::message_class::request, id);
    w6.add_message_integrity_sha256(stun::short_term_key("k"))
        .add_message_integrity(stun::short_term_key("k"));
    CHECK(w6.finish(ec) == 0);
    CHECK(ec == stun_error::attribute_after_end);

    // Values out of range.
    stun::message_writer w7(buf, stun::method::binding, stun::message_class::error_response, id);
    w7.add_error_code(299);
    CHECK(w7.finish(ec) == 0);
    CHECK(ec == stun_error::bad_attribute_value);
    stun::message_writer w8(buf, stun::method::binding, stun::message_class::request, id);
    w8.add_message_integrity_sha256(stun::short_term_key("k"), 18);
    CHECK(w8.finish(ec) == 0);
    CHECK(ec == stun_error::bad_attribute_value);
    std::vector<std::byte> big(70000);
    std::vector<std::byte> huge_out(80000);
    stun::message_writer w9(huge_out, stun::method::send, stun::message_class::indication, id);
    w9.add_bytes(attribute_type::data, big);
    CHECK(w9.finish(ec) == 0);
    CHECK(ec == stun_error::value_too_long);
}

TEST_CASE("stun: truncation at every length is rejected", "[stun]") {
    for (const auto* v : {&sample_request, &sample_ipv4_response, &sample_ipv6_response,
                          &sample_long_term_request}) {
        for (std::size_t n = 0; n < v->size(); ++n) {
            std::error_code ec;
            INFO(n);
            CHECK_FALSE(stun::decode(std::span(v->data(), n), ec));
            CHECK(ec == stun_error::truncated);
            CHECK(ec == peerlink::condition::malformed_input);
            CHECK_FALSE(stun::is_stun_message(std::span(v->data(), n)));
        }
        CHECK(stun::is_stun_message(*v));
    }
}

TEST_CASE("stun: malformed messages give clear errors", "[stun]") {
    std::error_code ec;
    auto mutate = [](auto f) {
        auto v = sample_request;
        f(v);
        return v;
    };
    auto set16 = [](std::vector<std::byte>& v, std::size_t at, unsigned value) {
        v[at] = std::byte(static_cast<unsigned char>(value >> 8));
        v[at + 1] = std::byte(static_cast<unsigned char>(value));
    };

    // Not STUN: the first two bits.
    auto bad = mutate([](auto& v) { v[0] = std::byte{0x40}; });
    CHECK_FALSE(stun::decode(bad, ec));
    CHECK(ec == stun_error::not_stun);

    // Wrong magic cookie; accepted as RFC 3489 only on request.
    bad = mutate([](auto& v) { v[4] = std::byte{0x22}; });
    CHECK_FALSE(stun::decode(bad, ec));
    CHECK(ec == stun_error::bad_magic_cookie);
    auto classic = stun::decode(bad, ec, {.allow_classic = true});
    REQUIRE(classic);
    CHECK(classic->is_classic());
    CHECK(classic->classic_transaction()[0] == std::byte{0x22});

    // Length not a multiple of 4; length shorter than the datagram.
    bad = mutate([&](auto& v) { set16(v, 2, 0x57); });
    CHECK_FALSE(stun::decode(bad, ec));
    CHECK(ec == stun_error::bad_length);
    bad = mutate([&](auto& v) { set16(v, 2, 0x54); });
    CHECK_FALSE(stun::decode(bad, ec));
    CHECK(ec == stun_error::bad_length);

    // An attribute length running past the end.
    bad = mutate([&](auto& v) { set16(v, 22, 0x00ff); }); // SOFTWARE's length
    CHECK_FALSE(stun::decode(bad, ec));
    CHECK(ec == stun_error::attribute_overrun);

    // An unpadded last attribute: "abcde" without its three padding bytes.
    auto unpadded = hex("00010009 2112a442 000000000000000000000000 80220005 6162636465");
    CHECK_FALSE(stun::decode(unpadded, ec));
    CHECK(ec == stun_error::bad_padding);

    // FINGERPRINT not last.
    auto fp_first = hex("0001000c 2112a442 000000000000000000000000 80280004 00000000"
                        "80220000");
    CHECK_FALSE(stun::decode(fp_first, ec));
    CHECK(ec == stun_error::fingerprint_not_last);

    // Bad sizes of MESSAGE-INTEGRITY and FINGERPRINT.
    auto short_mi = hex("00010010 2112a442 000000000000000000000000 0008000c"
                        "000000000000000000000000");
    CHECK_FALSE(stun::decode(short_mi, ec));
    CHECK(ec == stun_error::bad_attribute_value);
    auto long_fp = hex("0001000c 2112a442 000000000000000000000000 80280008 0000000000000000");
    CHECK_FALSE(stun::decode(long_fp, ec));
    CHECK(ec == stun_error::bad_attribute_value);

    // Integrity and fingerprint mismatch after one changed byte (the username).
    bad = mutate([](auto& v) { v[64] = std::byte{'E'}; });
    auto m = stun::decode(bad, ec);
    REQUIRE(m);
    CHECK(stun::verify_fingerprint(*m) == stun_error::fingerprint_mismatch);
    CHECK(stun::verify_integrity(*m, stun::short_term_key(short_term_password)) ==
          stun_error::integrity_mismatch);
    // A changed fingerprint only.
    bad = mutate([](auto& v) { v.back() ^= std::byte{1}; });
    m = stun::decode(bad, ec);
    REQUIRE(m);
    CHECK(stun::verify_fingerprint(*m) == stun_error::fingerprint_mismatch);
    CHECK(!stun::verify_integrity(*m, stun::short_term_key(short_term_password)));
}

TEST_CASE("stun: attributes after MESSAGE-INTEGRITY are ignored", "[stun]") {
    // The sample request with SOFTWARE moved behind MESSAGE-INTEGRITY (before FINGERPRINT):
    // receivers must ignore it, and the integrity still covers what precedes it.
    std::error_code ec;
    std::vector<std::byte> v(sample_request.begin(), sample_request.begin() + 20);
    v.insert(v.end(), sample_request.begin() + 40, sample_request.end() - 8);    // to MI included
    v.insert(v.end(), sample_request.begin() + 20, sample_request.begin() + 40); // SOFTWARE
    v.insert(v.end(), sample_request.end() - 8, sample_request.end());           // FINGERPRINT
    auto m = stun::decode(v, ec);
    REQUIRE(m);
    CHECK_FALSE(m->find(attribute_type::software));
    CHECK(m->find(attribute_type::username));
    CHECK(m->find(attribute_type::fingerprint));
    std::size_t count = 0;
    for (const auto& a : *m) {
        CHECK(a.type != attribute_type::software);
        ++count;
    }
    CHECK(count == 5); // PRIORITY, ICE-CONTROLLED, USERNAME, MI, FINGERPRINT
}

TEST_CASE("stun: attribute decoders reject bad values", "[stun]") {
    std::error_code ec;
    auto attr = [](attribute_type t, std::vector<std::byte> v) {
        static std::vector<std::byte> keep[16];
        static std::size_t next = 0;
        auto& k = keep[next++ % 16];
        k = std::move(v);
        return stun::attribute{t, k, 20};
    };
    stun::transaction_id id{};
    CHECK_FALSE(
        stun::decode_address(attr(attribute_type::mapped_address, hex("00030001 01020304")), ec));
    CHECK(ec == stun_error::bad_attribute_value);
    CHECK_FALSE(
        stun::decode_address(attr(attribute_type::mapped_address, hex("00010001 010203")), ec));
    CHECK_FALSE(
        stun::decode_address(attr(attribute_type::mapped_address, hex("00020001 01020304")), ec));
    CHECK_FALSE(
        stun::decode_xor_address(attr(attribute_type::xor_mapped_address, hex("0001")), id, ec));
    CHECK_FALSE(stun::decode_error_code(attr(attribute_type::error_code, hex("00000201")), ec));
    CHECK_FALSE(stun::decode_error_code(attr(attribute_type::error_code, hex("00000464")), ec));
    CHECK_FALSE(stun::decode_error_code(attr(attribute_type::error_code, hex("000004")), ec));
    CHECK(stun::decode_error_code(attr(attribute_type::error_code, hex("00000663")), ec)->code ==
          699);
    CHECK_FALSE(stun::decode_address_error_code(
        attr(attribute_type::address_error_code, hex("03000401")), ec));
    CHECK_FALSE(stun::decode_unknown_attributes(
        attr(attribute_type::unknown_attributes, hex("000100")), ec));
    CHECK_FALSE(stun::decode_u32(attr(attribute_type::lifetime, hex("000001")), ec));
    CHECK_FALSE(stun::decode_u64(attr(attribute_type::ice_controlled, hex("00000000")), ec));
    CHECK_FALSE(stun::decode_change_request(attr(attribute_type::change_request, hex("06")), ec));
    CHECK_FALSE(stun::decode_response_port(attr(attribute_type::response_port, hex("1234")), ec));
    CHECK_FALSE(
        stun::decode_requested_transport(attr(attribute_type::requested_transport, hex("11")), ec));
    CHECK_FALSE(stun::decode_address_family(
        attr(attribute_type::requested_address_family, hex("03000000")), ec));
    CHECK_FALSE(stun::decode_even_port(attr(attribute_type::even_port, hex("8000")), ec));
    CHECK_FALSE(stun::decode_icmp(attr(attribute_type::icmp, hex("00000304")), ec));
    CHECK_FALSE(stun::decode_password_algorithms(
        attr(attribute_type::password_algorithms, hex("00010004 0000")), ec));
    CHECK_FALSE(stun::decode_password_algorithm(
        attr(attribute_type::password_algorithm, hex("00010008 00000000")), ec));
    CHECK(ec == stun_error::bad_attribute_value);
}

TEST_CASE("stun: ChannelData framing over datagrams and streams", "[stun]") {
    std::error_code ec;
    const std::vector<std::byte> data = hex("0102030405");
    std::array<std::byte, 64> buf;
    auto n = stun::encode_channel_data(buf, 0x4000, data, ec);
    REQUIRE(n == 9);
    CHECK(stun::classify_packet(std::span(buf.data(), n)) == stun::packet_kind::channel_data);
    auto d = stun::decode_channel_data(std::span(buf.data(), n), ec);
    REQUIRE(d);
    CHECK(d->channel == 0x4000);
    CHECK(d->wire_size == 9);
    CHECK(std::equal(d->data.begin(), d->data.end(), data.begin(), data.end()));
    // Over UDP trailing padding is allowed; over a stream it is required.
    auto padded = hex("4fff0005 0102030405 000000");
    d = stun::decode_channel_data(padded, ec);
    REQUIRE(d);
    CHECK(d->data.size() == 5);
    d = stun::decode_channel_data(padded, ec, stun::framing::stream);
    REQUIRE(d);
    CHECK(d->wire_size == 12);
    CHECK_FALSE(stun::decode_channel_data(std::span(padded.data(), 9), ec, stun::framing::stream));
    CHECK(ec == stun_error::bad_padding);
    n = stun::encode_channel_data(buf, 0x4fff, data, ec, stun::framing::stream);
    CHECK(n == 12);
    CHECK(std::equal(buf.begin(), buf.begin() + 12, padded.begin()));

    for (std::size_t k = 0; k < 9; ++k) {
        CHECK_FALSE(stun::decode_channel_data(std::span(padded.data(), k), ec));
        CHECK(ec == stun_error::truncated);
    }
    auto bad_channel = hex("50000000");
    CHECK_FALSE(stun::decode_channel_data(bad_channel, ec));
    CHECK(ec == stun_error::bad_channel_number);
    CHECK(stun::encode_channel_data(buf, 0x3fff, data, ec) == 0);
    CHECK(ec == stun_error::bad_channel_number);
    CHECK(stun::encode_channel_data(std::span(buf.data(), 8), 0x4000, data, ec) == 0);
    CHECK(ec == peerlink::error::buffer_too_small);

    // In place around a payload with headroom: no copy of the data.
    std::array<std::byte, 32> storage;
    peerlink::packet_buffer p(storage, 4);
    REQUIRE(p.append(std::span<const std::byte>(data)));
    const std::byte* payload_at = p.data().data();
    REQUIRE(!stun::wrap_channel_data(p, 0x4123, stun::framing::stream));
    CHECK(p.size() == 12);
    CHECK(p.data().data() + 4 == payload_at);
    d = stun::decode_channel_data(p.data(), ec, stun::framing::stream);
    REQUIRE(d);
    CHECK(d->channel == 0x4123);
    CHECK(d->data.data() == payload_at);
    peerlink::packet_buffer no_room(storage, 2);
    REQUIRE(no_room.append(std::span<const std::byte>(data)));
    CHECK(stun::wrap_channel_data(no_room, 0x4000) == peerlink::error::buffer_too_small);
    CHECK(no_room.size() == 5);
}

TEST_CASE("stun: demultiplexing and stream framing", "[stun]") {
    std::error_code ec;
    CHECK(stun::classify_packet(sample_request) == stun::packet_kind::stun);
    auto first = [](unsigned b) {
        static std::array<std::byte, 1> one;
        one[0] = std::byte(static_cast<unsigned char>(b));
        return std::span<const std::byte>(one);
    };
    CHECK(stun::classify_packet(first(3)) == stun::packet_kind::stun);
    CHECK(stun::classify_packet(first(17)) == stun::packet_kind::zrtp);
    CHECK(stun::classify_packet(first(22)) == stun::packet_kind::dtls);
    CHECK(stun::classify_packet(first(64)) == stun::packet_kind::channel_data);
    CHECK(stun::classify_packet(first(79)) == stun::packet_kind::channel_data);
    CHECK(stun::classify_packet(first(80)) == stun::packet_kind::other);
    CHECK(stun::classify_packet(first(128)) == stun::packet_kind::rtp);
    CHECK(stun::classify_packet(first(0xc1)) == stun::packet_kind::other);
    CHECK(stun::classify_packet({}) == stun::packet_kind::other);
    // A peerlink frame starts with 0x01 too: the cookie tells them apart.
    auto frame = hex("0103000000000000000000000000000000000000");
    CHECK(stun::classify_packet(frame) == stun::packet_kind::stun);
    CHECK_FALSE(stun::is_stun_message(frame));

    // A stream holding a STUN message then a ChannelData message.
    std::vector<std::byte> stream = sample_ipv4_response;
    auto cd = hex("40010003 aabbcc 00");
    stream.insert(stream.end(), cd.begin(), cd.end());
    auto s1 = stun::stream_frame_size(stream, ec);
    REQUIRE(s1);
    CHECK(*s1 == sample_ipv4_response.size());
    auto rest = std::span<const std::byte>(stream).subspan(*s1);
    auto s2 = stun::stream_frame_size(rest, ec);
    REQUIRE(s2);
    CHECK(*s2 == 8);
    CHECK_FALSE(stun::stream_frame_size(rest.first(3), ec));
    CHECK(!ec); // needs more bytes
    CHECK_FALSE(stun::stream_frame_size(hex("c0000000"), ec));
    CHECK(ec == stun_error::not_stun);
}

TEST_CASE("stun: CRC-32 and error codes", "[stun]") {
    CHECK(stun::crc32(bytes_of("123456789")) == 0xcbf43926u); // the standard check value
    CHECK(stun::crc32(bytes_of("56789"), stun::crc32(bytes_of("1234"))) == 0xcbf43926u);
    CHECK(stun::error_from_code(438) == stun_error::stale_nonce);
    CHECK(stun::error_from_code(499) == stun_error::error_response);
    CHECK(stun::reason_phrase(420) == "Unknown Attribute");
    std::error_code e = stun_error::unauthorized;
    CHECK(e == peerlink::condition::authentication_failed);
    CHECK(std::error_code(stun_error::transaction_timeout) ==
          peerlink::condition::peer_unreachable);
    CHECK(std::string(e.category().name()) == "peerlink.stun");
    CHECK(e.message().find("401") != std::string::npos);
}
