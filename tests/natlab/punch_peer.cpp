// punch_peer: the NAT lab's hole-punching program, on peerlink's connectivity core.
//
//   punch_peer serve --addr 198.18.0.10 --alt-addr 198.18.0.11 --stun-port 3478
//                    --alt-port 3479 --rdv-port 7100
//       Our STUN server (RFC 5780, four sockets) and a rendezvous: "REG <session> <side>
//       <json>" is stored; once both sides of a session registered, each gets
//       "PEER <start-unix-ms> <other side's json>" (start = now + 400 ms).
//   punch_peer peer --stun 198.18.0.10:3478 --stun2 198.18.0.11:3479
//                   --rdv 198.18.0.10:7100 --session S --side a|b
//                   [--port-min N --port-max M] [--timeout-ms 5000]
//       Gathers host candidates (every interface) and server-reflexive ones (two STUN
//       servers: same mapping = endpoint-independent, else dependent), registers
//       {ufrag, pwd, candidates, nat} at the rendezvous, punches at the agreed start
//       (side a controls), exchanges a few datagrams over the selected pair and prints
//       one JSON line: {"result":"direct"|"failed","ms_to_first_byte":..,"pair":{..},..}.
#include <peerlink/config.hpp>
#include <peerlink/net/asio_endpoint.hpp>
#include <peerlink/net/interfaces.hpp>
#include <peerlink/net/punch_session.hpp>
#include <peerlink/net/stun_client.hpp>
#include <peerlink/net/stun_server.hpp>

#include <asio/io_context.hpp>
#include <asio/ip/udp.hpp>
#include <asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

using namespace std::chrono_literals;
namespace ice = peerlink::ice;
using json = nlohmann::json;

namespace {

std::map<std::string, std::string> parse_args(int argc, char** argv, int first) {
    std::map<std::string, std::string> a;
    for (int i = first; i + 1 < argc; i += 2)
        if (std::string(argv[i]).rfind("--", 0) == 0)
            a[argv[i] + 2] = argv[i + 1];
    return a;
}

std::string get(const std::map<std::string, std::string>& a, const char* k, const char* def = "") {
    auto it = a.find(k);
    return it == a.end() ? def : it->second;
}

peerlink::endpoint must_endpoint(const std::string& s) {
    std::error_code ec;
    auto e = peerlink::endpoint::parse(s, ec);
    if (!e) {
        std::fprintf(stderr, "bad endpoint '%s'\n", s.c_str());
        std::exit(2);
    }
    return *e;
}

std::int64_t unix_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// --- serve ---------------------------------------------------------------------------
int serve(const std::map<std::string, std::string>& a) {
    asio::io_context io;
    std::error_code ec;
    peerlink::stun_server::options o;
    o.primary = must_endpoint(get(a, "addr", "198.18.0.10") + ":" + get(a, "stun-port", "3478"));
    o.alternate =
        must_endpoint(get(a, "alt-addr", "198.18.0.11") + ":" + get(a, "alt-port", "3479"));
    peerlink::stun_server stun(io.get_executor(), o);
    asio::ip::udp::socket rdv(io,
                              peerlink::to_asio(must_endpoint(get(a, "addr", "198.18.0.10") + ":" +
                                                              get(a, "rdv-port", "7100"))));
    struct side_info {
        asio::ip::udp::endpoint from;
        std::string blob;
    };
    struct session {
        std::map<std::string, side_info> sides;
        std::int64_t start = 0;
    };
    std::map<std::string, session> sessions;
    std::array<char, 65536> buf;
    asio::ip::udp::endpoint from;
    std::function<void()> loop = [&] {
        rdv.async_receive_from(asio::buffer(buf), from, [&](std::error_code e, std::size_t n) {
            if (e)
                return;
            std::string msg(buf.data(), n);
            // REG <session> <side> <json>
            auto s1 = msg.find(' '), s2 = msg.find(' ', s1 + 1), s3 = msg.find(' ', s2 + 1);
            if (msg.rfind("REG ", 0) == 0 && s3 != std::string::npos) {
                auto& s = sessions[msg.substr(s1 + 1, s2 - s1 - 1)];
                s.sides[msg.substr(s2 + 1, s3 - s2 - 1)] = {from, msg.substr(s3 + 1)};
                if (s.sides.size() == 2) {
                    if (s.start == 0)
                        s.start = unix_ms() + 400;
                    auto it = s.sides.begin();
                    auto& x = it->second;
                    auto& y = std::next(it)->second;
                    std::error_code se;
                    auto px = "PEER " + std::to_string(s.start) + " " + y.blob;
                    auto py = "PEER " + std::to_string(s.start) + " " + x.blob;
                    rdv.send_to(asio::buffer(px), x.from, 0, se);
                    rdv.send_to(asio::buffer(py), y.from, 0, se);
                }
            }
            loop();
        });
    };
    loop();
    std::printf("serve=ready stun=%s alt=%s\n", stun.local_endpoint().to_string().c_str(),
                o.alternate->to_string().c_str());
    std::fflush(stdout);
    io.run();
    return 0;
}

// --- peer ----------------------------------------------------------------------------
int peer(const std::map<std::string, std::string>& a) {
    asio::io_context io;
    const auto t_begin = peerlink::clock::now();
    const auto stun1 = must_endpoint(get(a, "stun", "198.18.0.10:3478"));
    const auto stun2 = must_endpoint(get(a, "stun2", "198.18.0.11:3479"));
    const auto rdv_ep = must_endpoint(get(a, "rdv", "198.18.0.10:7100"));
    const std::string session = get(a, "session", "s");
    const std::string side = get(a, "side", "a");
    const auto timeout = std::chrono::milliseconds(std::stol(get(a, "timeout-ms", "5000")));
    peerlink::transport_config tc;
    tc.bind_address = get(a, "bind", "0.0.0.0");
    tc.ipv6 = false;
    tc.port_min = static_cast<std::uint16_t>(std::stoi(get(a, "port-min", "0")));
    tc.port_max = static_cast<std::uint16_t>(std::stoi(get(a, "port-max", "0")));
    json out = {{"side", side}, {"session", session}};
    auto finish = [&](const char* result) {
        out["result"] = result;
        std::printf("%s\n", out.dump().c_str());
        std::fflush(stdout);
    };

    // Socket 0, in the configured port range.
    std::error_code ec;
    asio::ip::udp::socket sock(io);
    sock.open(asio::ip::udp::v4());
    const auto bind_addr = asio::ip::make_address(tc.bind_address);
    for (unsigned p = tc.port_min; p <= tc.port_max; ++p) {
        sock.bind({bind_addr, static_cast<std::uint16_t>(p)}, ec);
        if (!ec || tc.port_min == 0)
            break;
    }
    if (ec) {
        out["error"] = "bind: " + ec.message();
        finish("failed");
        return 1;
    }
    const auto port = sock.local_endpoint().port();
    auto local = peerlink::gather_host_candidates(tc, port, ec);

    // Server-reflexive candidates from two STUN servers, one after the other.
    peerlink::stun_binding_options so;
    so.rto = 200ms;
    so.max_requests = 4;
    so.final_wait_factor = 2;
    std::optional<peerlink::endpoint> mapped[2];
    peerlink::async_stun_binding(sock, stun1, so, [&](std::error_code e, auto r) {
        if (!e)
            mapped[0] = r.mapped;
        peerlink::async_stun_binding(sock, stun2, so, [&](std::error_code e2, auto r2) {
            if (!e2)
                mapped[1] = r2.mapped;
        });
    });
    io.run();
    io.restart();
    ice::nat_info nat;
    for (auto& m : mapped)
        if (m)
            nat.mapped_ports.push_back(m->port);
    if (mapped[0] && mapped[1])
        nat.mapping = *mapped[0] == *mapped[1] ? ice::mapping_behaviour::endpoint_independent
                                               : ice::mapping_behaviour::endpoint_dependent;
    if (mapped[0] && !local.empty()) {
        bool is_host = false;
        for (auto& c : local)
            is_host = is_host || c.address == *mapped[0];
        if (!is_host)
            local.push_back(ice::make_candidate(ice::candidate_type::server_reflexive, *mapped[0],
                                                local[0].base, 0, 0, stun1));
    }

    ice::punch_config cfg;
    cfg.controlling = side == "a";
    cfg.local_nat = nat;
    cfg.punch_timeout = timeout;
    peerlink::punch_session ps(std::move(sock), cfg);
    json mine = {{"ufrag", ps.core().local_ufrag()},
                 {"pwd", ps.core().local_password()},
                 {"nat", ice::to_json(nat)},
                 {"candidates", json::array()}};
    for (auto& c : local) {
        mine["candidates"].push_back(ice::to_json(c));
        ps.core().add_local_candidate(c, peerlink::clock::now());
    }
    out["local"] = mine["candidates"];
    out["nat"] = mine["nat"];

    // Rendezvous: REG every 200 ms until PEER (bounded).
    asio::ip::udp::socket rdv(io, asio::ip::udp::endpoint(asio::ip::udp::v4(), 0));
    const std::string reg = "REG " + session + " " + side + " " + mine.dump();
    std::array<char, 65536> buf;
    asio::ip::udp::endpoint from;
    std::string peer_msg;
    asio::steady_timer rt(io);
    std::function<void(int)> tick = [&](int left) {
        if (!peer_msg.empty())
            return;
        if (left == 0) {
            rdv.close();
            return;
        }
        rdv.send_to(asio::buffer(reg), peerlink::to_asio(rdv_ep), 0, ec);
        rt.expires_after(200ms);
        rt.async_wait([&, left](std::error_code e) {
            if (!e)
                tick(left - 1);
        });
    };
    rdv.async_receive_from(asio::buffer(buf), from, [&](std::error_code e, std::size_t n) {
        if (!e)
            peer_msg.assign(buf.data(), n);
        rt.cancel();
    });
    tick(50);
    io.run();
    io.restart();
    if (peer_msg.rfind("PEER ", 0) != 0) {
        out["error"] = "no rendezvous";
        finish("failed");
        return 1;
    }
    const auto sp = peer_msg.find(' ', 5);
    const std::int64_t start_unix = std::stoll(peer_msg.substr(5, sp - 5));
    json theirs = json::parse(peer_msg.substr(sp + 1), nullptr, false);
    if (theirs.is_discarded() ||
        ps.core().set_remote_credentials(theirs.value("ufrag", ""), theirs.value("pwd", ""))) {
        out["error"] = "bad peer blob";
        finish("failed");
        return 1;
    }
    if (auto n = ice::nat_info_from_json(theirs["nat"], ec))
        ps.core().set_remote_nat(*n);
    for (auto& j : theirs["candidates"])
        if (auto c = ice::candidate_from_json(j, ec))
            ps.core().add_remote_candidate(*c, peerlink::clock::now());
    const auto start = peerlink::clock::now() + std::chrono::milliseconds(start_unix - unix_ms());
    out["gather_ms"] =
        std::chrono::duration_cast<std::chrono::milliseconds>(start - t_begin).count();

    // Punch; then send "DATA" over the pair every 20 ms until the peer's arrives and
    // ours has had time to arrive too (or 2 s).
    std::optional<ice::pair_info> pair;
    std::optional<peerlink::time_point> first_byte;
    bool failed = false;
    asio::steady_timer dt(io), guard(io);
    int data_left = 100;
    const std::string hello = "DATA " + side;
    std::function<void()> send_data = [&] {
        if (!pair || data_left-- <= 0) {
            ps.stop();
            guard.cancel();
            return;
        }
        ps.send(pair->socket, std::as_bytes(std::span(hello.data(), hello.size())), pair->remote);
        if (first_byte && peerlink::clock::now() - *first_byte > 200ms) {
            ps.stop();
            guard.cancel();
            return;
        }
        dt.expires_after(20ms);
        dt.async_wait([&](std::error_code e) {
            if (!e)
                send_data();
        });
    };
    ps.on_data([&](std::span<const std::byte> b, const peerlink::endpoint& f, ice::socket_id s) {
        if (b.size() >= 5 && std::memcmp(b.data(), "DATA ", 5) == 0 && !first_byte) {
            first_byte = peerlink::clock::now();
            out["data_from"] = f.to_string();
            out["data_socket"] = s;
        }
    });
    ec = ps.start(start, [&](std::error_code e, ice::pair_info p) {
        if (e) {
            out["error"] = e.message();
            failed = true;
            ps.stop();
            guard.cancel();
            return;
        }
        pair = p;
        send_data();
    });
    guard.expires_after(timeout + 3s);
    guard.async_wait([&](std::error_code e) {
        if (!e) {
            dt.cancel();
            ps.stop();
        }
    });
    io.run();
    const auto& st = ps.core().stats();
    out["stats"] = {{"checks_sent", st.checks_sent},
                    {"spray_sent", st.spray_sent},
                    {"predicted_pairs", st.predicted_pairs},
                    {"requests_received", st.requests_received},
                    {"responses_received", st.responses_received},
                    {"auth_failures", st.auth_failures},
                    {"role_conflicts", st.role_conflicts},
                    {"peer_reflexive", st.peer_reflexive},
                    {"sockets", ps.socket_count()}};
    if (pair) {
        out["pair"] = {
            {"socket", pair->socket},
            {"remote", pair->remote.to_string()},
            {"remote_type", std::string(ice::to_string(pair->remote_type))},
            {"mapped", pair->mapped ? pair->mapped->to_string() : ""},
            {"rtt_us",
             pair->rtt ? std::chrono::duration_cast<std::chrono::microseconds>(*pair->rtt).count()
                       : -1}};
    }
    if (pair && first_byte) {
        out["ms_to_first_byte"] =
            std::chrono::duration_cast<std::chrono::milliseconds>(*first_byte - start).count();
        finish("direct");
        return 0;
    }
    if (!failed && !out.contains("error"))
        out["error"] = pair ? "no data over the selected pair" : "punch did not finish";
    finish("failed");
    return 1;
}

} // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: punch_peer serve|peer --option value ...\n");
        return 2;
    }
    const std::string mode = argv[1];
    auto args = parse_args(argc, argv, 2);
    try {
        if (mode == "serve")
            return serve(args);
        if (mode == "peer")
            return peer(args);
    } catch (const std::exception& e) {
        std::printf("{\"result\":\"failed\",\"error\":\"%s\"}\n", e.what());
        return 1;
    }
    std::fprintf(stderr, "unknown mode %s\n", mode.c_str());
    return 2;
}
