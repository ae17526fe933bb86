// Implementation of peerlink/proto/connection.hpp.
#ifndef PEERLINK_PROTO_IMPL_CONNECTION_HPP
#define PEERLINK_PROTO_IMPL_CONNECTION_HPP

#include <algorithm>
#include <chrono>
#include <cstring>

namespace peerlink {

template <reliability_policy R, fec_policy F, cipher_policy C, obfuscation_policy O,
          traversal_policy T>
connection_core<R, F, C, O, T>::connection_core(const connection_settings& settings, time_point now)
    : settings_(settings), origin_(now),
      // A slot holds the largest datagram plus room for the pipeline on both sides.
      slot_size_(settings.cfg.transport.max_datagram_size + 2 * pipeline_overhead),
      max_payload_(settings.cfg.transport.max_datagram_size - pipeline_overhead), last_rx_(now),
      last_tx_(now) {
    settings_.transmit_slots = std::max<std::size_t>(settings_.transmit_slots, 4);
    settings_.receive_slots = std::max<std::size_t>(settings_.receive_slots, 1);
    tx_storage_.resize(settings_.transmit_slots * slot_size_);
    tx_slots_.resize(settings_.transmit_slots);
    rx_storage_.resize(settings_.receive_slots * max_payload_);
    rx_sizes_.resize(settings_.receive_slots);
    stats_.state = std::string(to_string(kind()));
    stats_.path = "none";
    if constexpr (has_fec) {
        agreed_.ratio = fec_.ratio();
        fec_.set_enabled(false); // until both sides agreed
    }
    if constexpr (has_disguise) // our first packets already, so a peer that needs it can answer
        obfuscation_.set_enabled(settings_.cfg.features.disguise);
    update_pipeline_stats();
    if constexpr (is_reliable) {
        kcp_settings ks = R::settings;
        // One KCP datagram fills one reliable frame; conv is unused (frames demultiplex).
        ks.mtu = static_cast<std::uint32_t>(max_payload_ - frame::header_size);
        ks.conv = 0;
        kcp_.emplace(ks, now);
        if (!ks.stream)
            staging_.resize(kcp_->max_message_size());
    }
}

template <reliability_policy R, fec_policy F, cipher_policy C, obfuscation_policy O,
          traversal_policy T>
std::uint64_t connection_core<R, F, C, O, T>::micros(time_point now) const noexcept {
    // +1: a timestamp of 0 means "none" on the wire.
    return static_cast<std::uint64_t>(
               std::chrono::duration_cast<std::chrono::microseconds>(now - origin_).count()) +
           1;
}

template <reliability_policy R, fec_policy F, cipher_policy C, obfuscation_policy O,
          traversal_policy T>
void connection_core<R, F, C, O, T>::apply(const connection_event& e, time_point now) {
    const auto& t = settings_.cfg.timers;
    transition_context ctx{now, t.backoff_initial, t.backoff_max, 3};
    auto before = kind();
    state_ = transition(state_, e, ctx);
    auto after = kind();
    if (before == after && !std::holds_alternative<event::direct_path_found>(e))
        return;
    if (auto* c = std::get_if<state::connected>(&state_))
        path_ = c->path;
    stats_.state = std::string(to_string(after));
    stats_.path = after == state_kind::connected ? "direct"
                  : after == state_kind::relayed ? "relayed"
                                                 : "none";
    if (path_)
        stats_.remote_endpoint = path_->to_string();
    if (before == after)
        return;
    if (after == state_kind::reconnecting || after == state_kind::punching)
        start_attempt(now);
    if (after != state_kind::reconnecting && after != state_kind::punching) {
        next_hello_ = time_point::max();
        attempt_deadline_ = time_point::max();
    }
    push_event(state_changed_event{before, after});
}

template <reliability_policy R, fec_policy F, cipher_policy C, obfuscation_policy O,
          traversal_policy T>
void connection_core<R, F, C, O, T>::push_event(const core_event& e) noexcept {
    if (events_count_ < events_.size()) {
        events_[(events_head_ + events_count_) % events_.size()] = e;
        ++events_count_;
    }
}

template <reliability_policy R, fec_policy F, cipher_policy C, obfuscation_policy O,
          traversal_policy T>
std::error_code connection_core<R, F, C, O, T>::connect(const traversal_request& request,
                                                        std::optional<peer_id> expected,
                                                        time_point now) {
    if (kind() != state_kind::idle || listening_)
        return make_error_code(error::already_connecting);
    expected_ = expected;
    if constexpr (has_disguise)
        obfuscation_.configure(true); // the initiator asks (DNS: queries)
    apply(event::connect_requested{false}, now);
    if (auto ec = traversal_.start(request, now)) {
        apply(event::fatal_error{ec}, now);
        return ec;
    }
    path_ = traversal_.poll_path();
    apply(event::candidates_gathered{}, now); // gathering -> punching: hellos start
    return {};
}

template <reliability_policy R, fec_policy F, cipher_policy C, obfuscation_policy O,
          traversal_policy T>
std::error_code connection_core<R, F, C, O, T>::accept(std::optional<peer_id> expected,
                                                       time_point) {
    if (kind() != state_kind::idle || listening_)
        return make_error_code(error::already_connecting);
    expected_ = expected;
    listening_ = true;
    if constexpr (has_disguise)
        obfuscation_.configure(false); // the responder answers (DNS: responses)
    return {};
}

template <reliability_policy R, fec_policy F, cipher_policy C, obfuscation_policy O,
          traversal_policy T>
void connection_core<R, F, C, O, T>::close(time_point now) {
    if (is_terminal(kind()))
        return;
    if (path_ && peer_is_live() && !closing_sent_) {
        // Two copies: the close is not retransmitted, and one loss should not leave
        // the peer waiting for its idle timeout.
        send_control(frame::close{0}, *path_, now);
        send_control(frame::close{0}, *path_, now);
        closing_sent_ = true;
    }
    listening_ = false;
    apply(event::close_requested{}, now);
}

template <reliability_policy R, fec_policy F, cipher_policy C, obfuscation_policy O,
          traversal_policy T>
bool connection_core<R, F, C, O, T>::peer_is_live() const noexcept {
    auto k = kind();
    return k == state_kind::connected || k == state_kind::relayed || k == state_kind::punching ||
           k == state_kind::reconnecting;
}

template <reliability_policy R, fec_policy F, cipher_policy C, obfuscation_policy O,
          traversal_policy T>
void connection_core<R, F, C, O, T>::start_attempt(time_point now) {
    next_hello_ = now;
    attempt_deadline_ = now + settings_.cfg.timers.connect_timeout;
}

template <reliability_policy R, fec_policy F, cipher_policy C, obfuscation_policy O,
          traversal_policy T>
void connection_core<R, F, C, O, T>::handle_datagram(std::span<std::byte> bytes,
                                                     const endpoint& from, time_point now) {
    ++stats_.packets_received;
    stats_.bytes_received += bytes.size();
    packet_buffer p(bytes, 0);
    p.resize(bytes.size());
    auto drop_malformed = [&] {
        ++stats_.dropped_malformed;
    };
    if constexpr (has_disguise) {
        // The peer may disguise before or after we do: take both forms.
        if (O::recognizes(p.data())) {
            bool was = obfuscation_.enabled();
            obfuscation_.set_enabled(true);
            auto ec = obfuscation_.unwrap(p);
            obfuscation_.set_enabled(was);
            if (ec)
                return drop_malformed();
        }
    } else if (obfuscation_.unwrap(p)) {
        return drop_malformed();
    }
    if constexpr (handshakes) {
        if (p.empty())
            return drop_malformed();
        auto kind_byte = p.data()[0];
        if (kind_byte == frame::envelope::rejected) {
            if (hs_initiator_ && !hs_confirmed_ && path_ && from == *path_)
                hs_rejected_ = true;
            return;
        }
        if (kind_byte == frame::envelope::handshake) {
            p.consume_front(frame::envelope::size);
            return on_handshake(p.data(), from, now);
        }
        if (kind_byte == frame::envelope::sealed) {
            p.consume_front(frame::envelope::size);
            if (!cipher_.handshake_done() || cipher_.open(p, now))
                return ++stats_.dropped_unauthenticated, void();
            if (!hs_confirmed_) { // the peer has our keys: no handshake message to repeat
                hs_confirmed_ = true;
                hs_last_ = {};
            }
        } else if (!accept_plain(now)) {
            return ++stats_.dropped_unauthenticated, void();
        }
    } else if (cipher_.open(p, now)) {
        return ++stats_.dropped_unauthenticated, void();
    }
    if (fec_.decode(p, now))
        return drop_malformed();
    auto deliver = [&](packet_buffer& packet) {
        if (packet.empty())
            return; // FEC parity only
        std::error_code ec;
        auto f = frame::decode(packet.data(), ec);
        if (!f)
            return drop_malformed();
        on_frame(*f, from, now);
    };
    deliver(p);
    while (fec_.poll_recovered(p)) {
        ++stats_.fec_recovered;
        deliver(p);
    }
}

template <reliability_policy R, fec_policy F, cipher_policy C, obfuscation_policy O,
          traversal_policy T>
void connection_core<R, F, C, O, T>::on_frame(const frame::any_frame& f, const endpoint& from,
                                              time_point now) {
    if (is_terminal(kind()))
        return;
    if (auto* h = std::get_if<frame::hello>(&f))
        return on_hello(*h, from, now);
    // Everything else must come from the peer on its path: a stranger gets nowhere.
    if (!remote_ || !path_ || from != *path_) {
        ++stats_.dropped_unexpected_peer;
        return;
    }
    last_rx_ = now;
    std::visit(
        [&](const auto& v) {
            using V = std::decay_t<decltype(v)>;
            if constexpr (std::is_same_v<V, frame::data>) {
                if (kind() != state_kind::connected && kind() != state_kind::relayed)
                    return;
                if (rx_count_ == rx_sizes_.size() || v.payload.size() > max_payload_) {
                    ++stats_.dropped_receive_queue_full;
                    return;
                }
                auto i = (rx_head_ + rx_count_) % rx_sizes_.size();
                if (!v.payload.empty())
                    std::memcpy(rx_storage_.data() + i * max_payload_, v.payload.data(),
                                v.payload.size());
                rx_sizes_[i] = v.payload.size();
                ++rx_count_;
                ++stats_.datagrams_received;
            } else if constexpr (std::is_same_v<V, frame::ping>) {
                send_control(frame::pong{v.timestamp_us}, from, now);
            } else if constexpr (std::is_same_v<V, frame::pong>) {
                on_rtt_sample(v.echo_us, now);
            } else if constexpr (std::is_same_v<V, frame::close>) {
                if (close_tries_ > 0) { // the peer's answer to our close: done
                    close_tries_ = 0;
                    next_close_ = time_point::max();
                    apply(event::close_requested{}, now);
                    return;
                }
                send_control(frame::close{close_reason_ack}, from, now);
                peer_closed_ = true;
                apply(event::peer_closed{}, now);
            } else if constexpr (std::is_same_v<V, frame::features>) {
                if (kind() == state_kind::connected || kind() == state_kind::relayed)
                    on_features(v, from, now);
            } else if constexpr (std::is_same_v<V, frame::reliable>) {
                if constexpr (is_reliable) {
                    if (kcp_->input(v.payload, now)) {
                        ++stats_.dropped_malformed;
                        return;
                    }
                    drain_reliable(now);
                    check_reliable(now);
                } else {
                    ++stats_.dropped_malformed; // no reliability layer here to take it
                }
            }
        },
        f);
}

template <reliability_policy R, fec_policy F, cipher_policy C, obfuscation_policy O,
          traversal_policy T>
void connection_core<R, F, C, O, T>::on_hello(const frame::hello& h, const endpoint& from,
                                              time_point now) {
    auto id = peer_id::from_bytes(h.peer_id);
    if ((expected_ && id != *expected_) || (remote_ && id != *remote_)) {
        ++stats_.dropped_unexpected_peer;
        return;
    }
    if constexpr (handshakes) {
        // The hello came sealed: the id it claims must be the one the handshake proved.
        if (cipher_.remote_static() != id) {
            ++stats_.dropped_unexpected_peer;
            return;
        }
    }
    auto k = kind();
    bool looking = k == state_kind::punching || k == state_kind::reconnecting ||
                   k == state_kind::waiting || (k == state_kind::idle && listening_);
    bool live = k == state_kind::connected || k == state_kind::relayed;
    if (!looking && !live)
        return;
    if (!h.is_ack)
        send_hello(true, h.timestamp_us, from, now); // also re-answers a hello whose ack was lost
    else if (h.echo_us == 0 || h.echo_us > micros(now))
        return ++stats_.dropped_malformed, void(); // an ack must answer a hello of ours
    else
        on_rtt_sample(h.echo_us, now);
    last_rx_ = now;
    remote_ = id;
    remote_connection_id_ = h.connection_id;
    if (!agreed_valid_)
        agree(h, now);
    if (k == state_kind::idle) {
        listening_ = false;
        apply(event::connect_requested{false}, now);
        apply(event::candidates_gathered{}, now);
    }
    if (!live || from != path_) // found, or moved (the peer's NAT rebound the mapping)
        apply(event::direct_path_found{from}, now);
}

template <reliability_policy R, fec_policy F, cipher_policy C, obfuscation_policy O,
          traversal_policy T>
void connection_core<R, F, C, O, T>::on_rtt_sample(std::uint64_t echo_us, time_point now) noexcept {
    auto sent = micros(now);
    if (echo_us == 0 || echo_us > sent)
        return;
    std::chrono::microseconds rtt(sent - echo_us);
    stats_.last_rtt = rtt;
    if (stats_.srtt.count() == 0) {
        stats_.srtt = rtt;
        stats_.min_rtt = rtt;
    } else {
        stats_.srtt = (stats_.srtt * 7 + rtt) / 8; // RFC 6298's alpha = 1/8
        stats_.min_rtt = std::min(stats_.min_rtt, rtt);
    }
}

template <reliability_policy R, fec_policy F, cipher_policy C, obfuscation_policy O,
          traversal_policy T>
void connection_core<R, F, C, O, T>::handle_timeout(time_point now) {
    const auto& t = settings_.cfg.timers;
    if constexpr (is_reliable) {
        if (stream_open()) {
            kcp_->handle_timeout(now);
            drain_reliable(now);
            check_reliable(now);
        }
    }
    if (now >= close_deadline_) {
        close_deadline_ = time_point::max();
        start_closing(now);
    }
    if (now >= next_proposal_) {
        if (proposal_ && proposal_tries_ < max_proposal_tries && path_ &&
            (kind() == state_kind::connected || kind() == state_kind::relayed)) {
            send_control(*proposal_, *path_, now);
            ++proposal_tries_;
            next_proposal_ = now + settings_.cfg.timers.hello_interval;
        } else { // never answered: nothing changed
            proposal_.reset();
            next_proposal_ = time_point::max();
            push_event(features_changed_event{agreed_, make_error_code(error::handshake_timeout)});
        }
    }
    if (now >= next_loss_sample_)
        sample_loss(now);
    if (now >= next_close_) {
        if (close_tries_ < max_close_tries && path_ && !is_terminal(kind())) {
            send_control(frame::close{0}, *path_, now);
            ++close_tries_;
            next_close_ = now + settings_.cfg.timers.hello_interval;
        } else {
            close_tries_ = 0;
            next_close_ = time_point::max();
            apply(event::close_requested{}, now); // no answer: the peer will time out
        }
    }
    switch (kind()) {
    case state_kind::punching:
    case state_kind::reconnecting:
        if (now >= attempt_deadline_) {
            apply(event::attempt_failed{make_error_code(hs_rejected_ ? error::authentication_failed
                                                                     : error::handshake_timeout)},
                  now);
            if (kind() == state_kind::reconnecting) // the next try of the round
                start_attempt(now);
            break;
        }
        if (now >= next_hello_ && path_) {
            send_hello(false, 0, *path_, now);
            next_hello_ = now + t.hello_interval;
        }
        break;
    case state_kind::waiting:
        if (now >= std::get<state::waiting>(state_).until) {
            apply(event::retry_timer_fired{}, now);
            if (kind() == state_kind::gathering) // a first connect: gather again, then punch
                apply(event::candidates_gathered{}, now);
        }
        break;
    case state_kind::connected:
    case state_kind::relayed:
        if (now - last_rx_ >= t.idle_timeout) {
            apply(event::path_lost{make_error_code(error::peer_timeout)}, now);
            break;
        }
        if (now - last_tx_ >= t.keepalive_interval && path_)
            send_control(frame::ping{micros(now)}, *path_, now);
        break;
    default:
        break;
    }
}

template <reliability_policy R, fec_policy F, cipher_policy C, obfuscation_policy O,
          traversal_policy T>
std::optional<time_point> connection_core<R, F, C, O, T>::poll_timeout() const noexcept {
    const auto& t = settings_.cfg.timers;
    std::optional<time_point> next;
    switch (kind()) {
    case state_kind::punching:
    case state_kind::reconnecting:
        // Hellos need a path; without one only the attempt's deadline runs.
        next = path_ ? std::min(next_hello_, attempt_deadline_) : attempt_deadline_;
        break;
    case state_kind::waiting:
        next = std::get<state::waiting>(state_).until;
        break;
    case state_kind::connected:
    case state_kind::relayed:
        next = std::min(last_rx_ + t.idle_timeout, last_tx_ + t.keepalive_interval);
        break;
    default:
        return std::nullopt;
    }
    if constexpr (is_reliable) {
        if (auto k = kcp_->poll_timeout(); k && stream_open())
            next = std::min(*next, *k);
    }
    return std::min({*next, close_deadline_, next_close_, next_proposal_, next_loss_sample_});
}

template <reliability_policy R, fec_policy F, cipher_policy C, obfuscation_policy O,
          traversal_policy T>
std::error_code connection_core<R, F, C, O, T>::send_datagram(std::span<const std::byte> payload,
                                                              time_point now) {
    if ((kind() != state_kind::connected && kind() != state_kind::relayed) || !path_)
        return make_error_code(error::not_connected);
    if (payload.size() > max_payload_)
        return make_error_code(error::message_too_large);
    auto p = open_slot();
    if (!p)
        return std::make_error_code(std::errc::operation_would_block);
    p->append(payload);
    frame::prepend_header(*p, frame::frame_type::data);
    ++stats_.datagrams_sent;
    commit(*p, *path_, now);
    return {};
}

template <reliability_policy R, fec_policy F, cipher_policy C, obfuscation_policy O,
          traversal_policy T>
std::size_t connection_core<R, F, C, O, T>::send_capacity() const noexcept {
    // One slot stays free for control frames (hello answers, pongs, close).
    auto free = tx_slots_.size() - tx_count_;
    return free > 1 ? free - 1 : 0;
}

template <reliability_policy R, fec_policy F, cipher_policy C, obfuscation_policy O,
          traversal_policy T>
void connection_core<R, F, C, O, T>::send_hello(bool ack, std::uint64_t echo_us, const endpoint& to,
                                                time_point now) {
    if constexpr (handshakes) {
        if (!cipher_.handshake_done())
            return send_handshake(to, now);
        if (!hs_confirmed_ && !hs_last_.empty()) // our last message may have been lost
            send_raw_handshake(to, now);
    }
    frame::hello h;
    h.features = hello_flags();
    if constexpr (has_fec) {
        h.fec_data = fec_.ratio().data_shards;
        h.fec_parity = fec_.ratio().parity_shards;
    }
    auto id = settings_.local_id.bytes();
    std::copy(id.begin(), id.end(), h.peer_id.begin());
    h.connection_id = settings_.connection_id;
    h.timestamp_us = micros(now);
    h.echo_us = echo_us;
    h.is_ack = ack;
    sealing_hello_ = true; // hellos stay sealed even with the cipher agreed off
    send_control(h, to, now);
    sealing_hello_ = false;
}

template <reliability_policy R, fec_policy F, cipher_policy C, obfuscation_policy O,
          traversal_policy T>
template <class Control>
void connection_core<R, F, C, O, T>::send_control(const Control& c, const endpoint& to,
                                                  time_point now) {
    auto p = open_slot();
    if (!p) {
        ++stats_.dropped_send_errors; // the timers send it again
        return;
    }
    frame::encode(*p, c);
    commit(*p, to, now);
}

template <reliability_policy R, fec_policy F, cipher_policy C, obfuscation_policy O,
          traversal_policy T>
std::optional<packet_buffer> connection_core<R, F, C, O, T>::open_slot() noexcept {
    if (tx_count_ == tx_slots_.size())
        return std::nullopt;
    auto i = (tx_head_ + tx_count_) % tx_slots_.size();
    std::span<std::byte> storage(tx_storage_.data() + i * slot_size_, slot_size_);
    return packet_buffer(storage, pipeline_overhead);
}

template <reliability_policy R, fec_policy F, cipher_policy C, obfuscation_policy O,
          traversal_policy T>
void connection_core<R, F, C, O, T>::commit(packet_buffer& p, const endpoint& to, time_point now) {
    if (fec_.encode(p, now)) {
        ++stats_.dropped_send_errors;
        return;
    }
    commit_one(p, to, now);
    // Parity packets go out behind the packet that completed their group.
    while (true) {
        auto parity = open_slot();
        if (!parity || !fec_.poll_parity(*parity))
            break;
        commit_one(*parity, to, now);
    }
}

template <reliability_policy R, fec_policy F, cipher_policy C, obfuscation_policy O,
          traversal_policy T>
void connection_core<R, F, C, O, T>::commit_one(packet_buffer& p, const endpoint& to,
                                                time_point now) {
    if constexpr (handshakes) {
        if (!cipher_.handshake_done()) { // nothing but handshake messages before the keys
            ++stats_.dropped_send_errors;
            return;
        }
        if (!agreed_.cipher_off || sealing_hello_) {
            if (cipher_.seal(p, now)) {
                ++stats_.dropped_send_errors;
                return;
            }
            p.prepend(frame::envelope::size)[0] = frame::envelope::sealed;
        }
    } else if (cipher_.seal(p, now)) {
        ++stats_.dropped_send_errors;
        return;
    }
    if (obfuscation_.wrap(p)) {
        ++stats_.dropped_send_errors;
        return;
    }
    push_slot(p, to, now);
}

template <reliability_policy R, fec_policy F, cipher_policy C, obfuscation_policy O,
          traversal_policy T>
void connection_core<R, F, C, O, T>::push_slot(packet_buffer& p, const endpoint& to,
                                               time_point now) {
    auto i = (tx_head_ + tx_count_) % tx_slots_.size();
    auto base = tx_storage_.data() + i * slot_size_;
    tx_slots_[i] = slot{static_cast<std::size_t>(p.data().data() - base), p.size(), to};
    ++tx_count_;
    ++stats_.packets_sent;
    stats_.bytes_sent += p.size();
    last_tx_ = now;
}

template <reliability_policy R, fec_policy F, cipher_policy C, obfuscation_policy O,
          traversal_policy T>
transmit connection_core<R, F, C, O, T>::peek_transmit(std::size_t i) const noexcept {
    auto j = (tx_head_ + i) % tx_slots_.size();
    const auto& s = tx_slots_[j];
    return {std::span<const std::byte>(tx_storage_.data() + j * slot_size_ + s.offset, s.size),
            s.to};
}

template <reliability_policy R, fec_policy F, cipher_policy C, obfuscation_policy O,
          traversal_policy T>
void connection_core<R, F, C, O, T>::pop_transmits(std::size_t n) noexcept {
    n = std::min(n, tx_count_);
    tx_head_ = (tx_head_ + n) % tx_slots_.size();
    tx_count_ -= n;
}

template <reliability_policy R, fec_policy F, cipher_policy C, obfuscation_policy O,
          traversal_policy T>
std::optional<std::span<const std::byte>>
connection_core<R, F, C, O, T>::peek_datagram() const noexcept {
    if (rx_count_ == 0)
        return std::nullopt;
    return std::span<const std::byte>(rx_storage_.data() + rx_head_ * max_payload_,
                                      rx_sizes_[rx_head_]);
}

template <reliability_policy R, fec_policy F, cipher_policy C, obfuscation_policy O,
          traversal_policy T>
void connection_core<R, F, C, O, T>::pop_datagram() noexcept {
    if (rx_count_ == 0)
        return;
    rx_head_ = (rx_head_ + 1) % rx_sizes_.size();
    --rx_count_;
}

template <reliability_policy R, fec_policy F, cipher_policy C, obfuscation_policy O,
          traversal_policy T>
std::optional<core_event> connection_core<R, F, C, O, T>::poll_event() noexcept {
    if (events_count_ == 0)
        return std::nullopt;
    auto e = events_[events_head_];
    events_head_ = (events_head_ + 1) % events_.size();
    --events_count_;
    return e;
}

template <reliability_policy R, fec_policy F, cipher_policy C, obfuscation_policy O,
          traversal_policy T>
bool connection_core<R, F, C, O, T>::stream_open() const noexcept {
    auto k = kind();
    return k == state_kind::connected || k == state_kind::relayed ||
           k == state_kind::reconnecting || k == state_kind::waiting;
}

template <reliability_policy R, fec_policy F, cipher_policy C, obfuscation_policy O,
          traversal_policy T>
void connection_core<R, F, C, O, T>::drain_reliable(time_point now) {
    if constexpr (is_reliable) {
        if (!path_)
            return;
        while (auto n = kcp_->next_transmit_size()) {
            auto p = open_slot();
            if (!p)
                return; // the rest waits in KCP until refill()
            auto dst = p->append(n);
            p->resize(kcp_->poll_transmit(dst));
            frame::prepend_header(*p, frame::frame_type::reliable);
            commit(*p, *path_, now);
        }
    } else {
        (void)now;
    }
}

template <reliability_policy R, fec_policy F, cipher_policy C, obfuscation_policy O,
          traversal_policy T>
void connection_core<R, F, C, O, T>::refill(time_point now) {
    if (kind() == state_kind::connected || kind() == state_kind::relayed)
        drain_reliable(now);
}

template <reliability_policy R, fec_policy F, cipher_policy C, obfuscation_policy O,
          traversal_policy T>
void connection_core<R, F, C, O, T>::check_reliable(time_point now) {
    if constexpr (is_reliable) {
        if (kcp_->is_dead() && !is_terminal(kind())) {
            apply(event::fatal_error{kcp_->error()}, now);
            return;
        }
        if (close_deadline_ != time_point::max() && kcp_->waiting_segments() == 0) {
            close_deadline_ = time_point::max();
            start_closing(now);
        }
    } else {
        (void)now;
    }
}

template <reliability_policy R, fec_policy F, cipher_policy C, obfuscation_policy O,
          traversal_policy T>
void connection_core<R, F, C, O, T>::close_after_flush(time_point now) {
    if (is_terminal(kind()))
        return;
    if constexpr (is_reliable) {
        if (kcp_->waiting_segments() != 0 &&
            (kind() == state_kind::connected || kind() == state_kind::relayed)) {
            close_deadline_ = now + settings_.cfg.timers.connect_timeout;
            kcp_->flush(now);
            drain_reliable(now);
            return;
        }
    }
    start_closing(now);
}

template <reliability_policy R, fec_policy F, cipher_policy C, obfuscation_policy O,
          traversal_policy T>
void connection_core<R, F, C, O, T>::start_closing(time_point now) {
    if (is_terminal(kind()) || close_tries_ > 0)
        return;
    if (!path_ || (kind() != state_kind::connected && kind() != state_kind::relayed))
        return close(now);
    // The close is repeated until the peer answers it with its own, so that a lost
    // close frame does not leave the peer waiting for its idle timeout.
    send_control(frame::close{0}, *path_, now);
    close_tries_ = 1;
    next_close_ = now + settings_.cfg.timers.hello_interval;
}

template <reliability_policy R, fec_policy F, cipher_policy C, obfuscation_policy O,
          traversal_policy T>
std::size_t connection_core<R, F, C, O, T>::stream_write(std::span<const std::byte> bytes,
                                                         time_point now, std::error_code& ec) {
    static_assert(is_reliable, "needs a reliable policy (kcp<...>)");
    ec.clear();
    if (!stream_open() || close_deadline_ != time_point::max()) {
        ec = make_error_code(error::not_connected);
        return 0;
    }
    auto n = std::min({bytes.size(), kcp_->send_capacity(), kcp_->max_message_size()});
    if (n == 0 && !bytes.empty()) {
        ec = kcp_->is_dead() ? kcp_->error()
                             : std::make_error_code(std::errc::operation_would_block);
        return 0;
    }
    if (auto e = kcp_->send(bytes.first(n))) {
        ec = e;
        return 0;
    }
    // Send now rather than on the next interval tick, as kcp-go does on Write.
    kcp_->flush(now);
    drain_reliable(now);
    return n;
}

template <reliability_policy R, fec_policy F, cipher_policy C, obfuscation_policy O,
          traversal_policy T>
std::size_t connection_core<R, F, C, O, T>::stream_read(std::span<std::byte> out,
                                                        std::error_code& ec) {
    static_assert(is_reliable, "needs a reliable policy (kcp<...>)");
    ec.clear();
    std::size_t n = 0;
    if constexpr (R::settings.stream) {
        n = kcp_->receive(out, ec);
    } else {
        if (staging_off_ == staging_len_ && kcp_->readable()) {
            staging_len_ = kcp_->receive(staging_, ec);
            staging_off_ = 0;
        }
        n = std::min(out.size(), staging_len_ - staging_off_);
        if (n) {
            std::memcpy(out.data(), staging_.data() + staging_off_, n);
            staging_off_ += n;
            ec.clear();
        } else if (!ec) {
            ec = std::make_error_code(std::errc::operation_would_block);
        }
    }
    if (n)
        return n;
    if (ec == kcp_error::would_block)
        ec = std::make_error_code(std::errc::operation_would_block);
    if (ec == std::errc::operation_would_block)
        ec = end_of_stream();
    return 0;
}

template <reliability_policy R, fec_policy F, cipher_policy C, obfuscation_policy O,
          traversal_policy T>
std::error_code connection_core<R, F, C, O, T>::end_of_stream() const noexcept {
    if constexpr (is_reliable)
        if (kcp_->is_dead())
            return kcp_->error();
    if (!is_terminal(kind()))
        return std::make_error_code(std::errc::operation_would_block);
    if (peer_closed_)
        return make_error_code(error::connection_closed);
    if (auto* f = std::get_if<state::failed>(&state_))
        return f->reason;
    return make_error_code(error::not_connected);
}

template <reliability_policy R, fec_policy F, cipher_policy C, obfuscation_policy O,
          traversal_policy T>
std::error_code connection_core<R, F, C, O, T>::send_message(std::span<const std::byte> message,
                                                             time_point now) {
    static_assert(is_reliable && !R::settings.stream, "needs KCP in message mode");
    if (!stream_open() || close_deadline_ != time_point::max())
        return make_error_code(error::not_connected);
    if (auto e = kcp_->send(message))
        return e == kcp_error::send_window_full
                   ? std::make_error_code(std::errc::operation_would_block)
                   : e;
    kcp_->flush(now);
    drain_reliable(now);
    return {};
}

template <reliability_policy R, fec_policy F, cipher_policy C, obfuscation_policy O,
          traversal_policy T>
std::size_t connection_core<R, F, C, O, T>::receive_message(std::span<std::byte> out,
                                                            std::error_code& ec) {
    static_assert(is_reliable && !R::settings.stream, "needs KCP in message mode");
    if (staging_off_ != staging_len_) { // the rest of a message half read as a stream
        auto n = staging_len_ - staging_off_;
        if (n > out.size()) {
            ec = make_error_code(error::buffer_too_small);
            return 0;
        }
        std::memcpy(out.data(), staging_.data() + staging_off_, n);
        staging_off_ = staging_len_;
        ec.clear();
        return n;
    }
    auto n = kcp_->receive(out, ec);
    if (!ec)
        return n;
    if (ec == kcp_error::would_block)
        ec = end_of_stream();
    return 0;
}

template <reliability_policy R, fec_policy F, cipher_policy C, obfuscation_policy O,
          traversal_policy T>
std::size_t connection_core<R, F, C, O, T>::peek_message_size() const noexcept {
    static_assert(is_reliable && !R::settings.stream, "needs KCP in message mode");
    return staging_off_ != staging_len_ ? staging_len_ - staging_off_ : kcp_->peek_size();
}

template <reliability_policy R, fec_policy F, cipher_policy C, obfuscation_policy O,
          traversal_policy T>
std::size_t connection_core<R, F, C, O, T>::max_message_size() const noexcept {
    static_assert(is_reliable, "needs a reliable policy (kcp<...>)");
    return kcp_->max_message_size();
}

template <reliability_policy R, fec_policy F, cipher_policy C, obfuscation_policy O,
          traversal_policy T>
bool connection_core<R, F, C, O, T>::stream_writable() const noexcept {
    static_assert(is_reliable, "needs a reliable policy (kcp<...>)");
    return !stream_open() || kcp_->send_capacity() > 0 || kcp_->is_dead();
}

template <reliability_policy R, fec_policy F, cipher_policy C, obfuscation_policy O,
          traversal_policy T>
bool connection_core<R, F, C, O, T>::stream_readable() const noexcept {
    static_assert(is_reliable, "needs a reliable policy (kcp<...>)");
    return staging_off_ != staging_len_ || kcp_->readable() || kcp_->is_dead() ||
           is_terminal(kind());
}

template <reliability_policy R, fec_policy F, cipher_policy C, obfuscation_policy O,
          traversal_policy T>
bool connection_core<R, F, C, O, T>::all_acknowledged() const noexcept {
    static_assert(is_reliable, "needs a reliable policy (kcp<...>)");
    return kcp_->waiting_segments() == 0;
}

} // namespace peerlink

#include <peerlink/proto/impl/connection_pipeline.hpp>

#endif // PEERLINK_PROTO_IMPL_CONNECTION_HPP
