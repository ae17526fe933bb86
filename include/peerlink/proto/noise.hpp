// peerlink/proto/noise.hpp: the Noise Protocol Framework (revision 34), sans-I/O.
//
// A generic implementation of Noise's three state objects, driven by a table of
// handshake patterns:
//
// - `noise::cipher_state`: ChaCha20-Poly1305 with a key and a 64-bit nonce (§5.1);
// - `noise::symmetric_state`: the chaining key `ck` and the handshake hash `h` (§5.2);
// - `noise::handshake_state`: the tokens of a pattern, message by message (§5.3).
//
// Supported: DH 25519, cipher ChaChaPoly, hash BLAKE2s or BLAKE2b, and every
// one-way, interactive and deferred pattern of the specification (§7.4-§7.6), with
// any `pskN` modifiers (§9). Fallback patterns and other primitives are not.
// All cryptography is OpenSSL 3's: X25519 through `peerlink::identity`,
// `EVP_chacha20_poly1305`, the "BLAKE2S-256" / "BLAKE2B-512" digests and HMAC over
// them; HKDF is Noise's own construction over that HMAC (§4.3). The published
// cacophony test vectors for these protocols pass (tests/noise.cpp).
//
// Nothing here reads a clock, opens a socket or throws. Handshake calls may allocate
// (OpenSSL objects, once per handshake); `cipher_state::encrypt` and `decrypt` do not:
// a cipher_state keeps one `EVP_CIPHER_CTX` for its key and only changes the nonce.
//
// @par Example: an NN handshake between two states
// @code
// namespace noise = peerlink::noise;
// noise::handshake_config ca, cb;
// ca.protocol_name = cb.protocol_name = "Noise_NN_25519_ChaChaPoly_BLAKE2s";
// ca.initiator = true;
// noise::handshake_state a, b;
// a.initialize(ca);
// b.initialize(cb);
// std::byte storage[256];
// std::byte payload[64];
// std::size_t n = 0;
// while (!a.is_complete()) {
//     auto& w = a.is_my_turn() ? a : b;
//     auto& r = a.is_my_turn() ? b : a;
//     peerlink::packet_buffer msg(storage, 0);
//     w.write_message({}, msg);
//     r.read_message(msg.data(), payload, n);
// }
// noise::cipher_state a_to_b, b_to_a;
// a.split(a_to_b, b_to_a);
// @endcode
#ifndef PEERLINK_PROTO_NOISE_HPP
#define PEERLINK_PROTO_NOISE_HPP

#include <peerlink/error.hpp>
#include <peerlink/identity.hpp>
#include <peerlink/proto/packet_buffer.hpp>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>

namespace peerlink {

/// Errors of the Noise handshake and of the `noise_chacha20poly1305` cipher policy.
///
/// Each maps onto a `peerlink::condition`: forged or mismatched keys and tampered bytes
/// onto `authentication_failed`, bytes that do not parse or arrive twice onto
/// `malformed_input`, unsupported protocols and missing keys onto `configuration_error`.
enum class noise_error {
    /// A handshake message did not authenticate: it was changed on the way, forged,
    /// or the peer does not hold the private key of the static key it was expected to
    /// have (a wrong or spoofed peer id). -> `authentication_failed`.
    handshake_failed = 1,
    /// A sealed packet did not authenticate: changed on the way, forged, or sealed under
    /// another key. -> `authentication_failed`.
    decrypt_failed,
    /// The peer proved a static key, but not the one it was expected to have.
    /// -> `authentication_failed`.
    unexpected_remote_static,
    /// A handshake message is too short for its pattern, too long, or has an unknown
    /// header. -> `malformed_input`.
    bad_message,
    /// A sealed packet is shorter than its header and tag. -> `malformed_input`.
    malformed_packet,
    /// A sealed packet whose counter was already accepted (a replay or a duplicate).
    /// -> `malformed_input`.
    replayed,
    /// A sealed packet older than the replay window, or sealed under a key already
    /// dropped. -> `malformed_input`.
    too_old,
    /// The call does not fit the state: not initialized, not this side's turn to write
    /// or read, handshake not complete, or already complete. No condition.
    wrong_state,
    /// A handshake message this side has already processed (the peer retransmitted it
    /// because this side's answer was lost). No condition.
    stale_message,
    /// A Noise protocol name this implementation does not support. -> `configuration_error`.
    unsupported_protocol,
    /// The pattern needs a key that was not given (local static, remote static, psk).
    /// -> `configuration_error`.
    missing_key,
    /// The nonce space of a key is used up: the session must handshake again. No condition.
    nonce_exhausted,
};

namespace detail {

class noise_error_category_impl final : public std::error_category {
public:
    const char* name() const noexcept override { return "peerlink.noise"; }
    std::string message(int ev) const override;
    std::error_condition default_error_condition(int ev) const noexcept override;
};

} // namespace detail

/// The category of `peerlink::noise_error`.
inline const std::error_category& noise_error_category() noexcept {
    static const detail::noise_error_category_impl instance;
    return instance;
}

inline std::error_code make_error_code(noise_error e) noexcept {
    return {static_cast<int>(e), noise_error_category()};
}

} // namespace peerlink

template <>
struct std::is_error_code_enum<peerlink::noise_error> : std::true_type {};

namespace peerlink::noise {

/// DHLEN: the size of an X25519 public key and of a DH result.
inline constexpr std::size_t dh_size = 32;
/// The size of a ChaCha20-Poly1305 key.
inline constexpr std::size_t key_size = 32;
/// The size of a Poly1305 tag.
inline constexpr std::size_t tag_size = 16;
/// The largest HASHLEN (BLAKE2b).
inline constexpr std::size_t max_hash_size = 64;
/// The largest Noise message (§3).
inline constexpr std::size_t max_message_size = 65535;
/// The nonce Noise reserves for `rekey()`; `encrypt_with_ad` never uses it.
inline constexpr std::uint64_t rekey_nonce = ~std::uint64_t{0};

/// The hash function of a Noise protocol.
enum class hash_function {
    blake2s, ///< BLAKE2s-256: HASHLEN 32, BLOCKLEN 64.
    blake2b, ///< BLAKE2b-512: HASHLEN 64, BLOCKLEN 128.
};

/// HASHLEN of `h`.
constexpr std::size_t hash_size(hash_function h) noexcept {
    return h == hash_function::blake2s ? 32 : 64;
}

/// A token of a handshake pattern (§7.1).
enum class token : std::uint8_t { e, s, ee, es, se, ss, psk };

/// A handshake pattern: pre-messages and message patterns, with psk modifiers applied.
struct handshake_pattern {
    /// The most messages of any supported pattern (X1X1 and friends have 4).
    static constexpr std::size_t max_messages = 4;
    /// The most tokens in one message, psk tokens included.
    static constexpr std::size_t max_tokens = 8;

    /// The tokens of one message (or pre-message).
    struct message {
        std::array<token, max_tokens> tokens{};
        std::size_t size = 0;
        std::span<const token> view() const noexcept { return {tokens.data(), size}; }
    };

    message initiator_pre; ///< `-> s` before "...", or empty.
    message responder_pre; ///< `<- s` before "...", or empty.
    std::array<message, max_messages> messages{};
    std::size_t message_count = 0;

    /// True if any message has a psk token: then every `e` token also calls MixKey (§9.2).
    bool psk_mode() const noexcept;
    /// How many psk tokens the pattern has (the number of psks it needs).
    std::size_t psk_count() const noexcept;
    /// True for the one-way patterns N, K and X: after them only the initiator sends.
    bool one_way() const noexcept { return message_count == 1; }

    /// Looks a pattern up by its name with modifiers, e.g. "XX", "IK", "X1K1", "NNpsk0",
    /// "XXpsk3", "KKpsk0+psk2". @returns nothing for an unknown name or modifier.
    static std::optional<handshake_pattern> from_name(std::string_view name);
};

/// A full protocol name, e.g. "Noise_IK_25519_ChaChaPoly_BLAKE2s", parsed.
struct protocol {
    handshake_pattern pattern;
    hash_function hash = hash_function::blake2s;

    /// @returns the protocol, or nothing if the pattern is unknown or the DH, cipher or
    ///   hash is not 25519, ChaChaPoly, BLAKE2s/BLAKE2b.
    static std::optional<protocol> parse(std::string_view name);
};

namespace detail {
struct evp_cipher_ctx_deleter {
    void operator()(EVP_CIPHER_CTX* p) const noexcept { EVP_CIPHER_CTX_free(p); }
};
struct evp_md_deleter {
    void operator()(EVP_MD* p) const noexcept { EVP_MD_free(p); }
};
struct evp_md_ctx_deleter {
    void operator()(EVP_MD_CTX* p) const noexcept { EVP_MD_CTX_free(p); }
};
// 32 secret bytes, wiped when destroyed.
struct wiped_key {
    std::array<std::uint8_t, 32> bytes{};
    wiped_key() noexcept = default;
    wiped_key(const wiped_key&) noexcept = default;
    wiped_key& operator=(const wiped_key&) noexcept = default;
    ~wiped_key() { OPENSSL_cleanse(bytes.data(), bytes.size()); }
};
} // namespace detail

/// A CipherState (§5.1): a ChaCha20-Poly1305 key `k` and a nonce `n`.
///
/// The 96-bit AEAD nonce is 32 zero bits followed by `n`, little-endian (§12.3). The
/// `EVP_CIPHER_CTX` is made on the first `initialize_key` and kept: later keys and every
/// encryption reuse it, so `encrypt`, `decrypt`, `encrypt_with_ad` and `decrypt_with_ad`
/// do not allocate. Movable, not copyable. The key is wiped on `clear()` and destruction.
class cipher_state {
public:
    cipher_state() noexcept = default;
    cipher_state(cipher_state&&) noexcept;
    cipher_state& operator=(cipher_state&&) noexcept;
    cipher_state(const cipher_state&) = delete;
    cipher_state& operator=(const cipher_state&) = delete;
    ~cipher_state();

    /// InitializeKey(k): sets the key and resets the nonce to 0.
    /// @returns `error::crypto_failure` if OpenSSL fails (the state then has no key).
    std::error_code initialize_key(std::span<const std::uint8_t, key_size> k) noexcept;

    /// Forgets the key (wiping it, also from the OpenSSL context); `has_key()` is then false.
    void clear() noexcept;

    /// HasKey().
    bool has_key() const noexcept { return has_key_; }

    /// SetNonce(n), for transports that carry the nonce explicitly.
    void set_nonce(std::uint64_t n) noexcept { n_ = n; }

    /// The nonce the next `encrypt_with_ad` / `decrypt_with_ad` uses.
    std::uint64_t nonce() const noexcept { return n_; }

    /// The raw key. Valid while `has_key()`.
    std::span<const std::uint8_t, key_size> key() const noexcept { return k_; }

    /// EncryptWithAd(ad, plaintext) in place: encrypts `data` under the current nonce,
    /// writes the tag to `tag`, and increments the nonce.
    /// Unlike the specification's, this needs a key: the no-key pass-through of a
    /// handshake is `symmetric_state::encrypt_and_hash`'s job.
    /// @returns `noise_error::wrong_state` without a key, `noise_error::nonce_exhausted`
    ///   when the nonce reached 2^64-1, `error::crypto_failure`.
    std::error_code encrypt_with_ad(std::span<const std::byte> ad, std::span<std::byte> data,
                                    std::span<std::byte, tag_size> tag) noexcept;

    /// DecryptWithAd(ad, ciphertext) in place: decrypts `data` and checks `tag`. The
    /// nonce is incremented only on success (§5.1).
    /// @returns `noise_error::decrypt_failed` if the tag does not match (then `data` holds
    ///   garbage), `noise_error::wrong_state` without a key, `noise_error::nonce_exhausted`.
    std::error_code decrypt_with_ad(std::span<const std::byte> ad, std::span<std::byte> data,
                                    std::span<const std::byte, tag_size> tag) noexcept;

    /// ENCRYPT(k, n, ad, plaintext) in place with an explicit nonce; `nonce()` is unchanged.
    /// @returns `noise_error::wrong_state` without a key, `error::crypto_failure`.
    std::error_code encrypt(std::uint64_t n, std::span<const std::byte> ad,
                            std::span<std::byte> data, std::span<std::byte, tag_size> tag) noexcept;

    /// DECRYPT(k, n, ad, ciphertext) in place with an explicit nonce; `nonce()` is unchanged.
    /// @returns `noise_error::decrypt_failed` if the tag does not match (then `data` holds
    ///   garbage), `noise_error::wrong_state` without a key.
    std::error_code decrypt(std::uint64_t n, std::span<const std::byte> ad,
                            std::span<std::byte> data,
                            std::span<const std::byte, tag_size> tag) noexcept;

    /// Rekey() (§4.2, §11.3): k = the first 32 bytes of ENCRYPT(k, 2^64-1, "", 32 zeros).
    /// The nonce is unchanged; the old key is gone.
    /// @returns `noise_error::wrong_state` without a key, `error::crypto_failure`.
    std::error_code rekey() noexcept;

private:
    std::error_code crypt(std::uint64_t n, std::span<const std::byte> ad, std::span<std::byte> data,
                          std::byte* tag, bool encrypting) noexcept;

    std::unique_ptr<EVP_CIPHER_CTX, detail::evp_cipher_ctx_deleter> ctx_;
    std::array<std::uint8_t, key_size> k_{};
    std::uint64_t n_ = 0;
    bool has_key_ = false;
};

/// A SymmetricState (§5.2): the chaining key, the handshake hash and a cipher_state.
///
/// A plain `saved` copy of everything but OpenSSL objects lets a handshake undo a message
/// that failed halfway (`save` / `restore`).
class symmetric_state {
public:
    /// Everything that changes during a handshake, as plain bytes.
    struct saved {
        std::array<std::uint8_t, max_hash_size> ck{};
        std::array<std::uint8_t, max_hash_size> h{};
        std::array<std::uint8_t, key_size> k{};
        std::uint64_t n = 0;
        bool has_key = false;
        ~saved();
    };

    /// InitializeSymmetric(protocol_name) with hash `hash` (the caller parsed the name).
    /// @returns `error::crypto_failure` if OpenSSL lacks the digest.
    std::error_code initialize(std::string_view protocol_name, hash_function hash) noexcept;

    /// MixKey(input_key_material).
    std::error_code mix_key(std::span<const std::uint8_t> ikm) noexcept;
    /// MixHash(data).
    std::error_code mix_hash(std::span<const std::byte> data) noexcept;
    /// MixKeyAndHash(input_key_material).
    std::error_code mix_key_and_hash(std::span<const std::uint8_t> ikm) noexcept;

    /// EncryptAndHash on the last bytes of `p`: encrypts `p.data()[from:]` in place,
    /// appends the tag if there is a key, and mixes the ciphertext into `h`.
    /// @returns `error::buffer_too_small` if `p` lacks tailroom for the tag.
    std::error_code encrypt_and_hash(packet_buffer& p, std::size_t from) noexcept;

    /// DecryptAndHash(ciphertext) into `out` (at least `ciphertext.size()` minus the tag).
    /// @returns `noise_error::handshake_failed` if the tag does not match,
    ///   `noise_error::bad_message` if `ciphertext` is shorter than a tag.
    std::error_code decrypt_and_hash(std::span<const std::byte> ciphertext,
                                     std::span<std::byte> out, std::size_t& out_size) noexcept;

    /// Split(): the two transport cipher states (initiator to responder, and back).
    std::error_code split(cipher_state& c1, cipher_state& c2) noexcept;

    /// GetHandshakeHash(): `h`, HASHLEN bytes.
    std::span<const std::byte> handshake_hash() const noexcept;

    bool has_key() const noexcept { return cipher_.has_key(); }
    hash_function hash() const noexcept { return hash_; }

    void save(saved& s) const noexcept;
    void restore(const saved& s) noexcept;

    symmetric_state() noexcept = default;
    symmetric_state(symmetric_state&&) noexcept = default;
    symmetric_state& operator=(symmetric_state&&) noexcept = default;
    ~symmetric_state();

private:
    bool md_prepared() noexcept;
    std::error_code hkdf(std::span<const std::uint8_t> ikm, std::uint8_t* out1, std::uint8_t* out2,
                         std::uint8_t* out3) noexcept;
    std::error_code hmac(std::span<const std::uint8_t> key, std::span<const std::uint8_t> data,
                         std::uint8_t* out) noexcept;

    std::unique_ptr<EVP_MD, detail::evp_md_deleter> md_;
    std::unique_ptr<EVP_MD_CTX, detail::evp_md_ctx_deleter> md_ctx_;
    hash_function hash_ = hash_function::blake2s;
    std::size_t hash_len_ = 32;
    std::array<std::uint8_t, max_hash_size> ck_{};
    std::array<std::uint8_t, max_hash_size> h_{};
    cipher_state cipher_;
};

/// What `handshake_state::initialize` needs (§5.3 Initialize()).
struct handshake_config {
    /// The full protocol name, e.g. "Noise_XX_25519_ChaChaPoly_BLAKE2s".
    std::string_view protocol_name;
    /// True for the initiator (the side that writes the first message).
    bool initiator = false;
    /// Bytes both sides must agree on; mixed into `h` first (§6).
    std::span<const std::byte> prologue;
    /// This side's static key pair `s`, if the pattern has one.
    std::optional<identity> local_static;
    /// The peer's static public key `rs`, when known before the handshake (the `<- s` of
    /// NK, IK, ... for an initiator; the `-> s` of K, KK, ... for a responder).
    std::optional<peer_id> remote_static;
    /// If set, a static key *received in a message* must equal this one, or
    /// `read_message` fails with `noise_error::unexpected_remote_static` (state unchanged).
    std::optional<peer_id> expected_remote_static;
    /// The pre-shared keys, in the order of the psk tokens.
    std::span<const std::array<std::uint8_t, 32>> psks;
    /// TEST HOOK: the ephemeral key pair to use instead of a fresh random one. Test vectors
    /// need it; anything else must leave it empty (a reused ephemeral breaks secrecy).
    std::optional<identity> local_ephemeral;
};

/// A HandshakeState (§5.3): runs one handshake of a pattern, message by message.
///
/// A message that fails to read (too short, forged, wrong key) leaves the state as it
/// was, so the driver can drop it and wait for the real one: an attacker who injects
/// packets cannot end a handshake. A write that fails leaves it as it was too.
/// Movable, not copyable; key material is wiped on destruction.
class handshake_state {
public:
    handshake_state() noexcept = default;
    handshake_state(handshake_state&&) noexcept = default;
    handshake_state& operator=(handshake_state&&) noexcept = default;

    /// Initialize(): parses the protocol name, mixes the prologue and the pre-messages.
    /// @returns `noise_error::unsupported_protocol` for a name `protocol::parse` rejects,
    ///   `noise_error::missing_key` if the pattern needs a key `config` lacks (a local
    ///   static for I/K/X roles, a pre-known remote static, a psk), `error::crypto_failure`.
    std::error_code initialize(handshake_config config);

    /// True between a successful `initialize` and the end of the handshake, when this side
    /// writes the next message.
    bool is_my_turn() const noexcept;

    /// True once the last message was written or read; then `split` works.
    bool is_complete() const noexcept { return initialized_ && index_ == pattern_.message_count; }

    /// The index of the next message to write or read (0 for the first).
    std::size_t message_index() const noexcept { return index_; }

    /// How many bytes the next message takes with a payload of `payload_size` bytes.
    std::size_t next_message_size(std::size_t payload_size) const noexcept;

    /// WriteMessage(payload): appends the next message to `out`.
    /// @param payload the message's payload: encrypted if a key exists by then, else clear.
    /// @param out the message is appended here (needs `next_message_size()` of tailroom).
    /// @returns `noise_error::wrong_state` if not this side's turn,
    ///   `error::buffer_too_small`, `error::message_too_large` (beyond 65535 bytes),
    ///   `noise_error::handshake_failed` if a DH fails (a remote key of small order),
    ///   `error::crypto_failure`. On error `out` and the state are unchanged.
    std::error_code write_message(std::span<const std::byte> payload, packet_buffer& out);

    /// ReadMessage(message): processes the next message from the peer.
    /// @param message the whole message.
    /// @param payload_out receives the payload; must hold the message's payload.
    /// @param payload_size set to the payload's size on success.
    /// @returns `noise_error::wrong_state` if not this side's turn to read,
    ///   `noise_error::bad_message` (too short or longer than 65535 bytes),
    ///   `noise_error::handshake_failed` (forged, changed, or the peer lacks the key it
    ///   should hold), `noise_error::unexpected_remote_static`, `error::buffer_too_small`.
    ///   On error the state is unchanged.
    std::error_code read_message(std::span<const std::byte> message,
                                 std::span<std::byte> payload_out, std::size_t& payload_size);

    /// Split(): the transport keys. `c1` encrypts from initiator to responder, `c2` back.
    /// @returns `noise_error::wrong_state` before `is_complete()`.
    std::error_code split(cipher_state& c1, cipher_state& c2);

    /// The handshake hash `h` (HASHLEN bytes): a channel binding both sides share once
    /// complete. Before that, the running hash.
    std::span<const std::byte> handshake_hash() const noexcept {
        return symmetric_.handshake_hash();
    }

    /// The peer's static key: given in the config, or received (and authenticated once
    /// the handshake is complete).
    const std::optional<peer_id>& remote_static() const noexcept { return rs_; }
    /// The peer's ephemeral key, once received.
    const std::optional<peer_id>& remote_ephemeral() const noexcept { return re_; }
    /// True for the initiator.
    bool is_initiator() const noexcept { return initiator_; }
    /// The parsed protocol.
    const handshake_pattern& pattern() const noexcept { return pattern_; }

private:
    std::error_code dh(token t, std::array<std::uint8_t, 32>& out) const;
    std::error_code write_tokens(std::span<const std::byte> payload, packet_buffer& out);
    std::error_code read_tokens(std::span<const std::byte> message,
                                std::span<std::byte> payload_out, std::size_t& payload_size);

    handshake_pattern pattern_{};
    symmetric_state symmetric_;
    std::optional<identity> s_;
    std::optional<identity> e_;
    std::optional<peer_id> rs_;
    std::optional<peer_id> re_;
    std::optional<peer_id> expected_rs_;
    std::array<detail::wiped_key, handshake_pattern::max_messages + 1> psks_{};
    std::size_t psk_count_ = 0;
    std::size_t psk_next_ = 0;
    std::size_t index_ = 0;
    bool initiator_ = false;
    bool initialized_ = false;
};

} // namespace peerlink::noise

#include <peerlink/proto/impl/noise.hpp>

#endif // PEERLINK_PROTO_NOISE_HPP
