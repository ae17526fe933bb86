// libFuzzer target: Noise handshake messages. Whatever bytes arrive as a handshake
// message, reading them must neither crash nor read out of bounds, a rejected message
// must leave the handshake able to complete, and an accepted one must lead on to a
// complete handshake with the right peer.
//
// Input: byte 0 picks the reader, the rest is the message.
//   0: a responder policy reads it as a first message (IK or XX, by its header);
//   1: an IK initiator policy reads it as the answer to its first message;
//   2: an XX initiator policy reads it as message 2 (then writes message 3);
//   3: an XX responder policy reads it as message 3;
//   4: a responder of a generic pattern (byte 1 picks it, psk ones too) reads byte 2 on.
// Keys and ephemerals are fixed, so the seeds (valid messages) stay valid.
#include <peerlink/policy/noise_chacha20poly1305.hpp>

#include <array>
#include <cstdint>
#include <string>

namespace {

using peerlink::identity;
using peerlink::noise_chacha20poly1305;
using peerlink::packet_buffer;

identity key(std::uint8_t seed) {
    std::array<std::uint8_t, 32> k{};
    for (std::size_t i = 0; i < k.size(); ++i)
        k[i] = static_cast<std::uint8_t>(seed + 17 * i);
    std::error_code ec;
    auto id = identity::from_private_key(k, ec);
    if (!id)
        __builtin_trap();
    return *id;
}

const identity& initiator_static() {
    static const identity k = key(1);
    return k;
}
const identity& responder_static() {
    static const identity k = key(2);
    return k;
}
const identity& initiator_ephemeral() {
    static const identity k = key(3);
    return k;
}
const identity& responder_ephemeral() {
    static const identity k = key(4);
    return k;
}

constexpr std::array<std::byte, 4> prologue{std::byte{'f'}, std::byte{'u'}, std::byte{'z'},
                                            std::byte{'z'}};
constexpr std::array<std::byte, 5> first_payload{std::byte{'h'}, std::byte{'e'}, std::byte{'l'},
                                                 std::byte{'l'}, std::byte{'o'}};

void check(bool ok) {
    if (!ok)
        __builtin_trap();
}

// A policy that has written message 1 of IK (ik) or XX, with the fixed keys.
noise_chacha20poly1305 initiator_after_first(bool ik, std::array<std::byte, 512>& storage,
                                             packet_buffer& msg) {
    noise_chacha20poly1305 i;
    i.set_ephemeral_for_testing(initiator_ephemeral());
    check(!i.configure(initiator_static(),
                       ik ? std::optional(responder_static().id()) : std::nullopt, true, prologue));
    msg = packet_buffer(storage, 0);
    check(!i.write_handshake(msg, first_payload));
    return i;
}

noise_chacha20poly1305 fresh_responder() {
    noise_chacha20poly1305 r;
    r.set_ephemeral_for_testing(responder_ephemeral());
    check(!r.configure(responder_static(), std::nullopt, false, prologue));
    return r;
}

void run_policy(int mode, std::span<const std::byte> msg) {
    std::array<std::byte, 512> s1{}, s2{};
    std::array<std::byte, 1024> payload{};
    std::size_t n = 0;
    packet_buffer m1;
    if (mode == 0) {
        auto r = fresh_responder();
        if (r.read_handshake(msg, payload, n))
            return check(!r.wants_handshake_write() && !r.handshake_done());
        check(n + 1 <= msg.size() && r.wants_handshake_write());
        packet_buffer m2(s2, 0);
        // A first XX message can carry an ephemeral key no DH accepts: then the answer
        // fails and the responder waits for a new first message.
        auto ec = r.write_handshake(m2);
        check(!ec || (ec == peerlink::noise_error::handshake_failed && !r.wants_handshake_write() &&
                      m2.empty()));
        return;
    }
    if (mode == 1 || mode == 2) {
        auto i = initiator_after_first(mode == 1, s1, m1);
        auto ec = i.read_handshake(msg, payload, n);
        if (ec)
            return check(!i.handshake_done() && !i.wants_handshake_write());
        check(n + 1 <= msg.size());
        if (mode == 2) {
            packet_buffer m3(s2, 0);
            check(!i.write_handshake(m3));
        }
        check(i.handshake_done() && i.remote_static().has_value());
        return;
    }
    // mode 3: a responder that has read a genuine XX message 1 and answered it.
    auto i = initiator_after_first(false, s1, m1);
    auto r = fresh_responder();
    check(!r.read_handshake(m1.data(), payload, n));
    packet_buffer m2(s2, 0);
    check(!r.write_handshake(m2));
    if (r.read_handshake(msg, payload, n))
        return check(!r.handshake_done());
    check(r.handshake_done() && r.remote_static().has_value());
}

void run_generic(std::span<const std::byte> in) {
    static const char* const patterns[] = {"N",    "K",      "X",      "NN",         "NK",
                                           "KK",   "IK",     "XX",     "IX",         "X1K1",
                                           "I1X1", "NNpsk0", "XXpsk3", "KKpsk0+psk2"};
    if (in.empty())
        return;
    const auto pick = static_cast<std::uint8_t>(in[0]);
    std::string name = std::string("Noise_") + patterns[(pick & 0x7f) % std::size(patterns)] +
                       "_25519_ChaChaPoly_" + ((pick & 0x80) ? "BLAKE2b" : "BLAKE2s");
    const std::array<std::array<std::uint8_t, 32>, 2> psks{};
    peerlink::noise::handshake_config cfg;
    cfg.protocol_name = name;
    cfg.local_static = responder_static();
    cfg.remote_static = initiator_static().id();
    cfg.psks = psks;
    peerlink::noise::handshake_state r;
    check(!r.initialize(std::move(cfg)));
    std::array<std::byte, 1024> payload{};
    std::size_t n = 0;
    auto msg = in.subspan(1);
    if (r.read_message(msg, payload, n))
        return check(r.message_index() == 0);
    check(n <= msg.size() && r.message_index() == 1);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0 || size > 4096)
        return 0;
    std::span<const std::byte> in(reinterpret_cast<const std::byte*>(data), size);
    const int mode = static_cast<int>(data[0] % 5);
    if (mode == 4)
        run_generic(in.subspan(1));
    else
        run_policy(mode, in.subspan(1));
    return 0;
}
