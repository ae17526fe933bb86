// libFuzzer target: the connectivity core (peerlink/proto/punch.hpp) and the candidate
// JSON form. The first byte chooses: bit 3 set, the rest is JSON text for
// `candidate_from_json` / `nat_info_from_json`, whose output must re-encode and decode
// to the same value. Otherwise (bit 0: controlling, bit 1: started) the rest is a
// sequence of datagrams, each a 2-byte big-endian length, a source byte and the bytes,
// fed to a core with fixed credentials (local "fz" / "fuzz-local-password-000", remote
// "peer" / "fuzz-remote-password-00") on a virtual clock. Everything the core sends
// must be a STUN message with a valid FINGERPRINT and a MESSAGE-INTEGRITY made with
// the right password: answers with ours, checks with the peer's.
#include <peerlink/proto/punch.hpp>

#include <chrono>
#include <cstdint>
#include <cstring>

namespace {

namespace ice = peerlink::ice;
namespace stun = peerlink::stun;

void check(bool ok) {
    if (!ok)
        __builtin_trap();
}

void fuzz_json(const std::uint8_t* data, std::size_t size) {
    auto j = nlohmann::json::parse(data, data + size, nullptr, false);
    if (j.is_discarded())
        return;
    std::error_code ec;
    if (auto c = ice::candidate_from_json(j, ec)) {
        auto again = ice::candidate_from_json(ice::to_json(*c), ec);
        check(again && *again == *c);
    }
    if (auto n = ice::nat_info_from_json(j, ec)) {
        auto again = ice::nat_info_from_json(ice::to_json(*n), ec);
        check(again && again->mapping == n->mapping && again->mapped_ports == n->mapped_ports);
    }
}

void check_output(ice::punch_core& core) {
    while (auto t = core.poll_transmit()) {
        std::error_code ec;
        auto m = stun::decode(t->data, ec);
        check(m.has_value());
        check(!stun::verify_fingerprint(*m));
        const auto key = m->is_request() ? stun::short_term_key("fuzz-remote-password-00")
                                         : stun::short_term_key("fuzz-local-password-000");
        check(!stun::verify_integrity(*m, key, stun::integrity_kind::sha1));
    }
    while (core.poll_event()) {
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1)
        return 0;
    const auto flags = data[0];
    if (flags & 8) {
        fuzz_json(data + 1, size - 1);
        return 0;
    }
    ice::punch_config cfg;
    cfg.controlling = flags & 1;
    cfg.local_ufrag = "fz";
    cfg.local_password = "fuzz-local-password-000";
    cfg.birthday_probes = 64;
    cfg.birthday_sockets = 4;
    cfg.random = [](std::span<std::byte> out) {
        for (std::size_t i = 0; i < out.size(); ++i)
            out[i] = static_cast<std::byte>(0x5a ^ i);
    };
    cfg.local_nat.mapping = (flags & 4) ? ice::mapping_behaviour::endpoint_dependent
                                        : ice::mapping_behaviour::endpoint_independent;
    ice::punch_core core(cfg);
    std::error_code ec;
    peerlink::time_point now{};
    const auto host = *peerlink::endpoint::parse("10.0.0.1:4000", ec);
    core.add_local_candidate(ice::make_candidate(ice::candidate_type::host, host, host), now);
    check(!core.set_remote_credentials("peer", "fuzz-remote-password-00"));
    const auto srflx = *peerlink::endpoint::parse("198.18.2.1:5000", ec);
    core.add_remote_candidate(
        ice::make_candidate(ice::candidate_type::server_reflexive, srflx, srflx), now);
    core.set_remote_nat({(flags & 4) ? ice::mapping_behaviour::endpoint_independent
                                     : ice::mapping_behaviour::endpoint_dependent,
                         {5000, 5002}});
    if (flags & 2)
        check(!core.start(now, now));
    check_output(core);
    std::size_t pos = 1;
    while (pos + 3 <= size) {
        const std::size_t n = (std::size_t{data[pos]} << 8) | data[pos + 1];
        const auto src = data[pos + 2];
        pos += 3;
        const std::size_t len = std::min(n, size - pos);
        peerlink::endpoint from = srflx;
        from.port = static_cast<std::uint16_t>(5000 + (src & 7));
        now += std::chrono::milliseconds(src);
        core.handle_datagram({reinterpret_cast<const std::byte*>(data + pos), len}, from, src >> 7,
                             now);
        check_output(core);
        if (auto t = core.poll_timeout(); t && *t <= now + std::chrono::milliseconds(100)) {
            core.handle_timeout(std::max(now, *t));
            check_output(core);
        }
        pos += len;
    }
    return 0;
}
