// peerlink/policy/reed_solomon_fec.hpp: forward error correction with a
// Reed-Solomon code, as a FEC policy of the packet pipeline.
//
// The sender groups its packets: after every `data` packets it sends `parity`
// parity packets, computed over the group with reed_solomon (GF(2^8), SIMD).
// The receiver passes each data packet on at once, keeps a copy, and as soon as
// any `data` packets of a group are in, rebuilds the group's missing data packets
// and yields them too. So up to `parity` lost packets per group cost no
// retransmission and no round trip.
//
// Two framings (peerlink/proto/fec_framing.hpp has the bytes):
//
// - `reed_solomon_fec<>` (fec_framing::peerlink): every packet names its group,
//   its place and its group's ratio, so the ratio can change between any two
//   groups and the receiver follows on its own.
// - `reed_solomon_fec<fec_framing::kcp_go>`: kcp-go's FEC framing and code
//   (klauspost/reedsolomon's matrix), to talk to kcp-go and so to kcptun. The
//   ratio is not on the wire: the receiver must be told the peer's ratio
//   (`set_peer_ratio`); the sender may still change its own between groups.
//
// @par Memory and time
// Buffers are allocated when the policy is configured or its ratio grows, never
// per packet. The receiver keeps at most `window x (data + parity)` shards of
// `max_payload + 2` bytes (10:3, 1500 bytes, window 3: 59 KB); when groups that
// never complete fill that, the oldest are dropped and counted. Encoding a packet
// copies it once; decoding copies each packet once while its group is open.
//
// @par Example
// @code
// peerlink::fec_config cfg;
// cfg.enabled = true;
// std::error_code ec;
// peerlink::reed_solomon_fec<> fec(cfg, ec);
// // send: frame the payload into p (with max_overhead bytes of headroom), then
// fec.encode(p, now);   send(p);
// while (fec.poll_parity(q)) send(q);      // q: a fresh buffer per parity packet
// // receive:
// if (!fec.decode(p, now) && !p.empty()) deliver(p);
// while (fec.poll_recovered(p)) deliver(p);
// @endcode
#ifndef PEERLINK_POLICY_REED_SOLOMON_FEC_HPP
#define PEERLINK_POLICY_REED_SOLOMON_FEC_HPP

#include <peerlink/concepts.hpp>
#include <peerlink/proto/fec_framing.hpp>
#include <peerlink/proto/fec_ratio_controller.hpp>
#include <peerlink/proto/reed_solomon.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <system_error>
#include <vector>

namespace peerlink {

/// The FEC packet framing of a `reed_solomon_fec`.
enum class fec_framing {
    peerlink, ///< peerlink's own: self-describing groups (ratio on the wire).
    kcp_go,   ///< kcp-go's: seqid + type, ratio agreed out of band.
};

/// Settings of a `reed_solomon_fec`.
struct fec_config {
    /// Whether the sender protects its packets. Off by default: the connection
    /// switches it on once the peer agreed. The receiver always decodes FEC packets,
    /// so the peer may switch on first without a packet being lost.
    bool enabled = false;
    /// The sender's ratio: data packets per group (1..254)...
    std::uint8_t data_shards = 10;
    /// ...and parity packets per group (1..254; data + parity <= 255).
    std::uint8_t parity_shards = 3;
    /// Largest payload that gets protected, in bytes (the path MTU minus the headers
    /// of the stages after FEC). Larger packets are sent as they are, unprotected,
    /// and the receiver cannot keep larger shards. Both sides should agree.
    std::size_t max_payload = 1500;
    /// The receiver keeps `window x (data + parity)` shards of open groups (1..16).
    std::size_t window = 3;
};

/// Counters of a `reed_solomon_fec`.
struct fec_stats {
    // Sending.
    std::uint64_t data_sent = 0;        ///< Data packets framed.
    std::uint64_t parity_sent = 0;      ///< Parity packets handed out by `poll_parity`.
    std::uint64_t groups_sent = 0;      ///< Groups whose parity was computed.
    std::uint64_t unprotected_sent = 0; ///< Packets over `max_payload`, sent as they are.
    std::uint64_t parity_dropped = 0;   ///< Parity packets not polled in time or without room.
    // Receiving.
    std::uint64_t plain_received = 0;    ///< Packets without FEC framing, passed on as they are.
    std::uint64_t data_received = 0;     ///< Data packets.
    std::uint64_t parity_received = 0;   ///< Parity packets.
    std::uint64_t duplicates = 0;        ///< Packets already received or rebuilt (dropped).
    std::uint64_t recovered = 0;         ///< Data packets rebuilt from parity.
    std::uint64_t groups_complete = 0;   ///< Groups whose data all arrived or was rebuilt.
    std::uint64_t groups_evicted = 0;    ///< Incomplete groups dropped to make room.
    std::uint64_t data_lost = 0;         ///< Data packets of evicted groups, never seen.
    std::uint64_t late = 0;              ///< Packets of groups older than the window.
    std::uint64_t malformed = 0;         ///< FEC packets that did not decode.
    std::uint64_t inconsistent = 0;      ///< Packets disagreeing with their group (dropped).
    std::uint64_t ratio_mismatch = 0;    ///< kcp-go: a type contradicting the agreed ratio.
    std::uint64_t unstored = 0;          ///< Shards larger than `max_payload + 2`: not kept.
    std::uint64_t recovered_dropped = 0; ///< Rebuilt packets not polled before the next decode.
    /// Shards of closed groups (evicted or replaced by newer groups), and how many of
    /// them never arrived: the loss rate the peer's parity faces is the ratio of
    /// their increments over an interval.
    std::uint64_t shards_expected = 0;
    std::uint64_t shards_lost = 0;
};

/// A FEC policy with a systematic Reed-Solomon code over GF(2^8).
///
/// @tparam Framing `fec_framing::peerlink` (default) or `fec_framing::kcp_go`.
///
/// Not thread-safe. Never throws, except `std::bad_alloc` from the calls that
/// (re)size buffers: construction, `configure`, and the ratio changes.
template <fec_framing Framing = fec_framing::peerlink>
class reed_solomon_fec {
public:
    using policy_kind = fec_tag;

    /// Bytes of the FEC header (8 peerlink, 6 kcp-go).
    static constexpr std::size_t header_size =
        Framing == fec_framing::peerlink ? fec::header_size : fec::kcp_header_size;
    /// Bytes `encode` adds in front of a packet: header and size field (10 or 8).
    static constexpr std::size_t max_overhead = header_size + fec::size_field_size;

    /// A policy with the default `fec_config` (switched off, 10:3, 1500 bytes).
    reed_solomon_fec();

    /// A policy with `config`. If `configure` fails, `ec` says why and the policy
    /// keeps the default configuration.
    reed_solomon_fec(const fec_config& config, std::error_code& ec);

    /// Checks `config`.
    /// @returns `fec_error::invalid_shard_count` for a bad ratio, `error::invalid_config`
    /// for a `max_payload` of 0 or over the framing's limit, or a `window` outside 1..16.
    static std::error_code validate(const fec_config& config) noexcept;

    /// Applies `config`, dropping every open group (sent and received).
    /// @returns what `validate` returns; on error nothing changes.
    std::error_code configure(const fec_config& config);

    /// Whether the sender protects its packets now (the receiver always decodes).
    bool enabled() const noexcept { return enabled_; }

    /// Switches the sender's protection on or off. Switching off in the middle of a
    /// group abandons that group (its parity is never sent); parity already computed
    /// can still be polled. Switching on starts a new group.
    void set_enabled(bool on) noexcept;

    /// Sets the sender's ratio. It takes effect with the next group: at once if no
    /// group is open, else after the open group's last data packet.
    /// @returns `fec_error::invalid_shard_count` unless data >= 1, parity >= 1 and
    /// data + parity <= 255.
    std::error_code set_ratio(fec_ratio ratio);

    /// The sender's ratio for the group being filled (or the next one).
    fec_ratio ratio() const noexcept { return ratio_; }

    /// The ratio set for the next group (== `ratio()` unless a change is pending).
    fec_ratio next_ratio() const noexcept { return next_ratio_; }

    /// Whether a group is open: some of its data packets are sent, its parity is not.
    bool group_open() const noexcept { return enc_index_ != 0; }

    /// kcp-go framing: the ratio the peer sends with (kcp-go does not put it on the
    /// wire). Open received groups are dropped. With the peerlink framing it only
    /// sizes the receive buffers ahead of time.
    /// @returns `fec_error::invalid_shard_count` for a bad ratio.
    std::error_code set_peer_ratio(fec_ratio ratio);

    /// The counters.
    const fec_stats& stats() const noexcept { return stats_; }

    /// Bytes of buffers held: fixed once the ratios stop growing, whatever arrives.
    std::size_t memory_bytes() const noexcept;

    /// Received groups still waiting for packets.
    std::size_t pending_groups() const noexcept;

    /// Frames an outgoing packet.
    ///
    /// When enabled, prepends the FEC header and size field (`max_overhead` bytes)
    /// into `p`'s headroom and keeps a copy of the packet for the group's parity.
    /// When the group's last data packet goes through, its parity packets become
    /// ready for `poll_parity`. When disabled, or for a payload over `max_payload`,
    /// `p` is left as it is.
    ///
    /// The payload must not look like a FEC packet: with the peerlink framing its
    /// first byte is not 0xf1 or 0xf2 (peerlink frames start with their version),
    /// with kcp-go's its bytes 4..5 are not f1 00 or f2 00 (never true of KCP).
    ///
    /// @returns `error::buffer_too_small` if the headroom is under `max_overhead`
    /// (`p` and the group are then unchanged).
    std::error_code encode(packet_buffer& p, time_point now);

    /// Yields the next parity packet. Call after each `encode` until it returns false.
    ///
    /// The parity packet is written where `encode` would put a data packet whose
    /// payload started at `p`'s front: from `max_overhead` bytes before the front
    /// (header and the parity of the size fields) to (largest payload of the group)
    /// bytes after it. Whatever `p` held is dropped.
    ///
    /// @returns false if no parity packet is ready, or if `p` lacks the room (that
    /// parity packet is then dropped and counted in `parity_dropped`). Parity not
    /// polled before the next group completes is dropped and counted too.
    bool poll_parity(packet_buffer& p);

    /// Unframes a received packet.
    ///
    /// A data packet becomes its payload, passed on at once; a parity packet, or a
    /// packet already received or rebuilt, becomes empty; a packet without FEC
    /// framing is left as it is. When the packet completes what its group needs,
    /// the group's missing data packets are rebuilt for `poll_recovered`.
    ///
    /// @returns `error::malformed_packet` for a FEC packet that does not decode;
    /// every other packet, even one that cannot be used, returns success.
    std::error_code decode(packet_buffer& p, time_point now);

    /// Yields the next rebuilt data packet. Call after each `decode` until it
    /// returns false; `decode` drops what was not polled.
    ///
    /// On true, `p` views a rebuilt payload in the policy's own storage (p's own
    /// storage is not used): valid until the next `decode`, `configure` or ratio
    /// change. It may be changed in place.
    bool poll_recovered(packet_buffer& p);

private:
    static constexpr std::uint32_t no_owner = 0xffffffff;
    static constexpr std::size_t npos = static_cast<std::size_t>(-1);

    enum class group_state : std::uint8_t { free, collecting, done };
    using mask = std::array<std::uint64_t, 4>;

    struct group_record {
        std::uint32_t key = 0; // group number (peerlink) or first seqid (kcp-go)
        std::uint8_t data = 0;
        std::uint8_t parity = 0;
        group_state state = group_state::free;
        std::uint16_t received = 0;     // distinct shards that arrived
        std::uint16_t data_present = 0; // data shards that arrived (while collecting)
        std::uint16_t stored = 0;       // shards held in slots
        std::size_t parity_len = 0;     // 0 until a parity shard arrived
        mask arrived{};
        mask rebuilt{};
    };

    struct slot {
        std::uint32_t owner = no_owner; // index of the group record
        std::uint8_t index = 0;
        std::size_t len = 0;
    };

    struct recovered_ref {
        std::size_t offset = 0;
        std::size_t len = 0;
    };

    struct incoming {
        std::uint32_t key = 0;
        std::uint8_t data = 0;
        std::uint8_t parity = 0;
        std::uint8_t index = 0;
        fec::shard_type type = fec::shard_type::data;
        std::span<const std::byte> shard;
    };

    enum class store_result { kept, duplicate, skipped };

    // Sending.
    void apply_next_ratio();
    void finish_group() noexcept;
    void abandon_group() noexcept;
    void align_seqid() noexcept;
    // Receiving.
    void reset_receiver();
    void ensure_receive_capacity(std::size_t data, std::size_t parity);
    store_result store(const incoming& in);
    std::size_t find_group(std::uint32_t key) const noexcept;
    std::size_t open_group(const incoming& in) noexcept;
    std::size_t allocate_slot(std::size_t group) noexcept;
    void release_slots(std::size_t group) noexcept;
    void retire(std::size_t group) noexcept;
    void close_group(std::size_t group) noexcept;
    void recover(std::size_t group) noexcept;
    std::int64_t age(std::uint32_t key) const noexcept;
    reed_solomon* codec_for(std::uint8_t data, std::uint8_t parity);
    std::byte* slot_bytes(std::size_t i) noexcept { return slot_bytes_.data() + i * shard_cap_; }

    static bool test(const mask& m, std::size_t i) noexcept { return (m[i / 64] >> (i % 64)) & 1; }
    static void set(mask& m, std::size_t i) noexcept { m[i / 64] |= std::uint64_t{1} << (i % 64); }

    fec_config config_;
    std::size_t shard_cap_ = 0; // max_payload + size field
    fec_stats stats_;

    // Sending.
    bool enabled_ = false;
    fec_ratio ratio_;
    fec_ratio next_ratio_;
    reed_solomon enc_codec_;
    std::size_t enc_index_ = 0;   // data shards of the open group so far
    std::size_t enc_max_len_ = 0; // longest shard of the open group
    std::uint32_t enc_group_ = 0; // peerlink: number of the open group
    std::uint32_t enc_seqid_ = 0; // kcp-go: next seqid
    std::vector<std::byte> enc_data_;
    std::vector<std::size_t> enc_len_;
    std::vector<std::byte> enc_parity_;
    std::size_t parity_ready_ = 0;
    std::size_t parity_next_ = 0;
    std::size_t parity_len_ = 0;
    fec_ratio parity_ratio_;
    std::uint32_t parity_key_ = 0; // peerlink: group; kcp-go: seqid of the first parity

    // Receiving.
    fec_ratio peer_ratio_;
    std::vector<group_record> groups_;
    std::vector<slot> slots_;
    std::vector<std::byte> slot_bytes_;
    std::vector<std::byte> recovered_bytes_;
    std::vector<recovered_ref> recovered_;
    std::size_t recovered_next_ = 0;
    std::uint32_t newest_key_ = 0;
    bool has_newest_ = false;
    struct codec_entry {
        reed_solomon rs;
        std::uint64_t used = 0;
    };
    std::array<codec_entry, 4> codecs_;
    std::uint64_t codec_clock_ = 0;
};

static_assert(fec_policy<reed_solomon_fec<>>);
static_assert(fec_policy<reed_solomon_fec<fec_framing::kcp_go>>);

} // namespace peerlink

#include <peerlink/policy/impl/reed_solomon_fec.hpp>

#endif // PEERLINK_POLICY_REED_SOLOMON_FEC_HPP
