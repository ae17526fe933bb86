// Implementation of peerlink/proto/noise.hpp.
#ifndef PEERLINK_PROTO_IMPL_NOISE_HPP
#define PEERLINK_PROTO_IMPL_NOISE_HPP

#include <peerlink/detail/byte_order.hpp>

#include <openssl/err.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <utility>

namespace peerlink {

inline std::string detail::noise_error_category_impl::message(int ev) const {
    switch (static_cast<noise_error>(ev)) {
    case noise_error::handshake_failed:
        return "Noise handshake message did not authenticate: tampered, forged, or the peer "
               "does not hold the expected key";
    case noise_error::decrypt_failed:
        return "sealed packet did not authenticate: tampered, forged or under another key";
    case noise_error::unexpected_remote_static:
        return "the peer proved a static key other than the expected peer id";
    case noise_error::bad_message:
        return "Noise handshake message of the wrong length or with an unknown header";
    case noise_error::malformed_packet:
        return "sealed packet shorter than its header and tag";
    case noise_error::replayed:
        return "sealed packet replayed: its counter was already accepted";
    case noise_error::too_old:
        return "sealed packet too old: behind the replay window or under a dropped key";
    case noise_error::wrong_state:
        return "Noise call out of order: not configured, not this side's turn, or the "
               "handshake is not complete";
    case noise_error::stale_message:
        return "Noise handshake message already processed (a retransmission)";
    case noise_error::unsupported_protocol:
        return "unsupported Noise protocol name (supported: 25519, ChaChaPoly, BLAKE2s/b)";
    case noise_error::missing_key:
        return "the Noise pattern needs a key that was not given";
    case noise_error::nonce_exhausted:
        return "the key's nonces are used up: handshake again";
    }
    return "unknown peerlink.noise error";
}

inline std::error_condition
detail::noise_error_category_impl::default_error_condition(int ev) const noexcept {
    switch (static_cast<noise_error>(ev)) {
    case noise_error::handshake_failed:
    case noise_error::decrypt_failed:
    case noise_error::unexpected_remote_static:
        return make_error_condition(condition::authentication_failed);
    case noise_error::bad_message:
    case noise_error::malformed_packet:
    case noise_error::replayed:
    case noise_error::too_old:
        return make_error_condition(condition::malformed_input);
    case noise_error::unsupported_protocol:
    case noise_error::missing_key:
        return make_error_condition(condition::configuration_error);
    default:
        return {ev, *this};
    }
}

namespace noise {
namespace detail {

struct pattern_entry {
    std::string_view name;
    std::string_view initiator_pre;
    std::string_view responder_pre;
    std::string_view messages; // messages split by '|', tokens by ' '
};

// Noise revision 34, §7.4 (one-way), §7.5 (interactive) and §7.6 (deferred).
inline constexpr pattern_entry pattern_table[] = {
    {"N", "", "s", "e es"},
    {"K", "s", "s", "e es ss"},
    {"X", "", "s", "e es s ss"},
    {"NN", "", "", "e|e ee"},
    {"NK", "", "s", "e es|e ee"},
    {"NX", "", "", "e|e ee s es"},
    {"XN", "", "", "e|e ee|s se"},
    {"XK", "", "s", "e es|e ee|s se"},
    {"XX", "", "", "e|e ee s es|s se"},
    {"KN", "s", "", "e|e ee se"},
    {"KK", "s", "s", "e es ss|e ee se"},
    {"KX", "s", "", "e|e ee se s es"},
    {"IN", "", "", "e s|e ee se"},
    {"IK", "", "s", "e es s ss|e ee se"},
    {"IX", "", "", "e s|e ee se s es"},
    {"NK1", "", "s", "e|e ee es"},
    {"NX1", "", "", "e|e ee s|es"},
    {"X1N", "", "", "e|e ee|s|se"},
    {"X1K", "", "s", "e es|e ee|s|se"},
    {"XK1", "", "s", "e|e ee es|s se"},
    {"X1K1", "", "s", "e|e ee es|s|se"},
    {"X1X", "", "", "e|e ee s es|s|se"},
    {"XX1", "", "", "e|e ee s|es s se"},
    {"X1X1", "", "", "e|e ee s|es s|se"},
    {"K1N", "s", "", "e|e ee|se"},
    {"K1K", "s", "s", "e es|e ee|se"},
    {"KK1", "s", "s", "e|e ee se es"},
    {"K1K1", "s", "s", "e|e ee es|se"},
    {"K1X", "s", "", "e|e ee s es|se"},
    {"KX1", "s", "", "e|e ee se s|es"},
    {"K1X1", "s", "", "e|e ee s|se es"},
    {"I1N", "", "", "e s|e ee|se"},
    {"I1K", "", "s", "e es s|e ee|se"},
    {"IK1", "", "s", "e s|e ee se es"},
    {"I1K1", "", "s", "e s|e ee es|se"},
    {"I1X", "", "", "e s|e ee s es|se"},
    {"IX1", "", "", "e s|e ee se s|es"},
    {"I1X1", "", "", "e s|e ee s|se es"},
};

// Splits off the text before `sep` and returns it; `text` keeps what follows.
inline std::string_view take_until(std::string_view& text, char sep) noexcept {
    auto at = text.find(sep);
    auto head = text.substr(0, at);
    text = at == std::string_view::npos ? std::string_view{} : text.substr(at + 1);
    return head;
}

inline bool parse_tokens(std::string_view text, handshake_pattern::message& out) noexcept {
    out.size = 0;
    while (!text.empty()) {
        auto word = take_until(text, ' ');
        token t;
        if (word == "e")
            t = token::e;
        else if (word == "s")
            t = token::s;
        else if (word == "ee")
            t = token::ee;
        else if (word == "es")
            t = token::es;
        else if (word == "se")
            t = token::se;
        else if (word == "ss")
            t = token::ss;
        else
            return false;
        if (out.size == handshake_pattern::max_tokens)
            return false;
        out.tokens[out.size++] = t;
    }
    return true;
}

inline bool insert_token(handshake_pattern::message& m, std::size_t at, token t) noexcept {
    if (m.size == handshake_pattern::max_tokens || at > m.size)
        return false;
    for (std::size_t i = m.size; i > at; --i)
        m.tokens[i] = m.tokens[i - 1];
    m.tokens[at] = t;
    ++m.size;
    return true;
}

inline std::span<const std::byte> as_bytes(std::span<const std::uint8_t> s) noexcept {
    return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

inline std::span<const std::uint8_t> as_u8(std::span<const std::byte> s) noexcept {
    return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

inline std::error_code crypto_failed() noexcept {
    ERR_clear_error();
    return make_error_code(error::crypto_failure);
}

} // namespace detail

// --- patterns ------------------------------------------------------------------

inline std::size_t handshake_pattern::psk_count() const noexcept {
    std::size_t n = 0;
    for (std::size_t i = 0; i < message_count; ++i)
        for (token t : messages[i].view())
            n += t == token::psk;
    return n;
}

inline bool handshake_pattern::psk_mode() const noexcept {
    return psk_count() > 0;
}

inline std::optional<handshake_pattern> handshake_pattern::from_name(std::string_view name) {
    auto psk_at = name.find("psk");
    auto base = name.substr(0, psk_at);
    const detail::pattern_entry* entry = nullptr;
    for (const auto& e : detail::pattern_table)
        if (e.name == base)
            entry = &e;
    if (!entry)
        return std::nullopt;

    handshake_pattern p;
    if (!detail::parse_tokens(entry->initiator_pre, p.initiator_pre) ||
        !detail::parse_tokens(entry->responder_pre, p.responder_pre))
        return std::nullopt;
    std::string_view rest = entry->messages;
    while (!rest.empty()) {
        if (p.message_count == max_messages ||
            !detail::parse_tokens(detail::take_until(rest, '|'), p.messages[p.message_count]))
            return std::nullopt;
        ++p.message_count;
    }

    if (psk_at == std::string_view::npos)
        return p;
    // §9.3: "psk0" starts the first message, "pskN" ends the Nth; several join with '+'.
    std::string_view mods = name.substr(psk_at);
    while (!mods.empty()) {
        auto mod = detail::take_until(mods, '+');
        if (mod.size() < 4 || mod.substr(0, 3) != "psk")
            return std::nullopt;
        std::size_t n = 0;
        for (char c : mod.substr(3)) {
            if (c < '0' || c > '9' || n > max_messages)
                return std::nullopt;
            n = n * 10 + static_cast<std::size_t>(c - '0');
        }
        bool ok = n == 0 ? detail::insert_token(p.messages[0], 0, token::psk)
                         : n <= p.message_count &&
                               detail::insert_token(p.messages[n - 1], p.messages[n - 1].size,
                                                    token::psk);
        if (!ok)
            return std::nullopt;
    }
    return p;
}

inline std::optional<protocol> protocol::parse(std::string_view name) {
    constexpr std::string_view prefix = "Noise_";
    if (name.substr(0, prefix.size()) != prefix)
        return std::nullopt;
    name.remove_prefix(prefix.size());
    auto pattern = detail::take_until(name, '_');
    auto dh = detail::take_until(name, '_');
    auto cipher = detail::take_until(name, '_');
    auto hash = name;
    if (dh != "25519" || cipher != "ChaChaPoly" || hash.find('_') != std::string_view::npos)
        return std::nullopt;
    protocol p;
    if (hash == "BLAKE2s")
        p.hash = hash_function::blake2s;
    else if (hash == "BLAKE2b")
        p.hash = hash_function::blake2b;
    else
        return std::nullopt;
    auto hp = handshake_pattern::from_name(pattern);
    if (!hp)
        return std::nullopt;
    p.pattern = *hp;
    return p;
}

// --- cipher_state --------------------------------------------------------------

inline cipher_state::cipher_state(cipher_state&& other) noexcept
    : ctx_(std::move(other.ctx_)), k_(other.k_), n_(other.n_), has_key_(other.has_key_) {
    OPENSSL_cleanse(other.k_.data(), other.k_.size());
    other.has_key_ = false;
}

inline cipher_state& cipher_state::operator=(cipher_state&& other) noexcept {
    if (this != &other) {
        ctx_ = std::move(other.ctx_); // frees (and so wipes) our old context
        k_ = other.k_;
        n_ = other.n_;
        has_key_ = other.has_key_;
        OPENSSL_cleanse(other.k_.data(), other.k_.size());
        other.has_key_ = false;
    }
    return *this;
}

inline cipher_state::~cipher_state() {
    OPENSSL_cleanse(k_.data(), k_.size());
}

inline std::error_code
cipher_state::initialize_key(std::span<const std::uint8_t, key_size> k) noexcept {
    if (!ctx_) {
        ctx_.reset(EVP_CIPHER_CTX_new());
        if (!ctx_ || EVP_CipherInit_ex(ctx_.get(), EVP_chacha20_poly1305(), nullptr, nullptr,
                                       nullptr, 1) != 1) {
            ctx_.reset();
            has_key_ = false;
            return detail::crypto_failed();
        }
    }
    if (EVP_CipherInit_ex(ctx_.get(), nullptr, nullptr, k.data(), nullptr, -1) != 1) {
        has_key_ = false;
        return detail::crypto_failed();
    }
    if (k.data() != k_.data())
        std::memcpy(k_.data(), k.data(), key_size);
    n_ = 0;
    has_key_ = true;
    return {};
}

inline void cipher_state::clear() noexcept {
    // Overwrite the key inside OpenSSL's context too, not only our copy.
    if (ctx_ && has_key_) {
        static constexpr std::array<std::uint8_t, key_size> zero{};
        if (EVP_CipherInit_ex(ctx_.get(), nullptr, nullptr, zero.data(), nullptr, -1) != 1)
            ctx_.reset();
    }
    OPENSSL_cleanse(k_.data(), k_.size());
    n_ = 0;
    has_key_ = false;
}

inline std::error_code cipher_state::crypt(std::uint64_t n, std::span<const std::byte> ad,
                                           std::span<std::byte> data, std::byte* tag,
                                           bool encrypting) noexcept {
    if (!has_key_)
        return make_error_code(noise_error::wrong_state);
    if (ad.size() > INT_MAX || data.size() > INT_MAX)
        return make_error_code(error::message_too_large);
    std::byte iv[12] = {};
    peerlink::detail::store_le<std::uint64_t>(iv + 4, n);
    auto* c = ctx_.get();
    auto* io = reinterpret_cast<unsigned char*>(data.data());
    int len = 0;
    unsigned char final_block[16];
    if (EVP_CipherInit_ex(c, nullptr, nullptr, nullptr, reinterpret_cast<unsigned char*>(iv),
                          encrypting ? 1 : 0) != 1)
        return detail::crypto_failed();
    if (!ad.empty() &&
        EVP_CipherUpdate(c, nullptr, &len, reinterpret_cast<const unsigned char*>(ad.data()),
                         static_cast<int>(ad.size())) != 1)
        return detail::crypto_failed();
    if (!data.empty() && EVP_CipherUpdate(c, io, &len, io, static_cast<int>(data.size())) != 1)
        return detail::crypto_failed();
    if (encrypting) {
        if (EVP_CipherFinal_ex(c, final_block, &len) != 1 ||
            EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, static_cast<int>(tag_size), tag) != 1)
            return detail::crypto_failed();
        return {};
    }
    if (EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, static_cast<int>(tag_size), tag) != 1)
        return detail::crypto_failed();
    if (EVP_CipherFinal_ex(c, final_block, &len) != 1) {
        ERR_clear_error();
        return make_error_code(noise_error::decrypt_failed);
    }
    return {};
}

inline std::error_code cipher_state::encrypt(std::uint64_t n, std::span<const std::byte> ad,
                                             std::span<std::byte> data,
                                             std::span<std::byte, tag_size> tag) noexcept {
    return crypt(n, ad, data, tag.data(), true);
}

inline std::error_code cipher_state::decrypt(std::uint64_t n, std::span<const std::byte> ad,
                                             std::span<std::byte> data,
                                             std::span<const std::byte, tag_size> tag) noexcept {
    // OpenSSL's SET_TAG takes a non-const pointer but only reads it.
    return crypt(n, ad, data, const_cast<std::byte*>(tag.data()), false);
}

inline std::error_code cipher_state::encrypt_with_ad(std::span<const std::byte> ad,
                                                     std::span<std::byte> data,
                                                     std::span<std::byte, tag_size> tag) noexcept {
    if (has_key_ && n_ == rekey_nonce)
        return make_error_code(noise_error::nonce_exhausted);
    auto ec = encrypt(n_, ad, data, tag);
    if (!ec)
        ++n_;
    return ec;
}

inline std::error_code
cipher_state::decrypt_with_ad(std::span<const std::byte> ad, std::span<std::byte> data,
                              std::span<const std::byte, tag_size> tag) noexcept {
    if (has_key_ && n_ == rekey_nonce)
        return make_error_code(noise_error::nonce_exhausted);
    auto ec = decrypt(n_, ad, data, tag);
    if (!ec)
        ++n_;
    return ec;
}

inline std::error_code cipher_state::rekey() noexcept {
    std::array<std::byte, key_size> block{};
    std::array<std::byte, tag_size> tag{};
    auto ec = encrypt(rekey_nonce, {}, block, tag);
    if (!ec) {
        auto n = n_;
        ec = initialize_key(std::span<const std::uint8_t, key_size>(
            reinterpret_cast<const std::uint8_t*>(block.data()), key_size));
        n_ = n;
    }
    OPENSSL_cleanse(block.data(), block.size());
    return ec;
}

// --- symmetric_state -----------------------------------------------------------

inline symmetric_state::saved::~saved() {
    OPENSSL_cleanse(ck.data(), ck.size());
    OPENSSL_cleanse(k.data(), k.size());
}

inline symmetric_state::~symmetric_state() {
    OPENSSL_cleanse(ck_.data(), ck_.size());
    OPENSSL_cleanse(h_.data(), h_.size());
}

inline std::error_code symmetric_state::initialize(std::string_view protocol_name,
                                                   hash_function hash) noexcept {
    hash_ = hash;
    hash_len_ = hash_size(hash);
    md_.reset(EVP_MD_fetch(nullptr, hash == hash_function::blake2s ? "BLAKE2S-256" : "BLAKE2B-512",
                           nullptr));
    if (!md_prepared()) {
        return detail::crypto_failed();
    }
    h_.fill(0);
    if (protocol_name.size() <= hash_len_) {
        std::memcpy(h_.data(), protocol_name.data(), protocol_name.size());
    } else {
        unsigned int len = 0;
        if (EVP_Digest(protocol_name.data(), protocol_name.size(), h_.data(), &len, md_.get(),
                       nullptr) != 1)
            return detail::crypto_failed();
    }
    ck_ = h_;
    cipher_.clear();
    return {};
}

inline bool symmetric_state::md_prepared() noexcept {
    if (!md_)
        return false;
    if (!md_ctx_)
        md_ctx_.reset(EVP_MD_CTX_new());
    return md_ctx_ != nullptr;
}

inline std::error_code symmetric_state::mix_hash(std::span<const std::byte> data) noexcept {
    auto* c = md_ctx_.get();
    unsigned int len = 0;
    if (!c || EVP_DigestInit_ex(c, md_.get(), nullptr) != 1 ||
        EVP_DigestUpdate(c, h_.data(), hash_len_) != 1 ||
        (!data.empty() && EVP_DigestUpdate(c, data.data(), data.size()) != 1) ||
        EVP_DigestFinal_ex(c, h_.data(), &len) != 1)
        return detail::crypto_failed();
    return {};
}

inline std::error_code symmetric_state::hmac(std::span<const std::uint8_t> key,
                                             std::span<const std::uint8_t> data,
                                             std::uint8_t* out) noexcept {
    static constexpr std::uint8_t nothing = 0; // HMAC() wants a pointer even for no data
    unsigned int len = 0;
    if (HMAC(md_.get(), key.data(), static_cast<int>(key.size()),
             data.empty() ? &nothing : data.data(), data.size(), out, &len) == nullptr ||
        len != hash_len_)
        return detail::crypto_failed();
    return {};
}

inline std::error_code symmetric_state::hkdf(std::span<const std::uint8_t> ikm, std::uint8_t* out1,
                                             std::uint8_t* out2, std::uint8_t* out3) noexcept {
    // §4.3: HKDF(chaining_key, input_key_material, num_outputs) over HMAC-HASH.
    std::array<std::uint8_t, max_hash_size> temp_key{};
    std::array<std::uint8_t, max_hash_size + 1> block{};
    const std::size_t hl = hash_len_;
    std::span<const std::uint8_t> tk(temp_key.data(), hl);
    std::error_code ec = hmac({ck_.data(), hl}, ikm, temp_key.data());
    if (!ec) {
        block[0] = 0x01;
        ec = hmac(tk, {block.data(), 1}, out1);
    }
    if (!ec) {
        std::memcpy(block.data(), out1, hl);
        block[hl] = 0x02;
        ec = hmac(tk, {block.data(), hl + 1}, out2);
    }
    if (!ec && out3) {
        std::memcpy(block.data(), out2, hl);
        block[hl] = 0x03;
        ec = hmac(tk, {block.data(), hl + 1}, out3);
    }
    OPENSSL_cleanse(temp_key.data(), temp_key.size());
    OPENSSL_cleanse(block.data(), block.size());
    return ec;
}

inline std::error_code symmetric_state::mix_key(std::span<const std::uint8_t> ikm) noexcept {
    std::array<std::uint8_t, max_hash_size> ck{};
    std::array<std::uint8_t, max_hash_size> k{};
    auto ec = hkdf(ikm, ck.data(), k.data(), nullptr);
    if (!ec) {
        ck_ = ck;
        // A 64-byte HASHLEN yields 64 bytes; the cipher key is the first 32 (§5.2).
        ec = cipher_.initialize_key(std::span<const std::uint8_t, key_size>(k.data(), key_size));
    }
    OPENSSL_cleanse(ck.data(), ck.size());
    OPENSSL_cleanse(k.data(), k.size());
    return ec;
}

inline std::error_code
symmetric_state::mix_key_and_hash(std::span<const std::uint8_t> ikm) noexcept {
    std::array<std::uint8_t, max_hash_size> ck{};
    std::array<std::uint8_t, max_hash_size> h{};
    std::array<std::uint8_t, max_hash_size> k{};
    auto ec = hkdf(ikm, ck.data(), h.data(), k.data());
    if (!ec) {
        ck_ = ck;
        ec = mix_hash(detail::as_bytes({h.data(), hash_len_}));
    }
    if (!ec)
        ec = cipher_.initialize_key(std::span<const std::uint8_t, key_size>(k.data(), key_size));
    OPENSSL_cleanse(ck.data(), ck.size());
    OPENSSL_cleanse(h.data(), h.size());
    OPENSSL_cleanse(k.data(), k.size());
    return ec;
}

inline std::error_code symmetric_state::encrypt_and_hash(packet_buffer& p,
                                                         std::size_t from) noexcept {
    const std::size_t n = p.size() - from;
    if (cipher_.has_key()) {
        auto tag = p.append(tag_size);
        if (tag.size() != tag_size)
            return make_error_code(error::buffer_too_small);
        auto ec = cipher_.encrypt_with_ad(handshake_hash(), p.data().subspan(from, n),
                                          std::span<std::byte, tag_size>(tag.data(), tag_size));
        if (ec) {
            p.consume_back(tag_size);
            return ec;
        }
    }
    return mix_hash(p.data().subspan(from));
}

inline std::error_code symmetric_state::decrypt_and_hash(std::span<const std::byte> ciphertext,
                                                         std::span<std::byte> out,
                                                         std::size_t& out_size) noexcept {
    std::size_t n = ciphertext.size();
    if (cipher_.has_key()) {
        if (n < tag_size)
            return make_error_code(noise_error::bad_message);
        n -= tag_size;
    }
    if (out.size() < n)
        return make_error_code(error::buffer_too_small);
    if (n > 0)
        std::memcpy(out.data(), ciphertext.data(), n);
    if (cipher_.has_key()) {
        auto ec = cipher_.decrypt_with_ad(
            handshake_hash(), out.first(n),
            std::span<const std::byte, tag_size>(ciphertext.data() + n, tag_size));
        if (ec == noise_error::decrypt_failed) {
            OPENSSL_cleanse(out.data(), n);
            return make_error_code(noise_error::handshake_failed);
        }
        if (ec)
            return ec;
    }
    out_size = n;
    return mix_hash(ciphertext);
}

inline std::error_code symmetric_state::split(cipher_state& c1, cipher_state& c2) noexcept {
    std::array<std::uint8_t, max_hash_size> k1{};
    std::array<std::uint8_t, max_hash_size> k2{};
    auto ec = hkdf({}, k1.data(), k2.data(), nullptr);
    if (!ec)
        ec = c1.initialize_key(std::span<const std::uint8_t, key_size>(k1.data(), key_size));
    if (!ec)
        ec = c2.initialize_key(std::span<const std::uint8_t, key_size>(k2.data(), key_size));
    OPENSSL_cleanse(k1.data(), k1.size());
    OPENSSL_cleanse(k2.data(), k2.size());
    return ec;
}

inline std::span<const std::byte> symmetric_state::handshake_hash() const noexcept {
    return detail::as_bytes({h_.data(), hash_len_});
}

inline void symmetric_state::save(saved& s) const noexcept {
    s.ck = ck_;
    s.h = h_;
    if (cipher_.has_key())
        std::memcpy(s.k.data(), cipher_.key().data(), key_size);
    else
        s.k.fill(0);
    s.n = cipher_.nonce();
    s.has_key = cipher_.has_key();
}

inline void symmetric_state::restore(const saved& s) noexcept {
    ck_ = s.ck;
    h_ = s.h;
    if (s.has_key) {
        // Re-keying the same context with bytes it accepted before cannot fail but for
        // OpenSSL running out of memory; then the handshake has no key and fails later.
        (void)cipher_.initialize_key(s.k);
        cipher_.set_nonce(s.n);
    } else {
        cipher_.clear();
    }
}

// --- handshake_state -----------------------------------------------------------

inline std::error_code handshake_state::initialize(handshake_config config) {
    initialized_ = false;
    auto proto = protocol::parse(config.protocol_name);
    if (!proto)
        return make_error_code(noise_error::unsupported_protocol);
    pattern_ = proto->pattern;
    initiator_ = config.initiator;
    s_ = std::move(config.local_static);
    e_ = std::move(config.local_ephemeral);
    rs_ = config.remote_static;
    re_.reset();
    expected_rs_ = config.expected_remote_static;
    index_ = 0;
    psk_next_ = 0;
    psk_count_ = pattern_.psk_count();
    if (config.psks.size() < psk_count_ || psk_count_ > psks_.size())
        return make_error_code(noise_error::missing_key);
    for (std::size_t i = 0; i < psk_count_; ++i)
        psks_[i].bytes = config.psks[i];

    // Refuse up front a pattern this side cannot complete for want of a key.
    const bool i_am_i = initiator_;
    auto needs_own_static = [&](const handshake_pattern::message& m, bool sender_is_initiator) {
        for (token t : m.view()) {
            if (t == token::s && sender_is_initiator == i_am_i)
                return true;
            if (t == token::ss || (t == token::es && !i_am_i) || (t == token::se && i_am_i))
                return true;
        }
        return false;
    };
    bool need_s =
        needs_own_static(i_am_i ? pattern_.initiator_pre : pattern_.responder_pre, i_am_i);
    bool need_rs = !(i_am_i ? pattern_.responder_pre : pattern_.initiator_pre).view().empty();
    for (std::size_t i = 0; i < pattern_.message_count; ++i)
        need_s = need_s || needs_own_static(pattern_.messages[i], i % 2 == 0);
    if ((need_s && !s_) || (need_rs && !rs_))
        return make_error_code(noise_error::missing_key);

    auto ec = symmetric_.initialize(config.protocol_name, proto->hash);
    if (!ec)
        ec = symmetric_.mix_hash(config.prologue);
    // §7.1: the initiator's pre-message keys are hashed first, then the responder's.
    for (bool pre_of_initiator : {true, false}) {
        const auto& pre = pre_of_initiator ? pattern_.initiator_pre : pattern_.responder_pre;
        for (token t : pre.view()) {
            if (ec)
                return ec;
            if (t != token::s)
                return make_error_code(noise_error::unsupported_protocol);
            const peer_id& key = pre_of_initiator == i_am_i ? s_->id() : *rs_;
            ec = symmetric_.mix_hash(detail::as_bytes(key.bytes()));
        }
    }
    if (ec)
        return ec;
    initialized_ = true;
    return {};
}

inline bool handshake_state::is_my_turn() const noexcept {
    return initialized_ && index_ < pattern_.message_count && ((index_ % 2 == 0) == initiator_);
}

inline std::size_t handshake_state::next_message_size(std::size_t payload_size) const noexcept {
    if (!initialized_ || index_ >= pattern_.message_count)
        return 0;
    bool keyed = symmetric_.has_key();
    const bool psk = pattern_.psk_mode();
    std::size_t size = 0;
    for (token t : pattern_.messages[index_].view()) {
        if (t == token::e) {
            size += dh_size;
            keyed = keyed || psk;
        } else if (t == token::s) {
            size += dh_size + (keyed ? tag_size : 0);
        } else {
            keyed = true;
        }
    }
    return size + payload_size + (keyed ? tag_size : 0);
}

inline std::error_code handshake_state::dh(token t, std::array<std::uint8_t, 32>& out) const {
    const identity* local = nullptr;
    const peer_id* remote = nullptr;
    auto pick = [&](const std::optional<identity>& l, const std::optional<peer_id>& r) {
        local = l ? &*l : nullptr;
        remote = r ? &*r : nullptr;
    };
    switch (t) {
    case token::ee:
        pick(e_, re_);
        break;
    case token::es:
        initiator_ ? pick(e_, rs_) : pick(s_, re_);
        break;
    case token::se:
        initiator_ ? pick(s_, re_) : pick(e_, rs_);
        break;
    case token::ss:
        pick(s_, rs_);
        break;
    default:
        break;
    }
    if (!local || !remote)
        return make_error_code(noise_error::missing_key);
    std::error_code ec;
    auto secret = local->agree(*remote, ec);
    if (!secret) // a remote key of small order: nobody can be authenticated with it
        return ec == error::invalid_key ? make_error_code(noise_error::handshake_failed) : ec;
    out = *secret;
    OPENSSL_cleanse(secret->data(), secret->size());
    return {};
}

inline std::error_code handshake_state::write_tokens(std::span<const std::byte> payload,
                                                     packet_buffer& out) {
    std::error_code ec;
    for (token t : pattern_.messages[index_].view()) {
        if (t == token::e) {
            if (!e_) {
                e_ = identity::generate(ec);
                if (!e_)
                    return ec;
            }
            auto pub = detail::as_bytes(e_->id().bytes());
            out.append(pub);
            ec = symmetric_.mix_hash(pub);
            if (!ec && pattern_.psk_mode())
                ec = symmetric_.mix_key(e_->id().bytes());
        } else if (t == token::s) {
            const std::size_t from = out.size();
            out.append(detail::as_bytes(s_->id().bytes()));
            ec = symmetric_.encrypt_and_hash(out, from);
        } else if (t == token::psk) {
            ec = symmetric_.mix_key_and_hash(psks_[psk_next_++].bytes);
        } else {
            std::array<std::uint8_t, 32> secret{};
            ec = dh(t, secret);
            if (!ec)
                ec = symmetric_.mix_key(secret);
            OPENSSL_cleanse(secret.data(), secret.size());
        }
        if (ec)
            return ec;
    }
    const std::size_t from = out.size();
    out.append(payload);
    return symmetric_.encrypt_and_hash(out, from);
}

inline std::error_code handshake_state::write_message(std::span<const std::byte> payload,
                                                      packet_buffer& out) {
    if (!is_my_turn())
        return make_error_code(noise_error::wrong_state);
    const std::size_t size = next_message_size(payload.size());
    if (size > max_message_size)
        return make_error_code(error::message_too_large);
    if (out.tailroom() < size)
        return make_error_code(error::buffer_too_small);
    symmetric_state::saved before;
    symmetric_.save(before);
    const std::size_t psk_before = psk_next_;
    const std::size_t start = out.size();
    auto ec = write_tokens(payload, out);
    if (ec) {
        symmetric_.restore(before);
        psk_next_ = psk_before;
        out.resize(start);
        return ec;
    }
    ++index_;
    return {};
}

inline std::error_code handshake_state::read_tokens(std::span<const std::byte> message,
                                                    std::span<std::byte> payload_out,
                                                    std::size_t& payload_size) {
    std::error_code ec;
    auto rest = message;
    for (token t : pattern_.messages[index_].view()) {
        if (t == token::e) {
            if (rest.size() < dh_size)
                return make_error_code(noise_error::bad_message);
            re_ = peer_id::from_bytes(
                std::span<const std::uint8_t, dh_size>(detail::as_u8(rest).data(), dh_size));
            ec = symmetric_.mix_hash(rest.first(dh_size));
            if (!ec && pattern_.psk_mode())
                ec = symmetric_.mix_key(re_->bytes());
            rest = rest.subspan(dh_size);
        } else if (t == token::s) {
            const std::size_t len = dh_size + (symmetric_.has_key() ? tag_size : 0);
            if (rest.size() < len)
                return make_error_code(noise_error::bad_message);
            std::array<std::byte, dh_size> key{};
            std::size_t n = 0;
            ec = symmetric_.decrypt_and_hash(rest.first(len), key, n);
            if (ec)
                return ec;
            auto rs = peer_id::from_bytes(
                std::span<const std::uint8_t, dh_size>(detail::as_u8(key).data(), dh_size));
            if (expected_rs_ && *expected_rs_ != rs)
                return make_error_code(noise_error::unexpected_remote_static);
            rs_ = rs;
            rest = rest.subspan(len);
        } else if (t == token::psk) {
            ec = symmetric_.mix_key_and_hash(psks_[psk_next_++].bytes);
        } else {
            std::array<std::uint8_t, 32> secret{};
            ec = dh(t, secret);
            if (!ec)
                ec = symmetric_.mix_key(secret);
            OPENSSL_cleanse(secret.data(), secret.size());
        }
        if (ec)
            return ec;
    }
    return symmetric_.decrypt_and_hash(rest, payload_out, payload_size);
}

inline std::error_code handshake_state::read_message(std::span<const std::byte> message,
                                                     std::span<std::byte> payload_out,
                                                     std::size_t& payload_size) {
    if (!initialized_ || index_ >= pattern_.message_count || is_my_turn())
        return make_error_code(noise_error::wrong_state);
    if (message.size() > max_message_size)
        return make_error_code(noise_error::bad_message);
    symmetric_state::saved before;
    symmetric_.save(before);
    const auto rs_before = rs_;
    const auto re_before = re_;
    const std::size_t psk_before = psk_next_;
    auto ec = read_tokens(message, payload_out, payload_size);
    if (ec) {
        symmetric_.restore(before);
        rs_ = rs_before;
        re_ = re_before;
        psk_next_ = psk_before;
        return ec;
    }
    ++index_;
    return {};
}

inline std::error_code handshake_state::split(cipher_state& c1, cipher_state& c2) {
    if (!is_complete())
        return make_error_code(noise_error::wrong_state);
    return symmetric_.split(c1, c2);
}

} // namespace noise
} // namespace peerlink

#endif // PEERLINK_PROTO_IMPL_NOISE_HPP
