// peerlink/policy/noise_chacha20poly1305.hpp: the Noise + ChaCha20-Poly1305 cipher policy.
//
// Authenticates the peer with a Noise handshake over X25519 and protects every packet
// with ChaCha20-Poly1305. The peer id *is* the peer's static X25519 key, so knowing a
// peer id is enough to authenticate its owner:
//
// - the initiator knows the responder's peer id: Noise IK (1 round trip, the first
//   message already carries an encrypted payload);
// - it does not: Noise XX (1.5 round trips; each side learns the other's id from the
//   handshake, authenticated, and the application decides whether to trust it).
//
// Protocol names: "Noise_IK_25519_ChaChaPoly_BLAKE2s" and "Noise_XX_25519_ChaChaPoly_BLAKE2s",
// with prologue "peerlink noise v1" followed by the caller's prologue bytes.
//
// @par Handshake messages (what write_handshake produces, read_handshake consumes)
// One header byte, then the Noise message:
// | byte 0 | bits 7-4: pattern (1 = IK, 2 = XX); bits 3-0: message index (0, 1, 2) |
// | 1..    | the Noise handshake message (ephemeral key, encrypted static key, payload) |
//
// | message | IK                                  | XX                                   |
// |---------|-------------------------------------|--------------------------------------|
// | 0 (i→r) | 1+32+48+payload+16 = 97+payload     | 1+32+payload = 33+payload (clear!)   |
// | 1 (r→i) | 1+32+payload+16 = 49+payload        | 1+32+48+payload+16 = 97+payload      |
// | 2 (i→r) | -                                   | 1+48+payload+16 = 65+payload         |
//
// @par Sealed packets (seal/open; 24 bytes of overhead)
// | bytes      | field                                                                   |
// |------------|-------------------------------------------------------------------------|
// | 0..1       | key epoch, big-endian: how many times the sender has rekeyed (mod 2^16)   |
// | 2..7       | packet counter, big-endian, 48 bits: 0, 1, 2, ... over the whole session |
// | 8..n-17    | ChaCha20-Poly1305 ciphertext of the packet                               |
// | n-16..n-1  | Poly1305 tag; the associated data is bytes 0..7                         |
// The AEAD nonce is the counter (32 zero bits, then the counter as 64-bit little-endian,
// as Noise specifies); each direction has its own keys from Noise's Split().
//
// @par Replay protection
// A receiver accepts each counter once, within a window of the highest counter seen
// (`replay_window` = 2048 packets): a packet seen before is rejected with
// `noise_error::replayed`, one behind the window with `noise_error::too_old`; both are
// counted. Reordering inside the window is accepted.
//
// @par Rekeying
// The sender replaces its key with Noise's REKEY(k) = ENCRYPT(k, 2^64-1, "", zeros)
// after `options::rekey_after_packets` packets or `options::rekey_after_time` under one
// key, whichever comes first, and increments the epoch in the header. The receiver
// follows the epoch it sees, deriving the same keys (up to `max_epoch_skip` epochs ahead,
// for packets lost across rekeys); no message is exchanged, so the sides cannot disagree.
// It keeps the previous key until no packet under it can still be in the window, or
// `options::previous_key_lifetime` has passed, so packets reordered across the rekey
// boundary still open. Old keys are wiped: a stolen key does not open earlier epochs.
//
// @par How a driver uses it (sans-I/O)
// @code
// peerlink::noise_chacha20poly1305 c;
// c.configure(me, peer_id_if_known, /*initiator=*/true, prologue);      // or false
// // Initiator: write the first message and send it; responders start by reading.
// std::byte storage[512];
// peerlink::packet_buffer out(storage, headroom_for_my_frame_header);
// if (c.wants_handshake_write()) { c.write_handshake(out, payload); send(out.data()); }
// // For each handshake message received:
// std::byte payload_buf[256]; std::size_t n = 0;
// auto ec = c.read_handshake(msg, payload_buf, n);
// if (ec == peerlink::noise_error::stale_message) resend_last_message(); // our answer was lost
// else if (ec) drop(msg, ec);    // state unchanged: a forged message cannot end the handshake
// else if (c.wants_handshake_write()) { write_handshake(...); send(...); }
// // Once c.handshake_done(): c.remote_static() is the authenticated peer id, and every
// // data packet goes through c.seal(p, now) on send and c.open(p, now) on receive.
// @endcode
// A handshake message cannot be written twice (each write advances the handshake); to
// retransmit after a timeout, send the same bytes again. The XX initiator and the IK
// responder are done after *writing* their last message: they may seal data at once,
// but should keep retransmitting that last message until a sealed packet from the peer
// opens (their peer lacks the keys until it arrives). Handshake messages, unlike sealed
// packets, are not protected against replay: the driver must treat a handshake started
// by a replayed first message as unconfirmed until the peer's first sealed packet opens.
#ifndef PEERLINK_POLICY_NOISE_CHACHA20POLY1305_HPP
#define PEERLINK_POLICY_NOISE_CHACHA20POLY1305_HPP

#include <peerlink/concepts.hpp>
#include <peerlink/identity.hpp>
#include <peerlink/proto/noise.hpp>
#include <peerlink/time.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <system_error>
#include <vector>

namespace peerlink {

/// What a `noise_chacha20poly1305` policy has done and rejected, for stats and tests.
struct noise_counters {
    std::uint64_t sealed = 0;             ///< Packets sealed.
    std::uint64_t opened = 0;             ///< Packets that authenticated and were new.
    std::uint64_t replayed = 0;           ///< Rejected: counter already accepted.
    std::uint64_t too_old = 0;            ///< Rejected: behind the window or key dropped.
    std::uint64_t decrypt_failed = 0;     ///< Rejected: did not authenticate.
    std::uint64_t malformed = 0;          ///< Rejected: shorter than header and tag.
    std::uint64_t rekeys_sent = 0;        ///< Times the send key was replaced.
    std::uint64_t rekeys_received = 0;    ///< Receive key epochs advanced.
    std::uint64_t handshake_rejected = 0; ///< Handshake messages that failed to read.
};

/// The Noise pattern a session runs.
enum class noise_pattern : std::uint8_t {
    none = 0, ///< No handshake started yet (a responder before the first message).
    ik = 1,   ///< Noise IK: the initiator knew the responder's peer id.
    xx = 2,   ///< Noise XX: it did not.
};

/// Cipher policy: a Noise IK/XX handshake, then ChaCha20-Poly1305 per packet with a
/// counter nonce, a sliding replay window and rekeying. See the file comment for the
/// wire formats and the driver's part.
///
/// Sans-I/O: no clock (time is a parameter), no socket, no exception. `seal` and `open`
/// do not allocate. Movable, not copyable; key material is wiped when no longer needed.
class noise_chacha20poly1305 {
public:
    using policy_kind = cipher_tag;

    /// Bytes in front of a sealed packet: epoch and counter.
    static constexpr std::size_t header_size = 8;
    /// Bytes behind a sealed packet: the Poly1305 tag.
    static constexpr std::size_t tag_size = noise::tag_size;
    /// What `seal` adds: 24 bytes.
    static constexpr std::size_t max_overhead = header_size + tag_size;
    /// Counters accepted behind the highest one seen.
    static constexpr std::uint64_t replay_window = 2048;
    /// The last counter a session can use (2^48 - 1); then `seal` fails with
    /// `noise_error::nonce_exhausted` and a new handshake is needed.
    static constexpr std::uint64_t max_counter = (std::uint64_t{1} << 48) - 1;
    /// How many epochs ahead of its own a receiver follows.
    static constexpr std::uint16_t max_epoch_skip = 8;
    /// The most a handshake message adds to its payload (header byte included).
    static constexpr std::size_t max_handshake_overhead = 1 + 32 + 48 + 16;
    static constexpr std::string_view ik_protocol = "Noise_IK_25519_ChaChaPoly_BLAKE2s";
    static constexpr std::string_view xx_protocol = "Noise_XX_25519_ChaChaPoly_BLAKE2s";
    /// Mixed in front of the caller's prologue: keeps these handshakes apart from any
    /// other protocol that uses the same Noise name with the same keys.
    static constexpr std::string_view prologue_prefix = "peerlink noise v1";

    /// When to rekey and how long to keep an old key.
    struct options {
        /// Rekey after this many packets under one key; 0: never by count.
        std::uint64_t rekey_after_packets = std::uint64_t{1} << 20;
        /// Rekey when the key's first packet was sealed this long ago; zero: never by time.
        duration rekey_after_time = std::chrono::seconds(120);
        /// Drop the previous receive key this long after the epoch advanced, at the latest.
        duration previous_key_lifetime = std::chrono::seconds(15);
    };

    /// An unconfigured policy: `enabled()` is false, `seal` and `open` fail.
    noise_chacha20poly1305() noexcept = default;
    /// An unconfigured policy with non-default rekeying.
    explicit noise_chacha20poly1305(const options& o) noexcept : options_(o) {}

    noise_chacha20poly1305(noise_chacha20poly1305&&) noexcept = default;
    noise_chacha20poly1305& operator=(noise_chacha20poly1305&&) noexcept = default;

    /// Starts a session (again): forgets any earlier handshake and keys.
    ///
    /// @param me this side's identity; its private key is the Noise static key.
    /// @param remote for an initiator: the responder's peer id if known (then IK, and a
    ///   responder without that key fails), or nothing (then XX). For a responder: the
    ///   initiator it accepts, or nothing to accept any (check `remote_static()` after).
    ///   A responder answers IK or XX, whichever the initiator chose.
    /// @param initiator true for the side that writes the first message.
    /// @param prologue bytes both sides must pass identically (e.g. a protocol version, a
    ///   session id); a mismatch fails the handshake.
    /// @returns `error::crypto_failure` if OpenSSL fails; then the policy is unconfigured.
    std::error_code configure(const identity& me, std::optional<peer_id> remote, bool initiator,
                              std::span<const std::byte> prologue = {});

    /// True when this side must write the next handshake message.
    bool wants_handshake_write() const noexcept;

    /// Appends the next handshake message to `out`.
    /// @param out needs `max_handshake_overhead + payload.size()` bytes of tailroom.
    /// @param payload carried in the message: encrypted and authenticated except in the
    ///   first XX message, which is clear text (do not put secrets there). In the first IK
    ///   message it is encrypted to the responder but could be replayed by an attacker.
    /// @returns `noise_error::wrong_state` if not this side's turn, `error::buffer_too_small`,
    ///   `error::crypto_failure`; on these `out` and the handshake are unchanged.
    ///   `noise_error::handshake_failed` if a peer key is of small order (no DH accepts it):
    ///   the configured remote key of an initiator, or the ephemeral key in an XX first
    ///   message, which nothing authenticates; a responder then forgets that message and
    ///   waits for a new first message.
    std::error_code write_handshake(packet_buffer& out, std::span<const std::byte> payload = {});

    /// Processes a handshake message from the peer.
    /// @param message the bytes as received (header byte included).
    /// @param payload_out receives the payload (needs room for it).
    /// @param payload_size set to the payload's size on success.
    /// @returns on success, nothing; `wants_handshake_write()` or `handshake_done()` tell
    ///   what comes next. On error the handshake is unchanged and the message should be
    ///   dropped:
    ///   - `noise_error::handshake_failed` (-> `condition::authentication_failed`): forged
    ///     or changed, or the peer lacks the private key of the id expected from it (a
    ///     wrong or spoofed peer id in IK fails here, on the responder's side for the
    ///     first message and on the initiator's for the second);
    ///   - `noise_error::unexpected_remote_static` (-> `authentication_failed`): a
    ///     responder's expected initiator is not the one who wrote;
    ///   - `noise_error::bad_message` (-> `malformed_input`): unknown header, wrong pattern
    ///     or index, too short;
    ///   - `noise_error::stale_message`: a message already processed: the peer did not get
    ///     this side's answer, which the driver should send again;
    ///   - `noise_error::wrong_state`: not configured; `error::buffer_too_small`.
    std::error_code read_handshake(std::span<const std::byte> message,
                                   std::span<std::byte> payload_out, std::size_t& payload_size);

    /// Whether `ec`, from `read_handshake`, says the message was one already processed
    /// (the peer did not get this side's answer: send the last message again).
    static bool is_stale(std::error_code ec) noexcept { return ec == noise_error::stale_message; }

    /// True once the handshake is complete and packets can be sealed and opened.
    bool handshake_done() const noexcept { return established_; }

    /// The peer's authenticated peer id, once the handshake is complete.
    std::optional<peer_id> remote_static() const noexcept;

    /// The Noise handshake hash, a channel binding both sides share once complete (all
    /// zero before).
    std::span<const std::byte, 32> handshake_hash() const noexcept { return handshake_hash_; }

    /// The pattern of the current session.
    noise_pattern pattern() const noexcept { return pattern_; }

    /// The pattern as stats show it: "noise-ik", "noise-xx" or "none".
    std::string_view pattern_name() const noexcept {
        return pattern_ == noise_pattern::ik   ? "noise-ik"
               : pattern_ == noise_pattern::xx ? "noise-xx"
                                               : "none";
    }

    /// The cipher policy's switch: true once the handshake is complete.
    bool enabled() const noexcept { return established_; }

    /// Seals `p` in place: prepends the 8-byte header, encrypts, appends the 16-byte tag.
    /// Rekeys first if the current key reached its packet count or its age.
    /// @param now the current time, for time-based rekeying.
    /// @returns `noise_error::wrong_state` before the handshake is complete,
    ///   `error::buffer_too_small` (headroom < 8 or tailroom < 16; `p` unchanged),
    ///   `noise_error::nonce_exhausted`, `error::crypto_failure`.
    std::error_code seal(packet_buffer& p, time_point now) noexcept;

    /// Opens `p` in place: checks the replay window, authenticates and decrypts, removes
    /// the header and the tag.
    /// @param now the current time, to drop an expired previous key.
    /// @returns (each rejection is counted in `counters()`; on error drop the packet, whose
    ///   bytes may have been overwritten):
    ///   - `noise_error::decrypt_failed` (-> `authentication_failed`): forged or changed;
    ///   - `noise_error::replayed`, `noise_error::too_old`, `noise_error::malformed_packet`
    ///     (-> `malformed_input`);
    ///   - `noise_error::wrong_state` before the handshake is complete.
    std::error_code open(packet_buffer& p, time_point now) noexcept;

    /// What was sealed, opened and rejected.
    const noise_counters& counters() const noexcept { return counters_; }

    /// The sender's current key epoch (mod 2^16).
    std::uint16_t send_epoch() const noexcept { return tx_.epoch; }
    /// The receiver's current key epoch (mod 2^16).
    std::uint16_t receive_epoch() const noexcept { return rx_.epoch; }

    /// The rekeying options.
    const options& get_options() const noexcept { return options_; }

    /// TEST HOOK: the ephemeral key this side's next handshake uses, so tests and fuzz
    /// seeds are reproducible. Never call it otherwise: a reused ephemeral key destroys the
    /// secrecy of every session that used it. Call before `configure`; it is forgotten when
    /// that handshake completes.
    void set_ephemeral_for_testing(const identity& e) { test_ephemeral_ = e; }

private:
    // A sliding window of accepted counters (RFC 6479's ring of words).
    class counter_window {
    public:
        enum class verdict { fresh, replayed, too_old };
        verdict check(std::uint64_t c) const noexcept;
        void accept(std::uint64_t c) noexcept;
        std::uint64_t top() const noexcept { return top_; }

    private:
        // Twice the window, so the words the window spans never share a slot.
        static constexpr std::size_t words = 2 * replay_window / 64;
        std::array<std::uint64_t, words> bits_{};
        std::uint64_t top_ = 0;
    };

    struct send_side {
        noise::cipher_state key;
        std::uint64_t counter = 0;
        std::uint64_t in_epoch = 0;
        time_point epoch_start{};
        bool epoch_started = false;
        std::uint16_t epoch = 0;
    };

    struct receive_side {
        noise::cipher_state current;
        noise::cipher_state previous;
        noise::cipher_state scratch;
        counter_window window;
        std::uint64_t previous_bound = 0; // every packet under `previous` has a lower counter
        time_point previous_expiry{};
        bool has_previous = false;
        std::uint16_t epoch = 0;
    };

    std::error_code start_handshake(noise_pattern p);
    std::error_code finish_handshake();
    void forget_first_message();
    std::error_code rekey_send(time_point now) noexcept;
    void expire_previous(time_point now) noexcept;

    options options_{};
    std::optional<identity> me_;
    std::optional<peer_id> expected_remote_;
    std::optional<identity> test_ephemeral_;
    std::vector<std::byte> prologue_;
    noise::handshake_state handshake_;
    std::size_t handshake_messages_ = 0; // in the pattern, once known
    noise_pattern pattern_ = noise_pattern::none;
    bool configured_ = false;
    bool initiator_ = false;
    bool established_ = false;
    std::optional<peer_id> remote_;
    std::array<std::byte, 32> handshake_hash_{};
    send_side tx_;
    receive_side rx_;
    noise_counters counters_;
};

static_assert(cipher_policy<noise_chacha20poly1305>);
static_assert(noise_chacha20poly1305::max_overhead <= 28);

} // namespace peerlink

#include <peerlink/policy/impl/noise_chacha20poly1305.hpp>

#endif // PEERLINK_POLICY_NOISE_CHACHA20POLY1305_HPP
