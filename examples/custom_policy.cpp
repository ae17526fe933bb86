// A user-written policy plugged into peer_connection.
//
// `xor_mask` is an obfuscation policy: it opts in with the obfuscation tag and
// provides what peerlink::obfuscation_policy asks for (docs/policies/obfuscation.md).
// Two peers then talk through it on the simulated network, on virtual time.
#include <peerlink.hpp>

#include <cstdio>
#include <cstring>
#include <string_view>

/// XORs every byte on the wire with a key byte and adds a one-byte marker.
/// (A toy: it hides nothing from anyone who looks. See peerlink::dns_disguise.)
class xor_mask {
public:
    using policy_kind = peerlink::obfuscation_tag; // the opt-in tag
    static constexpr std::size_t max_overhead = 1; // the marker byte

    bool enabled() const noexcept { return true; }

    std::error_code wrap(peerlink::packet_buffer& p) noexcept {
        for (auto& b : p.data())
            b ^= key_;
        auto marker = p.prepend(1);
        if (marker.empty())
            return make_error_code(peerlink::error::buffer_too_small);
        marker[0] = std::byte{0x5a};
        return {};
    }

    std::error_code unwrap(peerlink::packet_buffer& p) noexcept {
        if (p.empty() || p.data()[0] != std::byte{0x5a})
            return make_error_code(peerlink::error::malformed_packet);
        p.consume_front(1);
        for (auto& b : p.data())
            b ^= key_;
        return {};
    }

private:
    std::byte key_{0xa5};
};

static_assert(peerlink::obfuscation_policy<xor_mask>);

using connection = peerlink::peer_connection<peerlink::sim_transport, xor_mask>;

int main() {
    asio::io_context io;
    peerlink::sim_network net(io, 42);
    peerlink::sim_link link;
    link.delay = std::chrono::milliseconds(20);
    net.set_default_link(link);

    std::error_code ec;
    auto ep_a = *peerlink::endpoint::parse("10.0.0.1:4000", ec);
    auto ep_b = *peerlink::endpoint::parse("10.0.0.2:4000", ec);
    peerlink::config cfg;

    constexpr std::string_view message = "hello through a custom policy";
    char got[64] = {};
    std::size_t got_size = 0;
    long long rtt_us = 0;
    {
        connection a(peerlink::with_transport, peerlink::identity::generate(), cfg, net, ep_a);
        connection b(peerlink::with_transport, peerlink::identity::generate(), cfg, net, ep_b);
        b.async_accept(std::nullopt, [&](std::error_code e) {
            if (!e)
                b.async_receive(asio::buffer(got),
                                [&](std::error_code, std::size_t n) { got_size = n; });
        });
        a.async_connect(ep_b, std::nullopt, [&](std::error_code e) {
            if (!e)
                a.async_send(asio::buffer(message.data(), message.size()),
                             [](std::error_code, std::size_t) {});
        });
        net.run_until([&] { return got_size != 0; }, std::chrono::seconds(10));
        rtt_us = a.stats().srtt.count();
    }
    // The connections' last handlers hold timers of the network: run them before it goes.
    net.run_for(peerlink::duration::zero());

    std::string_view received(got, got_size);
    std::printf(
        "B received \"%.*s\" after %.0f ms of virtual time; rtt %lld us\n",
        static_cast<int>(received.size()), received.data(),
        std::chrono::duration<double, std::milli>(net.now() - peerlink::sim_network::start_time)
            .count(),
        rtt_us);
    return received == message ? 0 : 1;
}
