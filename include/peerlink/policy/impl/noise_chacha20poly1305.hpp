// Implementation of peerlink/policy/noise_chacha20poly1305.hpp.
#ifndef PEERLINK_POLICY_IMPL_NOISE_CHACHA20POLY1305_HPP
#define PEERLINK_POLICY_IMPL_NOISE_CHACHA20POLY1305_HPP

#include <peerlink/detail/byte_order.hpp>

#include <openssl/crypto.h>

#include <algorithm>
#include <utility>

namespace peerlink {

// --- replay window -------------------------------------------------------------

inline noise_chacha20poly1305::counter_window::verdict
noise_chacha20poly1305::counter_window::check(std::uint64_t c) const noexcept {
    if (c > top_)
        return verdict::fresh;
    if (top_ - c >= replay_window)
        return verdict::too_old;
    const std::uint64_t bit = std::uint64_t{1} << (c & 63);
    return (bits_[(c >> 6) % words] & bit) ? verdict::replayed : verdict::fresh;
}

inline void noise_chacha20poly1305::counter_window::accept(std::uint64_t c) noexcept {
    if (c > top_) {
        // Words between the old top and the new one hold counters from a lap ago.
        const std::uint64_t old_word = top_ >> 6;
        const std::uint64_t new_word = c >> 6;
        const std::uint64_t n = std::min<std::uint64_t>(new_word - old_word, words);
        for (std::uint64_t i = 1; i <= n; ++i)
            bits_[(old_word + i) % words] = 0;
        top_ = c;
    }
    bits_[(c >> 6) % words] |= std::uint64_t{1} << (c & 63);
}

// --- handshake -----------------------------------------------------------------

inline std::error_code noise_chacha20poly1305::configure(const identity& me,
                                                         std::optional<peer_id> remote,
                                                         bool initiator,
                                                         std::span<const std::byte> prologue) {
    // Everything from an earlier session goes, keys first.
    tx_ = send_side{};
    rx_ = receive_side{};
    handshake_ = noise::handshake_state{};
    counters_ = noise_counters{};
    remote_.reset();
    handshake_hash_.fill(std::byte{0});
    established_ = false;
    pattern_ = noise_pattern::none;
    handshake_messages_ = 0;

    me_ = me;
    expected_remote_ = remote;
    initiator_ = initiator;
    prologue_.clear();
    for (char c : prologue_prefix)
        prologue_.push_back(static_cast<std::byte>(c));
    prologue_.insert(prologue_.end(), prologue.begin(), prologue.end());
    configured_ = true;
    if (!initiator)
        return {}; // a responder learns the pattern from the first message
    auto ec = start_handshake(remote ? noise_pattern::ik : noise_pattern::xx);
    if (ec)
        configured_ = false;
    return ec;
}

inline std::error_code noise_chacha20poly1305::start_handshake(noise_pattern p) {
    noise::handshake_config cfg;
    cfg.protocol_name = p == noise_pattern::ik ? ik_protocol : xx_protocol;
    cfg.initiator = initiator_;
    cfg.prologue = prologue_;
    cfg.local_static = me_;
    if (initiator_ && p == noise_pattern::ik)
        cfg.remote_static = expected_remote_;
    if (!initiator_)
        cfg.expected_remote_static = expected_remote_;
    cfg.local_ephemeral = test_ephemeral_;
    auto ec = handshake_.initialize(std::move(cfg));
    if (ec) {
        handshake_ = noise::handshake_state{};
        return ec;
    }
    pattern_ = p;
    handshake_messages_ = handshake_.pattern().message_count;
    return {};
}

inline void noise_chacha20poly1305::forget_first_message() {
    handshake_ = noise::handshake_state{};
    pattern_ = noise_pattern::none;
    handshake_messages_ = 0;
}

inline bool noise_chacha20poly1305::wants_handshake_write() const noexcept {
    return configured_ && !established_ && handshake_.is_my_turn();
}

inline std::error_code noise_chacha20poly1305::write_handshake(packet_buffer& out,
                                                               std::span<const std::byte> payload) {
    if (!wants_handshake_write())
        return make_error_code(noise_error::wrong_state);
    if (out.tailroom() < 1 + handshake_.next_message_size(payload.size()))
        return make_error_code(error::buffer_too_small);
    const std::size_t start = out.size();
    out.append(1)[0] =
        static_cast<std::byte>(static_cast<unsigned>(pattern_) << 4 | handshake_.message_index());
    auto ec = handshake_.write_message(payload, out);
    if (ec) {
        out.resize(start);
        // The first XX message is not authenticated: its ephemeral key can be one no DH
        // accepts, found only now. Wait for a genuine first message instead.
        if (ec == noise_error::handshake_failed && !initiator_)
            forget_first_message();
        return ec;
    }
    return handshake_.is_complete() ? finish_handshake() : std::error_code{};
}

inline std::error_code noise_chacha20poly1305::read_handshake(std::span<const std::byte> message,
                                                              std::span<std::byte> payload_out,
                                                              std::size_t& payload_size) {
    if (!configured_)
        return make_error_code(noise_error::wrong_state);
    auto reject = [this](std::error_code ec) {
        ++counters_.handshake_rejected;
        return ec;
    };
    if (message.empty())
        return reject(make_error_code(noise_error::bad_message));
    const auto code = static_cast<unsigned>(message[0]) >> 4;
    const std::size_t index = static_cast<unsigned>(message[0]) & 0x0f;
    if (code != static_cast<unsigned>(noise_pattern::ik) &&
        code != static_cast<unsigned>(noise_pattern::xx))
        return reject(make_error_code(noise_error::bad_message));
    const auto body = message.subspan(1);

    if (!initiator_ && pattern_ == noise_pattern::none) {
        // A responder's first message picks the pattern; a failed read leaves it free
        // for the next candidate.
        if (index != 0)
            return reject(make_error_code(noise_error::bad_message));
        auto ec = start_handshake(static_cast<noise_pattern>(code));
        if (!ec)
            ec = handshake_.read_message(body, payload_out, payload_size);
        if (ec) {
            forget_first_message();
            return reject(ec);
        }
        return {};
    }

    if (code != static_cast<unsigned>(pattern_) || index >= handshake_messages_)
        return reject(make_error_code(noise_error::bad_message));
    const std::size_t next = established_ ? handshake_messages_ : handshake_.message_index();
    // Messages go initiator, responder, initiator: index parity says who wrote it.
    const bool from_peer = (index % 2 == 0) != initiator_;
    if (from_peer && index < next)
        return make_error_code(noise_error::stale_message);
    if (!from_peer || index != next || established_)
        return reject(make_error_code(noise_error::bad_message));
    auto ec = handshake_.read_message(body, payload_out, payload_size);
    if (ec)
        return reject(ec);
    return handshake_.is_complete() ? finish_handshake() : std::error_code{};
}

inline std::error_code noise_chacha20poly1305::finish_handshake() {
    noise::cipher_state c1;
    noise::cipher_state c2;
    auto ec = handshake_.split(c1, c2);
    if (ec)
        return ec;
    tx_ = send_side{};
    rx_ = receive_side{};
    tx_.key = std::move(initiator_ ? c1 : c2);
    rx_.current = std::move(initiator_ ? c2 : c1);
    remote_ = handshake_.remote_static();
    auto h = handshake_.handshake_hash();
    std::copy_n(h.begin(), std::min(h.size(), handshake_hash_.size()), handshake_hash_.begin());
    // Forward secrecy: the ephemeral keys and chaining key go now.
    handshake_ = noise::handshake_state{};
    test_ephemeral_.reset();
    established_ = true;
    return {};
}

inline std::optional<peer_id> noise_chacha20poly1305::remote_static() const noexcept {
    return established_ ? remote_ : std::nullopt;
}

// --- packets -------------------------------------------------------------------

inline std::error_code noise_chacha20poly1305::rekey_send(time_point now) noexcept {
    const bool by_count =
        options_.rekey_after_packets != 0 && tx_.in_epoch >= options_.rekey_after_packets;
    const bool by_time = options_.rekey_after_time > duration::zero() && tx_.epoch_started &&
                         now - tx_.epoch_start >= options_.rekey_after_time;
    if (by_count || by_time) {
        if (auto ec = tx_.key.rekey())
            return ec;
        ++tx_.epoch;
        tx_.in_epoch = 0;
        tx_.epoch_started = false;
        ++counters_.rekeys_sent;
    }
    if (!tx_.epoch_started) {
        tx_.epoch_start = now;
        tx_.epoch_started = true;
    }
    return {};
}

inline std::error_code noise_chacha20poly1305::seal(packet_buffer& p, time_point now) noexcept {
    if (!established_)
        return make_error_code(noise_error::wrong_state);
    if (p.headroom() < header_size || p.tailroom() < tag_size)
        return make_error_code(error::buffer_too_small);
    if (tx_.counter > max_counter)
        return make_error_code(noise_error::nonce_exhausted);
    if (auto ec = rekey_send(now))
        return ec;
    auto header = p.prepend(header_size);
    detail::store_be<std::uint64_t>(header.data(), std::uint64_t{tx_.epoch} << 48 | tx_.counter);
    auto tag = p.append(tag_size);
    auto body = p.data().subspan(header_size, p.size() - max_overhead);
    auto ec = tx_.key.encrypt(tx_.counter, header, body,
                              std::span<std::byte, tag_size>(tag.data(), tag_size));
    if (ec) {
        p.consume_front(header_size);
        p.consume_back(tag_size);
        return ec;
    }
    ++tx_.counter;
    ++tx_.in_epoch;
    ++counters_.sealed;
    return {};
}

inline void noise_chacha20poly1305::expire_previous(time_point now) noexcept {
    // Once the window has moved past every counter the previous key could have sealed,
    // or its grace time is over, it can only open forgeries: wipe it.
    if (rx_.has_previous && (now >= rx_.previous_expiry ||
                             rx_.window.top() + 1 >= rx_.previous_bound + replay_window)) {
        rx_.previous.clear();
        rx_.has_previous = false;
    }
}

inline std::error_code noise_chacha20poly1305::open(packet_buffer& p, time_point now) noexcept {
    if (!established_)
        return make_error_code(noise_error::wrong_state);
    if (p.size() < max_overhead) {
        ++counters_.malformed;
        return make_error_code(noise_error::malformed_packet);
    }
    const auto data = p.data();
    const std::uint64_t word = detail::load_be<std::uint64_t>(data.data());
    const auto epoch = static_cast<std::uint16_t>(word >> 48);
    const std::uint64_t counter = word & max_counter;
    expire_previous(now);

    switch (rx_.window.check(counter)) {
    case counter_window::verdict::replayed:
        ++counters_.replayed;
        return make_error_code(noise_error::replayed);
    case counter_window::verdict::too_old:
        ++counters_.too_old;
        return make_error_code(noise_error::too_old);
    case counter_window::verdict::fresh:
        break;
    }

    // The epoch picks the key: the current one, the previous one, or one a few rekeys
    // ahead, derived into `scratch` and adopted only if the packet authenticates.
    const auto skip = static_cast<std::uint16_t>(epoch - rx_.epoch);
    noise::cipher_state* key = &rx_.current;
    std::array<std::uint8_t, noise::key_size> before_last{};
    if (skip == 0xffff) {
        if (!rx_.has_previous) {
            ++counters_.too_old;
            return make_error_code(noise_error::too_old);
        }
        key = &rx_.previous;
    } else if (skip >= 0x8000) {
        ++counters_.too_old;
        return make_error_code(noise_error::too_old);
    } else if (skip > max_epoch_skip) {
        ++counters_.decrypt_failed;
        return make_error_code(noise_error::decrypt_failed);
    } else if (skip > 0) {
        auto ec = rx_.scratch.initialize_key(rx_.current.key());
        for (std::uint16_t i = 1; !ec && i <= skip; ++i) {
            if (i == skip)
                std::copy_n(rx_.scratch.key().begin(), noise::key_size, before_last.begin());
            ec = rx_.scratch.rekey();
        }
        if (ec) {
            OPENSSL_cleanse(before_last.data(), before_last.size());
            return ec;
        }
        key = &rx_.scratch;
    }

    auto header = data.first(header_size);
    auto body = data.subspan(header_size, data.size() - max_overhead);
    auto ec = key->decrypt(
        counter, header, body,
        std::span<const std::byte, tag_size>(data.data() + data.size() - tag_size, tag_size));
    if (!ec && skip > 0 && skip < 0x8000) {
        bool has_previous = true;
        if (skip == 1)
            std::swap(rx_.previous, rx_.current);
        else if (rx_.previous.initialize_key(before_last))
            has_previous = false; // only OpenSSL running out of memory; lose reordered ones
        std::swap(rx_.current, rx_.scratch);
        rx_.scratch.clear();
        rx_.has_previous = has_previous;
        rx_.previous_bound = counter;
        rx_.previous_expiry = now + options_.previous_key_lifetime;
        rx_.epoch = epoch;
        counters_.rekeys_received += skip;
    }
    OPENSSL_cleanse(before_last.data(), before_last.size());
    if (ec == noise_error::decrypt_failed) {
        ++counters_.decrypt_failed;
        return ec;
    }
    if (ec)
        return ec;
    rx_.window.accept(counter);
    p.consume_front(header_size);
    p.consume_back(tag_size);
    ++counters_.opened;
    return {};
}

} // namespace peerlink

#endif // PEERLINK_POLICY_IMPL_NOISE_CHACHA20POLY1305_HPP
