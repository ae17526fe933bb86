// peerlink demo: two peers on loopback, one process, no outside server.
//
// Peer B listens, peer A connects to it by address (traversal `direct_only`),
// then A sends datagrams that B echoes back. Prints what happened: the ids, the
// states, bytes each way and the round-trip time. (Until the rendezvous server
// and the full connect flow exist, this is the whole demo.)
#include <peerlink.hpp>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/use_awaitable.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <vector>

namespace {

using connection = peerlink::peer_connection<>;

asio::awaitable<void> echo(connection& b) {
    std::vector<std::byte> buf(b.max_datagram_size());
    co_await b.async_accept(std::nullopt, asio::use_awaitable);
    std::printf("B: accepted %s\n", b.remote_peer()->to_short_string().c_str());
    for (;;) {
        auto [ec, n] =
            co_await b.async_receive(asio::buffer(buf), peerlink::as_tuple(asio::use_awaitable));
        if (ec)
            co_return; // the peer closed
        co_await b.async_send(asio::buffer(buf.data(), n), asio::use_awaitable);
    }
}

asio::awaitable<void> ping(connection& a, peerlink::endpoint to, int count, std::size_t size,
                           int& received, std::vector<double>& rtts_us) {
    co_await a.async_connect(to, std::nullopt, asio::use_awaitable);
    std::printf("A: connected to %s at %s, state %s\n", a.remote_peer()->to_short_string().c_str(),
                to.to_string().c_str(),
                std::string(peerlink::to_string(peerlink::kind_of(a.state()))).c_str());
    std::vector<std::byte> out(size), in(a.max_datagram_size());
    for (int i = 0; i < count; ++i) {
        std::memcpy(out.data(), &i, sizeof i);
        auto sent_at = std::chrono::steady_clock::now();
        co_await a.async_send(asio::buffer(out), asio::use_awaitable);
        auto n = co_await a.async_receive(asio::buffer(in), asio::use_awaitable);
        rtts_us.push_back(
            std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - sent_at)
                .count());
        int echoed = -1;
        std::memcpy(&echoed, in.data(), sizeof echoed);
        if (n == size && echoed == i)
            ++received;
    }
    a.close();
}

} // namespace

int main() {
    asio::io_context io;
    peerlink::config cfg;
    cfg.transport.bind_address = "127.0.0.1";

    auto id_a = peerlink::identity::generate();
    auto id_b = peerlink::identity::generate();
    std::printf("A: %s\nB: %s\n", id_a.id().to_string().c_str(), id_b.id().to_string().c_str());

    connection a(io.get_executor(), id_a, cfg);
    connection b(io.get_executor(), id_b, cfg);
    std::printf("A listens on %s, B on %s\n", a.local_endpoint().to_string().c_str(),
                b.local_endpoint().to_string().c_str());

    constexpr int count = 1000;
    constexpr std::size_t size = 1200;
    int received = 0;
    std::vector<double> rtts_us;
    auto start = std::chrono::steady_clock::now();
    asio::co_spawn(io, echo(b), asio::detached);
    asio::co_spawn(io, ping(a, b.local_endpoint(), count, size, received, rtts_us),
                   [](std::exception_ptr e) {
                       if (e)
                           std::rethrow_exception(e);
                   });
    io.run_for(std::chrono::seconds(20));
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

    auto sa = a.stats();
    std::printf("A: %d/%d datagrams of %zu bytes echoed in %.3f s\n", received, count, size, secs);
    std::printf("A: sent %llu bytes in %llu packets, received %llu bytes in %llu packets\n",
                static_cast<unsigned long long>(sa.bytes_sent),
                static_cast<unsigned long long>(sa.packets_sent),
                static_cast<unsigned long long>(sa.bytes_received),
                static_cast<unsigned long long>(sa.packets_received));
    std::printf("A: handshake rtt %lld us\n", static_cast<long long>(sa.srtt.count()));
    if (!rtts_us.empty()) {
        std::sort(rtts_us.begin(), rtts_us.end());
        auto pct = [&](double p) {
            return rtts_us[static_cast<std::size_t>(p * (rtts_us.size() - 1))];
        };
        std::printf("A: echo rtt p50 %.0f us, p99 %.0f us, max %.0f us\n", pct(0.5), pct(0.99),
                    rtts_us.back());
    }
    std::printf("A: state %s, B: state %s\n", sa.state.c_str(), b.stats().state.c_str());
    return received == count ? 0 : 1;
}
