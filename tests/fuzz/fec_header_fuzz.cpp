// libFuzzer target: FEC headers in both framings, and the FEC policy's receiver.
//
// Input: byte 0 picks the policy's framing (bit 0: 0 peerlink, 1 kcp-go); the rest
// is a list of packets, each a u16 big-endian length and that many bytes (the last
// one takes what is left). Every packet goes through both header decoders, whose
// result must re-encode to the same bytes, and then, in order, through one
// receiving policy, which must stay within its memory bound and never hand out
// more than it could have received.
#include <peerlink/policy/reed_solomon_fec.hpp>

#include <cstring>
#include <vector>

namespace {

namespace fec = peerlink::fec;

void check_headers(std::span<const std::byte> in) {
    std::error_code ec;
    if (auto pk = fec::decode(in, ec)) {
        std::vector<std::byte> out(in.size() + 16);
        if (pk->header.type == fec::shard_type::data) {
            peerlink::packet_buffer p(out, 16);
            if (!p.append(pk->payload) || fec::prepend_data(p, pk->header) ||
                p.size() != in.size() || std::memcmp(p.data().data(), in.data(), in.size()) != 0)
                __builtin_trap();
            if (fec::shard_payload(pk->shard)->size() != pk->payload.size())
                __builtin_trap();
        } else {
            fec::write_header(out, pk->header);
            if (!fec::valid(pk->header) || std::memcmp(out.data(), in.data(), fec::header_size))
                __builtin_trap();
        }
    } else if (!ec) {
        __builtin_trap();
    }
    if (auto pk = fec::decode_kcp(in, ec)) {
        std::vector<std::byte> out(in.size() + 16);
        if (pk->header.type == fec::shard_type::data) {
            peerlink::packet_buffer p(out, 16);
            if (!p.append(pk->payload) || fec::prepend_kcp_data(p, pk->header.seqid) ||
                p.size() != in.size() || std::memcmp(p.data().data(), in.data(), in.size()) != 0)
                __builtin_trap();
        } else {
            fec::write_kcp_header(out, pk->header);
            if (std::memcmp(out.data(), in.data(), fec::kcp_header_size) != 0)
                __builtin_trap();
        }
    }
    (void)fec::shard_payload(in);
    (void)fec::kcp_shard_payload(in);
}

template <peerlink::fec_framing F>
void run_policy(const std::vector<std::vector<std::byte>>& packets) {
    peerlink::fec_config cfg;
    cfg.data_shards = 4;
    cfg.parity_shards = 2;
    cfg.max_payload = 256;
    std::error_code ec;
    peerlink::reed_solomon_fec<F> rx(cfg, ec);
    if (ec)
        __builtin_trap();
    // Shards of up to 255-shard groups (peerlink framing) may make it grow, never past this.
    const std::size_t bound =
        rx.memory_bytes() + cfg.window * 255 * (cfg.max_payload + 2) * 2 + cfg.window * 255 * 128;
    const auto t = peerlink::time_point{};
    for (const auto& packet : packets) {
        std::vector<std::byte> copy = packet;
        peerlink::packet_buffer p(copy, 0);
        p.resize(copy.size());
        (void)rx.decode(p, t);
        if (p.size() > packet.size())
            __builtin_trap();
        while (rx.poll_recovered(p))
            if (p.size() > cfg.max_payload)
                __builtin_trap();
        if (rx.memory_bytes() > bound)
            __builtin_trap();
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0)
        return 0;
    const bool kcp = data[0] & 1;
    std::vector<std::vector<std::byte>> packets;
    std::size_t i = 1;
    while (i < size) {
        std::size_t n = size - i >= 2 ? (std::size_t{data[i]} << 8 | data[i + 1]) : 0;
        i += std::min<std::size_t>(2, size - i);
        n = std::min(n, size - i);
        const auto* b = reinterpret_cast<const std::byte*>(data + i);
        packets.emplace_back(b, b + n);
        i += n;
    }
    for (const auto& p : packets)
        check_headers(p);
    if (kcp)
        run_policy<peerlink::fec_framing::kcp_go>(packets);
    else
        run_policy<peerlink::fec_framing::peerlink>(packets);
    return 0;
}
