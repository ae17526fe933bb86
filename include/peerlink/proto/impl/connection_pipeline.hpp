// Implementation of peerlink/proto/connection.hpp: the handshake and the pipeline
// features (what is switched on, and the negotiation that switches it).
#ifndef PEERLINK_PROTO_IMPL_CONNECTION_PIPELINE_HPP
#define PEERLINK_PROTO_IMPL_CONNECTION_PIPELINE_HPP

#include <algorithm>
#include <array>
#include <cstdio>

namespace peerlink {

namespace detail {

inline std::uint8_t feature_flags(const pipeline_features& f) noexcept {
    std::uint8_t b = 0;
    if (f.fec)
        b |= frame::feature_bits::fec_on;
    if (f.disguise)
        b |= frame::feature_bits::disguise_on;
    if (f.cipher_off)
        b |= frame::feature_bits::cipher_off;
    return b;
}

inline bool valid_ratio(std::uint8_t data, std::uint8_t parity) noexcept {
    return data >= 1 && parity >= 1 && data + parity <= 255;
}

} // namespace detail

template <reliability_policy R, fec_policy F, cipher_policy C, obfuscation_policy O,
          traversal_policy T>
void connection_core<R, F, C, O, T>::send_handshake(const endpoint& to, time_point now) {
    if constexpr (handshakes) {
        if (!hs_started_) {
            std::error_code ec;
            if (!settings_.local_identity)
                ec = make_error_code(error::invalid_config);
            else
                ec = cipher_.configure(*settings_.local_identity, expected_, true);
            if (ec)
                return apply(event::fatal_error{ec}, now);
            hs_started_ = true;
            hs_initiator_ = true;
            hs_confirmed_ = false;
            hs_last_.resize(256);
            packet_buffer b(hs_last_, 0);
            ec = cipher_.write_handshake(b, {});
            hs_last_.resize(ec ? 0 : b.size());
            if (ec)
                return apply(event::fatal_error{ec}, now);
            update_pipeline_stats();
        }
        if (!hs_last_.empty())
            send_raw_handshake(to, now);
    } else {
        (void)to;
        (void)now;
    }
}

template <reliability_policy R, fec_policy F, cipher_policy C, obfuscation_policy O,
          traversal_policy T>
void connection_core<R, F, C, O, T>::send_raw_handshake(const endpoint& to, time_point now) {
    auto p = open_slot();
    if (!p) {
        ++stats_.dropped_send_errors; // the hello timer sends it again
        return;
    }
    p->append(frame::envelope::size)[0] = frame::envelope::handshake;
    if (!p->append(hs_last_) || obfuscation_.wrap(*p)) {
        ++stats_.dropped_send_errors;
        return;
    }
    push_slot(*p, to, now);
}

template <reliability_policy R, fec_policy F, cipher_policy C, obfuscation_policy O,
          traversal_policy T>
void connection_core<R, F, C, O, T>::send_reject(const endpoint& to, time_point now) {
    auto p = open_slot();
    if (!p)
        return;
    p->append(frame::envelope::size)[0] = frame::envelope::rejected;
    if (obfuscation_.wrap(*p))
        return;
    push_slot(*p, to, now);
}

template <reliability_policy R, fec_policy F, cipher_policy C, obfuscation_policy O,
          traversal_policy T>
void connection_core<R, F, C, O, T>::on_handshake(std::span<const std::byte> message,
                                                  const endpoint& from, time_point now) {
    if constexpr (handshakes) {
        auto k = kind();
        bool looking = k == state_kind::punching || k == state_kind::reconnecting ||
                       k == state_kind::waiting || (k == state_kind::idle && listening_);
        bool live = k == state_kind::connected || k == state_kind::relayed;
        if ((!looking && !live) || message.empty() || !settings_.local_identity) {
            ++stats_.dropped_unauthenticated;
            return;
        }
        const bool first = (std::to_integer<unsigned>(message[0]) & 0x0f) == 0;
        if (first && !cipher_.handshake_done()) {
            if (hs_started_ && hs_initiator_) {
                // Both sides started: the one whose first message has the greater
                // ephemeral key (bytes 1..32, clear in IK and XX) stays the initiator.
                if (message.size() < 33 || hs_last_.size() < 33)
                    return ++stats_.dropped_unauthenticated, void();
                if (!std::lexicographical_compare(hs_last_.begin() + 1, hs_last_.begin() + 33,
                                                  message.begin() + 1, message.begin() + 33))
                    return; // ours is greater: the peer becomes the responder
                hs_started_ = false;
                hs_last_.clear();
            }
            if (!hs_started_) {
                if (cipher_.configure(*settings_.local_identity, expected_, false))
                    return ++stats_.dropped_unauthenticated, void();
                hs_started_ = true;
                hs_initiator_ = false;
                hs_confirmed_ = false;
                if constexpr (has_disguise)
                    obfuscation_.configure(false);
            }
        }
        std::array<std::byte, 256> payload;
        std::size_t n = 0;
        auto ec = cipher_.read_handshake(message, payload, n);
        if (ec && C::is_stale(ec)) { // the peer did not get our answer
            if (!hs_last_.empty())
                send_raw_handshake(from, now);
            return;
        }
        if (ec) {
            ++stats_.dropped_unauthenticated;
            if (!hs_initiator_ && ec.default_error_condition() == condition::authentication_failed)
                send_reject(from, now);
            return;
        }
        hs_peer_ = from;
        if (cipher_.wants_handshake_write()) {
            hs_last_.resize(256);
            packet_buffer b(hs_last_, 0);
            ec = cipher_.write_handshake(b, {});
            hs_last_.resize(ec ? 0 : b.size());
            if (ec)
                return ++stats_.dropped_unauthenticated, void();
            send_raw_handshake(from, now);
        } else {
            hs_last_.clear(); // our last message was read: nothing of ours to repeat
        }
        update_pipeline_stats();
        // The initiator now knows the keys: it goes on with a sealed hello at once.
        if (cipher_.handshake_done() && hs_initiator_ && looking)
            send_hello(false, 0, from, now);
    } else {
        (void)message;
        (void)from;
        (void)now;
        ++stats_.dropped_malformed;
    }
}

template <reliability_policy R, fec_policy F, cipher_policy C, obfuscation_policy O,
          traversal_policy T>
bool connection_core<R, F, C, O, T>::accept_plain(time_point now) const noexcept {
    if (!cipher_.enabled())
        return false;
    return agreed_.cipher_off ||
           (proposal_ && (proposal_->flags & frame::feature_bits::cipher_off)) ||
           now < plain_grace_until_;
}

template <reliability_policy R, fec_policy F, cipher_policy C, obfuscation_policy O,
          traversal_policy T>
std::uint8_t connection_core<R, F, C, O, T>::hello_flags() const noexcept {
    const auto& want = settings_.cfg.features;
    std::uint8_t b = 0;
    if constexpr (has_fec) {
        b |= frame::feature_bits::fec_capable;
        if (want.fec)
            b |= frame::feature_bits::fec_on;
    }
    if constexpr (has_disguise) {
        b |= frame::feature_bits::disguise_capable;
        if (want.disguise)
            b |= frame::feature_bits::disguise_on;
    }
    if (handshakes && !want.cipher)
        b |= frame::feature_bits::cipher_off;
    return b;
}

template <reliability_policy R, fec_policy F, cipher_policy C, obfuscation_policy O,
          traversal_policy T>
void connection_core<R, F, C, O, T>::agree(const frame::hello& h, time_point now) {
    namespace fb = frame::feature_bits;
    const auto mine = hello_flags();
    peer_flags_ = h.features;
    pipeline_features f = agreed_;
    // Symmetric rules, so that both sides reach the same result from the two hellos.
    f.fec = has_fec && (h.features & fb::fec_capable) && ((mine | h.features) & fb::fec_on);
    f.disguise = has_disguise && (h.features & fb::disguise_capable) &&
                 ((mine | h.features) & fb::disguise_on);
    f.cipher_off = handshakes && (mine & fb::cipher_off) && (h.features & fb::cipher_off);
    if constexpr (has_fec) {
        fec_ratio theirs{h.fec_data, h.fec_parity};
        fec_ratio ours = fec_.ratio();
        // The stronger of the two wishes: more parity, then more data.
        if (detail::valid_ratio(theirs.data_shards, theirs.parity_shards) &&
            std::pair(theirs.parity_shards, theirs.data_shards) >
                std::pair(ours.parity_shards, ours.data_shards))
            f.ratio = theirs;
        else
            f.ratio = ours;
    }
    agreed_valid_ = true;
    apply_features(f, now);
    push_event(features_changed_event{agreed_, {}});
}

template <reliability_policy R, fec_policy F, cipher_policy C, obfuscation_policy O,
          traversal_policy T>
void connection_core<R, F, C, O, T>::apply_features(const pipeline_features& f, time_point now) {
    if (agreed_.cipher_off && !f.cipher_off) // the peer's unsealed packets may still be on the way
        plain_grace_until_ = now + plain_grace;
    agreed_ = f;
    if constexpr (has_fec) {
        if (fec_.set_ratio(f.ratio))
            agreed_.ratio = fec_.ratio();
        fec_.set_enabled(f.fec);
        bool adapt = f.fec && settings_.cfg.features.fec_adaptive;
        if (adapt && next_loss_sample_ == time_point::max()) {
            next_loss_sample_ = now + loss_sample_interval;
            loss_expected_ = fec_.stats().shards_expected;
            loss_lost_ = fec_.stats().shards_lost;
        } else if (!adapt) {
            next_loss_sample_ = time_point::max();
        }
    }
    if constexpr (has_disguise)
        obfuscation_.set_enabled(f.disguise);
    update_pipeline_stats();
}

template <reliability_policy R, fec_policy F, cipher_policy C, obfuscation_policy O,
          traversal_policy T>
void connection_core<R, F, C, O, T>::on_features(const frame::features& f, const endpoint& from,
                                                 time_point now) {
    namespace fb = frame::feature_bits;
    auto unpack = [&](const frame::features& x) {
        pipeline_features p = agreed_;
        p.fec = has_fec && (x.flags & fb::fec_on);
        p.disguise = has_disguise && (x.flags & fb::disguise_on);
        p.cipher_off = handshakes && (x.flags & fb::cipher_off);
        if (detail::valid_ratio(x.fec_data, x.fec_parity))
            p.ratio = fec_ratio{x.fec_data, x.fec_parity};
        return p;
    };
    if (f.is_ack) {
        if (!proposal_ || f.sequence != proposal_->sequence)
            return; // an answer to an older request, repeated
        bool refused = f.flags != proposal_->flags || f.fec_data != proposal_->fec_data ||
                       f.fec_parity != proposal_->fec_parity;
        proposal_.reset();
        proposal_tries_ = 0;
        next_proposal_ = time_point::max();
        apply_features(unpack(f), now);
        push_event(features_changed_event{agreed_, refused ? make_error_code(error::feature_refused)
                                                           : std::error_code{}});
        return;
    }
    if (last_answer_ && last_answer_->sequence == f.sequence)
        return send_control(*last_answer_, from, now); // our answer was lost
    if (proposal_) {
        // Both asked at once: the request of the side with the greater peer id wins,
        // the other withdraws its own (its user sees feature_refused).
        auto mine = settings_.local_id.bytes();
        auto theirs = remote_->bytes();
        if (std::lexicographical_compare(theirs.begin(), theirs.end(), mine.begin(), mine.end()))
            return; // ours wins: the peer will answer it
        proposal_.reset();
        proposal_tries_ = 0;
        next_proposal_ = time_point::max();
        push_event(features_changed_event{agreed_, make_error_code(error::feature_refused)});
    }
    auto wanted = unpack(f);
    pipeline_features got = wanted;
    got.cipher_off = wanted.cipher_off && !settings_.cfg.features.cipher; // needs our consent
    frame::features answer{f.sequence, detail::feature_flags(got), 0, 0, true};
    answer.fec_data = got.ratio.data_shards;
    answer.fec_parity = got.ratio.parity_shards;
    last_answer_ = answer;
    send_control(answer, from, now); // still with the old pipeline: the asker expects that
    apply_features(got, now);
    push_event(features_changed_event{agreed_, {}});
}

template <reliability_policy R, fec_policy F, cipher_policy C, obfuscation_policy O,
          traversal_policy T>
std::error_code connection_core<R, F, C, O, T>::request_features(const pipeline_features& wanted,
                                                                 time_point now) {
    if ((kind() != state_kind::connected && kind() != state_kind::relayed) || !path_ ||
        !agreed_valid_)
        return make_error_code(error::not_connected);
    if (proposal_)
        return make_error_code(error::operation_in_progress);
    if ((wanted.fec && (!has_fec || !(peer_flags_ & frame::feature_bits::fec_capable))) ||
        (wanted.disguise &&
         (!has_disguise || !(peer_flags_ & frame::feature_bits::disguise_capable))) ||
        (wanted.cipher_off && !handshakes))
        return make_error_code(error::feature_unavailable);
    if (!detail::valid_ratio(wanted.ratio.data_shards, wanted.ratio.parity_shards))
        return make_error_code(error::invalid_config);
    frame::features f{next_sequence_++, detail::feature_flags(wanted), wanted.ratio.data_shards,
                      wanted.ratio.parity_shards, false};
    proposal_ = f;
    send_control(f, *path_, now);
    proposal_tries_ = 1;
    next_proposal_ = now + settings_.cfg.timers.hello_interval;
    return {};
}

template <reliability_policy R, fec_policy F, cipher_policy C, obfuscation_policy O,
          traversal_policy T>
void connection_core<R, F, C, O, T>::sample_loss(time_point now) {
    next_loss_sample_ = now + loss_sample_interval;
    if constexpr (has_fec) {
        if (kind() != state_kind::connected && kind() != state_kind::relayed)
            return;
        // The shards of the peer's closed groups that never arrived: the loss its
        // parity faces. Both directions share the ratio, so this side's view decides
        // when it is the one receiving.
        const auto& st = fec_.stats();
        auto expected = st.shards_expected - loss_expected_;
        auto lost = st.shards_lost - loss_lost_;
        loss_expected_ = st.shards_expected;
        loss_lost_ = st.shards_lost;
        if (expected < 50)
            return; // too few packets to say anything
        ratio_control_.on_counts(lost, expected);
        auto want = ratio_control_.ratio();
        if (want != agreed_.ratio && !proposal_) {
            auto f = agreed_;
            f.ratio = want;
            request_features(f, now);
        }
    }
}

template <reliability_policy R, fec_policy F, cipher_policy C, obfuscation_policy O,
          traversal_policy T>
void connection_core<R, F, C, O, T>::update_pipeline_stats() noexcept {
    if constexpr (handshakes) {
        if (!cipher_.handshake_done())
            stats_.cipher = hs_started_ ? "handshaking" : "none";
        else if (agreed_.cipher_off)
            stats_.cipher = "off";
        else if constexpr (requires { cipher_.pattern_name(); })
            stats_.cipher = std::string(cipher_.pattern_name());
        else
            stats_.cipher = "on";
    } else {
        stats_.cipher = cipher_.enabled() ? "on" : "none";
    }
    if (has_fec && agreed_.fec) {
        char buf[16];
        std::snprintf(buf, sizeof buf, "%u:%u", unsigned{agreed_.ratio.data_shards},
                      unsigned{agreed_.ratio.parity_shards});
        stats_.fec = buf;
    } else {
        stats_.fec = "off";
    }
    stats_.disguise = has_disguise && agreed_.disguise ? "on" : "off";
}

} // namespace peerlink

#endif // PEERLINK_PROTO_IMPL_CONNECTION_PIPELINE_HPP
