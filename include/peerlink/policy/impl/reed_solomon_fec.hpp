#ifndef PEERLINK_POLICY_IMPL_REED_SOLOMON_FEC_HPP
#define PEERLINK_POLICY_IMPL_REED_SOLOMON_FEC_HPP

#include <algorithm>
#include <cstring>

namespace peerlink {

template <fec_framing F>
reed_solomon_fec<F>::reed_solomon_fec() {
    (void)configure(fec_config{});
}

template <fec_framing F>
reed_solomon_fec<F>::reed_solomon_fec(const fec_config& config, std::error_code& ec) {
    ec = configure(config);
    if (ec)
        (void)configure(fec_config{});
}

template <fec_framing F>
std::error_code reed_solomon_fec<F>::validate(const fec_config& c) noexcept {
    if (c.data_shards == 0 || c.parity_shards == 0 ||
        c.data_shards + c.parity_shards > reed_solomon::max_shards)
        return fec_error::invalid_shard_count;
    const std::size_t limit = F == fec_framing::peerlink ? fec::max_payload : fec::kcp_max_payload;
    if (c.max_payload == 0 || c.max_payload > limit || c.window == 0 || c.window > 16)
        return error::invalid_config;
    return {};
}

template <fec_framing F>
std::error_code reed_solomon_fec<F>::configure(const fec_config& c) {
    if (auto ec = validate(c))
        return ec;
    config_ = c;
    shard_cap_ = c.max_payload + fec::size_field_size;
    enabled_ = c.enabled;
    // Sending: an empty group at the configured ratio.
    ratio_ = next_ratio_ = {c.data_shards, c.parity_shards};
    enc_data_.clear();
    enc_parity_.clear();
    enc_len_.clear();
    enc_index_ = enc_max_len_ = 0;
    enc_group_ = enc_seqid_ = 0;
    parity_ready_ = parity_next_ = parity_len_ = 0;
    apply_next_ratio();
    // Receiving: sized for the same ratio; a peer with a larger one grows it.
    peer_ratio_ = ratio_;
    slots_.clear();
    slot_bytes_.clear();
    groups_.clear();
    recovered_bytes_.clear();
    recovered_.clear();
    recovered_.reserve(reed_solomon::max_shards);
    reset_receiver();
    ensure_receive_capacity(c.data_shards, c.parity_shards);
    return {};
}

template <fec_framing F>
void reed_solomon_fec<F>::set_enabled(bool on) noexcept {
    if (on == enabled_)
        return;
    abandon_group();
    enabled_ = on;
}

template <fec_framing F>
std::error_code reed_solomon_fec<F>::set_ratio(fec_ratio r) {
    if (r.data_shards == 0 || r.parity_shards == 0 ||
        r.data_shards + r.parity_shards > reed_solomon::max_shards)
        return fec_error::invalid_shard_count;
    next_ratio_ = r;
    if (enc_index_ == 0)
        apply_next_ratio();
    return {};
}

template <fec_framing F>
std::error_code reed_solomon_fec<F>::set_peer_ratio(fec_ratio r) {
    if (r.data_shards == 0 || r.parity_shards == 0 ||
        r.data_shards + r.parity_shards > reed_solomon::max_shards)
        return fec_error::invalid_shard_count;
    ensure_receive_capacity(r.data_shards, r.parity_shards);
    if constexpr (F == fec_framing::kcp_go) {
        // Group keys and places depend on the ratio: what is open now is meaningless.
        if (r != peer_ratio_)
            reset_receiver();
    }
    peer_ratio_ = r;
    return {};
}

template <fec_framing F>
std::size_t reed_solomon_fec<F>::memory_bytes() const noexcept {
    std::size_t n = enc_data_.capacity() + enc_parity_.capacity() +
                    enc_len_.capacity() * sizeof(std::size_t) + slot_bytes_.capacity() +
                    slots_.capacity() * sizeof(slot) + groups_.capacity() * sizeof(group_record) +
                    recovered_bytes_.capacity() + recovered_.capacity() * sizeof(recovered_ref);
    return n;
}

template <fec_framing F>
std::size_t reed_solomon_fec<F>::pending_groups() const noexcept {
    return static_cast<std::size_t>(std::count_if(groups_.begin(), groups_.end(), [](auto& g) {
        return g.state == group_state::collecting;
    }));
}

// --- sending -----------------------------------------------------------------------

template <fec_framing F>
void reed_solomon_fec<F>::apply_next_ratio() {
    const bool changed = next_ratio_ != ratio_ || enc_codec_.data_shards() == 0;
    ratio_ = next_ratio_;
    if (!changed)
        return;
    (void)enc_codec_.init(ratio_.data_shards, ratio_.parity_shards);
    // Grow only: parity of the previous group may still wait to be polled.
    if (enc_data_.size() < ratio_.data_shards * shard_cap_)
        enc_data_.resize(ratio_.data_shards * shard_cap_);
    if (enc_len_.size() < ratio_.data_shards)
        enc_len_.resize(ratio_.data_shards);
    if (enc_parity_.size() < ratio_.parity_shards * shard_cap_)
        enc_parity_.resize(ratio_.parity_shards * shard_cap_);
    align_seqid();
}

template <fec_framing F>
void reed_solomon_fec<F>::align_seqid() noexcept {
    if constexpr (F == fec_framing::kcp_go) {
        // kcp-go finds a packet's group as seqid / (data + parity): a group must start
        // at a multiple of its size, and seqids wrap at the largest such multiple.
        const std::uint64_t total = ratio_.data_shards + ratio_.parity_shards;
        const std::uint64_t paws = 0xffffffffull / total * total;
        std::uint64_t s = (enc_seqid_ + total - 1) / total * total;
        enc_seqid_ = s >= paws ? 0 : static_cast<std::uint32_t>(s);
    }
}

template <fec_framing F>
void reed_solomon_fec<F>::abandon_group() noexcept {
    if (enc_index_ == 0)
        return;
    enc_index_ = enc_max_len_ = 0;
    if constexpr (F == fec_framing::peerlink)
        ++enc_group_;
    else
        align_seqid();
}

template <fec_framing F>
std::error_code reed_solomon_fec<F>::encode(packet_buffer& p, time_point) {
    if (!enabled_)
        return {};
    if (p.size() > config_.max_payload) {
        ++stats_.unprotected_sent;
        return {};
    }
    if (p.headroom() < max_overhead)
        return error::buffer_too_small;
    if (enc_index_ == 0 && next_ratio_ != ratio_)
        apply_next_ratio();
    std::error_code ec;
    if constexpr (F == fec_framing::peerlink)
        ec = fec::prepend_data(p, {fec::shard_type::data, ratio_.data_shards, ratio_.parity_shards,
                                   static_cast<std::uint8_t>(enc_index_), enc_group_});
    else
        ec = fec::prepend_kcp_data(p, enc_seqid_++);
    if (ec)
        return ec;
    auto shard = p.data().subspan(header_size);
    std::memcpy(enc_data_.data() + enc_index_ * shard_cap_, shard.data(), shard.size());
    enc_len_[enc_index_] = shard.size();
    enc_max_len_ = std::max(enc_max_len_, shard.size());
    ++stats_.data_sent;
    if (++enc_index_ == ratio_.data_shards) {
        finish_group();
        if (next_ratio_ != ratio_)
            apply_next_ratio();
    }
    return {};
}

template <fec_framing F>
void reed_solomon_fec<F>::finish_group() noexcept {
    if (parity_next_ < parity_ready_)
        stats_.parity_dropped += parity_ready_ - parity_next_;
    const std::size_t k = ratio_.data_shards, m = ratio_.parity_shards, len = enc_max_len_;
    std::array<const std::byte*, reed_solomon::max_shards> data;
    std::array<std::byte*, reed_solomon::max_shards> parity;
    for (std::size_t i = 0; i < k; ++i) {
        std::byte* s = enc_data_.data() + i * shard_cap_;
        std::memset(s + enc_len_[i], 0, len - enc_len_[i]); // the code sees zero padding
        data[i] = s;
    }
    for (std::size_t j = 0; j < m; ++j)
        parity[j] = enc_parity_.data() + j * shard_cap_;
    (void)enc_codec_.encode(std::span(data.data(), k), std::span(parity.data(), m), len);
    parity_ready_ = m;
    parity_next_ = 0;
    parity_len_ = len;
    parity_ratio_ = ratio_;
    if constexpr (F == fec_framing::peerlink) {
        parity_key_ = enc_group_++;
    } else {
        parity_key_ = enc_seqid_;
        const std::uint64_t total = k + m;
        const std::uint64_t paws = 0xffffffffull / total * total;
        enc_seqid_ = static_cast<std::uint32_t>((enc_seqid_ + m) % paws);
    }
    enc_index_ = enc_max_len_ = 0;
    ++stats_.groups_sent;
}

template <fec_framing F>
bool reed_solomon_fec<F>::poll_parity(packet_buffer& p) {
    if (parity_next_ >= parity_ready_)
        return false;
    const std::size_t j = parity_next_++;
    p.resize(0);
    // Header and the first two parity bytes (the size fields' parity) go in front,
    // the rest behind, as a data packet's header, size field and payload would.
    auto front = p.prepend(max_overhead);
    if (front.empty() || p.tailroom() < parity_len_ - fec::size_field_size) {
        if (!front.empty())
            p.consume_front(max_overhead);
        ++stats_.parity_dropped;
        return false;
    }
    p.append(parity_len_ - fec::size_field_size); // now header_size + parity_len_ bytes
    auto out = p.data();
    if constexpr (F == fec_framing::peerlink)
        fec::write_header(
            out, {fec::shard_type::parity, parity_ratio_.data_shards, parity_ratio_.parity_shards,
                  static_cast<std::uint8_t>(parity_ratio_.data_shards + j), parity_key_});
    else
        fec::write_kcp_header(
            out, {static_cast<std::uint32_t>(parity_key_ + j), fec::shard_type::parity});
    std::memcpy(out.data() + header_size, enc_parity_.data() + j * shard_cap_, parity_len_);
    ++stats_.parity_sent;
    return true;
}

// --- receiving ---------------------------------------------------------------------

template <fec_framing F>
void reed_solomon_fec<F>::reset_receiver() {
    for (auto& g : groups_)
        g = group_record{};
    for (auto& s : slots_)
        s = slot{};
    recovered_.clear();
    recovered_next_ = 0;
    has_newest_ = false;
}

template <fec_framing F>
void reed_solomon_fec<F>::ensure_receive_capacity(std::size_t data, std::size_t parity) {
    const std::size_t shards = config_.window * (data + parity);
    if (slots_.size() < shards) {
        slots_.resize(shards);
        slot_bytes_.resize(shards * shard_cap_);
        // Every open group holds a slot, and closed ones are kept for duplicates
        // until their record is needed: as many records as slots.
        groups_.resize(shards);
    }
    const std::size_t missing = std::min(data, parity);
    if (recovered_bytes_.size() < missing * shard_cap_)
        recovered_bytes_.resize(missing * shard_cap_);
}

template <fec_framing F>
std::error_code reed_solomon_fec<F>::decode(packet_buffer& p, time_point) {
    if (recovered_next_ < recovered_.size())
        stats_.recovered_dropped += recovered_.size() - recovered_next_;
    recovered_.clear();
    recovered_next_ = 0;

    incoming in;
    std::error_code ec;
    if constexpr (F == fec_framing::peerlink) {
        if (!fec::is_packet(p.data())) {
            ++stats_.plain_received;
            return {};
        }
        auto pk = fec::decode(p.data(), ec);
        if (!pk) {
            ++stats_.malformed;
            return ec;
        }
        in = {pk->header.group, pk->header.data_shards, pk->header.parity_shards,
              pk->header.index, pk->header.type,        pk->shard};
    } else {
        if (!fec::is_kcp_packet(p.data())) {
            ++stats_.plain_received;
            return {};
        }
        auto pk = fec::decode_kcp(p.data(), ec);
        if (!pk) {
            ++stats_.malformed;
            return ec;
        }
        const std::uint32_t total = peer_ratio_.data_shards + peer_ratio_.parity_shards;
        const std::uint32_t seq = pk->header.seqid;
        in = {seq - seq % total,         peer_ratio_.data_shards,
              peer_ratio_.parity_shards, static_cast<std::uint8_t>(seq % total),
              pk->header.type,           pk->shard};
    }
    const bool is_data = in.type == fec::shard_type::data;
    if (is_data)
        ++stats_.data_received;
    else
        ++stats_.parity_received;

    store_result r = store_result::skipped;
    if (is_data != (in.index < in.data))
        ++stats_.ratio_mismatch; // kcp-go only: the peer's ratio is not what we were told
    else
        r = store(in);
    if (r == store_result::duplicate) {
        ++stats_.duplicates;
        p.resize(0);
        return {};
    }
    if (is_data)
        p.consume_front(max_overhead);
    else
        p.resize(0);
    return {};
}

template <fec_framing F>
std::int64_t reed_solomon_fec<F>::age(std::uint32_t key) const noexcept {
    // Groups behind the newest one, by serial-number arithmetic.
    const auto d = static_cast<std::int32_t>(newest_key_ - key);
    if constexpr (F == fec_framing::peerlink)
        return d;
    else
        return d / static_cast<std::int32_t>(peer_ratio_.data_shards + peer_ratio_.parity_shards);
}

template <fec_framing F>
std::size_t reed_solomon_fec<F>::find_group(std::uint32_t key) const noexcept {
    for (std::size_t i = 0; i < groups_.size(); ++i)
        if (groups_[i].state != group_state::free && groups_[i].key == key)
            return i;
    return npos;
}

template <fec_framing F>
std::size_t reed_solomon_fec<F>::open_group(const incoming& in) noexcept {
    if (!has_newest_) {
        newest_key_ = in.key;
        has_newest_ = true;
    } else if (age(in.key) < 0) {
        newest_key_ = in.key;
    } else if (age(in.key) >= static_cast<std::int64_t>(groups_.size())) {
        return npos; // so old that keeping it would push out newer groups
    }
    std::size_t victim = npos;
    for (std::size_t i = 0; i < groups_.size(); ++i) {
        if (groups_[i].state == group_state::free) {
            victim = i;
            break;
        }
        if (victim == npos || age(groups_[i].key) > age(groups_[victim].key))
            victim = i;
    }
    if (victim == npos)
        return npos;
    if (groups_[victim].state != group_state::free) {
        if (age(groups_[victim].key) <= age(in.key))
            return npos; // older than everything held
        retire(victim);
    }
    auto& g = groups_[victim];
    g = group_record{};
    g.key = in.key;
    g.data = in.data;
    g.parity = in.parity;
    g.state = group_state::collecting;
    return victim;
}

template <fec_framing F>
std::size_t reed_solomon_fec<F>::allocate_slot(std::size_t group) noexcept {
    for (int attempt = 0; attempt < 2; ++attempt) {
        for (std::size_t i = 0; i < slots_.size(); ++i)
            if (slots_[i].owner == no_owner) {
                slots_[i].owner = static_cast<std::uint32_t>(group);
                return i;
            }
        // Full: drop the oldest other group that holds shards.
        std::size_t victim = npos;
        for (std::size_t i = 0; i < groups_.size(); ++i)
            if (i != group && groups_[i].stored != 0 &&
                (victim == npos || age(groups_[i].key) > age(groups_[victim].key)))
                victim = i;
        if (victim == npos)
            return npos;
        retire(victim);
    }
    return npos;
}

template <fec_framing F>
void reed_solomon_fec<F>::release_slots(std::size_t group) noexcept {
    if (groups_[group].stored == 0)
        return;
    for (auto& s : slots_)
        if (s.owner == group)
            s = slot{};
    groups_[group].stored = 0;
}

template <fec_framing F>
void reed_solomon_fec<F>::retire(std::size_t group) noexcept {
    auto& g = groups_[group];
    const std::size_t total = std::size_t{g.data} + g.parity;
    stats_.shards_expected += total;
    stats_.shards_lost += total - std::min<std::size_t>(g.received, total);
    if (g.state == group_state::collecting) {
        ++stats_.groups_evicted;
        stats_.data_lost += g.data - g.data_present;
    }
    release_slots(group);
    g = group_record{};
}

template <fec_framing F>
void reed_solomon_fec<F>::close_group(std::size_t group) noexcept {
    release_slots(group);
    groups_[group].state = group_state::done;
    ++stats_.groups_complete;
}

template <fec_framing F>
typename reed_solomon_fec<F>::store_result reed_solomon_fec<F>::store(const incoming& in) {
    ensure_receive_capacity(in.data, in.parity);
    std::size_t gi = find_group(in.key);
    if (gi != npos) {
        auto& g = groups_[gi];
        if (g.data != in.data || g.parity != in.parity) {
            ++stats_.inconsistent;
            return store_result::skipped;
        }
        if (test(g.arrived, in.index))
            return store_result::duplicate;
        set(g.arrived, in.index);
        ++g.received;
        if (test(g.rebuilt, in.index))
            return store_result::duplicate; // its copy was passed on already
        if (g.state == group_state::done)
            return store_result::kept;
    } else {
        gi = open_group(in);
        if (gi == npos) {
            ++stats_.late;
            return store_result::skipped;
        }
        set(groups_[gi].arrived, in.index);
        groups_[gi].received = 1;
    }

    auto& g = groups_[gi];
    const bool is_data = in.index < in.data;
    if (is_data) {
        if (++g.data_present == g.data) {
            close_group(gi); // every data packet arrived: nothing to rebuild
            return store_result::kept;
        }
    } else if (g.parity_len == 0) {
        if (in.shard.size() < fec::size_field_size) {
            ++stats_.inconsistent;
            return store_result::kept;
        }
        g.parity_len = in.shard.size();
    } else if (in.shard.size() != g.parity_len) {
        ++stats_.inconsistent;
        return store_result::kept;
    }
    if (in.shard.size() > shard_cap_) {
        ++stats_.unstored;
        return store_result::kept;
    }
    std::size_t si = allocate_slot(gi);
    if (si == npos) {
        ++stats_.unstored;
        return store_result::kept;
    }
    slots_[si].index = in.index;
    slots_[si].len = in.shard.size();
    std::memcpy(slot_bytes(si), in.shard.data(), in.shard.size());
    if (++g.stored >= g.data)
        recover(gi);
    return store_result::kept;
}

template <fec_framing F>
reed_solomon* reed_solomon_fec<F>::codec_for(std::uint8_t data, std::uint8_t parity) {
    codec_entry* pick = &codecs_[0];
    for (auto& c : codecs_) {
        if (c.rs.data_shards() == data && c.rs.parity_shards() == parity) {
            c.used = ++codec_clock_;
            return &c.rs;
        }
        if (c.used < pick->used)
            pick = &c;
    }
    if (pick->rs.init(data, parity))
        return nullptr;
    pick->used = ++codec_clock_;
    return &pick->rs;
}

template <fec_framing F>
void reed_solomon_fec<F>::recover(std::size_t group) noexcept {
    auto& g = groups_[group];
    const std::size_t k = g.data, total = k + g.parity, len = g.parity_len;
    std::array<std::byte*, reed_solomon::max_shards> shards{};
    std::array<bool, reed_solomon::max_shards> present{};
    for (std::size_t i = 0; i < slots_.size(); ++i) {
        const auto& s = slots_[i];
        if (s.owner != group)
            continue;
        if (s.len > len) { // a data shard longer than the parity: not one group
            ++stats_.inconsistent;
            close_group(group);
            return;
        }
        std::memset(slot_bytes(i) + s.len, 0, len - s.len);
        shards[s.index] = slot_bytes(i);
        present[s.index] = true;
    }
    std::size_t n_missing = 0;
    for (std::size_t d = 0; d < k; ++d)
        if (!present[d])
            shards[d] = recovered_bytes_.data() + n_missing++ * shard_cap_;
    reed_solomon* rs = nullptr;
    try {
        rs = codec_for(g.data, g.parity);
    } catch (...) { // std::bad_alloc: give the group up rather than throw
    }
    if (!rs || rs->reconstruct_data(std::span(shards.data(), total),
                                    std::span<const bool>(present.data(), total), len)) {
        ++stats_.inconsistent;
        close_group(group);
        return;
    }
    for (std::size_t d = 0; d < k; ++d) {
        if (present[d])
            continue;
        set(g.rebuilt, d);
        if (test(g.arrived, d))
            continue; // arrived but too large to keep: passed on already
        std::span<const std::byte> shard(shards[d], len);
        std::optional<std::span<const std::byte>> payload;
        if constexpr (F == fec_framing::peerlink)
            payload = fec::shard_payload(shard);
        else
            payload = fec::kcp_shard_payload(shard);
        if (!payload) {
            ++stats_.malformed;
            continue;
        }
        recovered_.push_back(
            {static_cast<std::size_t>(payload->data() - recovered_bytes_.data()), payload->size()});
        ++stats_.recovered;
    }
    close_group(group);
}

template <fec_framing F>
bool reed_solomon_fec<F>::poll_recovered(packet_buffer& p) {
    if (recovered_next_ >= recovered_.size())
        return false;
    const auto& r = recovered_[recovered_next_++];
    p = packet_buffer(std::span(recovered_bytes_.data() + r.offset, r.len), 0);
    p.resize(r.len);
    return true;
}

} // namespace peerlink

#endif // PEERLINK_POLICY_IMPL_REED_SOLOMON_FEC_HPP
