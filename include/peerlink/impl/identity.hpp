// Implementation of peerlink/identity.hpp.
#ifndef PEERLINK_IMPL_IDENTITY_HPP
#define PEERLINK_IMPL_IDENTITY_HPP

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include <memory>

namespace peerlink {
namespace detail {

struct evp_pkey_deleter {
    void operator()(EVP_PKEY* p) const noexcept { EVP_PKEY_free(p); }
};
struct evp_pkey_ctx_deleter {
    void operator()(EVP_PKEY_CTX* p) const noexcept { EVP_PKEY_CTX_free(p); }
};
using evp_pkey_ptr = std::unique_ptr<EVP_PKEY, evp_pkey_deleter>;
using evp_pkey_ctx_ptr = std::unique_ptr<EVP_PKEY_CTX, evp_pkey_ctx_deleter>;

// Wipes a stack copy of key material however the function leaves.
template <std::size_t N>
struct cleanse_on_exit {
    std::array<std::uint8_t, N>& bytes;
    ~cleanse_on_exit() { OPENSSL_cleanse(bytes.data(), N); }
};

// Failed OpenSSL calls leave entries on the thread's error queue; drop them so a later,
// unrelated OpenSSL user (a TLS stream on the same thread) does not read them as its own.
inline std::nullopt_t openssl_failed(std::error_code& ec, error e) noexcept {
    ERR_clear_error();
    ec = make_error_code(e);
    return std::nullopt;
}

inline constexpr char peer_id_alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";
inline constexpr std::size_t peer_id_encoded_size = peer_id::size + 2;

// The domain string keeps the checksum from matching any other use of SHA-256 over a key.
inline bool peer_id_checksum(std::span<const std::uint8_t, peer_id::size> key,
                             std::array<std::uint8_t, 2>& out) noexcept {
    constexpr std::string_view domain = "peerlink-id";
    std::array<std::uint8_t, domain.size() + peer_id::size> input{};
    domain.copy(reinterpret_cast<char*>(input.data()), domain.size());
    for (std::size_t i = 0; i < peer_id::size; ++i)
        input[domain.size() + i] = key[i];
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_Digest(input.data(), input.size(), digest, &len, EVP_sha256(), nullptr) != 1 ||
        len < 2) {
        ERR_clear_error();
        return false;
    }
    out = {digest[0], digest[1]};
    return true;
}

// -1 for a character outside the alphabet; both cases of a letter are accepted.
constexpr int base32_value(char c) noexcept {
    if (c >= 'a' && c <= 'z')
        return c - 'a';
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= '2' && c <= '7')
        return c - '2' + 26;
    return -1;
}

inline std::optional<std::array<std::uint8_t, 32>>
x25519_public_key(std::span<const std::uint8_t, 32> private_key, std::error_code& ec) {
    evp_pkey_ptr key(
        EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, nullptr, private_key.data(), 32));
    if (!key) {
        return openssl_failed(ec, error::invalid_key);
    }
    std::array<std::uint8_t, 32> pub{};
    std::size_t len = pub.size();
    if (EVP_PKEY_get_raw_public_key(key.get(), pub.data(), &len) != 1 || len != pub.size()) {
        return openssl_failed(ec, error::crypto_failure);
    }
    ec.clear();
    return pub;
}

} // namespace detail

inline std::string peer_id::to_string() const {
    std::array<std::uint8_t, detail::peer_id_encoded_size> data{};
    for (std::size_t i = 0; i < size; ++i)
        data[i] = key_[i];
    std::array<std::uint8_t, 2> sum{};
    if (!detail::peer_id_checksum(key_, sum))
        throw std::system_error(make_error_code(error::crypto_failure), "peer_id::to_string");
    data[size] = sum[0];
    data[size + 1] = sum[1];

    std::string text;
    text.reserve(text_size);
    text += "pl";
    std::uint32_t buffer = 0;
    int bits = 0;
    for (std::uint8_t b : data) {
        buffer = (buffer << 8) | b;
        bits += 8;
        while (bits >= 5) {
            bits -= 5;
            text += detail::peer_id_alphabet[(buffer >> bits) & 31];
        }
    }
    if (bits > 0) // 272 bits leave 2; the 3 pad bits below them are zero
        text += detail::peer_id_alphabet[(buffer << (5 - bits)) & 31];
    return text;
}

inline std::string peer_id::to_short_string() const {
    return to_string().substr(0, 12);
}

inline std::optional<peer_id> peer_id::parse(std::string_view text, std::error_code& ec) {
    auto fail = [&ec](error e) {
        ec = make_error_code(e);
        return std::nullopt;
    };
    // A wrong prefix says more than a wrong length (another kind of id was pasted).
    if (text.size() >= 2 &&
        ((text[0] != 'p' && text[0] != 'P') || (text[1] != 'l' && text[1] != 'L')))
        return fail(error::peer_id_bad_prefix);
    if (text.size() != text_size)
        return fail(error::peer_id_bad_length);

    std::array<std::uint8_t, detail::peer_id_encoded_size> data{};
    std::size_t n = 0;
    std::uint32_t buffer = 0;
    int bits = 0;
    for (char c : text.substr(2)) {
        int v = detail::base32_value(c);
        if (v < 0)
            return fail(error::peer_id_bad_character);
        buffer = (buffer << 5) | static_cast<std::uint32_t>(v);
        bits += 5;
        if (bits >= 8) {
            bits -= 8;
            data[n++] = static_cast<std::uint8_t>(buffer >> bits);
        }
    }
    // Only the canonical encoding is accepted, so each id has exactly one text form.
    if ((buffer & ((1u << bits) - 1)) != 0)
        return fail(error::peer_id_bad_character);

    peer_id id;
    for (std::size_t i = 0; i < size; ++i)
        id.key_[i] = data[i];
    std::array<std::uint8_t, 2> sum{};
    if (!detail::peer_id_checksum(id.key_, sum))
        return fail(error::crypto_failure);
    if (sum[0] != data[size] || sum[1] != data[size + 1])
        return fail(error::peer_id_checksum_mismatch);
    ec.clear();
    return id;
}

inline identity identity::generate() {
    std::error_code ec;
    auto id = generate(ec);
    if (!id)
        throw std::system_error(ec, "peerlink::identity::generate");
    return std::move(*id);
}

inline std::optional<identity> identity::generate(std::error_code& ec) {
    detail::evp_pkey_ctx_ptr ctx(EVP_PKEY_CTX_new_id(EVP_PKEY_X25519, nullptr));
    EVP_PKEY* raw = nullptr;
    if (!ctx || EVP_PKEY_keygen_init(ctx.get()) != 1 || EVP_PKEY_keygen(ctx.get(), &raw) != 1) {
        return detail::openssl_failed(ec, error::crypto_failure);
    }
    detail::evp_pkey_ptr key(raw);
    std::array<std::uint8_t, 32> priv{};
    detail::cleanse_on_exit<32> wipe{priv};
    std::array<std::uint8_t, 32> pub{};
    std::size_t priv_len = priv.size();
    std::size_t pub_len = pub.size();
    if (EVP_PKEY_get_raw_private_key(key.get(), priv.data(), &priv_len) != 1 ||
        priv_len != priv.size() ||
        EVP_PKEY_get_raw_public_key(key.get(), pub.data(), &pub_len) != 1 ||
        pub_len != pub.size()) {
        return detail::openssl_failed(ec, error::crypto_failure);
    }
    ec.clear();
    return identity(priv, peer_id::from_bytes(pub));
}

inline std::optional<identity> identity::from_private_key(std::span<const std::uint8_t, 32> key,
                                                          std::error_code& ec) {
    auto pub = detail::x25519_public_key(key, ec);
    if (!pub)
        return std::nullopt;
    std::array<std::uint8_t, 32> priv{};
    detail::cleanse_on_exit<32> wipe{priv};
    for (std::size_t i = 0; i < priv.size(); ++i)
        priv[i] = key[i];
    return identity(priv, peer_id::from_bytes(*pub));
}

inline identity::~identity() {
    OPENSSL_cleanse(private_key_.data(), private_key_.size());
}

inline std::optional<std::array<std::uint8_t, 32>> identity::agree(const peer_id& remote,
                                                                   std::error_code& ec) const {
    detail::evp_pkey_ptr local(
        EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, nullptr, private_key_.data(), 32));
    detail::evp_pkey_ptr peer(
        EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, nullptr, remote.bytes().data(), 32));
    if (!local || !peer) {
        return detail::openssl_failed(ec, !local ? error::crypto_failure : error::invalid_key);
    }
    detail::evp_pkey_ctx_ptr ctx(EVP_PKEY_CTX_new(local.get(), nullptr));
    if (!ctx || EVP_PKEY_derive_init(ctx.get()) != 1) {
        return detail::openssl_failed(ec, error::crypto_failure);
    }
    // OpenSSL itself refuses a small-order peer key (all-zero result) in one of these two
    // calls; the check after them keeps that guarantee whatever the provider does.
    std::array<std::uint8_t, 32> secret{};
    std::size_t len = secret.size();
    if (EVP_PKEY_derive_set_peer(ctx.get(), peer.get()) != 1 ||
        EVP_PKEY_derive(ctx.get(), secret.data(), &len) != 1 || len != secret.size()) {
        OPENSSL_cleanse(secret.data(), secret.size());
        return detail::openssl_failed(ec, error::invalid_key);
    }
    std::uint8_t any = 0;
    for (std::uint8_t b : secret)
        any |= b;
    if (any == 0) {
        return detail::openssl_failed(ec, error::invalid_key);
    }
    ec.clear();
    return secret;
}

} // namespace peerlink

#endif // PEERLINK_IMPL_IDENTITY_HPP
