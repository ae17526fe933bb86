#include <peerlink/proto/noise.hpp>

#include <peerlink/policy/noise_chacha20poly1305.hpp>

#include "catch.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cstdint>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#ifndef PEERLINK_SHARED_TESTDATA
#error "PEERLINK_SHARED_TESTDATA must name the shared test data folder"
#endif

namespace noise = peerlink::noise;
using peerlink::identity;
using peerlink::noise_chacha20poly1305;
using peerlink::noise_error;
using peerlink::packet_buffer;
using peerlink::peer_id;

namespace {

using bytes = std::vector<std::byte>;

bytes from_hex(const std::string& hex) {
    bytes out;
    auto nibble = [](char c) {
        return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
    };
    for (std::size_t i = 0; i + 1 < hex.size(); i += 2)
        out.push_back(static_cast<std::byte>(nibble(hex[i]) << 4 | nibble(hex[i + 1])));
    return out;
}

std::array<std::uint8_t, 32> key_from_hex(const std::string& hex) {
    auto b = from_hex(hex);
    REQUIRE(b.size() == 32);
    std::array<std::uint8_t, 32> k{};
    std::memcpy(k.data(), b.data(), 32);
    return k;
}

identity identity_from_hex(const std::string& hex) {
    std::error_code ec;
    auto id = identity::from_private_key(key_from_hex(hex), ec);
    REQUIRE(id);
    return *id;
}

bytes to_bytes(std::span<const std::byte> s) {
    return {s.begin(), s.end()};
}

bytes text(std::string_view s) {
    bytes out;
    for (char c : s)
        out.push_back(static_cast<std::byte>(c));
    return out;
}

noise::handshake_config config(std::string_view name, bool initiator,
                               std::optional<identity> s = std::nullopt) {
    noise::handshake_config c;
    c.protocol_name = name;
    c.initiator = initiator;
    c.local_static = std::move(s);
    return c;
}

const peerlink::time_point t0 = peerlink::time_point{} + std::chrono::hours(1);

// Runs a whole handshake between `i` (initiator) and `r`, passing payloads both ways.
std::error_code handshake(noise_chacha20poly1305& i, noise_chacha20poly1305& r) {
    std::array<std::byte, 512> storage{};
    std::array<std::byte, 256> payload{};
    const bytes hello = text("hello");
    for (int step = 0; step < 4 && !(i.handshake_done() && r.handshake_done()); ++step) {
        noise_chacha20poly1305* w = i.wants_handshake_write() ? &i : &r;
        noise_chacha20poly1305* rd = w == &i ? &r : &i;
        packet_buffer out(storage, 0);
        if (auto ec = w->write_handshake(out, hello))
            return ec;
        std::size_t n = 0;
        if (auto ec = rd->read_handshake(out.data(), payload, n))
            return ec;
        if (n != hello.size() || !std::equal(hello.begin(), hello.end(), payload.begin()))
            return make_error_code(noise_error::bad_message);
    }
    return i.handshake_done() && r.handshake_done() ? std::error_code{}
                                                    : make_error_code(noise_error::wrong_state);
}

// A sealed packet, in its own storage with room for the header and the tag.
struct packet {
    std::array<std::byte, 1600> storage{};
    packet_buffer buf{storage, 64};

    explicit packet(std::span<const std::byte> payload) { buf.append(payload); }
    packet(const packet& o) : storage(o.storage), buf(storage, o.buf.headroom()) {
        buf.resize(o.buf.size());
    }
    packet& operator=(const packet&) = delete;
};

bytes payload_of(std::uint64_t i, std::size_t size) {
    bytes b(size);
    for (std::size_t k = 0; k < size; ++k)
        b[k] = static_cast<std::byte>((i * 131 + k * 7) & 0xff);
    return b;
}

struct established_pair {
    identity a = identity::generate();
    identity b = identity::generate();
    noise_chacha20poly1305 i;
    noise_chacha20poly1305 r;

    explicit established_pair(bool ik, noise_chacha20poly1305::options o = {}) : i(o), r(o) {
        REQUIRE(!i.configure(a, ik ? std::optional<peer_id>(b.id()) : std::nullopt, true));
        REQUIRE(!r.configure(b, std::nullopt, false));
        REQUIRE(!handshake(i, r));
    }
};

} // namespace

static_assert(peerlink::cipher_policy<noise_chacha20poly1305>);
static_assert(noise_chacha20poly1305::max_overhead <= 28);
static_assert(noise_chacha20poly1305::max_overhead == 24);

TEST_CASE("noise passes every cacophony vector for 25519, ChaChaPoly, BLAKE2s and BLAKE2b",
          "[noise]") {
    std::ifstream in(PEERLINK_SHARED_TESTDATA "/noise/cacophony-25519-chachapoly-blake2.json");
    REQUIRE(in);
    auto doc = nlohmann::json::parse(in);
    const auto& vectors = doc.at("vectors");
    REQUIRE(vectors.size() == 118);

    std::size_t passed = 0, messages = 0;
    for (const auto& v : vectors) {
        const std::string name = v.at("protocol_name");
        INFO(name);
        auto side = [&](const char* prefix, bool initiator) {
            const std::string p = prefix;
            noise::handshake_config cfg;
            cfg.initiator = initiator;
            cfg.protocol_name = name;
            if (v.contains(p + "static"))
                cfg.local_static = identity_from_hex(v.at(p + "static"));
            if (v.contains(p + "ephemeral"))
                cfg.local_ephemeral = identity_from_hex(v.at(p + "ephemeral"));
            if (v.contains(p + "remote_static"))
                cfg.remote_static = peer_id::from_bytes(key_from_hex(v.at(p + "remote_static")));
            return cfg;
        };
        bytes init_prologue = from_hex(v.at("init_prologue"));
        bytes resp_prologue = from_hex(v.at("resp_prologue"));
        std::vector<std::array<std::uint8_t, 32>> init_psks, resp_psks;
        for (const auto& k : v.value("init_psks", nlohmann::json::array()))
            init_psks.push_back(key_from_hex(k));
        for (const auto& k : v.value("resp_psks", nlohmann::json::array()))
            resp_psks.push_back(key_from_hex(k));

        auto init_cfg = side("init_", true);
        init_cfg.prologue = init_prologue;
        init_cfg.psks = init_psks;
        auto resp_cfg = side("resp_", false);
        resp_cfg.prologue = resp_prologue;
        resp_cfg.psks = resp_psks;

        noise::handshake_state init, resp;
        REQUIRE(!init.initialize(std::move(init_cfg)));
        REQUIRE(!resp.initialize(std::move(resp_cfg)));
        const bool one_way = init.pattern().one_way();

        noise::cipher_state i_to_r[2], r_to_i[2]; // [0]: initiator's, [1]: responder's
        std::size_t index = 0;
        for (const auto& m : v.at("messages")) {
            INFO("message " << index);
            const bytes payload = from_hex(m.at("payload"));
            const bytes expected = from_hex(m.at("ciphertext"));
            std::array<std::byte, 1024> storage{};
            std::array<std::byte, 1024> got{};
            std::size_t n = 0;
            if (!init.is_complete()) {
                auto& w = index % 2 == 0 ? init : resp;
                auto& r = index % 2 == 0 ? resp : init;
                REQUIRE(w.is_my_turn());
                CHECK(w.next_message_size(payload.size()) == expected.size());
                packet_buffer out(storage, 0);
                REQUIRE(!w.write_message(payload, out));
                REQUIRE(to_bytes(out.data()) == expected);
                REQUIRE(!r.read_message(out.data(), got, n));
                REQUIRE(bytes(got.begin(), got.begin() + n) == payload);
                if (init.is_complete()) {
                    REQUIRE(resp.is_complete());
                    REQUIRE(to_bytes(init.handshake_hash()) == from_hex(v.at("handshake_hash")));
                    REQUIRE(to_bytes(resp.handshake_hash()) == from_hex(v.at("handshake_hash")));
                    REQUIRE(!init.split(i_to_r[0], r_to_i[0]));
                    REQUIRE(!resp.split(i_to_r[1], r_to_i[1]));
                }
            } else {
                const bool from_initiator = one_way || index % 2 == 0;
                auto& enc = from_initiator ? i_to_r[0] : r_to_i[1];
                auto& dec = from_initiator ? i_to_r[1] : r_to_i[0];
                bytes data = payload;
                std::array<std::byte, noise::tag_size> tag{};
                REQUIRE(!enc.encrypt_with_ad({}, data, tag));
                data.insert(data.end(), tag.begin(), tag.end());
                REQUIRE(data == expected);
                data.resize(payload.size());
                REQUIRE(!dec.decrypt_with_ad({}, data, tag));
                REQUIRE(data == payload);
            }
            ++index;
            ++messages;
        }
        ++passed;
    }
    CHECK(passed == 118);
    CHECK(messages == 118 * 6);
}

TEST_CASE("noise pattern names parse with psk modifiers and reject the unknown", "[noise]") {
    auto xx = noise::handshake_pattern::from_name("XX");
    REQUIRE(xx);
    CHECK(xx->message_count == 3);
    CHECK_FALSE(xx->psk_mode());
    auto kk = noise::handshake_pattern::from_name("KKpsk0+psk2");
    REQUIRE(kk);
    CHECK(kk->psk_count() == 2);
    CHECK(kk->messages[0].tokens[0] == noise::token::psk);
    CHECK(kk->messages[1].tokens[kk->messages[1].size - 1] == noise::token::psk);
    for (const char* bad : {"", "ZZ", "XXpsk4", "XXpsk", "XXpskx", "XX+psk1", "xx"})
        CHECK_FALSE(noise::handshake_pattern::from_name(bad));
    CHECK(noise::protocol::parse("Noise_IK_25519_ChaChaPoly_BLAKE2b"));
    for (const char* bad :
         {"Noise_IK_448_ChaChaPoly_BLAKE2s", "Noise_IK_25519_AESGCM_BLAKE2s",
          "Noise_IK_25519_ChaChaPoly_SHA256", "Noise_IK_25519_ChaChaPoly_BLAKE2s_x", "IK"})
        CHECK_FALSE(noise::protocol::parse(bad));

    noise::handshake_state hs;
    CHECK(hs.initialize(config("Noise_IK_25519_ChaChaPoly_SHA512", false)) ==
          noise_error::unsupported_protocol);
    CHECK(hs.initialize(config("Noise_IK_25519_ChaChaPoly_BLAKE2s", true)) ==
          noise_error::missing_key);
    CHECK(hs.initialize(config("Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s", true)) ==
          noise_error::missing_key);
    CHECK(hs.initialize(config("Noise_IK_25519_ChaChaPoly_SHA512", true)) ==
          peerlink::condition::configuration_error);
    CHECK_FALSE(hs.is_my_turn());
}

TEST_CASE("noise cipher_state rekey follows the specification and keeps the nonce", "[noise]") {
    std::array<std::uint8_t, 32> k{};
    for (std::size_t i = 0; i < k.size(); ++i)
        k[i] = static_cast<std::uint8_t>(i * 3 + 1);
    noise::cipher_state a, b;
    REQUIRE(!a.initialize_key(k));
    a.set_nonce(41);
    // REKEY(k) = first 32 bytes of ENCRYPT(k, 2^64-1, "", 32 zero bytes).
    std::array<std::byte, 32> zeros{};
    std::array<std::byte, 16> tag{};
    REQUIRE(!a.encrypt(noise::rekey_nonce, {}, zeros, tag));
    REQUIRE(!a.rekey());
    CHECK(a.nonce() == 41);
    CHECK(std::memcmp(a.key().data(), zeros.data(), 32) == 0);
    CHECK(std::memcmp(a.key().data(), k.data(), 32) != 0);

    // The nonce reserved for rekeying is never used for a message.
    REQUIRE(!b.initialize_key(k));
    b.set_nonce(noise::rekey_nonce);
    std::array<std::byte, 4> data{};
    CHECK(b.encrypt_with_ad({}, data, tag) == noise_error::nonce_exhausted);
    b.clear();
    CHECK_FALSE(b.has_key());
    CHECK(b.encrypt(0, {}, data, tag) == noise_error::wrong_state);
}

TEST_CASE("noise handshake_state undoes a message that fails to read", "[noise]") {
    const auto name = "Noise_XX_25519_ChaChaPoly_BLAKE2s";
    noise::handshake_state i, r;
    REQUIRE(!i.initialize(config(name, true, identity::generate())));
    REQUIRE(!r.initialize(config(name, false, identity::generate())));
    std::array<std::byte, 256> storage{}, payload{};
    std::size_t n = 0;
    packet_buffer m1(storage, 0);
    REQUIRE(!i.write_message({}, m1));
    REQUIRE(!r.read_message(m1.data(), payload, n));
    packet_buffer m2(storage, 0);
    REQUIRE(!r.write_message(text("secret"), m2));
    bytes good = to_bytes(m2.data());
    CHECK(good.size() == 32 + 48 + 6 + 16);
    bytes bad = good;
    bad[40] ^= std::byte{1};
    const bytes hash_before = to_bytes(i.handshake_hash());
    CHECK(i.read_message(bad, payload, n) == noise_error::handshake_failed);
    CHECK(i.read_message(std::span(good).first(50), payload, n) == noise_error::bad_message);
    CHECK(i.read_message(good, std::span(payload).first(2), n) ==
          peerlink::error::buffer_too_small);
    CHECK(to_bytes(i.handshake_hash()) == hash_before);
    CHECK(i.message_index() == 1);
    REQUIRE(!i.read_message(good, payload, n));
    CHECK(bytes(payload.begin(), payload.begin() + n) == text("secret"));
    CHECK(i.read_message(good, payload, n) == noise_error::wrong_state);
}

TEST_CASE("noise_chacha20poly1305 IK and XX handshakes then 100k packets both ways", "[noise]") {
    for (bool ik : {true, false}) {
        INFO((ik ? "IK" : "XX"));
        established_pair s(ik);
        CHECK(s.i.pattern() == (ik ? peerlink::noise_pattern::ik : peerlink::noise_pattern::xx));
        CHECK(s.r.pattern() == s.i.pattern());
        REQUIRE(s.i.remote_static() == s.b.id());
        REQUIRE(s.r.remote_static() == s.a.id());
        CHECK(std::equal(s.i.handshake_hash().begin(), s.i.handshake_hash().end(),
                         s.r.handshake_hash().begin()));
        CHECK(s.i.enabled());
        CHECK(s.r.enabled());

        std::uint64_t intact = 0;
        for (std::uint64_t k = 0; k < 100000; ++k) {
            auto& tx = k % 2 ? s.r : s.i;
            auto& rx = k % 2 ? s.i : s.r;
            const bytes payload = payload_of(k, (k * 37) % 1401);
            packet p(payload);
            REQUIRE(!tx.seal(p.buf, t0));
            REQUIRE(p.buf.size() == payload.size() + 24);
            if (payload.size() >= 16) // the ciphertext is not the plaintext
                REQUIRE(std::memcmp(p.buf.data().data() + 8, payload.data(), 16) != 0);
            REQUIRE(!rx.open(p.buf, t0));
            REQUIRE(to_bytes(p.buf.data()) == payload);
            ++intact;
        }
        CHECK(intact == 100000);
        CHECK(s.i.counters().sealed == 50000);
        CHECK(s.r.counters().opened == 50000);
        CHECK(s.r.counters().decrypt_failed == 0);
    }
}

TEST_CASE("noise_chacha20poly1305 rejects every tampered byte with decrypt_failed", "[noise]") {
    established_pair s(true);
    // Some packets first, so the window's top is well above zero.
    for (int k = 0; k < 10; ++k) {
        packet p(payload_of(k, 40));
        REQUIRE(!s.i.seal(p.buf, t0));
        REQUIRE(!s.r.open(p.buf, t0));
    }
    const bytes payload = payload_of(99, 100);
    packet original(payload);
    REQUIRE(!s.i.seal(original.buf, t0));
    std::size_t rejected = 0, decrypt_failed = 0;
    for (std::size_t at = 0; at < original.buf.size(); ++at) {
        for (std::uint8_t flip : {0x01, 0x80, 0xff}) {
            packet p(original);
            p.buf.data()[at] ^= std::byte{flip};
            auto ec = s.r.open(p.buf, t0);
            INFO("byte " << at << " flip " << int(flip) << ": " << ec.message());
            REQUIRE(ec);
            if (at >= 2) { // counter, body and tag: only the tag check can catch it
                CHECK(ec == noise_error::decrypt_failed);
                CHECK(ec == peerlink::condition::authentication_failed);
            } else { // the epoch: an unknown future key, or one long gone
                CHECK((ec == noise_error::decrypt_failed || ec == noise_error::too_old));
            }
            decrypt_failed += ec == noise_error::decrypt_failed;
            ++rejected;
        }
    }
    CHECK(rejected == 3 * (payload.size() + 24));
    CHECK(decrypt_failed >= rejected - 4);
    CHECK(s.r.counters().decrypt_failed == decrypt_failed);
    CHECK(s.r.counters().opened == 10);
    // Truncated: malformed below 24 bytes, forged above.
    for (std::size_t len : {std::size_t{0}, std::size_t{8}, std::size_t{23}}) {
        packet p(original);
        p.buf.resize(len);
        CHECK(s.r.open(p.buf, t0) == noise_error::malformed_packet);
    }
    {
        packet p(original);
        p.buf.resize(original.buf.size() - 1);
        CHECK(s.r.open(p.buf, t0) == noise_error::decrypt_failed);
    }
    CHECK(s.r.counters().malformed == 3);
    // None of it hurt the real packet.
    REQUIRE(!s.r.open(original.buf, t0));
    CHECK(to_bytes(original.buf.data()) == payload);
}

TEST_CASE("noise_chacha20poly1305 rejects and counts replays, accepts reordering, rejects "
          "the too old",
          "[noise]") {
    established_pair s(false);
    std::vector<packet> sent;
    sent.reserve(3000);
    for (std::uint64_t k = 0; k < 3000; ++k) {
        sent.emplace_back(payload_of(k, 64));
        REQUIRE(!s.i.seal(sent.back().buf, t0));
    }
    // Replay: the same packet twice.
    packet first(sent[0]);
    REQUIRE(!s.r.open(first.buf, t0));
    packet again(sent[0]);
    CHECK(s.r.open(again.buf, t0) == noise_error::replayed);
    CHECK(s.r.counters().replayed == 1);

    // Reordering inside the window: packets 1..2000 in a shuffled order.
    std::vector<std::size_t> order(2000);
    for (std::size_t k = 0; k < order.size(); ++k)
        order[k] = k + 1;
    std::mt19937 rng(7);
    std::shuffle(order.begin(), order.end(), rng);
    std::size_t opened = 0;
    for (std::size_t k : order) {
        packet p(sent[k]);
        REQUIRE(!s.r.open(p.buf, t0));
        REQUIRE(to_bytes(p.buf.data()) == payload_of(k, 64));
        ++opened;
    }
    CHECK(opened == 2000);
    // Every one of them again: all replays.
    for (std::size_t k : order) {
        packet p(sent[k]);
        REQUIRE(s.r.open(p.buf, t0) == noise_error::replayed);
    }
    CHECK(s.r.counters().replayed == 2001);

    // Jump ahead to 2999: the window now starts at 2999 - 2047 = 952.
    packet last(sent[2999]);
    REQUIRE(!s.r.open(last.buf, t0));
    packet oldest_in(sent[2001]); // never delivered, inside the window
    CHECK(!s.r.open(oldest_in.buf, t0));
    packet at_edge(sent[952]); // delivered before: a replay, not too old
    CHECK(s.r.open(at_edge.buf, t0) == noise_error::replayed);
    packet behind(sent[951]); // behind the window
    CHECK(s.r.open(behind.buf, t0) == noise_error::too_old);
    CHECK(s.r.open(behind.buf, t0) == peerlink::condition::malformed_input);
    CHECK(s.r.counters().too_old == 2);
    CHECK(s.r.counters().opened == 2003);
}

TEST_CASE("noise_chacha20poly1305 rekeys by count, also across reordering and loss", "[noise]") {
    noise_chacha20poly1305::options o;
    o.rekey_after_packets = 100;
    established_pair s(true, o);
    std::vector<packet> sent;
    sent.reserve(1000);
    for (std::uint64_t k = 0; k < 1000; ++k) {
        sent.emplace_back(payload_of(k, 200));
        REQUIRE(!s.i.seal(sent.back().buf, t0));
    }
    CHECK(s.i.send_epoch() == 9);
    CHECK(s.i.counters().rekeys_sent == 9);
    // The epoch is in the header: packets 99 and 100 differ in it.
    CHECK(sent[99].buf.data()[1] == std::byte{0});
    CHECK(sent[100].buf.data()[1] == std::byte{1});

    // 0..89 in order, then 90..119 shuffled: across the boundary at 100 both ways.
    for (std::size_t k = 0; k < 90; ++k) {
        packet p(sent[k]);
        REQUIRE(!s.r.open(p.buf, t0));
    }
    std::vector<std::size_t> order;
    for (std::size_t k = 90; k < 120; ++k)
        order.push_back(k);
    std::mt19937 rng(3);
    std::shuffle(order.begin(), order.end(), rng);
    std::swap(*std::find(order.begin(), order.end(), 110), order.front()); // new key first
    for (std::size_t k : order) {
        packet p(sent[k]);
        INFO(k);
        REQUIRE(!s.r.open(p.buf, t0));
        REQUIRE(to_bytes(p.buf.data()) == payload_of(k, 200));
    }
    CHECK(s.r.receive_epoch() == 1);
    // Loss of all of epochs 2..4: the receiver skips to 5.
    packet p500(sent[500]);
    REQUIRE(!s.r.open(p500.buf, t0));
    CHECK(s.r.receive_epoch() == 5);
    CHECK(s.r.counters().rekeys_received == 5);
    // A late packet of epoch 4 still opens with the kept previous key; epoch 3 cannot.
    packet p450(sent[450]);
    CHECK(!s.r.open(p450.buf, t0));
    packet p350(sent[350]);
    CHECK(s.r.open(p350.buf, t0) == noise_error::too_old);
    // The rest in order.
    for (std::size_t k = 501; k < 1000; ++k) {
        packet p(sent[k]);
        REQUIRE(!s.r.open(p.buf, t0));
    }
    CHECK(s.r.receive_epoch() == 9);
    CHECK(s.r.counters().opened == 120 + 1 + 1 + 499);

    // A receiver more than max_epoch_skip behind cannot follow (and is not moved).
    established_pair far(true, o);
    std::optional<packet> late;
    for (std::uint64_t k = 0; k <= 100 * (noise_chacha20poly1305::max_epoch_skip + 1); ++k) {
        packet p(payload_of(k, 10));
        REQUIRE(!far.i.seal(p.buf, t0));
        late.emplace(p);
    }
    CHECK(far.r.open(late->buf, t0) == noise_error::decrypt_failed);
    CHECK(far.r.receive_epoch() == 0);
}

TEST_CASE("noise_chacha20poly1305 rekeys by time and keeps the previous key briefly", "[noise]") {
    using std::chrono::milliseconds;
    using std::chrono::seconds;
    noise_chacha20poly1305::options o;
    o.rekey_after_packets = 0;
    o.rekey_after_time = seconds(10);
    o.previous_key_lifetime = seconds(3);
    established_pair s(false, o);

    std::vector<packet> sent;
    std::vector<peerlink::time_point> at;
    for (int k = 0; k < 40; ++k) { // one packet per second
        sent.emplace_back(payload_of(k, 300));
        at.push_back(t0 + seconds(k));
        REQUIRE(!s.r.seal(sent.back().buf, at.back()));
    }
    CHECK(s.r.send_epoch() == 3); // rekeyed at 10 s, 20 s, 30 s
    CHECK(sent[9].buf.data()[1] == std::byte{0});
    CHECK(sent[10].buf.data()[1] == std::byte{1});

    // 0..8, then 10 before 9 (reordered across the boundary), 1 s late.
    for (int k = 0; k < 9; ++k) {
        packet p(sent[k]);
        REQUIRE(!s.i.open(p.buf, at[k]));
    }
    packet p10(sent[10]);
    REQUIRE(!s.i.open(p10.buf, at[10]));
    CHECK(s.i.receive_epoch() == 1);
    packet p9(sent[9]);
    REQUIRE(!s.i.open(p9.buf, at[10] + milliseconds(500)));
    REQUIRE(to_bytes(p9.buf.data()) == payload_of(9, 300));
    // 20 arrives; a straggler of epoch 1 within 3 s opens, one after 3 s does not.
    for (int k = 11; k < 21; ++k) {
        packet p(sent[k]);
        if (k == 19)
            continue;
        REQUIRE(!s.i.open(p.buf, at[k]));
    }
    CHECK(s.i.receive_epoch() == 2);
    packet p19(sent[19]);
    CHECK(s.i.open(p19.buf, at[20] + seconds(4)) == noise_error::too_old);
    CHECK(s.i.counters().too_old == 1);

    // An idle sender rekeys on its first packet after the interval.
    established_pair idle(true, o);
    packet a(payload_of(1, 10));
    REQUIRE(!idle.i.seal(a.buf, t0));
    packet b(payload_of(2, 10));
    REQUIRE(!idle.i.seal(b.buf, t0 + seconds(9)));
    CHECK(idle.i.send_epoch() == 0);
    packet c(payload_of(3, 10));
    REQUIRE(!idle.i.seal(c.buf, t0 + seconds(600)));
    CHECK(idle.i.send_epoch() == 1);
    for (auto* p : {&a, &b, &c})
        REQUIRE(!idle.r.open(p->buf, t0 + seconds(600)));
}

TEST_CASE("noise_chacha20poly1305 fails a wrong or spoofed peer key with "
          "authentication_failed",
          "[noise]") {
    const identity alice = identity::generate();
    const identity bob = identity::generate();
    const identity mallory = identity::generate();
    std::array<std::byte, 512> storage{};
    std::array<std::byte, 256> payload{};
    std::size_t n = 0;

    SECTION("the initiator expects a key the responder does not hold") {
        noise_chacha20poly1305 i, r;
        REQUIRE(!i.configure(alice, mallory.id(), true)); // thinks bob is mallory's id
        REQUIRE(!r.configure(bob, std::nullopt, false));
        packet_buffer m1(storage, 0);
        REQUIRE(!i.write_handshake(m1, text("hi")));
        auto ec = r.read_handshake(m1.data(), payload, n);
        CHECK(ec == noise_error::handshake_failed);
        CHECK(ec == peerlink::condition::authentication_failed);
        CHECK_FALSE(r.handshake_done());
        CHECK(r.counters().handshake_rejected == 1);
        CHECK(r.pattern() == peerlink::noise_pattern::none);
    }
    SECTION("a responder spoofing the expected id cannot answer") {
        // Mallory intercepts alice's IK message meant for bob and answers with her own
        // keys; she cannot compute the keys bob would, so alice rejects the answer.
        noise_chacha20poly1305 i, fake_bob;
        REQUIRE(!i.configure(alice, bob.id(), true));
        packet_buffer m1(storage, 0);
        REQUIRE(!i.write_handshake(m1));
        bytes m1_bytes = to_bytes(m1.data());
        REQUIRE(!fake_bob.configure(mallory, std::nullopt, false));
        CHECK(fake_bob.read_handshake(m1_bytes, payload, n) ==
              peerlink::condition::authentication_failed);
        // Her best answer: a genuine IK answer from a session she runs with bob's id
        // replaced by her own, in the same shape.
        noise_chacha20poly1305 mi, mr;
        REQUIRE(!mi.configure(alice, mallory.id(), true));
        REQUIRE(!mr.configure(mallory, std::nullopt, false));
        packet_buffer x1(storage, 0);
        REQUIRE(!mi.write_handshake(x1));
        REQUIRE(!mr.read_handshake(x1.data(), payload, n));
        packet_buffer x2(storage, 0);
        REQUIRE(!mr.write_handshake(x2));
        auto ec = i.read_handshake(x2.data(), payload, n);
        CHECK(ec == noise_error::handshake_failed);
        CHECK(ec == peerlink::condition::authentication_failed);
        CHECK_FALSE(i.handshake_done());
        CHECK_FALSE(i.remote_static());
    }
    SECTION("a responder that expects bob refuses mallory over XX") {
        noise_chacha20poly1305 i, r;
        REQUIRE(!i.configure(mallory, std::nullopt, true));
        REQUIRE(!r.configure(alice, bob.id(), false));
        auto ec = handshake(i, r);
        CHECK(ec == noise_error::unexpected_remote_static);
        CHECK(ec == peerlink::condition::authentication_failed);
        CHECK_FALSE(r.handshake_done());
        CHECK_FALSE(r.enabled());
    }
    SECTION("a prologue mismatch fails the handshake") {
        noise_chacha20poly1305 i, r;
        REQUIRE(!i.configure(alice, bob.id(), true, text("v1")));
        REQUIRE(!r.configure(bob, std::nullopt, false, text("v2")));
        CHECK(handshake(i, r) == peerlink::condition::authentication_failed);
    }
    SECTION("keys of another session do not open packets") {
        established_pair one(true), two(true);
        packet p(payload_of(1, 50));
        REQUIRE(!one.i.seal(p.buf, t0));
        CHECK(two.r.open(p.buf, t0) == peerlink::condition::authentication_failed);
    }
}

TEST_CASE("noise_chacha20poly1305 handshake survives forged messages and retransmissions",
          "[noise]") {
    const identity alice = identity::generate();
    const identity bob = identity::generate();
    noise_chacha20poly1305 i, r;
    REQUIRE(!i.configure(alice, std::nullopt, true));
    REQUIRE(!r.configure(bob, alice.id(), false));
    std::array<std::byte, 512> s1{}, s2{}, s3{};
    std::array<std::byte, 256> payload{};
    std::size_t n = 0;

    CHECK(r.wants_handshake_write() == false);
    packet_buffer tmp(s1, 0);
    CHECK(r.write_handshake(tmp) == noise_error::wrong_state);

    packet_buffer m1(s1, 0);
    REQUIRE(!i.write_handshake(m1));
    CHECK(m1.size() == 33);
    CHECK(m1.data()[0] == std::byte{0x20});
    CHECK(i.write_handshake(tmp) == noise_error::wrong_state);
    // Garbage and wrong headers first: rejected, nothing changes.
    CHECK(r.read_handshake({}, payload, n) == noise_error::bad_message);
    const std::array<std::byte, 3> junk{std::byte{0x70}, std::byte{1}, std::byte{2}};
    CHECK(r.read_handshake(junk, payload, n) == noise_error::bad_message);
    CHECK(r.read_handshake(std::span(m1.data()).first(20), payload, n) == noise_error::bad_message);
    REQUIRE(!r.read_handshake(m1.data(), payload, n));
    // Alice's first message again: r already has it.
    CHECK(r.read_handshake(m1.data(), payload, n) == noise_error::stale_message);

    packet_buffer m2(s2, 0);
    REQUIRE(!r.write_handshake(m2));
    CHECK(m2.data()[0] == std::byte{0x21});
    bytes forged = to_bytes(m2.data());
    forged[50] ^= std::byte{4};
    CHECK(i.read_handshake(forged, payload, n) == noise_error::handshake_failed);
    CHECK(i.counters().handshake_rejected == 1);
    REQUIRE(!i.read_handshake(m2.data(), payload, n));
    packet_buffer m3(s3, 0);
    REQUIRE(!i.write_handshake(m3));
    CHECK(i.handshake_done()); // the XX initiator is done once it wrote message 3
    CHECK(i.read_handshake(m2.data(), payload, n) == noise_error::stale_message);
    REQUIRE(!r.read_handshake(m3.data(), payload, n));
    CHECK(r.handshake_done());
    CHECK(r.read_handshake(m3.data(), payload, n) == noise_error::stale_message);
    CHECK(r.remote_static() == alice.id());
    CHECK(i.remote_static() == bob.id());
}

TEST_CASE("noise_chacha20poly1305 responder drops an XX first message with a degenerate key",
          "[noise]") {
    // Nothing authenticates an XX first message: an all-zero ephemeral key (a point of
    // small order) reads fine, but no DH accepts it when the responder answers.
    const identity bob = identity::generate();
    noise_chacha20poly1305 i, r;
    REQUIRE(!i.configure(identity::generate(), std::nullopt, true));
    REQUIRE(!r.configure(bob, std::nullopt, false));
    std::array<std::byte, 33> bogus{};
    bogus[0] = std::byte{0x20};
    std::array<std::byte, 256> storage{}, payload{};
    std::size_t n = 0;
    REQUIRE(!r.read_handshake(bogus, payload, n));
    packet_buffer out(storage, 0);
    CHECK(r.write_handshake(out) == noise_error::handshake_failed);
    CHECK(out.empty());
    CHECK_FALSE(r.wants_handshake_write());
    CHECK(r.pattern() == peerlink::noise_pattern::none);
    // The genuine initiator still gets through.
    CHECK(!handshake(i, r));
    CHECK(r.enabled());
}

TEST_CASE("noise_chacha20poly1305 refuses packets before the handshake and without room",
          "[noise]") {
    noise_chacha20poly1305 c;
    CHECK_FALSE(c.enabled());
    packet p(payload_of(1, 30));
    CHECK(c.seal(p.buf, t0) == noise_error::wrong_state);
    CHECK(c.open(p.buf, t0) == noise_error::wrong_state);
    CHECK(p.buf.size() == 30);
    std::array<std::byte, 256> payload{};
    std::size_t n = 0;
    CHECK(c.read_handshake(payload, payload, n) == noise_error::wrong_state);

    established_pair s(true);
    std::array<std::byte, 40> small{};
    packet_buffer no_head(small, 4);
    no_head.append(payload_of(2, 10));
    CHECK(s.i.seal(no_head, t0) == peerlink::error::buffer_too_small);
    CHECK(no_head.size() == 10);
    packet_buffer no_tail(small, 8);
    no_tail.append(payload_of(2, 20));
    CHECK(s.i.seal(no_tail, t0) == peerlink::error::buffer_too_small);
    packet_buffer exact(small, 8);
    exact.append(payload_of(2, 16));
    REQUIRE(!s.i.seal(exact, t0));
    CHECK(exact.size() == 40);
    REQUIRE(!s.r.open(exact, t0));
    CHECK(to_bytes(exact.data()) == payload_of(2, 16));

    // Moving keeps the session.
    noise_chacha20poly1305 moved(std::move(s.r));
    packet q(payload_of(3, 30));
    REQUIRE(!s.i.seal(q.buf, t0));
    REQUIRE(!moved.open(q.buf, t0));
    CHECK(moved.counters().opened == 2);
}

TEST_CASE("noise errors map onto peerlink conditions", "[noise]") {
    using peerlink::condition;
    CHECK(make_error_code(noise_error::handshake_failed) == condition::authentication_failed);
    CHECK(make_error_code(noise_error::decrypt_failed) == condition::authentication_failed);
    CHECK(make_error_code(noise_error::unexpected_remote_static) ==
          condition::authentication_failed);
    CHECK(make_error_code(noise_error::replayed) == condition::malformed_input);
    CHECK(make_error_code(noise_error::too_old) == condition::malformed_input);
    CHECK(make_error_code(noise_error::bad_message) == condition::malformed_input);
    CHECK(make_error_code(noise_error::malformed_packet) == condition::malformed_input);
    CHECK(make_error_code(noise_error::missing_key) == condition::configuration_error);
    CHECK(make_error_code(noise_error::wrong_state) != condition::authentication_failed);
    CHECK(make_error_code(noise_error::wrong_state) != condition::malformed_input);
    for (int e = 1; e <= static_cast<int>(noise_error::nonce_exhausted); ++e)
        CHECK(peerlink::noise_error_category().message(e) != "unknown peerlink.noise error");
    CHECK(std::string(peerlink::noise_error_category().name()) == "peerlink.noise");
}
