#include <peerlink/net/websocket.hpp>

#include "catch.hpp"

#include <peerlink/completion_tokens.hpp>

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/read.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <chrono>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using asio::ip::tcp;
using peerlink::websocket_error;
namespace ws = peerlink::websocket;
using ws_stream = peerlink::websocket_stream<tcp::socket>;

namespace {

constexpr auto awaitable_tuple = peerlink::as_tuple(asio::use_awaitable);

// A connected pair of loopback TCP sockets.
struct loopback {
    asio::io_context io;
    tcp::acceptor acceptor{io, tcp::endpoint(asio::ip::address_v4::loopback(), 0)};

    std::pair<tcp::socket, tcp::socket> connect() {
        tcp::socket client(io), server(io);
        client.connect(acceptor.local_endpoint());
        acceptor.accept(server);
        return {std::move(client), std::move(server)};
    }

    std::string host() const {
        return "127.0.0.1:" + std::to_string(acceptor.local_endpoint().port());
    }

    template <class F>
    void spawn(F f) {
        asio::co_spawn(io, std::move(f), [](std::exception_ptr e) {
            if (e)
                std::rethrow_exception(e);
        });
    }

    // Runs until `done()`, at most `limit`.
    template <class Pred>
    void run_until(Pred done, std::chrono::steady_clock::duration limit = 10s) {
        auto end = std::chrono::steady_clock::now() + limit;
        while (!done() && std::chrono::steady_clock::now() < end)
            io.run_one_for(10ms);
        io.restart();
    }

    // Runs until nothing is left to do, at most `limit`.
    void run(std::chrono::steady_clock::duration limit = 20s) {
        io.run_for(limit);
        io.restart();
    }
};

std::string pattern(std::size_t n, bool text) {
    std::string s(n, '\0');
    for (std::size_t i = 0; i < n; ++i)
        s[i] = text ? static_cast<char>('a' + i % 26) : static_cast<char>(i * 31 + 7);
    return s;
}

// Reads from a raw socket until EOF (or `limit` bytes).
asio::awaitable<std::string> read_all(tcp::socket& s) {
    const std::size_t limit = 1 << 20;
    std::string out;
    std::vector<char> buf(4096);
    while (out.size() < limit) {
        auto [ec, n] = co_await s.async_read_some(asio::buffer(buf), awaitable_tuple);
        out.append(buf.data(), n);
        if (ec)
            break;
    }
    co_return out;
}

const std::string raw_upgrade = "GET /raw HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                                "Connection: Upgrade\r\nSec-WebSocket-Key: "
                                "dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

} // namespace

TEST_CASE("websocket_stream echoes text and binary messages of many sizes", "[websocket][net]") {
    for (std::size_t fragment : {std::size_t{0}, std::size_t{1000}}) {
        INFO("write_fragment_size " << fragment);
        loopback net;
        auto [cs, ss] = net.connect();
        ws_stream server(std::move(ss)), client(std::move(cs));
        peerlink::websocket_settings cfg;
        cfg.write_fragment_size = fragment;
        server.set_settings(cfg);
        client.set_settings(cfg);

        std::error_code accept_ec, server_end;
        std::size_t echoed = 0;
        net.spawn([&]() -> asio::awaitable<void> {
            std::tie(accept_ec) = co_await server.async_accept(awaitable_tuple);
            std::string msg;
            for (;;) {
                auto [ec, n] = co_await server.async_read(msg, awaitable_tuple);
                if (ec) {
                    server_end = ec;
                    co_return;
                }
                co_await server.async_write(asio::buffer(msg), server.message_type(),
                                            asio::use_awaitable);
                ++echoed;
            }
        });

        std::error_code hs_ec, close_ec, after_close;
        std::size_t matched = 0, sent = 0;
        net.spawn([&]() -> asio::awaitable<void> {
            std::tie(hs_ec) = co_await client.async_handshake(net.host(), "/echo", awaitable_tuple);
            if (hs_ec)
                co_return;
            for (std::size_t size : {0, 1, 125, 126, 127, 65535, 65536, 65537, 300000}) {
                for (bool text : {true, false}) {
                    auto payload = pattern(size, text);
                    auto kind = text ? ws::message_kind::text : ws::message_kind::binary;
                    co_await client.async_write(asio::buffer(payload), kind, asio::use_awaitable);
                    ++sent;
                    std::vector<char> back;
                    auto [ec, n] =
                        co_await client.async_read(asio::dynamic_buffer(back), awaitable_tuple);
                    if (!ec && n == size && std::string(back.begin(), back.end()) == payload &&
                        client.message_type() == kind)
                        ++matched;
                }
            }
            std::tie(close_ec) = co_await client.async_close(1000, "done", awaitable_tuple);
            std::string rest;
            std::tie(after_close, std::ignore) = co_await client.async_read(rest, awaitable_tuple);
        });
        net.run();
        CHECK_FALSE(accept_ec);
        CHECK_FALSE(hs_ec);
        CHECK(sent == 18);
        CHECK(matched == 18);
        CHECK(echoed == 18);
        CHECK_FALSE(close_ec);
        CHECK(after_close == websocket_error::closed);
        CHECK(server_end == websocket_error::closed);
        CHECK(server.close_reason().code == 1000);
        CHECK(server.close_reason().reason == "done");
        CHECK(client.close_reason().code == 1000); // the server echoes the code
        CHECK_FALSE(server.is_open());
        CHECK_FALSE(client.is_open());
    }
}

TEST_CASE("websocket_stream answers pings and reports pongs", "[websocket][net]") {
    loopback net;
    auto [cs, ss] = net.connect();
    ws_stream server(std::move(ss)), client(std::move(cs));
    std::vector<std::string> server_saw, client_saw;
    auto recorder = [](std::vector<std::string>& into) {
        return [&into](ws::opcode op, std::span<const std::byte> p) {
            into.push_back(std::to_string(static_cast<int>(op)) + ":" +
                           std::string(reinterpret_cast<const char*>(p.data()), p.size()));
        };
    };
    server.set_control_callback(recorder(server_saw));
    client.set_control_callback(recorder(client_saw));

    std::error_code server_end;
    net.spawn([&]() -> asio::awaitable<void> {
        co_await server.async_accept(asio::use_awaitable);
        co_await server.async_ping(asio::buffer(std::string_view("srv")), asio::use_awaitable);
        std::string msg;
        for (;;) {
            auto [ec, n] = co_await server.async_read(msg, awaitable_tuple);
            if (ec) {
                server_end = ec;
                co_return;
            }
            co_await server.async_write(asio::buffer(msg), ws::message_kind::text,
                                        asio::use_awaitable);
        }
    });
    std::string echo;
    std::error_code big_ping;
    net.spawn([&]() -> asio::awaitable<void> {
        co_await client.async_handshake(net.host(), "/", asio::use_awaitable);
        co_await client.async_ping(asio::buffer(std::string_view("abc")), asio::use_awaitable);
        std::string big(126, 'p');
        std::tie(big_ping) = co_await client.async_ping(asio::buffer(big), awaitable_tuple);
        co_await client.async_write(asio::buffer(std::string_view("x")), ws::message_kind::text,
                                    asio::use_awaitable);
        co_await client.async_read(echo, asio::use_awaitable);
        co_await client.async_close(1000, "", asio::use_awaitable);
    });
    net.run();
    CHECK(echo == "x");
    CHECK(big_ping == websocket_error::control_too_large);
    // The server saw our ping and its own pong; we saw its ping and our pong.
    CHECK(std::find(server_saw.begin(), server_saw.end(), "9:abc") != server_saw.end());
    CHECK(std::find(server_saw.begin(), server_saw.end(), "10:srv") != server_saw.end());
    CHECK(std::find(client_saw.begin(), client_saw.end(), "9:srv") != client_saw.end());
    CHECK(std::find(client_saw.begin(), client_saw.end(), "10:abc") != client_saw.end());
    CHECK(server_end == websocket_error::closed);
}

TEST_CASE("websocket_stream queues writes and pings and sends them in order", "[websocket][net]") {
    loopback net;
    auto [cs, ss] = net.connect();
    ws_stream server(std::move(ss)), client(std::move(cs));
    peerlink::websocket_settings cfg;
    cfg.write_fragment_size = 7;
    client.set_settings(cfg);
    constexpr int count = 100;
    std::vector<std::string> got;
    int pongs = 0;
    server.set_control_callback([&](ws::opcode op, auto) { pongs += op == ws::opcode::ping; });
    net.spawn([&]() -> asio::awaitable<void> {
        co_await server.async_accept(asio::use_awaitable);
        std::string msg;
        while (true) {
            auto [ec, n] = co_await server.async_read(msg, awaitable_tuple);
            if (ec)
                co_return;
            got.push_back(msg);
        }
    });
    std::vector<std::string> messages;
    for (int i = 0; i < count; ++i)
        messages.push_back("message number " + std::to_string(i));
    int completed = 0, in_order = 0, pinged = 0;
    net.spawn([&]() -> asio::awaitable<void> {
        co_await client.async_handshake(net.host(), "/", asio::use_awaitable);
        for (int i = 0; i < count; ++i) {
            client.async_write(asio::buffer(messages[i]), ws::message_kind::text,
                               [&, i](std::error_code ec, std::size_t n) {
                                   in_order += completed == i;
                                   completed += !ec && n == messages[i].size();
                               });
            if (i % 10 == 0)
                client.async_ping(asio::buffer(std::string_view("p")),
                                  [&](std::error_code ec) { pinged += !ec; });
        }
        co_await client.async_close(1000, "", asio::use_awaitable);
    });
    net.run();
    CHECK(completed == count);
    CHECK(in_order == count);
    CHECK(pinged == count / 10);
    CHECK(pongs == count / 10);
    CHECK(got == messages);
}

TEST_CASE("websocket_stream server answers plain HTTP through the accept hook",
          "[websocket][net]") {
    loopback net;
    auto [cs, ss] = net.connect();
    ws_stream server(std::move(ss));
    tcp::socket raw(std::move(cs));
    std::string seen_path, seen_accept;
    std::error_code accept_ec;
    net.spawn([&]() -> asio::awaitable<void> {
        std::tie(accept_ec) = co_await server.async_accept(
            [&](const ws::http_request_parser& req) -> ws::handshake_decision {
                seen_path = req.path();
                seen_accept = req.header("Accept").value_or("");
                if (!req.is_upgrade() && req.path() == "/status")
                    return ws::http_response{200, "application/json", R"({"peers":0})", {}};
                return ws::accept_upgrade{};
            },
            awaitable_tuple);
    });
    std::string response;
    net.spawn([&]() -> asio::awaitable<void> {
        std::string req = "GET /status?x=1 HTTP/1.1\r\nHost: h\r\nAccept: application/json\r\n\r\n";
        co_await asio::async_write(raw, asio::buffer(req), asio::use_awaitable);
        response = co_await read_all(raw);
        raw.close();
    });
    net.run();
    CHECK(accept_ec == websocket_error::http_answered);
    CHECK(seen_path == "/status");
    CHECK(seen_accept == "application/json");
    CHECK(response.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
    CHECK(response.find("Content-Type: application/json\r\n") != std::string::npos);
    CHECK(response.find("Content-Length: 11\r\n") != std::string::npos);
    CHECK(response.substr(response.size() - 11) == R"({"peers":0})");
    CHECK_FALSE(server.is_open());
}

TEST_CASE("websocket_stream server refuses bad or unwanted upgrades with HTTP errors",
          "[websocket][net]") {
    struct refusal {
        std::string request;
        websocket_error accept_error;
        std::string status_line;
    };
    std::vector<refusal> cases = {
        {"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Version: 13\r\n\r\n",
         websocket_error::bad_key, "HTTP/1.1 400 Bad Request\r\n"},
        {"GET / HTTP/1.1\r\nHost: x\r\n\r\n", websocket_error::not_upgrade,
         "HTTP/1.1 426 Upgrade Required\r\n"},
        {"GARBAGE\r\n\r\n", websocket_error::bad_http_request, "HTTP/1.1 400 Bad Request\r\n"},
        {"GET / HTTP/1.1\r\nX: " + std::string(9000, 'a') + "\r\n\r\n",
         websocket_error::http_header_too_large,
         "HTTP/1.1 431 Request Header Fields Too Large\r\n"},
    };
    for (auto& c : cases) {
        INFO(c.request.substr(0, 60));
        loopback net;
        auto [cs, ss] = net.connect();
        ws_stream server(std::move(ss));
        tcp::socket raw(std::move(cs));
        std::error_code accept_ec;
        server.async_accept([&](std::error_code ec) { accept_ec = ec; });
        std::string response;
        net.spawn([&]() -> asio::awaitable<void> {
            co_await asio::async_write(raw, asio::buffer(c.request), awaitable_tuple);
            response = co_await read_all(raw);
            raw.close();
        });
        net.run();
        CHECK(accept_ec == c.accept_error);
        CHECK(response.rfind(c.status_line, 0) == 0);
    }

    // A hook that refuses a path: our client sees the status.
    loopback net;
    auto [cs, ss] = net.connect();
    ws_stream server(std::move(ss)), client(std::move(cs));
    std::error_code accept_ec, hs_ec;
    server.async_accept(
        [](const ws::http_request_parser&) -> ws::handshake_decision {
            return ws::http_response{404, "text/plain", "no such path\n", {}};
        },
        [&](std::error_code ec) { accept_ec = ec; });
    client.async_handshake(net.host(), "/nope", [&](std::error_code ec) { hs_ec = ec; });
    net.run();
    CHECK(accept_ec == websocket_error::http_answered);
    CHECK(hs_ec == websocket_error::handshake_rejected);
    CHECK(client.handshake_status() == 404);
}

TEST_CASE("websocket_stream negotiates a subprotocol and speaks over IPv6", "[websocket][net]") {
    asio::io_context io;
    std::error_code ec;
    tcp::acceptor acceptor(io);
    acceptor.open(tcp::v6(), ec);
    if (!ec)
        acceptor.bind(tcp::endpoint(asio::ip::address_v6::loopback(), 0), ec);
    if (ec) {
        WARN("no IPv6 loopback here: " << ec.message());
        return;
    }
    acceptor.listen();
    auto url = peerlink::ws_url::parse(
        "ws://[::1]:" + std::to_string(acceptor.local_endpoint().port()) + "/sig?v=1", ec);
    REQUIRE(url);
    tcp::socket cs(io), ss(io);
    cs.connect(acceptor.local_endpoint());
    acceptor.accept(ss);
    ws_stream server(std::move(ss)), client(std::move(cs));
    peerlink::websocket_settings cfg;
    cfg.subprotocols = "peerlink.v2, peerlink.v1";
    client.set_settings(cfg);
    std::string host_seen, target_seen;
    std::error_code accept_ec, hs_ec;
    server.async_accept(
        [&](const ws::http_request_parser& req) -> ws::handshake_decision {
            host_seen = req.header("Host").value_or("");
            target_seen = req.target();
            if (req.offers_subprotocol("peerlink.v1"))
                return ws::accept_upgrade{"peerlink.v1"};
            return ws::accept_upgrade{};
        },
        [&](std::error_code e) { accept_ec = e; });
    client.async_handshake(*url, [&](std::error_code e) { hs_ec = e; });
    io.run_for(10s);
    CHECK_FALSE(accept_ec);
    CHECK_FALSE(hs_ec);
    CHECK(host_seen == url->host_header());
    CHECK(target_seen == "/sig?v=1");
    CHECK(client.subprotocol() == "peerlink.v1");
    CHECK(server.subprotocol() == "peerlink.v1");
}

TEST_CASE("websocket_stream fails an oversized message with close code 1009", "[websocket][net]") {
    loopback net;
    auto [cs, ss] = net.connect();
    ws_stream server(std::move(ss)), client(std::move(cs));
    peerlink::websocket_settings cfg;
    cfg.max_message_size = 1000;
    server.set_settings(cfg);
    std::error_code server_read, client_read, write_ec;
    net.spawn([&]() -> asio::awaitable<void> {
        co_await server.async_accept(asio::use_awaitable);
        std::string msg;
        std::tie(server_read, std::ignore) = co_await server.async_read(msg, awaitable_tuple);
    });
    std::string big(2000, 'x');
    net.spawn([&]() -> asio::awaitable<void> {
        co_await client.async_handshake(net.host(), "/", asio::use_awaitable);
        std::tie(write_ec, std::ignore) = co_await client.async_write(
            asio::buffer(big), ws::message_kind::binary, awaitable_tuple);
        std::string msg;
        std::tie(client_read, std::ignore) = co_await client.async_read(msg, awaitable_tuple);
    });
    net.run();
    CHECK_FALSE(write_ec);
    CHECK(server_read == websocket_error::message_too_large);
    CHECK(client_read == websocket_error::closed);
    CHECK(client.close_reason().code == ws::close_code::message_too_big);
    CHECK_FALSE(client.close_reason().reason.empty());
}

TEST_CASE("websocket_stream fails a bad frame from a raw client with close code 1002",
          "[websocket][net]") {
    loopback net;
    auto [cs, ss] = net.connect();
    ws_stream server(std::move(ss));
    tcp::socket raw(std::move(cs));
    std::error_code server_read;
    net.spawn([&]() -> asio::awaitable<void> {
        co_await server.async_accept(asio::use_awaitable);
        std::string msg;
        std::tie(server_read, std::ignore) = co_await server.async_read(msg, awaitable_tuple);
    });
    std::string reply;
    net.spawn([&]() -> asio::awaitable<void> {
        // The upgrade, then an unmasked text frame (clients must mask).
        std::string out = raw_upgrade + std::string("\x81\x02hi", 4);
        co_await asio::async_write(raw, asio::buffer(out), asio::use_awaitable);
        reply = co_await read_all(raw);
        raw.close();
    });
    net.run();
    CHECK(server_read == websocket_error::unmasked_frame);
    auto head_end = reply.find("\r\n\r\n");
    REQUIRE(head_end != std::string::npos);
    CHECK(reply.rfind("HTTP/1.1 101 Switching Protocols\r\n", 0) == 0);
    CHECK(reply.find("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n") !=
          std::string::npos);
    auto frames = reply.substr(head_end + 4);
    REQUIRE(frames.size() >= 4);
    CHECK(static_cast<unsigned char>(frames[0]) == 0x88); // close, FIN, unmasked
    CHECK(static_cast<unsigned char>(frames[1]) == frames.size() - 2);
    CHECK(static_cast<unsigned char>(frames[2]) == 0x03); // 1002
    CHECK(static_cast<unsigned char>(frames[3]) == 0xEA);
}

TEST_CASE("websocket_stream times out a silent handshake and an unanswered close",
          "[websocket][net]") {
    loopback net;
    {
        auto [cs, ss] = net.connect();
        ws_stream server(std::move(ss));
        peerlink::websocket_settings cfg;
        cfg.handshake_timeout = 100ms;
        server.set_settings(cfg);
        std::error_code accept_ec;
        auto start = std::chrono::steady_clock::now();
        server.async_accept([&](std::error_code ec) { accept_ec = ec; });
        net.run(10s);
        CHECK(accept_ec == websocket_error::handshake_timeout);
        CHECK(accept_ec == peerlink::condition::peer_unreachable);
        CHECK(std::chrono::steady_clock::now() - start < 5s);
    }
    {
        // The server accepts but never reads: the client's close gets no answer.
        auto [cs, ss] = net.connect();
        ws_stream server(std::move(ss)), client(std::move(cs));
        peerlink::websocket_settings cfg;
        cfg.close_timeout = 200ms;
        client.set_settings(cfg);
        std::error_code close_ec, read_ec;
        net.spawn(
            [&]() -> asio::awaitable<void> { co_await server.async_accept(asio::use_awaitable); });
        net.spawn([&]() -> asio::awaitable<void> {
            co_await client.async_handshake(net.host(), "/", asio::use_awaitable);
            std::tie(close_ec) = co_await client.async_close(1000, "", awaitable_tuple);
            std::string m;
            std::tie(read_ec, std::ignore) = co_await client.async_read(m, awaitable_tuple);
        });
        net.run(10s);
        CHECK(close_ec == websocket_error::close_timeout);
        CHECK(read_ec == websocket_error::close_timeout);
    }
}

TEST_CASE("websocket_stream server-initiated close and a peer that just disconnects",
          "[websocket][net]") {
    loopback net;
    {
        auto [cs, ss] = net.connect();
        ws_stream server(std::move(ss)), client(std::move(cs));
        std::error_code server_close, client_read;
        net.spawn([&]() -> asio::awaitable<void> {
            co_await server.async_accept(asio::use_awaitable);
            std::tie(server_close) =
                co_await server.async_close(4001, "server bye", awaitable_tuple);
        });
        net.spawn([&]() -> asio::awaitable<void> {
            co_await client.async_handshake(net.host(), "/", asio::use_awaitable);
            std::string m;
            std::tie(client_read, std::ignore) = co_await client.async_read(m, awaitable_tuple);
        });
        net.run();
        CHECK_FALSE(server_close);
        CHECK(client_read == websocket_error::closed);
        CHECK(client.close_reason().code == 4001);
        CHECK(client.close_reason().reason == "server bye");
        // Writes after the close fail; the handler still runs outside the call.
        bool ran = false;
        std::error_code late;
        client.async_write(asio::buffer(std::string_view("x")), ws::message_kind::text,
                           [&](std::error_code ec, std::size_t) {
                               ran = true;
                               late = ec;
                           });
        CHECK_FALSE(ran);
        net.run();
        CHECK(ran);
        CHECK(late == websocket_error::closed);
    }
    {
        auto [cs, ss] = net.connect();
        ws_stream server(std::move(ss)), client(std::move(cs));
        std::error_code server_read;
        net.spawn([&]() -> asio::awaitable<void> {
            co_await server.async_accept(asio::use_awaitable);
            std::string m;
            std::tie(server_read, std::ignore) = co_await server.async_read(m, awaitable_tuple);
        });
        net.spawn([&]() -> asio::awaitable<void> {
            co_await client.async_handshake(net.host(), "/", asio::use_awaitable);
            client.lowest_layer().close();
        });
        net.run();
        CHECK(server_read == asio::error::eof);
    }
}

TEST_CASE("websocket_stream read cancellation keeps the stream usable", "[websocket][net]") {
    loopback net;
    auto [cs, ss] = net.connect();
    ws_stream server(std::move(ss)), client(std::move(cs));
    asio::cancellation_signal cancel;
    std::error_code first_ec;
    std::string first, second;
    bool first_ran = false;
    server.async_accept([](std::error_code) {});
    client.async_handshake(net.host(), "/", [&](std::error_code ec) {
        REQUIRE_FALSE(ec);
        client.async_read(
            first, asio::bind_cancellation_slot(cancel.slot(), [&](std::error_code e, std::size_t) {
                first_ran = true;
                first_ec = e;
            }));
        cancel.emit(asio::cancellation_type::terminal);
        CHECK_FALSE(first_ran); // completes later, from the io_context
    });
    net.run_until([&] { return first_ran; });
    CHECK(first_ran);
    CHECK(first_ec == asio::error::operation_aborted);
    CHECK(client.is_open());
    std::error_code second_ec;
    server.async_write(asio::buffer(std::string_view("later")), ws::message_kind::text,
                       [](std::error_code, std::size_t) {});
    bool second_ran = false;
    client.async_read(second, [&](std::error_code e, std::size_t) {
        second_ec = e;
        second_ran = true;
    });
    net.run_until([&] { return second_ran; });
    CHECK_FALSE(second_ec);
    CHECK(second == "later");
    CHECK(first.empty());

    // A deferred operation starts when it is given a handler.
    auto ping = client.async_ping(asio::buffer(std::string_view("d")), peerlink::deferred);
    bool pinged = false;
    std::string third;
    client.async_read(third, [](std::error_code, std::size_t) {});
    std::move(ping)([&](std::error_code e) { pinged = !e; });
    net.run_until([&] { return pinged; });
    CHECK(pinged);
}
