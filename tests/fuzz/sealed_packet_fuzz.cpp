// libFuzzer target: sealed packets of noise_chacha20poly1305. Any bytes offered to
// `open` must be rejected or authenticated without reading out of bounds; a genuine
// packet changed in any byte must never open; genuine packets, however delayed,
// duplicated or reordered across rekeys, open at most once and intact.
//
// Input: a script of operations on an established IK pair with fixed keys (so seeds that
// hold sealed packets stay valid) that rekeys every 8 packets or 50 ms:
//   op 0, len, bytes...: the receiver opens these raw bytes;
//   op 1, len:           the sender seals a packet of len bytes, the receiver opens it;
//   op 2, ms:            time passes;
//   op 3, len:           the sender seals a packet and holds it (8 slots, oldest replaced);
//   op 4, slot, flip:    a held packet is delivered, with byte (flip >> 4) of it XORed by
//                        (flip & 15) when that is not zero;
//   op 5, len:           the receiver seals a packet towards the sender, which opens it.
#include <peerlink/policy/noise_chacha20poly1305.hpp>

#include <array>
#include <cstdint>
#include <cstring>
#include <optional>

namespace {

using peerlink::identity;
using peerlink::noise_chacha20poly1305;
using peerlink::packet_buffer;

void check(bool ok) {
    if (!ok)
        __builtin_trap();
}

identity key(std::uint8_t seed) {
    std::array<std::uint8_t, 32> k{};
    for (std::size_t i = 0; i < k.size(); ++i)
        k[i] = static_cast<std::uint8_t>(seed * 29 + 11 * i);
    std::error_code ec;
    auto id = identity::from_private_key(k, ec);
    check(id.has_value());
    return *id;
}

struct session {
    noise_chacha20poly1305 tx;
    noise_chacha20poly1305 rx;
    peerlink::time_point now = peerlink::time_point{} + std::chrono::hours(1);

    session() : tx(options()), rx(options()) {
        static const identity a = key(1), b = key(2), ea = key(3), eb = key(4);
        tx.set_ephemeral_for_testing(ea);
        rx.set_ephemeral_for_testing(eb);
        check(!tx.configure(a, b.id(), true));
        check(!rx.configure(b, std::nullopt, false));
        std::array<std::byte, 256> storage{};
        std::array<std::byte, 64> payload{};
        std::size_t n = 0;
        packet_buffer m1(storage, 0);
        check(!tx.write_handshake(m1));
        check(!rx.read_handshake(m1.data(), payload, n));
        packet_buffer m2(storage, 0);
        check(!rx.write_handshake(m2));
        check(!tx.read_handshake(m2.data(), payload, n));
        check(tx.handshake_done() && rx.handshake_done());
    }

    static noise_chacha20poly1305::options options() {
        noise_chacha20poly1305::options o;
        o.rekey_after_packets = 8;
        o.rekey_after_time = std::chrono::milliseconds(50);
        o.previous_key_lifetime = std::chrono::milliseconds(20);
        return o;
    }
};

struct held_packet {
    std::array<std::byte, 384> storage{};
    std::size_t size = 0;
    std::uint8_t fill = 0;
    std::size_t payload = 0;
};

// The payload of every sealed packet: recognisable, so an opened one can be checked.
void fill_payload(packet_buffer& p, std::size_t len, std::uint8_t fill) {
    auto d = p.append(len);
    for (std::size_t i = 0; i < d.size(); ++i)
        d[i] = static_cast<std::byte>(fill + i);
}

bool payload_intact(const packet_buffer& p, std::size_t len, std::uint8_t fill) {
    if (p.size() != len)
        return false;
    for (std::size_t i = 0; i < len; ++i)
        if (p.data()[i] != static_cast<std::byte>(fill + i))
            return false;
    return true;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size > 8192)
        return 0;
    session s;
    std::array<held_packet, 8> held{};
    std::array<bool, 8> delivered{};
    std::size_t next_slot = 0;
    std::uint8_t fill = 0;
    std::array<std::byte, 512> storage{};
    std::size_t at = 0;
    auto next = [&]() -> std::optional<std::uint8_t> {
        if (at >= size)
            return std::nullopt;
        return data[at++];
    };

    for (int ops = 0; ops < 512; ++ops) {
        auto op = next();
        auto arg = next();
        if (!op || !arg)
            break;
        switch (*op % 6) {
        case 0: {
            const std::size_t len = std::min<std::size_t>(*arg, size - at);
            packet_buffer p(storage, 0);
            p.append(std::span(reinterpret_cast<const std::byte*>(data + at), len));
            at += len;
            const auto before = s.rx.counters().opened;
            if (!s.rx.open(p, s.now))
                check(len >= 24 && p.size() == len - 24 && s.rx.counters().opened == before + 1);
            break;
        }
        case 1:
        case 5: {
            auto& from = *op % 6 == 1 ? s.tx : s.rx;
            auto& to = *op % 6 == 1 ? s.rx : s.tx;
            packet_buffer p(storage, 8);
            fill_payload(p, *arg, ++fill);
            check(!from.seal(p, s.now));
            check(p.size() == *arg + 24u);
            if (!to.open(p, s.now))
                check(payload_intact(p, *arg, fill));
            break;
        }
        case 2:
            s.now += std::chrono::milliseconds(*arg);
            break;
        case 3: {
            auto& h = held[next_slot];
            delivered[next_slot] = false;
            next_slot = (next_slot + 1) % held.size();
            packet_buffer p(h.storage, 8);
            h.fill = ++fill;
            h.payload = *arg;
            fill_payload(p, h.payload, h.fill);
            check(!s.tx.seal(p, s.now));
            h.size = p.size();
            break;
        }
        case 4: {
            const std::size_t slot = *arg % held.size();
            auto flip = next();
            auto& h = held[slot];
            if (h.size == 0 || !flip)
                break;
            std::array<std::byte, 384> copy = h.storage;
            packet_buffer p(copy, 0);
            p.resize(h.size);
            const std::size_t byte = (*flip >> 4) % h.size;
            const auto mask = static_cast<std::byte>(*flip & 15);
            p.data()[byte] ^= mask;
            auto ec = s.rx.open(p, s.now);
            if (mask != std::byte{0}) {
                check(ec.value() != 0); // a changed packet never opens
            } else if (!ec) {
                check(!delivered[slot]); // a genuine packet opens at most once
                check(payload_intact(p, h.payload, h.fill));
                delivered[slot] = true;
            }
            break;
        }
        default:
            break;
        }
    }
    return 0;
}
