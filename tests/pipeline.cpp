// The packet pipeline inside peer_connection: the Noise handshake and sealed packets,
// FEC, and live negotiation of what is switched on, on the simulated network.
#include <peerlink/peer_connection.hpp>

#include "catch.hpp"
#include "support.hpp"

#include <peerlink/net/sim_transport.hpp>
#include <peerlink/policy/dns_disguise.hpp>
#include <peerlink/policy/noise_chacha20poly1305.hpp>
#include <peerlink/policy/reed_solomon_fec.hpp>

#include <asio/io_context.hpp>
#include <asio/read.hpp>
#include <asio/write.hpp>
#include <openssl/evp.h>

#include <algorithm>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using peerlink::endpoint;
using peerlink::state_kind;

namespace {

using peerlink_test::byte_source;
using peerlink_test::ep;
using peerlink_test::sha256;
using peerlink_test::soak_bytes;

using secure_conn =
    peerlink::peer_connection<peerlink::sim_transport, peerlink::kcp<peerlink::kcp_turbo>,
                              peerlink::noise_chacha20poly1305, peerlink::reed_solomon_fec<>>;

using disguised_conn =
    peerlink::peer_connection<peerlink::sim_transport, peerlink::kcp<peerlink::kcp_turbo>,
                              peerlink::noise_chacha20poly1305, peerlink::reed_solomon_fec<>,
                              peerlink::dns_disguise>;

template <class Conn = secure_conn>
struct pair {
    asio::io_context io;
    peerlink::sim_network net;
    peerlink::config cfg;
    peerlink::identity id_a = peerlink::identity::generate();
    peerlink::identity id_b = peerlink::identity::generate();
    endpoint ep_a = ep("10.0.0.1:1000"), ep_b = ep("10.0.0.2:2000");
    std::optional<Conn> a, b;
    std::error_code ec_a, ec_b;
    bool done_a = false, done_b = false;

    explicit pair(peerlink::sim_link link, std::uint64_t seed = 1) : net(io, seed) {
        net.set_default_link(link);
        cfg.timers.connect_timeout = 3s;
    }
    void start(std::optional<peerlink::peer_id> a_expects,
               std::optional<peerlink::peer_id> b_expects) {
        a.emplace(peerlink::with_transport, id_a, cfg, net, ep_a);
        b.emplace(peerlink::with_transport, id_b, cfg, net, ep_b);
        b->async_accept(b_expects, [&](std::error_code ec) { ec_b = ec, done_b = true; });
        a->async_connect(ep_b, a_expects, [&](std::error_code ec) { ec_a = ec, done_a = true; });
        net.run_until([&] { return done_a && (done_b || ec_a); }, 30s);
    }
    ~pair() {
        a.reset();
        b.reset();
        net.run_for(1ms);
    }
};

struct transfer_result {
    std::size_t sent = 0, received = 0;
    std::string sent_hash, received_hash;
    std::error_code write_error, read_error;
    bool eof = false;
};

// A writes `total` bytes to B; `on_progress(received)` runs after each read.
template <class Pair>
transfer_result transfer(Pair& p, std::size_t total, peerlink::duration limit,
                         const std::function<void(std::size_t)>& on_progress = {}) {
    transfer_result r;
    sha256 hs, hr;
    byte_source src{7};
    std::vector<std::byte> out(256 * 1024), in(100 * 1000);
    std::function<void()> write_next = [&] {
        if (r.sent == total) {
            p.a->async_close([](std::error_code) {});
            return;
        }
        auto n = std::min(out.size(), total - r.sent);
        src.fill(std::span(out).first(n));
        hs.update(std::span(out).first(n));
        asio::async_write(*p.a, asio::buffer(out.data(), n),
                          [&](std::error_code ec, std::size_t w) {
                              r.sent += w;
                              if (ec)
                                  return void(r.write_error = ec);
                              write_next();
                          });
    };
    std::function<void()> read_next = [&] {
        asio::async_read(*p.b, asio::buffer(in), [&](std::error_code ec, std::size_t n) {
            hr.update(std::span(in).first(n));
            r.received += n;
            if (on_progress)
                on_progress(r.received);
            if (ec == asio::error::eof)
                return void(r.eof = true);
            if (ec)
                return void(r.read_error = ec);
            read_next();
        });
    };
    write_next();
    read_next();
    p.net.run_until([&] { return r.eof || r.read_error || r.write_error; }, limit);
    p.a->close();
    p.b->close();
    p.net.run_for(1ms);
    r.sent_hash = hs.hex();
    r.received_hash = hr.hex();
    return r;
}

} // namespace

TEST_CASE("pipeline: the Noise handshake authenticates both peers and seals every packet",
          "[pipeline][noise][sim]") {
    peerlink::sim_link link;
    link.delay = 5ms;
    link.loss = 0.05; // handshake messages get lost too
    bool knows_id = GENERATE(true, false);
    pair<> p(link, knows_id ? 11 : 12);
    p.start(knows_id ? std::optional(p.id_b.id()) : std::nullopt, std::nullopt);
    REQUIRE(p.done_a);
    REQUIRE(!p.ec_a);
    REQUIRE(!p.ec_b);
    CHECK(p.a->stats().cipher == (knows_id ? "noise-ik" : "noise-xx"));
    CHECK(p.b->stats().cipher == (knows_id ? "noise-ik" : "noise-xx"));
    CHECK(p.a->remote_peer() == p.id_b.id());
    CHECK(p.b->remote_peer() == p.id_a.id());

    auto r = transfer(p, 2 << 20, 10min);
    CHECK(r.eof);
    CHECK(r.received == r.sent);
    CHECK(r.received_hash == r.sent_hash);
    const auto& ca = p.a->core().cipher().counters();
    const auto& cb = p.b->core().cipher().counters();
    CHECK(ca.sealed > 1000);
    CHECK(cb.opened > 1000);
    CHECK(ca.decrypt_failed == 0);
    CHECK(cb.decrypt_failed == 0);
    CHECK(p.b->stats().dropped_unauthenticated == 0);
}

TEST_CASE("pipeline: a wrong or spoofed peer key fails with authentication_failed",
          "[pipeline][noise][sim]") {
    peerlink::sim_link link;
    link.delay = 2ms;
    auto stranger = peerlink::identity::generate();
    SECTION("the initiator expects a key the responder does not hold (IK)") {
        pair<> p(link);
        p.start(stranger.id(), std::nullopt);
        REQUIRE(p.done_a);
        CHECK(p.ec_a == peerlink::error::authentication_failed);
        CHECK(p.ec_a == peerlink::condition::authentication_failed);
        CHECK(!p.done_b); // b never saw an authenticated peer
        CHECK(p.b->stats().dropped_unauthenticated > 0);
    }
    SECTION("the responder expects another initiator (XX)") {
        pair<> p(link);
        p.start(std::nullopt, stranger.id());
        REQUIRE(p.done_a);
        CHECK(p.ec_a == peerlink::condition::authentication_failed);
        CHECK(!p.done_b);
        CHECK(p.b->stats().dropped_unauthenticated > 0);
    }
    SECTION("a packet sealed with other keys, or forged, is dropped and counted") {
        pair<> p(link);
        p.start(p.id_b.id(), std::nullopt);
        REQUIRE(!p.ec_a);
        auto before = p.b->stats().dropped_unauthenticated;
        std::vector<std::byte> forged(200, std::byte{0x5a});
        forged[0] = std::byte{0xC1}; // a sealed envelope with garbage inside
        p.b->core().handle_datagram(forged, p.ep_a, p.net.now());
        forged[0] = std::byte{0x01}; // a plain frame while the cipher is required
        forged[1] = std::byte{0x03};
        p.b->core().handle_datagram(forged, p.ep_a, p.net.now());
        CHECK(p.b->stats().dropped_unauthenticated == before + 2);
        CHECK(p.b->stats().datagrams_received == 0);
    }
}

TEST_CASE("pipeline: FEC, its ratio and the cipher switched on a live 100 MiB stream at 5% "
          "loss, nothing lost",
          "[pipeline][negotiation][sim]") {
    peerlink::sim_link link;
    link.delay = 10ms;
    link.jitter = 2ms;
    link.loss = 0.05;
    link.reorder = 0.02;
    link.duplicate = 0.01;
    link.bandwidth_bps = 200'000'000;
    link.queue_limit_bytes = 4 << 20;
    pair<> p(link, 77);
    p.cfg.features.cipher = false;       // both allow the cipher off: it starts off
    p.cfg.features.fec_adaptive = false; // the ratios here are the test's
    p.start(p.id_b.id(), std::nullopt);
    REQUIRE(!p.ec_a);
    CHECK(p.a->features().cipher_off);
    CHECK(p.b->features().cipher_off);

    using pf = peerlink::pipeline_features;
    const std::vector<pf> steps = {
        {true, false, true, {8, 2}},   // FEC on, 8:2
        {true, false, false, {4, 4}},  // cipher on, ratio 4:4
        {false, false, false, {4, 4}}, // FEC off
        {false, false, true, {4, 4}},  // cipher off again
        {true, false, false, {10, 3}}, // FEC and cipher on
    };
    auto total = soak_bytes();
    // A switch every few MiB (4 MiB of 100; fewer bytes in the sanitizer run), cycling
    // through the steps, the two sides asking in turn, until the last 8 MiB.
    const std::size_t step_bytes = std::max<std::size_t>(total / 25, 1 << 18);
    const std::size_t switches = total / step_bytes - 2;
    auto step = [&](std::size_t i) {
        return steps[i % steps.size()];
    };
    std::size_t next_step = 0, agreed = 0;
    std::size_t recovered_with_fec = 0;
    auto r = transfer(p, total, std::chrono::hours(2), [&](std::size_t received) {
        if (next_step > 0 && !p.a->features_pending() && !p.b->features_pending() &&
            p.a->features() == step(next_step - 1) && p.b->features() == step(next_step - 1))
            agreed = std::max(agreed, next_step);
        if (next_step < switches && received >= (next_step + 1) * step_bytes &&
            agreed == next_step) {
            auto& asker = next_step % 2 ? *p.b : *p.a;
            auto ec = asker.set_features(step(next_step));
            INFO("step " << next_step << ": " << ec.message());
            REQUIRE(!ec);
            ++next_step;
        }
        recovered_with_fec = p.b->stats().fec_recovered + p.a->stats().fec_recovered;
    });
    INFO("sent " << r.sent << " received " << r.received << " steps " << next_step << " agreed "
                 << agreed);
    CHECK(r.eof);
    CHECK(!r.read_error);
    CHECK(!r.write_error);
    CHECK(r.received == total);
    CHECK(r.received_hash == r.sent_hash);
    CHECK(next_step >= switches - 2); // a switch waits for the previous one to be agreed
    CHECK(agreed >= next_step - 1);
    CHECK(recovered_with_fec > 0);            // parity rebuilt lost packets while FEC was on
    CHECK(p.a->stats().cipher == "noise-ik"); // the last step switched it back on
    CHECK(p.b->core().cipher().counters().opened > 1000);
}

TEST_CASE("pipeline: requests the peer cannot take are refused up front or answered with "
          "less",
          "[pipeline][negotiation][sim]") {
    peerlink::sim_link link;
    link.delay = 2ms;
    pair<> p(link);
    p.cfg.features.fec_adaptive = false;
    p.start(p.id_b.id(), std::nullopt); // both require the cipher (the default)
    REQUIRE(!p.ec_a);
    CHECK(!p.a->features().cipher_off);
    peerlink::pipeline_features want = p.a->features();
    want.disguise = true; // no obfuscation policy compiled in
    CHECK(p.a->set_features(want) == peerlink::error::feature_unavailable);
    want.disguise = false;
    want.ratio = {0, 3};
    CHECK(p.a->set_features(want) == peerlink::error::invalid_config);
    want.ratio = {6, 3};
    want.cipher_off = true; // b's configuration requires the cipher
    REQUIRE(!p.a->set_features(want));
    CHECK(p.a->set_features(want) == peerlink::error::operation_in_progress);
    p.net.run_until([&] { return !p.a->features_pending(); }, 5s);
    CHECK(!p.a->features_pending());
    CHECK(!p.a->features().cipher_off); // refused
    CHECK(p.a->features().ratio == peerlink::fec_ratio{6, 3});
    CHECK(p.b->features() == p.a->features());
    CHECK(p.a->stats().cipher == "noise-ik");
}

TEST_CASE("pipeline: the DNS disguise agreed at connect and switched off and on again, "
          "under loss",
          "[pipeline][negotiation][dns][sim]") {
    peerlink::sim_link link;
    link.delay = 5ms;
    link.loss = 0.05;
    link.reorder = 0.02;
    pair<disguised_conn> p(link, 5);
    p.cfg.features.fec_adaptive = false;
    p.cfg.features.disguise = true; // both want it; the first packets are already disguised
    p.start(std::nullopt, std::nullopt);
    REQUIRE(!p.ec_a);
    REQUIRE(!p.ec_b);
    CHECK(p.a->features().disguise);
    CHECK(p.b->features().disguise);
    CHECK(p.a->stats().disguise == "on");
    CHECK(p.a->stats().cipher == "noise-xx");

    using pf = peerlink::pipeline_features;
    const std::vector<pf> steps = {
        {true, false, false, {8, 2}}, // disguise off, FEC on
        {true, true, false, {8, 2}},  // disguise on again
        {false, true, false, {8, 2}}, // FEC off, disguise stays
    };
    const std::size_t total = 24u << 20, step_bytes = 5u << 20;
    std::size_t next_step = 0, agreed = 0;
    std::uint64_t wrapped_when_off = 0;
    auto r = transfer(p, total, 30min, [&](std::size_t received) {
        if (next_step > 0 && !p.a->features_pending() && !p.b->features_pending() &&
            p.a->features() == steps[next_step - 1] && p.b->features() == steps[next_step - 1])
            agreed = std::max(agreed, next_step);
        if (agreed == 1 && next_step == 1)
            wrapped_when_off = p.a->core().obfuscation().counters().wrapped;
        if (next_step < steps.size() && received >= (next_step + 1) * step_bytes &&
            agreed == next_step) {
            auto& asker = next_step % 2 ? *p.a : *p.b;
            REQUIRE(!asker.set_features(steps[next_step]));
            ++next_step;
        }
    });
    INFO("sent " << r.sent << " received " << r.received << " steps " << next_step);
    CHECK(r.eof);
    CHECK(r.received == total);
    CHECK(r.received_hash == r.sent_hash);
    CHECK(agreed == steps.size());
    const auto& ca = p.a->core().obfuscation().counters();
    const auto& cb = p.b->core().obfuscation().counters();
    CHECK(ca.wrapped > 1000);
    CHECK(cb.unwrapped > 1000);
    CHECK(wrapped_when_off > 0);
    CHECK(ca.wrapped > wrapped_when_off); // on again after the off step
    CHECK(p.b->stats().dropped_malformed < 10);
}

TEST_CASE("pipeline: adaptive FEC follows the measured loss and tells the peer",
          "[pipeline][negotiation][fec][sim]") {
    peerlink::sim_link link;
    link.delay = 10ms;
    link.bandwidth_bps = 100'000'000;
    link.queue_limit_bytes = 4 << 20;
    auto loss = GENERATE(0.003, 0.15, 0.30);
    link.loss = loss;
    pair<> p(link, 300 + static_cast<std::uint64_t>(loss * 1000));
    p.cfg.features.fec = true; // adaptive by default
    p.start(p.id_b.id(), std::nullopt);
    REQUIRE(!p.ec_a);
    CHECK(p.a->features().fec);
    CHECK(p.a->stats().fec == "10:3"); // the configured ratio until loss is measured
    auto r = transfer(p, 16u << 20, 30min);
    CHECK(r.eof);
    CHECK(r.received_hash == r.sent_hash);
    // The default table: <1% 10:1, 10-20% 4:4, >20% 3:5.
    peerlink::fec_ratio expected = loss < 0.01  ? peerlink::fec_ratio{10, 1}
                                   : loss < 0.2 ? peerlink::fec_ratio{4, 4}
                                                : peerlink::fec_ratio{3, 5};
    INFO("loss " << loss << ": ratio " << p.a->stats().fec << " / " << p.b->stats().fec);
    CHECK(p.a->features().ratio == expected);
    CHECK(p.b->features().ratio == expected);
}
