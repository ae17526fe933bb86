// nat_check: what NAT is in front of this host? (RFC 5780 NAT behaviour discovery)
//
//   nat_check [--json] [--bind ADDR[:PORT]] [--rto MS] [--requests N]
//             [--no-filtering] [--no-mapping] SERVER[:PORT]
//   nat_check [--json]            (no server: a self-test against a server of our own
//                                  on 127.0.0.1 and 127.0.0.2, which finds no NAT)
//
// SERVER is an RFC 5780 STUN server (two addresses, two ports): peerlink's
// `stun_server` with an alternate address, or coturn listening on two addresses. A
// host name is resolved; the port defaults to 3478. Prints the report as text, or
// as one JSON object with --json. Exit status: 0 with a report (whatever it says),
// 1 when the check could not run (bad socket, no route), 2 on bad arguments.
#include <peerlink/net/nat_discovery.hpp>
#include <peerlink/net/stun_server.hpp>

#include <asio/io_context.hpp>
#include <asio/ip/udp.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

namespace {

void usage() {
    std::fprintf(stderr,
                 "usage: nat_check [--json] [--bind ADDR[:PORT]] [--rto MS] [--requests N]\n"
                 "                 [--no-filtering] [--no-mapping] [SERVER[:PORT]]\n"
                 "Without SERVER: a self-test against an in-process server on 127.0.0.1/.2.\n");
}

// "host", "host:port", "a.b.c.d:port", "[v6]:port", "v6" -> an endpoint (resolving names).
std::optional<peerlink::endpoint> resolve(asio::io_context& io, std::string text) {
    std::error_code ec;
    if (auto e = peerlink::endpoint::parse(text, ec))
        return e;
    if (auto a = peerlink::ip_address::parse(text, ec))
        return peerlink::endpoint{*a, 3478};
    std::string host = text, port = "3478";
    if (auto colon = text.rfind(':'); colon != std::string::npos && text.find(':') == colon) {
        host = text.substr(0, colon);
        port = text.substr(colon + 1);
    }
    asio::ip::udp::resolver resolver(io);
    auto results = resolver.resolve(host, port, ec);
    if (ec || results.empty())
        return std::nullopt;
    return peerlink::from_asio(results.begin()->endpoint());
}

} // namespace

int main(int argc, char** argv) {
    bool json = false;
    std::optional<std::string> server_text, bind_text;
    peerlink::nat_discovery_options opts;
    for (int i = 1; i < argc; ++i) {
        std::string_view a = argv[i];
        auto value = [&]() -> std::optional<std::string> {
            if (i + 1 >= argc)
                return std::nullopt;
            return std::string(argv[++i]);
        };
        if (a == "--json") {
            json = true;
        } else if (a == "--no-filtering") {
            opts.filtering = false;
        } else if (a == "--no-mapping") {
            opts.mapping = false;
        } else if (a == "--bind") {
            bind_text = value();
            if (!bind_text)
                return usage(), 2;
        } else if (a == "--rto" || a == "--requests") {
            auto v = value();
            if (!v)
                return usage(), 2;
            const long n = std::strtol(v->c_str(), nullptr, 10);
            if (n <= 0)
                return usage(), 2;
            if (a == "--rto")
                opts.stun.rto = std::chrono::milliseconds(n);
            else
                opts.stun.max_requests = static_cast<unsigned>(n);
        } else if (a == "-h" || a == "--help") {
            usage();
            return 0;
        } else if (!a.empty() && a[0] != '-' && !server_text) {
            server_text = std::string(a);
        } else {
            usage();
            return 2;
        }
    }

    asio::io_context io;
    std::optional<peerlink::stun_server> own; // the self-test's server
    peerlink::endpoint server;
    std::error_code ec;
    if (server_text) {
        auto s = resolve(io, *server_text);
        if (!s) {
            std::fprintf(stderr, "nat_check: cannot resolve '%s'\n", server_text->c_str());
            return 2;
        }
        server = *s;
    } else {
        peerlink::stun_server::options so;
        so.primary = *peerlink::endpoint::parse("127.0.0.1:0", ec);
        so.alternate = *peerlink::endpoint::parse("127.0.0.2:0", ec);
        own.emplace(io.get_executor());
        own->open(so, ec);
        if (ec) {
            std::fprintf(stderr, "nat_check: self-test server: %s\n", ec.message().c_str());
            return 1;
        }
        server = own->local_endpoint();
    }

    // The local socket: the given address, or the wildcard of the server's family.
    peerlink::endpoint local{server.address.is_v4() ? peerlink::ip_address::any_v4()
                                                    : peerlink::ip_address::any_v6(),
                             0};
    if (bind_text) {
        auto b = peerlink::endpoint::parse(*bind_text, ec);
        if (!b)
            if (auto addr = peerlink::ip_address::parse(*bind_text, ec))
                b = peerlink::endpoint{*addr, 0};
        if (!b) {
            std::fprintf(stderr, "nat_check: bad --bind '%s'\n", bind_text->c_str());
            return 2;
        }
        local = *b;
    }
    asio::ip::udp::socket socket(io);
    const auto where = peerlink::to_asio(local);
    socket.open(where.protocol(), ec);
    if (!ec)
        socket.bind(where, ec);
    if (ec) {
        std::fprintf(stderr, "nat_check: cannot bind %s: %s\n", local.to_string().c_str(),
                     ec.message().c_str());
        return 1;
    }

    int status = 1;
    peerlink::async_discover_nat(
        socket, server, opts, [&](std::error_code e, peerlink::nat_report report) {
            if (own)
                own->stop();
            if (e) {
                std::fprintf(stderr, "nat_check: %s\n", e.message().c_str());
                return;
            }
            if (json)
                std::printf("%s\n", nlohmann::json(report).dump().c_str());
            else
                std::printf("%s", report.to_string().c_str());
            status = 0;
        });
    io.run();
    return status;
}
