// Helpers shared by the transfer tests: addresses, deterministic bytes, SHA-256.
#ifndef PEERLINK_TESTS_SUPPORT_HPP
#define PEERLINK_TESTS_SUPPORT_HPP

#include <peerlink/endpoint.hpp>

#include <openssl/evp.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>

namespace peerlink_test {

using peerlink::endpoint;

inline endpoint ep(const char* text) {
    std::error_code ec;
    return *endpoint::parse(text, ec);
}

// Bytes of the soak transfers: 100 MiB by default; the sanitizer run sets less.
inline std::size_t soak_bytes() {
    if (const char* v = std::getenv("PEERLINK_SOAK_BYTES"))
        return static_cast<std::size_t>(std::strtoull(v, nullptr, 10));
    return 100u << 20;
}

// A deterministic byte source both sides can reproduce.
struct byte_source {
    std::uint64_t state;
    void fill(std::span<std::byte> out) {
        for (auto& b : out) {
            state = state * 6364136223846793005ull + 1442695040888963407ull;
            b = static_cast<std::byte>(state >> 56);
        }
    }
};

struct sha256 {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    sha256() { EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr); }
    ~sha256() { EVP_MD_CTX_free(ctx); }
    void update(std::span<const std::byte> b) { EVP_DigestUpdate(ctx, b.data(), b.size()); }
    std::string hex() {
        unsigned char md[32];
        unsigned len = 0;
        EVP_DigestFinal_ex(ctx, md, &len);
        std::string s;
        for (unsigned i = 0; i < len; ++i) {
            static const char* d = "0123456789abcdef";
            s += d[md[i] >> 4];
            s += d[md[i] & 15];
        }
        return s;
    }
};

} // namespace peerlink_test

#endif // PEERLINK_TESTS_SUPPORT_HPP
