// peerlink's TURN client against a real TURN server (coturn), and an echo peer.
//
//   turn_check run --server ADDR:PORT --transport udp|tcp [--user U] [--password P]
//                  [--peer-bind ADDR | --remote-peer ADDR:PORT] [--wait SECONDS]
//                  [--bad-password] [--forbidden-peer ADDR:PORT] [--expect-stale]
//                  [--expect-timeout]
//                  [--rto-ms N] [--requests N] [--deadline SECONDS]
//   turn_check echo --bind ADDR:PORT
//
// `run` allocates through `peerlink::turn_client`, installs a permission for the peer
// (an echo peer in this process on --peer-bind, or a remote one started with `echo`),
// exchanges datagrams both ways through Send/Data indications, then binds a channel
// and exchanges them again as ChannelData, refreshes on demand, optionally waits
// --wait seconds (long enough for a server with short lifetimes to expire the
// allocation, permission and channel unless the client refreshes them) and exchanges
// again (with --expect-stale: having answered at least one 438 from a server whose
// nonces expire quickly), checks that a denied peer is refused (403), deallocates, and
// checks that a
// wrong password gives turn_error::unauthorized. Every step prints "ok:" or "FAIL:";
// the exit status is 0 when all passed. With --expect-timeout it only checks that the
// Allocate gets no answer (turn_error::timeout): a path where the server is
// unreachable over this transport.
//
// The echo peer answers each datagram with "echo <source> <payload>", so the client
// can check that its data left the server from the relayed address.
#include <peerlink/completion_tokens.hpp>
#include <peerlink/net/turn_client.hpp>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/udp.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace std::chrono_literals;
using asio::awaitable;
using asio::use_awaitable;
using peerlink::endpoint;
using peerlink::turn_error;
constexpr auto tuple_awaitable = peerlink::as_tuple(asio::use_awaitable);

int failures = 0;

void pass(const std::string& what) {
    std::printf("ok:   %s\n", what.c_str());
}
void fail(const std::string& what) {
    std::printf("FAIL: %s\n", what.c_str());
    ++failures;
}
void check(bool ok, const std::string& what) {
    ok ? pass(what) : fail(what);
}

std::string describe(std::error_code ec) {
    return ec ? ec.message() + " [" + ec.category().name() + ":" + std::to_string(ec.value()) + "]"
              : "success";
}

std::span<const std::byte> bytes_of(std::string_view s) {
    return std::as_bytes(std::span<const char>(s.data(), s.size()));
}

// Answers every datagram with "echo <source> <payload>".
class echo_peer {
public:
    echo_peer(asio::any_io_executor ex, const endpoint& at)
        : socket_(ex, peerlink::to_asio(at)), buf_(70000) {}

    endpoint local() const { return peerlink::from_asio(socket_.local_endpoint()); }
    std::size_t echoed() const { return echoed_; }
    void close() {
        std::error_code ec;
        socket_.close(ec);
    }

    awaitable<void> run() {
        for (;;) {
            asio::ip::udp::endpoint from;
            auto [ec, n] =
                co_await socket_.async_receive_from(asio::buffer(buf_), from, tuple_awaitable);
            if (ec == asio::error::operation_aborted || ec == asio::error::bad_descriptor)
                co_return;
            if (ec)
                continue;
            std::string reply = "echo " + peerlink::from_asio(from).to_string() + " ";
            reply.append(reinterpret_cast<const char*>(buf_.data()), n);
            std::error_code sec;
            socket_.send_to(asio::buffer(reply), from, 0, sec);
            ++echoed_;
        }
    }

private:
    asio::ip::udp::socket socket_;
    std::vector<std::byte> buf_;
    std::size_t echoed_ = 0;
};

struct options {
    endpoint server;
    bool tcp = false;
    std::string user = "alice";
    std::string password = "secret";
    std::optional<endpoint> peer_bind;
    std::optional<endpoint> remote_peer;
    std::optional<endpoint> forbidden_peer;
    int wait_seconds = 0;
    bool bad_password = false;
    bool expect_timeout = false;
    bool expect_stale = false;
    int rto_ms = 500;
    unsigned requests = 7;
    int deadline_seconds = 60;
};

peerlink::turn::client_config config_for(const options& o, const std::string& password) {
    peerlink::turn::client_config c;
    c.username = o.user;
    c.password = password;
    c.software = "peerlink turn_check";
    c.rto = std::chrono::milliseconds(o.rto_ms);
    c.max_requests = o.requests;
    // Short intervals so that a server with short lifetimes (the interop test runs
    // coturn with 10 s allocations, 6 s permissions, 8 s channels) sees refreshes.
    if (o.wait_seconds > 0) {
        c.permission_refresh = 4s;
        c.channel_refresh = 5s;
    }
    return c;
}

peerlink::turn_client make_client(asio::io_context& io, const options& o,
                                  const std::string& password) {
    if (o.tcp)
        return peerlink::turn_client(asio::ip::tcp::socket(io), o.server, config_for(o, password));
    const auto family = o.server.address.is_v4() ? asio::ip::udp::v4() : asio::ip::udp::v6();
    return peerlink::turn_client(asio::ip::udp::socket(io, asio::ip::udp::endpoint(family, 0)),
                                 o.server, config_for(o, password));
}

// Sends `count` datagrams of assorted sizes to `peer` and checks each echo: the source
// the peer saw is the relayed address, and the payload is intact.
awaitable<void> exchange(peerlink::turn_client& c, const endpoint& peer, const std::string& tag,
                         int count) {
    std::vector<std::byte> buf(4096);
    int good = 0;
    std::string why;
    const std::array<std::size_t, 4> sizes{1, 100, 1000, 1200};
    for (int i = 0; i < count; ++i) {
        std::string payload = tag + "-" + std::to_string(i) + ":";
        payload.resize(std::max(payload.size(), sizes[static_cast<std::size_t>(i) % sizes.size()]),
                       static_cast<char>('a' + i % 26));
        if (auto ec = c.send_to(peer, bytes_of(payload))) {
            why = "send_to: " + describe(ec);
            break;
        }
        auto [ec, n, from] = co_await c.async_receive_from(asio::buffer(buf), tuple_awaitable);
        if (ec) {
            why = "receive: " + describe(ec);
            break;
        }
        const std::string want = "echo " + c.relayed_endpoint().to_string() + " " + payload;
        const std::string got(reinterpret_cast<const char*>(buf.data()), n);
        if (from != peer || got != want) {
            why = "datagram " + std::to_string(i) + " from " + from.to_string() + ": '" +
                  got.substr(0, 60) + "', expected '" + want.substr(0, 60) + "'";
            break;
        }
        ++good;
    }
    check(good == count, tag + ": " + std::to_string(good) + "/" + std::to_string(count) +
                             " datagrams echoed intact via the relay" +
                             (why.empty() ? "" : " (" + why + ")"));
}

awaitable<void> run(asio::io_context& io, options o) {
    auto ex = co_await asio::this_coro::executor;
    const char* transport = o.tcp ? "TCP" : "UDP";

    if (o.expect_timeout) {
        auto c = make_client(io, o, o.password);
        const auto start = std::chrono::steady_clock::now();
        auto [ec, relayed] = co_await c.async_allocate(tuple_awaitable);
        const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
            std::chrono::steady_clock::now() - start);
        check(ec == turn_error::timeout && ec == peerlink::condition::peer_unreachable,
              std::string("allocate over ") + transport + " gets no answer: " + describe(ec) +
                  " after " + std::to_string(ms.count()) + " ms, " +
                  std::to_string(c.stats().core.retransmissions) + " retransmissions");
        c.close();
        co_return;
    }

    // The peer: in this process, or a remote echo peer.
    std::unique_ptr<echo_peer> local_peer;
    endpoint peer;
    if (o.remote_peer) {
        peer = *o.remote_peer;
    } else {
        local_peer = std::make_unique<echo_peer>(
            ex, endpoint{o.peer_bind ? o.peer_bind->address : peerlink::ip_address::loopback_v4(),
                         o.peer_bind ? o.peer_bind->port : std::uint16_t{0}});
        peer = local_peer->local();
        asio::co_spawn(ex, local_peer->run(), asio::detached);
    }

    auto c = make_client(io, o, o.password);
    auto [aec, relayed] = co_await c.async_allocate(tuple_awaitable);
    check(!aec && relayed.port != 0,
          std::string("allocate over ") + transport + ": " + describe(aec) + ", relayed " +
              relayed.to_string() + ", mapped " + c.mapped_endpoint().to_string() + ", local " +
              c.local_endpoint().to_string() + ", after " +
              std::to_string(c.stats().core.auth_challenges) + " challenge(s)");
    if (aec) {
        c.close();
        if (local_peer)
            local_peer->close();
        co_return;
    }

    auto [pec] = co_await c.async_create_permission(peer, tuple_awaitable);
    check(!pec, "create permission for " + peer.to_string() + ": " + describe(pec));
    co_await exchange(c, peer, "indication", 8);
    const auto s1 = c.stats().core;
    check(s1.sent_indications >= 8 && s1.received_indications >= 8 && s1.sent_channel_data == 0,
          "data went as Send/Data indications: sent " + std::to_string(s1.sent_indications) +
              ", received " + std::to_string(s1.received_indications));

    auto [cec, channel] = co_await c.async_bind_channel(peer, tuple_awaitable);
    char hex[8];
    std::snprintf(hex, sizeof hex, "0x%04x", channel);
    check(!cec && peerlink::stun::is_valid_channel(channel),
          "bind channel to " + peer.to_string() + ": " + describe(cec) + ", channel " + hex);
    co_await exchange(c, peer, "channel", 8);
    const auto s2 = c.stats().core;
    check(s2.sent_channel_data >= 8 && s2.received_channel_data >= 8,
          "data went as ChannelData both ways: sent " + std::to_string(s2.sent_channel_data) +
              ", received " + std::to_string(s2.received_channel_data));

    auto [rec] = co_await c.async_refresh(tuple_awaitable);
    check(!rec, "refresh on demand: " + describe(rec));

    if (o.wait_seconds > 0) {
        const auto before = c.stats().core;
        asio::steady_timer t(ex, std::chrono::seconds(o.wait_seconds));
        co_await t.async_wait(tuple_awaitable);
        const auto after = c.stats().core;
        check(after.refreshes >= before.refreshes + 1 &&
                  after.permission_refreshes >= before.permission_refreshes + 2 &&
                  after.channel_refreshes >= before.channel_refreshes + 1,
              "automatic refreshes during " + std::to_string(o.wait_seconds) + " s: allocation " +
                  std::to_string(after.refreshes - before.refreshes) + ", permission " +
                  std::to_string(after.permission_refreshes - before.permission_refreshes) +
                  ", channel " +
                  std::to_string(after.channel_refreshes - before.channel_refreshes));
        co_await exchange(c, peer, "after-wait", 4);
        if (o.expect_stale)
            check(after.stale_nonces >= 1, "stale nonces (438) answered with the new nonce: " +
                                               std::to_string(after.stale_nonces));
    }

    if (o.forbidden_peer) {
        auto [fec] = co_await c.async_create_permission(*o.forbidden_peer, tuple_awaitable);
        check(fec == turn_error::forbidden, "permission for denied peer " +
                                                o.forbidden_peer->to_string() +
                                                " refused: " + describe(fec));
    }

    auto [dec] = co_await c.async_deallocate(tuple_awaitable);
    check(!dec && c.state() == peerlink::turn::client_state::closed,
          "deallocate (Refresh LIFETIME 0): " + describe(dec));
    const auto sec = c.send_to(peer, bytes_of("late"));
    check(sec == turn_error::not_allocated, "send after deallocate refused: " + describe(sec));
    const auto st = c.stats();
    std::printf("stats: requests %llu, retransmissions %llu, challenges %llu, stale nonces %llu, "
                "send drops %llu, receive drops %llu\n",
                static_cast<unsigned long long>(st.core.requests),
                static_cast<unsigned long long>(st.core.retransmissions),
                static_cast<unsigned long long>(st.core.auth_challenges),
                static_cast<unsigned long long>(st.core.stale_nonces),
                static_cast<unsigned long long>(st.send_drops),
                static_cast<unsigned long long>(st.receive_drops));
    c.close();

    if (o.bad_password) {
        auto bad = make_client(io, o, o.password + "-wrong");
        auto [bec, brel] = co_await bad.async_allocate(tuple_awaitable);
        check(bec == turn_error::unauthorized &&
                  bec == peerlink::condition::authentication_failed &&
                  bad.stats().core.requests == 2,
              "wrong password over " + std::string(transport) + ": " + describe(bec) + " after " +
                  std::to_string(bad.stats().core.requests) + " requests");
        bad.close();
    }
    if (local_peer)
        local_peer->close();
}

int usage() {
    std::fprintf(stderr, "usage: turn_check run --server ADDR:PORT --transport udp|tcp [...]\n"
                         "       turn_check echo --bind ADDR:PORT\n");
    return 2;
}

} // namespace

int main(int argc, char** argv) {
    if (argc < 2)
        return usage();
    const std::string_view mode = argv[1];
    options o;
    std::optional<endpoint> echo_bind;
    std::error_code ec;
    auto parse_ep = [&](const char* text) {
        auto e = endpoint::parse(text, ec);
        if (!e) {
            std::fprintf(stderr, "turn_check: bad endpoint '%s'\n", text);
            std::exit(2);
        }
        return *e;
    };
    bool have_server = false;
    for (int i = 2; i < argc; ++i) {
        const std::string_view a = argv[i];
        auto value = [&]() -> const char* {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "turn_check: %s needs a value\n", argv[i]);
                std::exit(2);
            }
            return argv[++i];
        };
        if (a == "--server") {
            o.server = parse_ep(value());
            have_server = true;
        } else if (a == "--transport") {
            const std::string_view t = value();
            if (t != "udp" && t != "tcp")
                return usage();
            o.tcp = t == "tcp";
        } else if (a == "--user") {
            o.user = value();
        } else if (a == "--password") {
            o.password = value();
        } else if (a == "--peer-bind") {
            const std::string text = value();
            auto addr = peerlink::ip_address::parse(text, ec);
            if (!addr)
                return usage();
            o.peer_bind = endpoint{*addr, 0};
        } else if (a == "--remote-peer") {
            o.remote_peer = parse_ep(value());
        } else if (a == "--forbidden-peer") {
            o.forbidden_peer = parse_ep(value());
        } else if (a == "--wait") {
            o.wait_seconds = std::atoi(value());
        } else if (a == "--bad-password") {
            o.bad_password = true;
        } else if (a == "--expect-stale") {
            o.expect_stale = true;
        } else if (a == "--expect-timeout") {
            o.expect_timeout = true;
        } else if (a == "--rto-ms") {
            o.rto_ms = std::atoi(value());
        } else if (a == "--requests") {
            o.requests = static_cast<unsigned>(std::atoi(value()));
        } else if (a == "--deadline") {
            o.deadline_seconds = std::atoi(value());
        } else if (a == "--bind") {
            echo_bind = parse_ep(value());
        } else {
            std::fprintf(stderr, "turn_check: unknown argument '%s'\n", argv[i]);
            return usage();
        }
    }

    asio::io_context io;
    if (mode == "echo") {
        if (!echo_bind)
            return usage();
        echo_peer peer(io.get_executor(), *echo_bind);
        std::printf("listening %s\n", peer.local().to_string().c_str());
        std::fflush(stdout);
        asio::signal_set signals(io, SIGINT, SIGTERM);
        signals.async_wait([&](std::error_code, int) {
            std::printf("echoed %zu datagrams\n", peer.echoed());
            peer.close();
        });
        asio::co_spawn(io, peer.run(), asio::detached);
        io.run();
        return 0;
    }
    if (mode != "run" || !have_server)
        return usage();

    // Everything must be over by the deadline: a step that hangs is a failure, and the
    // process stops without waiting for it.
    bool finished = false;
    asio::steady_timer deadline(io, std::chrono::seconds(o.deadline_seconds + o.wait_seconds));
    deadline.async_wait([&](std::error_code dec) {
        if (dec || finished)
            return;
        fail("deadline of " + std::to_string(o.deadline_seconds + o.wait_seconds) +
             " s passed: a step hung");
        std::fflush(stdout);
        std::_Exit(1);
    });
    asio::co_spawn(io, run(io, o), [&](std::exception_ptr e) {
        finished = true;
        deadline.cancel();
        if (e) {
            try {
                std::rethrow_exception(e);
            } catch (const std::exception& x) {
                fail(std::string("exception: ") + x.what());
            }
        }
    });
    io.run();
    std::printf(failures == 0 ? "all TURN checks passed\n" : "%d TURN check(s) failed\n", failures);
    return failures == 0 ? 0 : 1;
}
