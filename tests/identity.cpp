#include <peerlink/identity.hpp>

#include "catch.hpp"

#include <openssl/err.h>

#include <array>
#include <cctype>
#include <cstdint>
#include <string>
#include <unordered_set>

using peerlink::identity;
using peerlink::peer_id;

namespace {

constexpr std::array<std::uint8_t, 32> from_hex(std::string_view hex) {
    std::array<std::uint8_t, 32> out{};
    auto nibble = [](char c) {
        return c <= '9' ? c - '0' : c - 'a' + 10;
    };
    for (std::size_t i = 0; i < out.size(); ++i)
        out[i] = static_cast<std::uint8_t>(nibble(hex[2 * i]) << 4 | nibble(hex[2 * i + 1]));
    return out;
}

// RFC 7748 §6.1.
constexpr auto alice_private =
    from_hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
constexpr auto alice_public =
    from_hex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
constexpr auto bob_private =
    from_hex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
constexpr auto bob_public =
    from_hex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
constexpr auto shared_secret =
    from_hex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");

// Alice's public key in text form, computed independently with Python's base64 and hashlib.
constexpr std::string_view alice_text = "plquqpacmjgctvi5elpxolipxxlig36oqney4bv5hlusuy5ku3jzvloqi";

constexpr std::string_view alphabet = "abcdefghijklmnopqrstuvwxyz234567";

} // namespace

TEST_CASE("identity reproduces the RFC 7748 X25519 test vector", "[identity]") {
    std::error_code ec;
    auto alice = identity::from_private_key(alice_private, ec);
    REQUIRE(alice);
    CHECK(!ec);
    auto bob = identity::from_private_key(bob_private, ec);
    REQUIRE(bob);
    CHECK(alice->id() == peer_id::from_bytes(alice_public));
    CHECK(bob->id() == peer_id::from_bytes(bob_public));
    CHECK(alice->private_key() == alice_private);

    auto k1 = alice->agree(bob->id(), ec);
    REQUIRE(k1);
    CHECK(!ec);
    CHECK(*k1 == shared_secret);
    auto k2 = bob->agree(alice->id(), ec);
    REQUIRE(k2);
    CHECK(*k2 == shared_secret);
}

TEST_CASE("peer_id text form matches the documented encoding", "[identity]") {
    auto id = peer_id::from_bytes(alice_public);
    CHECK(id.to_string() == alice_text);
    CHECK(id.to_short_string() == alice_text.substr(0, 12));

    std::error_code ec;
    auto parsed = peer_id::parse(alice_text, ec);
    REQUIRE(parsed);
    CHECK(!ec);
    CHECK(*parsed == id);
}

TEST_CASE("peer_id text form round-trips for generated identities", "[identity]") {
    for (int i = 0; i < 20; ++i) {
        identity me = identity::generate();
        std::string text = me.id().to_string();
        INFO(text);
        REQUIRE(text.size() == peer_id::text_size);
        CHECK(text.substr(0, 2) == "pl");
        CHECK(text.find_first_not_of(alphabet, 2) == std::string::npos);

        std::error_code ec = peerlink::error::invalid_key; // must be cleared
        auto parsed = peer_id::parse(text, ec);
        REQUIRE(parsed);
        CHECK(!ec);
        CHECK(*parsed == me.id());

        std::string upper = text;
        for (char& c : upper)
            c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        auto parsed_upper = peer_id::parse(upper, ec);
        REQUIRE(parsed_upper);
        CHECK(*parsed_upper == me.id());
    }
}

TEST_CASE("peer_id::parse reports each kind of typo with its own error", "[identity]") {
    const std::string good(alice_text);
    auto expect = [](std::string_view text, peerlink::error e) {
        INFO("text: '" << std::string(text) << "'");
        std::error_code ec;
        CHECK_FALSE(peer_id::parse(text, ec));
        CHECK(ec == e);
        CHECK(ec == peerlink::condition::malformed_input);
    };

    expect("", peerlink::error::peer_id_bad_length);
    expect("p", peerlink::error::peer_id_bad_length);
    expect("pl", peerlink::error::peer_id_bad_length);
    expect(good.substr(0, 56), peerlink::error::peer_id_bad_length);
    expect(good + "a", peerlink::error::peer_id_bad_length);
    expect(" " + good, peerlink::error::peer_id_bad_prefix);

    expect("px" + good.substr(2), peerlink::error::peer_id_bad_prefix);
    expect("ql" + good.substr(2), peerlink::error::peer_id_bad_prefix);
    expect("xy", peerlink::error::peer_id_bad_prefix);

    for (char bad : {'0', '1', '8', '9', '=', ' ', '-', '\0', '\xc3'}) {
        std::string t = good;
        t[20] = bad;
        expect(t, peerlink::error::peer_id_bad_character);
    }
    expect(good + "\n", peerlink::error::peer_id_bad_length);

    // The last character carries 2 data bits and 3 zero pad bits ('a', 'i', 'q' or 'y');
    // any other value is not the canonical text of an id.
    REQUIRE(good.back() == 'i');
    for (char last : {'b', 'c', 'h', 'j', 'p', 'r', 'z', '7'}) {
        std::string t = good;
        t.back() = last;
        expect(t, peerlink::error::peer_id_bad_character);
    }

    std::string swapped = good;
    std::swap(swapped[10], swapped[11]);
    REQUIRE(swapped != good);
    expect(swapped, peerlink::error::peer_id_checksum_mismatch);
}

TEST_CASE("a one-character change anywhere in a peer id is caught", "[identity]") {
    // A fixed key keeps the test deterministic: a 16-bit checksum lets one random
    // substitution in 65536 through, and this key has none among its 55 * 31.
    const std::string good(alice_text);
    int checksum_errors = 0;
    int pad_errors = 0;
    for (std::size_t pos = 2; pos < good.size(); ++pos) {
        for (char c : alphabet) {
            if (c == good[pos])
                continue;
            std::string t = good;
            t[pos] = c;
            INFO("position " << pos << " -> '" << c << "'");
            std::error_code ec;
            REQUIRE_FALSE(peer_id::parse(t, ec));
            if (ec == peerlink::error::peer_id_checksum_mismatch) {
                ++checksum_errors;
            } else {
                // Only the last character can break the pad bits instead.
                CHECK(pos == good.size() - 1);
                CHECK(ec == peerlink::error::peer_id_bad_character);
                ++pad_errors;
            }
        }
    }
    CHECK(checksum_errors == 54 * 31 + 3);
    CHECK(pad_errors == 28);
}

TEST_CASE("identity::agree is symmetric and differs between peers", "[identity]") {
    identity a = identity::generate();
    identity b = identity::generate();
    std::error_code ec;
    auto c = identity::generate(ec);
    REQUIRE(c);
    CHECK(!ec);
    REQUIRE(a.id() != b.id());

    auto ab = a.agree(b.id(), ec);
    REQUIRE(ab);
    auto ba = b.agree(a.id(), ec);
    REQUIRE(ba);
    CHECK(*ab == *ba);
    CHECK(*ab != std::array<std::uint8_t, 32>{});

    auto ac = a.agree(c->id(), ec);
    REQUIRE(ac);
    CHECK(*ac != *ab);

    identity copy = a; // copies agree like the original
    auto copy_b = copy.agree(b.id(), ec);
    REQUIRE(copy_b);
    CHECK(*copy_b == *ab);
}

TEST_CASE("from_private_key restores the same identity", "[identity]") {
    identity a = identity::generate();
    auto saved = a.private_key();
    std::error_code ec;
    auto restored = identity::from_private_key(saved, ec);
    REQUIRE(restored);
    CHECK(!ec);
    CHECK(restored->id() == a.id());
    CHECK(restored->private_key() == saved);

    identity b = identity::generate();
    auto s1 = a.agree(b.id(), ec);
    auto s2 = restored->agree(b.id(), ec);
    REQUIRE(s1);
    REQUIRE(s2);
    CHECK(*s1 == *s2);
}

TEST_CASE("identity::agree rejects small-order peer keys", "[identity]") {
    identity a = identity::generate();
    // RFC 7748 §6.1: points of small order give an all-zero secret. 0 and 1 are two of them;
    // the third is a point of order 8 (from the list in libsodium and in RFC 7748 errata).
    std::array<std::uint8_t, 32> one{};
    one[0] = 1;
    const auto order8 =
        from_hex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800");
    for (const peer_id& bad : {peer_id{}, peer_id::from_bytes(one), peer_id::from_bytes(order8)}) {
        std::error_code ec;
        CHECK_FALSE(a.agree(bad, ec));
        CHECK(ec == peerlink::error::invalid_key);
        // Nothing is left on OpenSSL's error queue for an unrelated caller to trip over.
        CHECK(ERR_peek_error() == 0);
    }
}

TEST_CASE("peer_id is ordered and hashable by its key bytes", "[identity]") {
    auto a = peer_id::from_bytes(alice_public);
    auto b = peer_id::from_bytes(bob_public);
    CHECK(a < b); // 0x85... < 0xde...
    CHECK(a != b);
    std::unordered_set<peer_id> set{a, b, a};
    CHECK(set.size() == 2);
    CHECK(set.count(peer_id::from_bytes(alice_public)) == 1);
    CHECK(std::hash<peer_id>{}(a) != std::hash<peer_id>{}(b));
}
