// aead_bench: the cost of noise_chacha20poly1305's seal + open per packet against a
// bare OpenSSL EVP ChaCha20-Poly1305 loop, the yardstick, in the same run.
//
//   aead_bench [--size BYTES] [--seconds S]
//
// Defaults: 1400-byte packets (one UDP datagram), 0.3 s per run. One step is one
// packet sealed and opened again, in place, as the pipeline does it:
//
// - peerlink: `seal` (rekey check, header, AEAD with the header as associated data)
//   then `open` (replay window, key epoch, AEAD, window update) on an established IK
//   session with the default rekeying;
// - bare EVP: the same AEAD work with nothing around it: one context per direction,
//   the nonce set per packet, 8 bytes of associated data, encrypt + tag, then
//   decrypt + tag check.
//
// Each figure is the best of 3 runs, the two loops taking turns. The ratio is
// peerlink's time over the yardstick's (target: at most 1.10). The last line is JSON.
#include <peerlink/policy/noise_chacha20poly1305.hpp>

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string_view>
#include <vector>

namespace {

using bench_clock = std::chrono::steady_clock;

[[noreturn]] void usage(const char* msg) {
    std::fprintf(stderr, "aead_bench: %s\nusage: aead_bench [--size BYTES] [--seconds S]\n", msg);
    std::exit(2);
}

[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "aead_bench: %s failed\n", what);
    std::exit(1);
}

// Runs `step` until `seconds` pass; returns nanoseconds per step.
template <class Step>
double run_once(double seconds, Step&& step) {
    std::size_t steps = 0;
    const auto start = bench_clock::now();
    const auto deadline = start + std::chrono::duration<double>(seconds);
    auto now = start;
    do {
        for (int i = 0; i < 64; ++i)
            step();
        steps += 64;
        now = bench_clock::now();
    } while (now < deadline);
    return std::chrono::duration<double, std::nano>(now - start).count() /
           static_cast<double>(steps);
}

struct evp_ctx_deleter {
    void operator()(EVP_CIPHER_CTX* c) const noexcept { EVP_CIPHER_CTX_free(c); }
};
using evp_ctx = std::unique_ptr<EVP_CIPHER_CTX, evp_ctx_deleter>;

// The yardstick: ChaCha20-Poly1305 through EVP with reused contexts and nothing else.
class bare_evp {
public:
    bare_evp() : enc_(EVP_CIPHER_CTX_new()), dec_(EVP_CIPHER_CTX_new()) {
        unsigned char key[32];
        for (int i = 0; i < 32; ++i)
            key[i] = static_cast<unsigned char>(i * 7 + 1);
        if (!enc_ || !dec_ ||
            EVP_EncryptInit_ex(enc_.get(), EVP_chacha20_poly1305(), nullptr, key, nullptr) != 1 ||
            EVP_DecryptInit_ex(dec_.get(), EVP_chacha20_poly1305(), nullptr, key, nullptr) != 1)
            fail("EVP setup");
    }

    // Seals and opens `len` bytes at `data`, with `ad` (8 bytes) and a 16-byte tag.
    void step(unsigned char* ad, unsigned char* data, int len, unsigned char* tag) {
        unsigned char iv[12] = {};
        std::memcpy(iv + 4, &counter_, sizeof counter_);
        ++counter_;
        int n = 0;
        unsigned char last[16];
        if (EVP_EncryptInit_ex(enc_.get(), nullptr, nullptr, nullptr, iv) != 1 ||
            EVP_EncryptUpdate(enc_.get(), nullptr, &n, ad, 8) != 1 ||
            EVP_EncryptUpdate(enc_.get(), data, &n, data, len) != 1 ||
            EVP_EncryptFinal_ex(enc_.get(), last, &n) != 1 ||
            EVP_CIPHER_CTX_ctrl(enc_.get(), EVP_CTRL_AEAD_GET_TAG, 16, tag) != 1)
            fail("EVP encrypt");
        if (EVP_DecryptInit_ex(dec_.get(), nullptr, nullptr, nullptr, iv) != 1 ||
            EVP_DecryptUpdate(dec_.get(), nullptr, &n, ad, 8) != 1 ||
            EVP_DecryptUpdate(dec_.get(), data, &n, data, len) != 1 ||
            EVP_CIPHER_CTX_ctrl(dec_.get(), EVP_CTRL_AEAD_SET_TAG, 16, tag) != 1 ||
            EVP_DecryptFinal_ex(dec_.get(), last, &n) != 1)
            fail("EVP decrypt");
    }

private:
    evp_ctx enc_;
    evp_ctx dec_;
    std::uint64_t counter_ = 0;
};

} // namespace

int main(int argc, char** argv) {
    std::size_t size = 1400;
    double seconds = 0.3;
    for (int i = 1; i < argc; ++i) {
        std::string_view a = argv[i];
        if (i + 1 >= argc)
            usage("missing value");
        if (a == "--size")
            size = std::strtoul(argv[++i], nullptr, 10);
        else if (a == "--seconds")
            seconds = std::strtod(argv[++i], nullptr);
        else
            usage("unknown option");
    }
    if (size == 0 || size > 65000 || seconds <= 0)
        usage("bad value");

    // An established IK session.
    peerlink::noise_chacha20poly1305 a, b;
    auto alice = peerlink::identity::generate();
    auto bob = peerlink::identity::generate();
    if (a.configure(alice, bob.id(), true) || b.configure(bob, std::nullopt, false))
        fail("configure");
    std::array<std::byte, 512> hs{};
    std::array<std::byte, 64> hs_payload{};
    std::size_t n = 0;
    for (int i = 0; i < 2; ++i) {
        auto& w = i == 0 ? a : b;
        auto& r = i == 0 ? b : a;
        peerlink::packet_buffer m(hs, 0);
        if (w.write_handshake(m) || r.read_handshake(m.data(), hs_payload, n))
            fail("handshake");
    }
    if (!a.handshake_done() || !b.handshake_done())
        fail("handshake");

    std::vector<std::byte> payload(size);
    for (std::size_t i = 0; i < size; ++i)
        payload[i] = static_cast<std::byte>(i * 31);
    std::vector<std::byte> storage(size + 64);
    peerlink::packet_buffer p(storage, 32);
    const auto now = peerlink::clock::now();
    auto ours = [&] {
        p.reset(32);
        p.append(payload);
        if (a.seal(p, now) || b.open(p, now))
            fail("seal/open");
    };

    bare_evp evp;
    std::vector<unsigned char> raw(size + 24);
    auto yardstick = [&] {
        std::memcpy(raw.data() + 8, payload.data(), size);
        evp.step(raw.data(), raw.data() + 8, static_cast<int>(size), raw.data() + 8 + size);
    };

    // Warm up both, then take turns.
    run_once(seconds / 3, ours);
    run_once(seconds / 3, yardstick);
    double best_ours = 1e30, best_evp = 1e30;
    for (int run = 0; run < 3; ++run) {
        best_ours = std::min(best_ours, run_once(seconds, ours));
        best_evp = std::min(best_evp, run_once(seconds, yardstick));
    }
    // The loops must have done their work: the last packet came back intact.
    if (p.size() != size || std::memcmp(p.data().data(), payload.data(), size) != 0)
        fail("round trip");

    const double ratio = best_ours / best_evp;
    auto gbps = [&](double ns) {
        return static_cast<double>(size) * 8 / ns;
    };
    std::printf("seal+open of %zu-byte packets (best of 3 x %.2f s)\n", size, seconds);
    std::printf("  peerlink noise_chacha20poly1305: %8.1f ns/packet  %6.2f Gbit/s\n", best_ours,
                gbps(best_ours));
    std::printf("  bare OpenSSL EVP ChaCha20-Poly1305: %5.1f ns/packet  %6.2f Gbit/s\n", best_evp,
                gbps(best_evp));
    std::printf("  ratio peerlink / EVP: %.3f (target <= 1.10)\n", ratio);
    std::printf("  rekeys during the run: %llu (sealed %llu)\n",
                static_cast<unsigned long long>(a.counters().rekeys_sent),
                static_cast<unsigned long long>(a.counters().sealed));
    std::printf("{\"size\": %zu, \"peerlink_ns\": %.1f, \"evp_ns\": %.1f, \"ratio\": %.4f}\n", size,
                best_ours, best_evp, ratio);
    return 0;
}
