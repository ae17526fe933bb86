// peerlink_stun_tool: peerlink's STUN server and client on the command line, for
// the coturn interop test (stun_interop.sh) and the NAT lab.
//
//   peerlink_stun_tool serve --primary ADDR:PORT [--alternate ADDR:PORT]
//       Serves STUN until SIGTERM/SIGINT. Port 0 picks a free port. Prints one line
//       when listening: `listening PRIMARY [ALTERNATE-ADDRESS-AND-PORT]`, and the
//       server's counters as JSON when it stops.
//   peerlink_stun_tool binding SERVER [--bind ADDR] [--change-ip] [--change-port]
//                      [--rto MS] [--requests N] [--expect-local] [--expect-origin EP]
//       One Binding; prints a JSON line. Exit 1 on failure or a failed expectation.
//   peerlink_stun_tool discover SERVER [--bind ADDR] [--expect-type TYPE]
//       NAT behaviour discovery; prints the report as JSON. Exit 1 on a failed
//       expectation ("open internet", "full cone", ...).
//
// Exit status 2 on bad arguments.
#include <peerlink/net/nat_discovery.hpp>
#include <peerlink/net/stun_client.hpp>
#include <peerlink/net/stun_server.hpp>

#include <asio/io_context.hpp>
#include <asio/ip/udp.hpp>
#include <asio/signal_set.hpp>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace {

int usage() {
    std::fprintf(stderr,
                 "usage: peerlink_stun_tool serve --primary EP [--alternate EP]\n"
                 "       peerlink_stun_tool binding SERVER [--bind ADDR] [--change-ip] "
                 "[--change-port]\n"
                 "                          [--rto MS] [--requests N] [--expect-local] "
                 "[--expect-origin EP]\n"
                 "       peerlink_stun_tool discover SERVER [--bind ADDR] [--expect-type TYPE]\n");
    return 2;
}

std::optional<peerlink::endpoint> parse_ep(const std::string& s) {
    std::error_code ec;
    return peerlink::endpoint::parse(s, ec);
}

// A UDP socket bound to `bind` (an address, port 0), or to the wildcard of `toward`'s family.
bool open_socket(asio::ip::udp::socket& socket, const std::optional<std::string>& bind,
                 const peerlink::endpoint& toward) {
    peerlink::endpoint local{toward.address.is_v4() ? peerlink::ip_address::any_v4()
                                                    : peerlink::ip_address::any_v6(),
                             0};
    std::error_code ec;
    if (bind) {
        auto a = peerlink::ip_address::parse(*bind, ec);
        if (!a) {
            std::fprintf(stderr, "bad --bind '%s'\n", bind->c_str());
            return false;
        }
        local.address = *a;
    }
    const auto where = peerlink::to_asio(local);
    socket.open(where.protocol(), ec);
    if (!ec)
        socket.bind(where, ec);
    if (ec)
        std::fprintf(stderr, "cannot bind %s: %s\n", local.to_string().c_str(),
                     ec.message().c_str());
    return !ec;
}

nlohmann::json opt_json(const std::optional<peerlink::endpoint>& e) {
    if (!e)
        return nullptr;
    return e->to_string();
}

int serve(const std::vector<std::string>& args) {
    peerlink::stun_server::options o;
    bool have_primary = false;
    for (std::size_t i = 0; i < args.size(); ++i) {
        auto next = [&]() -> std::optional<peerlink::endpoint> {
            return i + 1 < args.size() ? parse_ep(args[++i]) : std::nullopt;
        };
        if (args[i] == "--primary") {
            auto e = next();
            if (!e)
                return usage();
            o.primary = *e;
            have_primary = true;
        } else if (args[i] == "--alternate") {
            auto e = next();
            if (!e)
                return usage();
            o.alternate = *e;
        } else {
            return usage();
        }
    }
    if (!have_primary)
        return usage();
    asio::io_context io;
    peerlink::stun_server server(io.get_executor());
    std::error_code ec;
    server.open(o, ec);
    if (ec) {
        std::fprintf(stderr, "peerlink_stun_tool: cannot serve: %s\n", ec.message().c_str());
        return 1;
    }
    std::string line = "listening " + server.local_endpoint().to_string();
    if (server.rfc5780())
        line +=
            " " + server.local_endpoint(peerlink::stun::server_socket::alternate_both).to_string();
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
    asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](std::error_code, int) { server.stop(); });
    io.run();
    const auto s = server.stats();
    nlohmann::json j = {{"received", s.received},
                        {"sent", s.sent},
                        {"requests", s.core.requests},
                        {"bad_requests", s.core.bad_requests},
                        {"unknown_attributes", s.core.unknown_attributes},
                        {"dropped_malformed", s.core.dropped_malformed}};
    std::printf("%s\n", j.dump().c_str());
    return 0;
}

int binding(const std::vector<std::string>& args) {
    if (args.empty())
        return usage();
    auto server = parse_ep(args[0]);
    if (!server)
        return usage();
    std::optional<std::string> bind;
    std::optional<peerlink::endpoint> expect_origin;
    bool expect_local = false;
    peerlink::stun_binding_options o;
    o.software = "peerlink_stun_tool";
    for (std::size_t i = 1; i < args.size(); ++i) {
        const auto& a = args[i];
        const bool has_value = i + 1 < args.size();
        if (a == "--bind" && has_value) {
            bind = args[++i];
        } else if (a == "--change-ip") {
            o.change.change_ip = true;
        } else if (a == "--change-port") {
            o.change.change_port = true;
        } else if (a == "--rto" && has_value) {
            o.rto = std::chrono::milliseconds(std::atoi(args[++i].c_str()));
        } else if (a == "--requests" && has_value) {
            o.max_requests = static_cast<unsigned>(std::atoi(args[++i].c_str()));
        } else if (a == "--expect-local") {
            expect_local = true;
        } else if (a == "--expect-origin" && has_value) {
            expect_origin = parse_ep(args[++i]);
            if (!expect_origin)
                return usage();
        } else {
            return usage();
        }
    }
    asio::io_context io;
    asio::ip::udp::socket socket(io);
    if (!open_socket(socket, bind, *server))
        return 1;
    const auto local = peerlink::from_asio(socket.local_endpoint());
    int status = 1;
    peerlink::async_stun_binding(
        socket, *server, o, [&](std::error_code ec, peerlink::stun_binding_result r) {
            nlohmann::json j = {{"local", local.to_string()}, {"server", server->to_string()}};
            if (ec) {
                j["error"] = ec.message();
            } else {
                j["mapped"] = r.mapped.to_string();
                j["answered_from"] = r.server.to_string();
                j["response_origin"] = opt_json(r.response_origin);
                j["other_address"] = opt_json(r.other_address);
                j["rtt_us"] = std::chrono::duration_cast<std::chrono::microseconds>(r.rtt).count();
                j["requests_sent"] = r.requests_sent;
                status = 0;
                // On loopback nothing translates: the mapped address is our own.
                if (expect_local && r.mapped != local) {
                    j["failed"] = "mapped address is not the local address";
                    status = 1;
                }
                if (expect_origin &&
                    (r.response_origin != expect_origin || r.server != *expect_origin)) {
                    j["failed"] = "answered from " + r.server.to_string() + ", expected " +
                                  expect_origin->to_string();
                    status = 1;
                }
            }
            std::printf("%s\n", j.dump().c_str());
        });
    io.run();
    return status;
}

int discover(const std::vector<std::string>& args) {
    if (args.empty())
        return usage();
    auto server = parse_ep(args[0]);
    if (!server)
        return usage();
    std::optional<std::string> bind, expect_type;
    for (std::size_t i = 1; i < args.size(); ++i) {
        if (args[i] == "--bind" && i + 1 < args.size())
            bind = args[++i];
        else if (args[i] == "--expect-type" && i + 1 < args.size())
            expect_type = args[++i];
        else
            return usage();
    }
    asio::io_context io;
    asio::ip::udp::socket socket(io);
    if (!open_socket(socket, bind, *server))
        return 1;
    int status = 1;
    peerlink::async_discover_nat(socket, *server, {},
                                 [&](std::error_code ec, peerlink::nat_report r) {
                                     if (ec) {
                                         std::printf("{\"error\":\"%s\"}\n", ec.message().c_str());
                                         return;
                                     }
                                     nlohmann::json j = r;
                                     status = 0;
                                     if (expect_type && *expect_type != j["nat_type"]) {
                                         j["failed"] = "expected " + *expect_type;
                                         status = 1;
                                     }
                                     std::printf("%s\n", j.dump().c_str());
                                 });
    io.run();
    return status;
}

} // namespace

int main(int argc, char** argv) {
    if (argc < 2)
        return usage();
    std::string_view cmd = argv[1];
    std::vector<std::string> args(argv + 2, argv + argc);
    if (cmd == "serve")
        return serve(args);
    if (cmd == "binding")
        return binding(args);
    if (cmd == "discover")
        return discover(args);
    return usage();
}
