// peerlink/identity.hpp: X25519 identities and the peer ids that name them.
//
// A peer is known by its X25519 public key, its `peer_id`. An `identity` holds the
// matching private key and can agree on a shared secret with any peer id. All
// cryptography is OpenSSL 3's (EVP_PKEY_X25519, SHA-256); peerlink implements no
// primitive of its own.
//
// @par Example
// @code
// peerlink::identity me = peerlink::identity::generate();
// std::string text = me.id().to_string();          // "pl" + 55 base32 characters
// std::error_code ec;
// auto peer = peerlink::peer_id::parse(text_from_user, ec);
// if (!peer) { /* ec is peer_id_bad_length, _bad_prefix, _bad_character or _checksum_mismatch */ }
// auto secret = me.agree(*peer, ec);            // 32 raw X25519 bytes, or nothing
// @endcode
#ifndef PEERLINK_IDENTITY_HPP
#define PEERLINK_IDENTITY_HPP

#include <peerlink/error.hpp>

#include <array>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>

namespace peerlink {

/// The name of a peer: its 32-byte X25519 public key (RFC 7748).
///
/// The text form is "pl" followed by the lowercase RFC 4648 base32 (alphabet a-z, 2-7,
/// no padding) of 34 bytes: the 32 key bytes, then a 2-byte checksum, the first two
/// bytes of SHA-256("peerlink-id" || key). That makes 57 characters, and a typo of one
/// character is caught by the checksum (a random one with probability 1 - 2^-16).
///
/// A value type: cheap to copy, ordered, hashable (`std::hash<peer_id>`).
class peer_id {
public:
    /// The number of key bytes.
    static constexpr std::size_t size = 32;
    /// The number of characters of the text form.
    static constexpr std::size_t text_size = 57;

    /// The all-zero key. It names no peer: `identity::agree` rejects it.
    constexpr peer_id() noexcept = default;

    /// The peer id of a raw X25519 public key. Every 32-byte value is accepted here;
    /// keys of small order are rejected later by `identity::agree`.
    static constexpr peer_id from_bytes(std::span<const std::uint8_t, size> key) noexcept {
        peer_id id;
        for (std::size_t i = 0; i < size; ++i)
            id.key_[i] = key[i];
        return id;
    }

    /// Parses the text form made by `to_string()`. Upper- and lowercase letters are both
    /// accepted; nothing else is (no whitespace, no padding).
    ///
    /// @param text the text to parse.
    /// @param ec set to the reason on failure, cleared on success:
    ///   - `error::peer_id_bad_length`: not 57 characters;
    ///   - `error::peer_id_bad_prefix`: does not start with "pl" (checked first whenever
    ///     the text has at least two characters);
    ///   - `error::peer_id_bad_character`: a character outside a-z and 2-7, or a last
    ///     character whose unused low bits are not zero (not the canonical encoding);
    ///   - `error::peer_id_checksum_mismatch`: well formed, but the checksum does not match;
    ///   - `error::crypto_failure`: OpenSSL could not compute SHA-256.
    /// @returns the peer id, or nothing.
    static std::optional<peer_id> parse(std::string_view text, std::error_code& ec);

    /// The raw public key bytes.
    constexpr std::span<const std::uint8_t, size> bytes() const noexcept { return key_; }

    /// The 57-character text form, e.g. "plx4...". Round-trips through `parse`.
    /// @throws std::system_error with `error::crypto_failure` if OpenSSL cannot compute
    ///   SHA-256 (no provider); std::bad_alloc.
    std::string to_string() const;

    /// The first 12 characters of `to_string()`, enough to tell peers apart in logs.
    std::string to_short_string() const;

    friend constexpr bool operator==(const peer_id&, const peer_id&) noexcept = default;
    friend constexpr auto operator<=>(const peer_id&, const peer_id&) noexcept = default;

private:
    std::array<std::uint8_t, size> key_{};
};

/// An X25519 key pair: this program's identity.
///
/// A value type holding the 32-byte private key and its `peer_id`; no OpenSSL object
/// is kept alive between calls. The private key is wiped (OPENSSL_cleanse) when an
/// identity is destroyed or assigned over. Copies are independent copies of the key.
class identity {
public:
    /// Generates a new random key pair with OpenSSL's CSPRNG.
    /// @throws std::system_error with `error::crypto_failure` if OpenSSL fails.
    static identity generate();

    /// Generates a new random key pair.
    /// @param ec set to `error::crypto_failure` if OpenSSL fails, cleared on success.
    /// @returns the identity, or nothing.
    static std::optional<identity> generate(std::error_code& ec);

    /// Restores an identity saved with `private_key()`.
    /// @param key the 32 raw private key bytes (RFC 7748 scalar, clamped by X25519).
    /// @param ec set to `error::invalid_key` if OpenSSL rejects the key, or
    ///   `error::crypto_failure`; cleared on success.
    /// @returns the identity whose `id()` is the matching public key, or nothing.
    static std::optional<identity> from_private_key(std::span<const std::uint8_t, 32> key,
                                                    std::error_code& ec);

    identity(const identity&) = default;
    identity(identity&&) noexcept = default;
    identity& operator=(const identity&) = default;
    identity& operator=(identity&&) noexcept = default;
    ~identity();

    /// This identity's public key.
    const peer_id& id() const noexcept { return id_; }

    /// The raw private key, for saving. The caller owns the copy and should wipe it
    /// (OPENSSL_cleanse) when done.
    std::array<std::uint8_t, 32> private_key() const noexcept { return private_key_; }

    /// The raw X25519 shared secret with `remote` (RFC 7748 §6.1). Both sides get the
    /// same 32 bytes. It is not a key yet: feed it to a KDF (the handshake does).
    ///
    /// @param remote the peer's public key.
    /// @param ec set to `error::invalid_key` if `remote` is a point of small order (the
    ///   result would be all zero, RFC 7748 §6.1) or OpenSSL rejects it, or to
    ///   `error::crypto_failure`; cleared on success.
    /// @returns the shared secret, or nothing. The caller should wipe it after use.
    std::optional<std::array<std::uint8_t, 32>> agree(const peer_id& remote,
                                                      std::error_code& ec) const;

private:
    identity(const std::array<std::uint8_t, 32>& private_key, const peer_id& id) noexcept
        : private_key_(private_key), id_(id) {}

    std::array<std::uint8_t, 32> private_key_;
    peer_id id_;
};

} // namespace peerlink

template <>
struct std::hash<peerlink::peer_id> {
    std::size_t operator()(const peerlink::peer_id& id) const noexcept {
        // FNV-1a over all key bytes: a remote peer chooses its key, so no subset of
        // bytes may decide the hash alone.
        std::size_t h = 1469598103934665603ull;
        for (std::uint8_t b : id.bytes())
            h = (h ^ b) * 1099511628211ull;
        return h;
    }
};

#include <peerlink/impl/identity.hpp>

#endif // PEERLINK_IDENTITY_HPP
