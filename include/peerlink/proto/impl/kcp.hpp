// Implementation of peerlink/proto/kcp.hpp. Function names follow ikcp.c, so the
// two can be read side by side; comments say where and why this code differs.
#ifndef PEERLINK_PROTO_IMPL_KCP_HPP
#define PEERLINK_PROTO_IMPL_KCP_HPP

#include <algorithm>
#include <chrono>
#include <cstring>
#include <limits>
#include <new>

namespace peerlink {

namespace detail {

inline constexpr std::uint32_t kcp_rto_nodelay = 30;
inline constexpr std::uint32_t kcp_rto_min = 100;
inline constexpr std::uint32_t kcp_rto_default = 200;
inline constexpr std::uint32_t kcp_rto_max = 60000;
inline constexpr std::uint32_t kcp_thresh_init = 2;
inline constexpr std::uint32_t kcp_thresh_min = 2;
inline constexpr std::uint32_t kcp_probe_init = 7000;
inline constexpr std::uint32_t kcp_probe_limit = 120000;
inline constexpr std::uint8_t kcp_ask_send = 1;
inline constexpr std::uint8_t kcp_ask_tell = 2;
// ikcp.c assumes the peer's window is IKCP_WND_RCV until it hears from it.
inline constexpr std::uint32_t kcp_initial_remote_window = 128;
// ikcp.c lets a segment's RTO grow without bound; past 2^30 ms the u32 arithmetic
// on resendts would wrap, so it stops there (only reachable with dead_link 0).
inline constexpr std::uint32_t kcp_segment_rto_cap = 1u << 30;
inline constexpr std::int64_t kcp_never = std::numeric_limits<std::int64_t>::max();

inline std::size_t kcp_ceil_pow2(std::size_t n) noexcept {
    std::size_t p = 1;
    while (p < n)
        p <<= 1;
    return p;
}

// Buffers start small and grow 4x at a time: a ring of 4 segments holds a small
// message and its neighbours; the full window is reached after a few steps.
inline constexpr std::size_t kcp_first_slots = 4;
inline constexpr std::size_t kcp_first_acks = 16;
inline constexpr std::size_t kcp_growth = 4;

inline std::size_t kcp_grow(std::size_t size, std::size_t need, std::size_t first,
                            std::size_t max) noexcept {
    return std::min(kcp_ceil_pow2(std::max({need, size * kcp_growth, first})), max);
}

// Uninitialised for bytes (pages no segment touched cost nothing); null on failure.
template <class T>
std::unique_ptr<T[]> kcp_allocate(std::size_t n) noexcept {
    return std::unique_ptr<T[]>(new (std::nothrow) T[n]);
}

template <class T>
constexpr bool kcp_in_range(T v, T lo, T hi) noexcept {
    return lo <= v && v <= hi;
}

inline kcp_settings kcp_normalize(kcp_settings s) noexcept {
    s.nodelay = std::clamp(s.nodelay, 0, 2);
    s.interval_ms = std::clamp<std::uint32_t>(s.interval_ms, 1, 5000);
    s.snd_wnd = std::clamp<std::uint32_t>(s.snd_wnd, 1, 65535);
    s.rcv_wnd = std::clamp<std::uint32_t>(s.rcv_wnd, 1, 65535);
    s.mtu = std::clamp<std::uint32_t>(s.mtu, 50, 65535);
    s.min_rto_ms = std::min<std::uint32_t>(s.min_rto_ms, kcp_rto_max);
    s.send_queue = std::min<std::uint32_t>(s.send_queue, 65535);
    return s;
}

} // namespace detail

inline std::error_code kcp_validate(const kcp_settings& s) noexcept {
    using detail::kcp_in_range;
    const bool ok = kcp_in_range(s.nodelay, 0, 2) &&
                    kcp_in_range<std::uint32_t>(s.interval_ms, 1, 5000) &&
                    kcp_in_range<std::uint32_t>(s.snd_wnd, 1, 65535) &&
                    kcp_in_range<std::uint32_t>(s.rcv_wnd, 1, 65535) &&
                    kcp_in_range<std::uint32_t>(s.mtu, 50, 65535) &&
                    s.min_rto_ms <= detail::kcp_rto_max && s.send_queue <= 65535;
    return ok ? std::error_code{} : make_error_code(error::invalid_config);
}

inline kcp_core::kcp_core(const kcp_settings& s, time_point now) noexcept
    : settings_(detail::kcp_normalize(s)), origin_(now) {
    const auto& c = settings_;
    mss_ = c.mtu - static_cast<std::uint32_t>(kcp_header_size);
    max_fragments_ = std::clamp<std::uint32_t>(c.rcv_wnd - 1, 1, 255);
    queue_limit_ = c.send_queue ? c.send_queue : std::max(c.snd_wnd, max_fragments_);
    if (!c.stream) // a message of max_fragments_ must fit once the queue is empty
        queue_limit_ = std::max(queue_limit_, max_fragments_);

    // The most each buffer grows to; nothing is allocated yet. In flight never
    // exceeds snd_wnd (window() <= snd_wnd), queued never exceeds queue_limit_, so
    // sn & mask never collides in the send ring. The receive ring holds the unread
    // queue (<= rcv_wnd) and the window above it (rcv_wnd).
    snd_max_ =
        static_cast<std::uint32_t>(detail::kcp_ceil_pow2(std::size_t(c.snd_wnd) + queue_limit_));
    rcv_max_ = static_cast<std::uint32_t>(detail::kcp_ceil_pow2(2 * std::size_t(c.rcv_wnd)));
    // A flush writes every pending ACK and at most snd_wnd segments (each fits a
    // datagram) plus two probes; the ACK list holds a window's worth twice over and
    // is flushed early when it is full.
    ack_max_ = std::max<std::uint32_t>(64, 2 * c.rcv_wnd);
    const std::uint32_t acks_per_datagram = c.mtu / kcp_header_size;
    tx_max_ = c.snd_wnd + (ack_max_ + acks_per_datagram - 1) / acks_per_datagram + 4;

    rmt_wnd_ = detail::kcp_initial_remote_window;
    // ikcp.c starts at cwnd 0 and sets 1 at the end of its first flush, which only
    // delays the first segment by an interval; start where it ends up.
    cwnd_ = 1;
    incr_ = mss_;
    ssthresh_ = detail::kcp_thresh_init;
    rx_rto_ = detail::kcp_rto_default;
    rx_minrto_ =
        c.min_rto_ms ? c.min_rto_ms : (c.nodelay ? detail::kcp_rto_nodelay : detail::kcp_rto_min);
    earliest_resend_ = detail::kcp_never;
}

inline void kcp_core::set_now(time_point now) noexcept {
    now_ms_ = std::chrono::duration_cast<std::chrono::milliseconds>(now - origin_).count();
    current_ = static_cast<std::uint32_t>(now_ms_);
}

inline std::size_t kcp_core::max_message_size() const noexcept {
    return std::size_t(max_fragments_) * mss_;
}

inline std::uint32_t kcp_core::window() const noexcept {
    std::uint32_t cwnd = std::min(settings_.snd_wnd, rmt_wnd_);
    if (!settings_.no_cwnd)
        cwnd = std::min(cwnd_, cwnd);
    return cwnd;
}

inline std::uint16_t kcp_core::wnd_unused() const noexcept {
    return nrcv_que_ < settings_.rcv_wnd ? static_cast<std::uint16_t>(settings_.rcv_wnd - nrcv_que_)
                                         : std::uint16_t{0};
}

// --- sending ---------------------------------------------------------------------

inline std::error_code kcp_core::send(std::span<const std::byte> data) noexcept {
    if (dead_)
        return kcp_error::dead_link;
    const std::size_t mss = mss_;
    auto queue_segment = [&](std::span<const std::byte> bytes, std::uint8_t frg) {
        const std::uint32_t sn = snd_nxt_ + nsnd_que_;
        auto& s = snd_slot(sn);
        s = send_slot{};
        s.len = static_cast<std::uint32_t>(bytes.size());
        s.frg = frg;
        if (!bytes.empty())
            std::memcpy(snd_data(sn), bytes.data(), bytes.size());
        ++nsnd_que_;
    };

    // The ring must hold everything from the oldest unacknowledged segment to the
    // last new one.
    auto reserve = [&](std::size_t count) {
        return reserve_send(std::size_t(snd_nxt_ - snd_una_) + nsnd_que_ + count);
    };

    if (settings_.stream) {
        if (data.empty())
            return {};
        std::size_t extend = 0;
        if (nsnd_que_ > 0)
            extend =
                std::min<std::size_t>(mss - snd_slot(snd_nxt_ + nsnd_que_ - 1).len, data.size());
        const std::size_t count = (data.size() - extend + mss - 1) / mss;
        if (count > free_queue_slots())
            return kcp_error::send_window_full;
        if (!reserve(count))
            return std::make_error_code(std::errc::not_enough_memory);
        if (extend > 0) {
            const std::uint32_t last = snd_nxt_ + nsnd_que_ - 1;
            auto& s = snd_slot(last);
            std::memcpy(snd_data(last) + s.len, data.data(), extend);
            s.len += static_cast<std::uint32_t>(extend);
            data = data.subspan(extend);
        }
        while (!data.empty()) {
            const std::size_t n = std::min(mss, data.size());
            queue_segment(data.first(n), 0);
            data = data.subspan(n);
        }
        return {};
    }

    const std::size_t count = data.size() <= mss ? 1 : (data.size() + mss - 1) / mss;
    if (count > max_fragments_)
        return kcp_error::too_many_fragments;
    if (count > free_queue_slots())
        return kcp_error::send_window_full;
    if (!reserve(count))
        return std::make_error_code(std::errc::not_enough_memory);
    for (std::size_t i = 0; i < count; ++i) {
        const std::size_t n = std::min(mss, data.size());
        queue_segment(data.first(n), static_cast<std::uint8_t>(count - i - 1));
        data = data.subspan(n);
    }
    return {};
}

inline std::size_t kcp_core::send_capacity() const noexcept {
    if (dead_)
        return 0;
    const std::size_t free = free_queue_slots();
    if (settings_.stream) {
        std::size_t tail = 0;
        if (nsnd_que_ > 0)
            tail = mss_ - snd_slots_[(snd_nxt_ + nsnd_que_ - 1) & snd_mask_].len;
        return free * mss_ + tail;
    }
    return std::min<std::size_t>(free, max_fragments_) * mss_;
}

// --- buffers ---------------------------------------------------------------------

inline bool kcp_core::reserve_send(std::size_t need) noexcept {
    if (need <= snd_size_)
        return true;
    const std::size_t n = detail::kcp_grow(snd_size_, need, detail::kcp_first_slots, snd_max_);
    auto slots = detail::kcp_allocate<send_slot>(n);
    auto data = detail::kcp_allocate<std::byte>(n * mss_);
    if (n < need || !slots || !data) {
        ++stats_.allocation_failures;
        return false;
    }
    // Live slots move to their place under the new mask; acknowledged ones in flight
    // move too, their flag is what shrink_buf reads.
    const auto mask = static_cast<std::uint32_t>(n - 1);
    for (std::uint32_t sn = snd_una_, end = snd_nxt_ + nsnd_que_; sn != end; ++sn) {
        const send_slot& s = snd_slot(sn);
        slots[sn & mask] = s;
        if (s.len > 0)
            std::memcpy(data.get() + std::size_t(sn & mask) * mss_, snd_data(sn), s.len);
    }
    snd_slots_ = std::move(slots);
    snd_data_ = std::move(data);
    snd_size_ = static_cast<std::uint32_t>(n);
    snd_mask_ = mask;
    stats_.buffer_allocations += 2;
    return true;
}

inline bool kcp_core::reserve_receive(std::size_t need) noexcept {
    if (need <= rcv_size_)
        return true;
    const std::size_t n = detail::kcp_grow(rcv_size_, need, detail::kcp_first_slots, rcv_max_);
    auto slots = detail::kcp_allocate<recv_slot>(n);
    auto data = detail::kcp_allocate<std::byte>(n * mss_);
    if (n < need || !slots || !data) {
        ++stats_.allocation_failures;
        return false;
    }
    const auto mask = static_cast<std::uint32_t>(n - 1);
    std::uint32_t moved = 0;
    for (std::uint32_t i = 0; i < rcv_size_ && moved < rcv_present_; ++i) {
        const recv_slot& s = rcv_slots_[i];
        if (!s.present)
            continue;
        slots[s.sn & mask] = s;
        if (s.len > 0)
            std::memcpy(data.get() + std::size_t(s.sn & mask) * mss_,
                        rcv_data_.get() + std::size_t(i) * mss_, s.len);
        ++moved;
    }
    rcv_slots_ = std::move(slots);
    rcv_data_ = std::move(data);
    rcv_size_ = static_cast<std::uint32_t>(n);
    rcv_mask_ = mask;
    stats_.buffer_allocations += 2;
    return true;
}

inline bool kcp_core::reserve_acks() noexcept {
    if (ack_size_ >= ack_max_)
        return false;
    const std::size_t n =
        detail::kcp_grow(ack_size_, ack_size_ + 1, detail::kcp_first_acks, ack_max_);
    auto acks = detail::kcp_allocate<ack_entry>(n);
    if (!acks) {
        ++stats_.allocation_failures;
        return false;
    }
    std::copy_n(acks_.get(), nacks_, acks.get());
    acks_ = std::move(acks);
    ack_size_ = static_cast<std::uint32_t>(n);
    ++stats_.buffer_allocations;
    return true;
}

inline bool kcp_core::reserve_transmit() noexcept {
    if (tx_slots_ >= tx_max_)
        return false;
    const std::size_t n =
        detail::kcp_grow(tx_slots_, tx_slots_ + 1, detail::kcp_first_slots, tx_max_);
    auto data = detail::kcp_allocate<std::byte>(n * settings_.mtu);
    auto len = detail::kcp_allocate<std::uint32_t>(n);
    if (!data || !len) {
        ++stats_.allocation_failures;
        return false;
    }
    // Only called when the queue is full and no datagram is open: the queue moves
    // to the front, oldest first.
    for (std::uint32_t i = 0, at = tx_head_; i < tx_count_; ++i) {
        std::memcpy(data.get() + std::size_t(i) * settings_.mtu,
                    tx_data_.get() + std::size_t(at) * settings_.mtu, tx_len_[at]);
        len[i] = tx_len_[at];
        at = at + 1 == tx_slots_ ? 0 : at + 1;
    }
    tx_data_ = std::move(data);
    tx_len_ = std::move(len);
    tx_slots_ = static_cast<std::uint32_t>(n);
    tx_head_ = 0;
    stats_.buffer_allocations += 2;
    return true;
}

inline std::size_t kcp_core::shrink_to_fit() noexcept {
    const std::size_t before = capacity().bytes;
    if (snd_size_ != 0 && nsnd_buf_ == 0 && nsnd_que_ == 0 && snd_una_ == snd_nxt_) {
        snd_slots_.reset();
        snd_data_.reset();
        snd_size_ = 0;
        snd_mask_ = 0;
    }
    if (rcv_size_ != 0 && rcv_present_ == 0) {
        rcv_slots_.reset();
        rcv_data_.reset();
        rcv_size_ = 0;
        rcv_mask_ = 0;
    }
    if (ack_size_ != 0 && nacks_ == 0) {
        acks_.reset();
        ack_size_ = 0;
    }
    if (tx_slots_ != 0 && tx_count_ == 0 && tx_open_ == 0) {
        tx_data_.reset();
        tx_len_.reset();
        tx_slots_ = 0;
        tx_head_ = 0;
    }
    return before - capacity().bytes;
}

// --- input -----------------------------------------------------------------------

inline void kcp_core::update_ack(std::int32_t rtt) noexcept {
    // ikcp_update_ack, in 64-bit so that a forged timestamp cannot overflow it.
    if (rx_srtt_ == 0) {
        rx_srtt_ = rtt;
        rx_rttval_ = rtt / 2;
    } else {
        std::int64_t delta = std::int64_t{rtt} - rx_srtt_;
        if (delta < 0)
            delta = -delta;
        rx_rttval_ = static_cast<std::int32_t>((3 * std::int64_t{rx_rttval_} + delta) / 4);
        rx_srtt_ = static_cast<std::int32_t>((7 * std::int64_t{rx_srtt_} + rtt) / 8);
        if (rx_srtt_ < 1)
            rx_srtt_ = 1;
    }
    const std::int64_t rto =
        std::int64_t{rx_srtt_} +
        std::max<std::int64_t>(settings_.interval_ms, 4 * std::int64_t{rx_rttval_});
    rx_rto_ = static_cast<std::uint32_t>(
        std::min<std::int64_t>(std::max<std::int64_t>(rx_minrto_, rto), detail::kcp_rto_max));
}

inline void kcp_core::shrink_buf() noexcept {
    while (snd_una_ != snd_nxt_ && snd_slot(snd_una_).acked)
        ++snd_una_;
}

inline void kcp_core::parse_una(std::uint32_t una) noexcept {
    if (kcp_diff(una, snd_una_) <= 0)
        return;
    const std::uint32_t end = kcp_diff(una, snd_nxt_) > 0 ? snd_nxt_ : una;
    for (std::uint32_t sn = snd_una_; sn != end; ++sn) {
        auto& s = snd_slot(sn);
        if (!s.acked) {
            s.acked = true;
            --nsnd_buf_;
        }
    }
    snd_una_ = end;
}

inline void kcp_core::parse_ack(std::uint32_t sn) noexcept {
    if (kcp_diff(sn, snd_una_) < 0 || kcp_diff(sn, snd_nxt_) >= 0)
        return;
    auto& s = snd_slot(sn);
    if (!s.acked) {
        s.acked = true;
        --nsnd_buf_;
    }
}

inline void kcp_core::parse_fastack(std::uint32_t sn, std::uint32_t ts) noexcept {
    // ikcp.c with IKCP_FASTACK_CONSERVE (its default, and kcp-go's rule): only
    // segments sent no later than the acknowledged one count a skip.
    if (kcp_diff(sn, snd_una_) < 0 || kcp_diff(sn, snd_nxt_) >= 0)
        return;
    const std::uint32_t resent = settings_.resend ? settings_.resend : UINT32_MAX;
    for (std::uint32_t x = snd_una_; x != sn; ++x) {
        auto& s = snd_slot(x);
        if (s.acked || kcp_diff(ts, s.ts) < 0)
            continue;
        ++s.fastack;
        if (s.fastack >= resent &&
            (settings_.fast_limit <= 0 || std::int64_t{s.xmit} <= settings_.fast_limit))
            fast_pending_ = true;
    }
}

inline void kcp_core::push_ack(std::uint32_t sn, std::uint32_t ts) noexcept {
    // The list grows up to ack_max_; when it is full the ACKs leave now rather than
    // at the next flush, which only makes them earlier.
    if (nacks_ == ack_size_ && !reserve_acks())
        flush_acks_only();
    if (nacks_ < ack_size_) // else no memory at all: the peer resends, we ACK then
        acks_[nacks_++] = {sn, ts};
}

inline void kcp_core::parse_data(const kcp_segment& seg) noexcept {
    const auto& h = seg.header;
    auto& slot = rcv_slot(h.sn);
    if (slot.present && slot.sn == h.sn) {
        ++stats_.duplicate_segments;
    } else {
        slot.sn = h.sn;
        slot.len = h.len;
        slot.frg = h.frg;
        slot.present = true;
        ++rcv_present_;
        if (h.len > 0)
            std::memcpy(rcv_data(h.sn), seg.payload.data(), h.len);
        ++stats_.segments_received;
    }
    move_ready();
}

inline void kcp_core::move_ready() noexcept {
    // rcv_present_ > nrcv_que_: segments wait beyond the queue (and the ring exists).
    while (nrcv_que_ < settings_.rcv_wnd && rcv_present_ > nrcv_que_) {
        const auto& s = rcv_slot(rcv_nxt_);
        if (!s.present || s.sn != rcv_nxt_)
            break;
        rcv_queue_bytes_ += s.len;
        ++rcv_nxt_;
        ++nrcv_que_;
    }
    // An empty segment carries nothing in a stream; dropping it at the head keeps
    // it from holding window while `readable()` is false.
    if (settings_.stream)
        while (nrcv_que_ > 0 && rcv_slot(rcv_head()).len == 0)
            pop_head();
}

inline void kcp_core::pop_head() noexcept {
    auto& s = rcv_slot(rcv_head());
    rcv_queue_bytes_ -= s.len;
    s.present = false;
    --nrcv_que_;
    --rcv_present_;
    rcv_head_off_ = 0;
}

inline std::error_code kcp_core::input(std::span<const std::byte> datagram,
                                       time_point now) noexcept {
    if (dead_)
        return kcp_error::dead_link;
    set_now(now);
    if (datagram.size() < kcp_header_size)
        return kcp_error::malformed_segment;

    const std::uint32_t prev_una = snd_una_;
    bool got_ack = false;
    std::uint32_t maxack = 0;
    std::uint32_t latest_ts = 0;
    std::error_code ec;
    while (datagram.size() >= kcp_header_size) {
        auto seg = kcp_decode_segment(datagram, ec);
        if (!seg)
            break;
        const auto& h = seg->header;
        if (h.conv != settings_.conv) {
            ec = kcp_error::conv_mismatch;
            break;
        }
        if (h.cmd == kcp_command::push) {
            if (h.len > mss_) {
                ec = kcp_error::segment_too_large;
                break;
            }
            if (!settings_.stream && h.frg >= settings_.rcv_wnd) {
                ec = kcp_error::too_many_fragments;
                break;
            }
        }
        datagram = datagram.subspan(seg->wire_size());

        rmt_wnd_ = h.wnd;
        parse_una(h.una);
        shrink_buf();
        switch (h.cmd) {
        case kcp_command::ack:
            if (kcp_diff(current_, h.ts) >= 0)
                update_ack(kcp_diff(current_, h.ts));
            parse_ack(h.sn);
            shrink_buf();
            if (!got_ack) {
                got_ack = true;
                maxack = h.sn;
                latest_ts = h.ts;
            } else if (kcp_diff(h.sn, maxack) > 0 && kcp_diff(h.ts, latest_ts) > 0) {
                maxack = h.sn;
                latest_ts = h.ts;
            }
            break;
        case kcp_command::push:
            if (kcp_diff(h.sn, rcv_nxt_ + settings_.rcv_wnd) < 0) {
                if (kcp_diff(h.sn, rcv_nxt_) < 0) {
                    push_ack(h.sn, h.ts);
                    ++stats_.duplicate_segments;
                } else if (reserve_receive(std::size_t(h.sn - rcv_head()) + 1)) {
                    push_ack(h.sn, h.ts);
                    parse_data(*seg);
                } // else no memory: not stored, so not acknowledged; the peer resends
            } else {
                ++stats_.duplicate_segments;
            }
            break;
        case kcp_command::wask:
            probe_ |= detail::kcp_ask_tell;
            break;
        case kcp_command::wins:
            break;
        }
    }

    if (got_ack)
        parse_fastack(maxack, latest_ts);

    if (kcp_diff(snd_una_, prev_una) > 0 && cwnd_ < rmt_wnd_) {
        const std::uint32_t mss = mss_;
        if (cwnd_ < ssthresh_) {
            ++cwnd_;
            incr_ += mss;
        } else {
            if (incr_ < mss)
                incr_ = mss;
            incr_ += (mss * mss) / incr_ + (mss / 16);
            if ((cwnd_ + 1) * mss <= incr_)
                cwnd_ = (incr_ + mss - 1) / mss;
        }
        if (cwnd_ > rmt_wnd_) {
            cwnd_ = rmt_wnd_;
            incr_ = rmt_wnd_ * mss;
        }
    }

    if (settings_.flush_on_ack && kcp_diff(snd_una_, prev_una) > 0 && nsnd_que_ > 0)
        flush_all(); // kcp-go's rule; the flush writes the pending ACKs too
    else if (settings_.ack_nodelay && nacks_ != 0)
        flush_acks_only();
    return ec;
}

// --- receiving -------------------------------------------------------------------

inline bool kcp_core::readable() const noexcept {
    if (settings_.stream)
        return rcv_queue_bytes_ > rcv_head_off_;
    if (nrcv_que_ == 0)
        return false;
    const auto& head = rcv_slot(rcv_head());
    return head.frg == 0 || nrcv_que_ >= std::uint32_t{head.frg} + 1;
}

inline std::size_t kcp_core::message_size() const noexcept {
    // ikcp_peeksize: the fragments up to the first frg 0. ikcp_recv takes the same
    // ones, so `receive` uses the same walk.
    std::size_t n = 0;
    std::uint32_t sn = rcv_head();
    for (std::uint32_t i = 0; i < nrcv_que_; ++i, ++sn) {
        const auto& s = rcv_slot(sn);
        n += s.len;
        if (s.frg == 0)
            break;
    }
    return n;
}

inline std::size_t kcp_core::peek_size() const noexcept {
    if (settings_.stream)
        return rcv_queue_bytes_ - rcv_head_off_;
    return readable() ? message_size() : 0;
}

inline std::size_t kcp_core::receive(std::span<std::byte> out, std::error_code& ec) noexcept {
    ec.clear();
    if (!readable()) {
        ec = dead_ ? kcp_error::dead_link : kcp_error::would_block;
        return 0;
    }
    const bool recover = nrcv_que_ >= settings_.rcv_wnd;
    std::size_t n = 0;
    if (settings_.stream) {
        while (n < out.size() && nrcv_que_ > 0) {
            const std::uint32_t sn = rcv_head();
            const auto& s = rcv_slot(sn);
            const std::size_t take = std::min<std::size_t>(s.len - rcv_head_off_, out.size() - n);
            std::memcpy(out.data() + n, rcv_data(sn) + rcv_head_off_, take);
            n += take;
            rcv_head_off_ += static_cast<std::uint32_t>(take);
            if (rcv_head_off_ == s.len)
                pop_head();
        }
    } else {
        const std::size_t size = message_size();
        if (size > out.size()) {
            ec = peerlink::error::buffer_too_small;
            return 0;
        }
        while (nrcv_que_ > 0) {
            const std::uint32_t sn = rcv_head();
            const auto& s = rcv_slot(sn);
            const std::uint8_t frg = s.frg;
            if (s.len > 0)
                std::memcpy(out.data() + n, rcv_data(sn), s.len);
            n += s.len;
            pop_head();
            if (frg == 0)
                break;
        }
    }
    move_ready();
    if (recover && nrcv_que_ < settings_.rcv_wnd)
        probe_ |= detail::kcp_ask_tell; // the window reopened: tell the peer (WINS)
    return n;
}

// --- flushing --------------------------------------------------------------------

inline std::byte* kcp_core::tx_reserve(std::size_t n) noexcept {
    if (tx_open_ + n > settings_.mtu)
        tx_commit();
    if (tx_open_ == 0 && tx_count_ == tx_slots_ && !reserve_transmit()) {
        if (tx_slots_ == 0)
            return nullptr; // no memory at all: as if the datagram were lost
        // The driver did not drain: lose the oldest datagram, as a full NIC queue
        // would; retransmission recovers it.
        tx_head_ = tx_head_ + 1 == tx_slots_ ? 0 : tx_head_ + 1;
        --tx_count_;
        ++stats_.datagrams_dropped;
    }
    std::size_t tail = std::size_t(tx_head_) + tx_count_;
    if (tail >= tx_slots_)
        tail -= tx_slots_;
    std::byte* p = tx_data_.get() + tail * settings_.mtu + tx_open_;
    tx_open_ += static_cast<std::uint32_t>(n);
    return p;
}

inline void kcp_core::tx_commit() noexcept {
    if (tx_open_ == 0)
        return;
    std::size_t tail = std::size_t(tx_head_) + tx_count_;
    if (tail >= tx_slots_)
        tail -= tx_slots_;
    tx_len_[tail] = tx_open_;
    ++tx_count_;
    tx_open_ = 0;
    ++stats_.datagrams_sent;
}

inline std::size_t kcp_core::poll_transmit(std::span<std::byte> out) noexcept {
    if (tx_count_ == 0)
        return 0;
    const std::size_t n = tx_len_[tx_head_];
    if (out.size() < n)
        return 0;
    std::memcpy(out.data(), tx_data_.get() + std::size_t(tx_head_) * settings_.mtu, n);
    tx_head_ = tx_head_ + 1 == tx_slots_ ? 0 : tx_head_ + 1;
    --tx_count_;
    return n;
}

inline void kcp_core::write_acks(kcp_segment_header& h) noexcept {
    // h keeps the last ACK's sn and ts afterwards: ikcp_flush sends its window
    // probes with them, and so does this.
    for (std::uint32_t i = 0; i < nacks_; ++i) {
        h.sn = acks_[i].sn;
        h.ts = acks_[i].ts;
        if (std::byte* p = tx_reserve(kcp_header_size))
            kcp_encode_header({p, kcp_header_size}, h);
    }
    stats_.acks_sent += nacks_;
    nacks_ = 0;
}

inline void kcp_core::flush_acks_only() noexcept {
    kcp_segment_header h;
    h.conv = settings_.conv;
    h.cmd = kcp_command::ack;
    h.wnd = wnd_unused();
    h.una = rcv_nxt_;
    write_acks(h);
    tx_commit();
}

inline void kcp_core::flush_all() noexcept {
    using namespace detail;
    kcp_segment_header h;
    h.conv = settings_.conv;
    h.cmd = kcp_command::ack;
    h.wnd = wnd_unused();
    h.una = rcv_nxt_;
    write_acks(h);

    // Probe the window while the peer's is zero.
    if (rmt_wnd_ == 0) {
        if (probe_wait_ == 0) {
            probe_wait_ = kcp_probe_init;
            ts_probe_ = now_ms_ + probe_wait_;
        } else if (now_ms_ >= ts_probe_) {
            if (probe_wait_ < kcp_probe_init)
                probe_wait_ = kcp_probe_init;
            probe_wait_ += probe_wait_ / 2;
            if (probe_wait_ > kcp_probe_limit)
                probe_wait_ = kcp_probe_limit;
            ts_probe_ = now_ms_ + probe_wait_;
            probe_ |= kcp_ask_send;
        }
    } else {
        ts_probe_ = 0;
        probe_wait_ = 0;
    }
    if (probe_ & kcp_ask_send) {
        h.cmd = kcp_command::wask;
        if (std::byte* p = tx_reserve(kcp_header_size))
            kcp_encode_header({p, kcp_header_size}, h);
        ++stats_.window_probes;
    }
    if (probe_ & kcp_ask_tell) {
        h.cmd = kcp_command::wins;
        if (std::byte* p = tx_reserve(kcp_header_size))
            kcp_encode_header({p, kcp_header_size}, h);
    }
    probe_ = 0;

    // Move queued segments into flight as far as the windows allow.
    const std::uint32_t cwnd = window();
    while (nsnd_que_ > 0 && kcp_diff(snd_nxt_, snd_una_ + cwnd) < 0) {
        auto& s = snd_slot(snd_nxt_);
        s.sn = snd_nxt_;
        s.ts = current_;
        s.resendts = current_;
        s.rto = rx_rto_;
        s.fastack = 0;
        s.xmit = 0;
        s.acked = false;
        ++snd_nxt_;
        --nsnd_que_;
        ++nsnd_buf_;
    }

    const std::uint32_t resent = settings_.resend ? settings_.resend : UINT32_MAX;
    const std::uint32_t rtomin = settings_.nodelay == 0 ? rx_rto_ >> 3 : 0;
    bool lost = false;
    bool change = false;
    std::int64_t earliest = kcp_never;
    h.cmd = kcp_command::push;
    for (std::uint32_t sn = snd_una_; sn != snd_nxt_; ++sn) {
        auto& s = snd_slot(sn);
        if (s.acked)
            continue;
        bool needsend = false;
        if (s.xmit == 0) {
            needsend = true;
            ++s.xmit;
            s.rto = rx_rto_;
            s.resendts = current_ + s.rto + rtomin;
            ++stats_.segments_sent;
        } else if (kcp_diff(current_, s.resendts) >= 0) {
            needsend = true;
            ++s.xmit;
            ++stats_.lost_segments;
            ++stats_.retransmits;
            if (settings_.nodelay == 0) {
                s.rto += std::max(s.rto, rx_rto_);
            } else {
                const std::uint32_t step = settings_.nodelay < 2 ? s.rto : rx_rto_;
                s.rto += step / 2;
            }
            s.rto = std::min(s.rto, kcp_segment_rto_cap);
            s.resendts = current_ + s.rto;
            lost = true;
        } else if (s.fastack >= resent) {
            if (settings_.fast_limit <= 0 || std::int64_t{s.xmit} <= settings_.fast_limit) {
                needsend = true;
                ++s.xmit;
                s.fastack = 0;
                s.resendts = current_ + s.rto;
                change = true;
                ++stats_.fast_retransmits;
                ++stats_.retransmits;
            }
        }
        if (needsend) {
            s.ts = current_;
            h.frg = s.frg;
            h.ts = s.ts;
            h.sn = s.sn;
            h.len = s.len;
            if (std::byte* p = tx_reserve(kcp_header_size + s.len)) {
                kcp_encode_header({p, kcp_header_size}, h);
                if (s.len > 0)
                    std::memcpy(p + kcp_header_size, snd_data(sn), s.len);
            }
            if (settings_.dead_link != 0 && s.xmit >= settings_.dead_link)
                dead_ = true;
        }
        earliest = std::min(earliest, now_ms_ + kcp_diff(s.resendts, current_));
    }
    tx_commit();
    earliest_resend_ = earliest;
    fast_pending_ = false;

    if (change) { // fast retransmit: halve
        const std::uint32_t inflight = snd_nxt_ - snd_una_;
        ssthresh_ = std::max(inflight / 2, kcp_thresh_min);
        cwnd_ = ssthresh_ + resent;
        incr_ = cwnd_ * mss_;
    }
    if (lost) { // timeout: back to one segment
        ssthresh_ = std::max(cwnd / 2, kcp_thresh_min);
        cwnd_ = 1;
        incr_ = mss_;
    }
    if (cwnd_ < 1) {
        cwnd_ = 1;
        incr_ = mss_;
    }
}

inline void kcp_core::handle_timeout(time_point now) noexcept {
    set_now(now);
    if (dead_)
        return;
    // ikcp_update: flush on a grid of `interval`, re-anchored after a jump.
    std::int64_t slap = now_ms_ - ts_flush_;
    if (slap >= 10000 || slap < -10000) {
        ts_flush_ = now_ms_;
        slap = 0;
    }
    if (slap >= 0) {
        ts_flush_ += settings_.interval_ms;
        if (now_ms_ >= ts_flush_)
            ts_flush_ = now_ms_ + settings_.interval_ms;
        flush_all();
    }
}

inline void kcp_core::flush(time_point now) noexcept {
    set_now(now);
    if (!dead_)
        flush_all();
}

inline std::optional<time_point> kcp_core::poll_timeout() const noexcept {
    // ikcp_check asks for an update every interval even when idle. A flush with
    // nothing to do changes nothing, so this asks only for the flushes that will
    // do something, at the time ikcp_update, called every millisecond, would run
    // them: the first point of the flush grid (ts_flush_ + k * interval) at or
    // after the moment work became pending, a retransmission or a probe fell due.
    if (dead_)
        return std::nullopt;
    const std::int64_t interval = settings_.interval_ms;
    auto grid = [&](std::int64_t at) {
        if (at <= ts_flush_)
            return ts_flush_;
        return ts_flush_ + (at - ts_flush_ + interval - 1) / interval * interval;
    };
    const bool pending = nacks_ != 0 || probe_ != 0 || fast_pending_ ||
                         (rmt_wnd_ == 0 && probe_wait_ == 0) ||
                         (nsnd_que_ > 0 && kcp_diff(snd_nxt_, snd_una_ + window()) < 0);
    std::int64_t t = detail::kcp_never;
    if (pending)
        t = grid(now_ms_);
    if (nsnd_buf_ > 0)
        t = std::min(t, grid(earliest_resend_));
    if (rmt_wnd_ == 0 && probe_wait_ != 0)
        t = std::min(t, grid(ts_probe_));
    if (t == detail::kcp_never)
        return std::nullopt;
    return origin_ + std::chrono::milliseconds(t);
}

// --- state -----------------------------------------------------------------------

inline kcp_stats kcp_core::stats() const noexcept {
    kcp_stats s = stats_;
    s.srtt_ms = static_cast<std::uint32_t>(rx_srtt_);
    s.rttvar_ms = static_cast<std::uint32_t>(rx_rttval_);
    s.rto_ms = rx_rto_;
    s.cwnd = cwnd_;
    s.ssthresh = ssthresh_;
    s.remote_window = rmt_wnd_;
    s.in_flight = nsnd_buf_;
    s.queued = nsnd_que_;
    return s;
}

namespace detail {
template <class SendSlot, class RecvSlot, class AckEntry>
kcp_capacity kcp_capacity_of(std::size_t snd, std::size_t rcv, std::size_t acks, std::size_t tx,
                             std::size_t mss, std::size_t mtu) noexcept {
    kcp_capacity c;
    c.send_slots = snd;
    c.receive_slots = rcv;
    c.ack_slots = acks;
    c.transmit_slots = tx;
    c.bytes = snd * (mss + sizeof(SendSlot)) + rcv * (mss + sizeof(RecvSlot)) +
              acks * sizeof(AckEntry) + tx * (mtu + sizeof(std::uint32_t));
    return c;
}
} // namespace detail

inline kcp_capacity kcp_core::capacity() const noexcept {
    return detail::kcp_capacity_of<send_slot, recv_slot, ack_entry>(snd_size_, rcv_size_, ack_size_,
                                                                    tx_slots_, mss_, settings_.mtu);
}

inline kcp_capacity kcp_core::max_capacity() const noexcept {
    return detail::kcp_capacity_of<send_slot, recv_slot, ack_entry>(snd_max_, rcv_max_, ack_max_,
                                                                    tx_max_, mss_, settings_.mtu);
}

} // namespace peerlink

#endif // PEERLINK_PROTO_IMPL_KCP_HPP
