// peerlink's side of the WebSocket interop tests (run.sh drives it against node's `ws`).
//
//   ws_peer server --port-file F [--tls CERT KEY] [--max-message N] [--timeout S]
//   ws_peer client --url URL [--ca CERT] [--timeout S]
//
// The server listens on 127.0.0.1 (port 0: the kernel picks a free one, written to F)
// and speaks the test's echo protocol, the same as node_server.js:
//   "frag-me:N"  -> a text message of N pattern bytes, sent in 1000-byte fragments
//   "ping-me:X"  -> a ping with payload X; the pong is answered with "got-pong:X"
//   "close-me"   -> a close handshake with 4003 "server bye"
//   anything else is echoed with its type. GET /status answers {"ok":true,...}.
// Each session's end is logged as "session-end code=C reason=R result=MESSAGE".
//
// The client runs the test sequence against such a server (node's or ours) and exits
// 0 only if every check passed. Both stop after --timeout seconds (default 60).
#include <peerlink/net/websocket.hpp>

#include <peerlink/completion_tokens.hpp>

#include <asio/co_spawn.hpp>
#include <asio/connect.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>
#include <asio/ssl.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace ws = peerlink::websocket;
using asio::ip::tcp;
using tls_socket = asio::ssl::stream<tcp::socket>;

namespace {

constexpr auto tuple_awaitable = peerlink::as_tuple(asio::use_awaitable);

struct options {
    std::string mode, port_file, url, cert, key, ca;
    std::size_t max_message = 16 * 1024 * 1024;
    int timeout_s = 60;
};

std::string pattern(std::size_t n, bool text) {
    std::string s(n, '\0');
    for (std::size_t i = 0; i < n; ++i)
        s[i] = text ? static_cast<char>('a' + i % 26) : static_cast<char>((i * 31 + 7) & 0xff);
    return s;
}

bool starts_with(const std::string& s, std::string_view p) {
    return s.rfind(p, 0) == 0;
}

// --- server -----------------------------------------------------------------------

int sessions_started = 0;

template <class Stream>
asio::awaitable<void> session(Stream ws, options opt) {
    int id = ++sessions_started;
    peerlink::websocket_settings cfg;
    cfg.max_message_size = opt.max_message;
    ws.set_settings(cfg);
    auto [aec] = co_await ws.async_accept(
        [](const ws::http_request_parser& req) -> ws::handshake_decision {
            if (!req.is_upgrade() && req.method() == "GET" && req.path() == "/status")
                return ws::http_response{
                    200,
                    "application/json",
                    "{\"ok\":true,\"sessions\":" + std::to_string(sessions_started) + "}",
                    {}};
            return ws::accept_upgrade{};
        },
        tuple_awaitable);
    if (aec) {
        std::printf("session %d accept: %s\n", id, aec.message().c_str());
        std::fflush(stdout);
        co_return;
    }
    // Pongs arrive while a read is pending; the answer is queued from the callback.
    auto out = std::make_shared<std::list<std::string>>();
    ws.set_control_callback([&ws, out](ws::opcode op, std::span<const std::byte> p) {
        if (op != ws::opcode::pong)
            return;
        auto& s = out->emplace_back("got-pong:" +
                                    std::string(reinterpret_cast<const char*>(p.data()), p.size()));
        auto it = std::prev(out->end());
        ws.async_write(asio::buffer(s), ws::message_kind::text,
                       [out, it](std::error_code, std::size_t) { out->erase(it); });
    });
    std::string msg;
    for (;;) {
        auto [ec, n] = co_await ws.async_read(msg, tuple_awaitable);
        if (ec) {
            std::printf("session-end id=%d code=%u reason=%s result=%s\n", id,
                        ws.close_reason().code, ws.close_reason().reason.c_str(),
                        ec.message().c_str());
            std::fflush(stdout);
            break;
        }
        bool text = ws.message_type() == ws::message_kind::text;
        std::error_code wec;
        if (text && starts_with(msg, "frag-me:")) {
            auto body = pattern(std::stoul(msg.substr(8)), true);
            auto s = ws.settings();
            s.write_fragment_size = 1000;
            ws.set_settings(s);
            std::tie(wec, std::ignore) = co_await ws.async_write(
                asio::buffer(body), ws::message_kind::text, tuple_awaitable);
            s.write_fragment_size = 0;
            ws.set_settings(s);
        } else if (text && starts_with(msg, "ping-me:")) {
            std::tie(wec) = co_await ws.async_ping(asio::buffer(msg.substr(8)), tuple_awaitable);
        } else if (text && msg == "close-me") {
            std::tie(wec) = co_await ws.async_close(4003, "server bye", tuple_awaitable);
        } else {
            std::tie(wec, std::ignore) =
                co_await ws.async_write(asio::buffer(msg), ws.message_type(), tuple_awaitable);
        }
        if (wec && wec != peerlink::websocket_error::closed)
            std::printf("session %d write: %s\n", id, wec.message().c_str());
    }
    while (!out->empty()) { // let queued answers finish before their strings go
        asio::steady_timer t(co_await asio::this_coro::executor, std::chrono::milliseconds(5));
        co_await t.async_wait(tuple_awaitable);
    }
}

asio::awaitable<void> serve(tcp::acceptor& acceptor, asio::ssl::context* tls, options opt) {
    for (;;) {
        auto [ec, sock] = co_await acceptor.async_accept(tuple_awaitable);
        if (ec)
            co_return;
        auto ex = co_await asio::this_coro::executor;
        if (tls)
            asio::co_spawn(
                ex, session(peerlink::websocket_stream<tls_socket>(std::move(sock), *tls), opt),
                asio::detached);
        else
            asio::co_spawn(ex,
                           session(peerlink::websocket_stream<tcp::socket>(std::move(sock)), opt),
                           asio::detached);
    }
}

int run_server(const options& opt) {
    asio::io_context io;
    std::optional<asio::ssl::context> tls;
    if (!opt.cert.empty()) {
        tls.emplace(asio::ssl::context::tls_server);
        tls->use_certificate_chain_file(opt.cert);
        tls->use_private_key_file(opt.key, asio::ssl::context::pem);
    }
    tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    {
        auto tmp = opt.port_file + ".tmp";
        std::ofstream(tmp) << acceptor.local_endpoint().port() << "\n";
        std::filesystem::rename(tmp, opt.port_file);
    }
    std::printf("listening on %s\n", (acceptor.local_endpoint().address().to_string() + ":" +
                                      std::to_string(acceptor.local_endpoint().port()))
                                         .c_str());
    std::fflush(stdout);
    asio::co_spawn(io, serve(acceptor, tls ? &*tls : nullptr, opt), asio::detached);
    asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](std::error_code, int) { io.stop(); });
    asio::steady_timer watchdog(io, std::chrono::seconds(opt.timeout_s));
    int rc = 0;
    watchdog.async_wait([&](std::error_code ec) {
        if (!ec) {
            std::printf("server watchdog: %d s passed\n", opt.timeout_s);
            rc = 3;
            io.stop();
        }
    });
    io.run();
    return rc;
}

// --- client -----------------------------------------------------------------------

int failures = 0;

void check(bool ok, const std::string& what) {
    std::printf("%s %s\n", ok ? "ok  " : "FAIL", what.c_str());
    std::fflush(stdout);
    failures += !ok;
}

template <class Stream>
struct client_conn {
    Stream ws;
    std::vector<std::string> pongs;
};

template <class Stream, class... Args>
asio::awaitable<std::unique_ptr<client_conn<Stream>>> connect(const peerlink::ws_url& url,
                                                              Args&... args) {
    auto ex = co_await asio::this_coro::executor;
    auto c = std::make_unique<client_conn<Stream>>(client_conn<Stream>{Stream(ex, args...), {}});
    tcp::resolver resolver(ex);
    auto eps =
        co_await resolver.async_resolve(url.host, std::to_string(url.port), asio::use_awaitable);
    co_await asio::async_connect(c->ws.lowest_layer(), eps, asio::use_awaitable);
    auto* raw = c.get();
    c->ws.set_control_callback([raw](ws::opcode op, std::span<const std::byte> p) {
        if (op == ws::opcode::pong)
            raw->pongs.emplace_back(reinterpret_cast<const char*>(p.data()), p.size());
    });
    co_await c->ws.async_handshake(url, asio::use_awaitable);
    co_return c;
}

template <class Stream, class... Args>
asio::awaitable<void> client_sequence(peerlink::ws_url url, Args&... args) {
    auto c = co_await connect<Stream>(url, args...);
    auto& s = c->ws;
    std::string back;
    // Echo of every length form, text and binary, up to 1 MiB.
    for (std::size_t size : {0, 1, 125, 126, 127, 65535, 65536, 65537, 1 << 20}) {
        for (bool text : {true, false}) {
            auto p = pattern(size, text);
            auto kind = text ? ws::message_kind::text : ws::message_kind::binary;
            co_await s.async_write(asio::buffer(p), kind, asio::use_awaitable);
            auto [ec, n] = co_await s.async_read(back, tuple_awaitable);
            check(!ec && back == p && s.message_type() == kind,
                  "echo " + std::string(text ? "text " : "binary ") + std::to_string(size) +
                      (ec ? " (" + ec.message() + ")" : ""));
        }
    }
    // Our messages in fragments.
    auto cfg = s.settings();
    cfg.write_fragment_size = 4096;
    s.set_settings(cfg);
    for (bool text : {true, false}) {
        auto p = pattern(200000, text);
        co_await s.async_write(asio::buffer(p),
                               text ? ws::message_kind::text : ws::message_kind::binary,
                               asio::use_awaitable);
        auto [ec, n] = co_await s.async_read(back, tuple_awaitable);
        check(!ec && back == p,
              std::string("fragmented ") + (text ? "text" : "binary") + " 200000 echoed whole");
    }
    cfg.write_fragment_size = 0;
    s.set_settings(cfg);
    // The server's message in fragments.
    std::string ask = "frag-me:150000";
    co_await s.async_write(asio::buffer(ask), ws::message_kind::text, asio::use_awaitable);
    {
        auto [ec, n] = co_await s.async_read(back, tuple_awaitable);
        check(!ec && back == pattern(150000, true) && s.message_type() == ws::message_kind::text,
              "server's fragmented text 150000 arrives whole");
    }
    // Our ping: the pong reaches the control callback while a read is pending.
    co_await s.async_ping(asio::buffer(std::string_view("client-ping")), asio::use_awaitable);
    // The server's ping: we answer, it reports.
    ask = "ping-me:srv";
    co_await s.async_write(asio::buffer(ask), ws::message_kind::text, asio::use_awaitable);
    {
        auto [ec, n] = co_await s.async_read(back, tuple_awaitable);
        check(!ec && back == "got-pong:srv", "server's ping answered (got '" + back + "')");
    }
    check(c->pongs.size() == 1 && c->pongs[0] == "client-ping", "pong for our ping");
    // Close handshake with a code and a UTF-8 reason.
    auto [cec] = co_await s.async_close(4002, "client bye \xe2\x9c\x93", tuple_awaitable);
    check(!cec, "close handshake 4002 completes" + (cec ? " (" + cec.message() + ")" : ""));
    check(s.close_reason().code == 4002,
          "server echoed close code 4002 (got " + std::to_string(s.close_reason().code) + ")");
    {
        auto [ec, n] = co_await s.async_read(back, tuple_awaitable);
        check(ec == peerlink::websocket_error::closed, "read after close: closed");
    }
    // The server closes.
    auto c2 = co_await connect<Stream>(url, args...);
    ask = "close-me";
    co_await c2->ws.async_write(asio::buffer(ask), ws::message_kind::text, asio::use_awaitable);
    {
        auto [ec, n] = co_await c2->ws.async_read(back, tuple_awaitable);
        check(ec == peerlink::websocket_error::closed && c2->ws.close_reason().code == 4003 &&
                  c2->ws.close_reason().reason == "server bye",
              "server-initiated close 4003 'server bye' (got " +
                  std::to_string(c2->ws.close_reason().code) + " '" + c2->ws.close_reason().reason +
                  "', " + ec.message() + ")");
    }
}

int run_client(const options& opt) {
    std::error_code ec;
    auto url = peerlink::ws_url::parse(opt.url, ec);
    if (!url) {
        std::printf("bad url %s: %s\n", opt.url.c_str(), ec.message().c_str());
        return 2;
    }
    asio::io_context io;
    bool finished = false;
    auto done = [&](std::exception_ptr e) {
        finished = true;
        if (e) {
            try {
                std::rethrow_exception(e);
            } catch (const std::exception& x) {
                check(false, std::string("exception: ") + x.what());
            }
        }
    };
    std::optional<asio::ssl::context> tls;
    if (url->secure) {
        tls.emplace(asio::ssl::context::tls_client);
        tls->set_verify_mode(asio::ssl::verify_peer);
        if (!opt.ca.empty())
            tls->load_verify_file(opt.ca);
        asio::co_spawn(io, client_sequence<peerlink::websocket_stream<tls_socket>>(*url, *tls),
                       done);
    } else {
        asio::co_spawn(io, client_sequence<peerlink::websocket_stream<tcp::socket>>(*url), done);
    }
    io.run_for(std::chrono::seconds(opt.timeout_s));
    if (!finished)
        check(false, "finished within " + std::to_string(opt.timeout_s) + " s");
    std::printf("%d failure(s)\n", failures);
    return failures ? 1 : 0;
}

} // namespace

int main(int argc, char** argv) {
    options opt;
    std::vector<std::string> args(argv + 1, argv + argc);
    if (args.empty()) {
        std::fprintf(stderr, "usage: ws_peer server|client [options]\n");
        return 2;
    }
    opt.mode = args[0];
    for (std::size_t i = 1; i < args.size(); ++i) {
        auto more = [&](std::size_t n) {
            if (i + n >= args.size()) {
                std::fprintf(stderr, "%s needs %zu argument(s)\n", args[i].c_str(), n);
                std::exit(2);
            }
        };
        if (args[i] == "--port-file") {
            more(1);
            opt.port_file = args[++i];
        } else if (args[i] == "--url") {
            more(1);
            opt.url = args[++i];
        } else if (args[i] == "--tls") {
            more(2);
            opt.cert = args[++i];
            opt.key = args[++i];
        } else if (args[i] == "--ca") {
            more(1);
            opt.ca = args[++i];
        } else if (args[i] == "--max-message") {
            more(1);
            opt.max_message = std::stoul(args[++i]);
        } else if (args[i] == "--timeout") {
            more(1);
            opt.timeout_s = std::stoi(args[++i]);
        } else {
            std::fprintf(stderr, "unknown option %s\n", args[i].c_str());
            return 2;
        }
    }
    try {
        if (opt.mode == "server" && !opt.port_file.empty())
            return run_server(opt);
        if (opt.mode == "client" && !opt.url.empty())
            return run_client(opt);
    } catch (const std::exception& e) {
        std::printf("error: %s\n", e.what());
        return 1;
    }
    std::fprintf(stderr, "usage: ws_peer server --port-file F | client --url URL\n");
    return 2;
}
