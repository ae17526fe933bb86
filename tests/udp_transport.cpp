#include <peerlink/net/udp_transport.hpp>

#include <peerlink/net/asio_endpoint.hpp>

#include "catch.hpp"

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/io_context.hpp>
#if defined(ASIO_HAS_CO_AWAIT)
#include <asio/co_spawn.hpp>
#include <asio/use_awaitable.hpp>
#endif
#include <asio/use_future.hpp>

#include <array>
#include <chrono>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <sys/socket.h>

using namespace std::chrono_literals;
using peerlink::endpoint;
using peerlink::ip_address;
using peerlink::rx_slot;
using peerlink::tx_datagram;
using peerlink::udp_transport;

static_assert(peerlink::transport_policy<udp_transport>);
static_assert(std::is_same_v<udp_transport::timer_type::clock_type, peerlink::clock>);

namespace {

udp_transport::options bound_to(std::string address) {
    udp_transport::options o;
    o.bind_address = std::move(address);
    return o;
}

std::span<const std::byte> as_bytes(std::string_view s) {
    return std::as_bytes(std::span(s.data(), s.size()));
}

std::string as_text(const rx_slot& s) {
    return std::string(reinterpret_cast<const char*>(s.buffer.data()), s.size);
}

// Receive buffers and the slots that view them.
struct rx_batch {
    explicit rx_batch(std::size_t n, std::size_t bytes = 2048)
        : storage(n, std::vector<std::byte>(bytes)), slots(n) {
        for (std::size_t i = 0; i < n; ++i)
            slots[i].buffer = storage[i];
    }
    std::vector<std::vector<std::byte>> storage;
    std::vector<rx_slot> slots;
};

// Runs `io` until `done()` or until `limit` has passed.
template <class Done>
bool run_until(asio::io_context& io, Done done, std::chrono::milliseconds limit = 2000ms) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done() && std::chrono::steady_clock::now() < deadline) {
        io.restart();
        io.run_for(5ms);
    }
    return done();
}

struct receive_result {
    std::error_code ec;
    std::size_t n = 0;
};

// One async_receive with a callback, run to completion (or the time limit).
std::optional<receive_result> receive(asio::io_context& io, udp_transport& t,
                                      std::span<rx_slot> slots) {
    std::optional<receive_result> r;
    t.async_receive(slots, [&](std::error_code ec, std::size_t n) { r = receive_result{ec, n}; });
    run_until(io, [&] { return r.has_value(); });
    return r;
}

struct datagram {
    std::string text;
    endpoint from;
    bool truncated = false;
};

// Receives until `count` datagrams have arrived, an error, or the time limits.
std::vector<datagram> receive_n(asio::io_context& io, udp_transport& t, std::size_t count,
                                std::size_t slot_bytes = 2048) {
    rx_batch rx(count, slot_bytes);
    std::vector<datagram> got;
    for (std::size_t round = 0; round < count + 10 && got.size() < count; ++round) {
        auto r = receive(io, t, rx.slots);
        if (!r || r->ec)
            break;
        for (std::size_t i = 0; i < r->n; ++i)
            got.push_back({as_text(rx.slots[i]), rx.slots[i].from, rx.slots[i].truncated});
    }
    return got;
}

std::size_t send_text(udp_transport& t, std::string_view text, const endpoint& to,
                      std::error_code& ec) {
    const tx_datagram d{as_bytes(text), to};
    return t.try_send(std::span(&d, 1), ec);
}

// Sends `text` from `from` to `to` and checks that `to` receives exactly it.
void check_exchange(asio::io_context& io, udp_transport& from, udp_transport& to,
                    const endpoint& to_address, std::string_view text,
                    const endpoint& expected_sender) {
    std::error_code ec;
    REQUIRE(send_text(from, text, to_address, ec) == 1);
    REQUIRE_FALSE(ec);
    rx_batch rx(4);
    auto r = receive(io, to, rx.slots);
    REQUIRE(r);
    REQUIRE_FALSE(r->ec);
    REQUIRE(r->n == 1);
    CHECK(as_text(rx.slots[0]) == text);
    CHECK_FALSE(rx.slots[0].truncated);
    CHECK(rx.slots[0].from == expected_sender);
}

endpoint loopback_v4(std::uint16_t port) {
    return {ip_address::loopback_v4(), port};
}

// A v6 transport on ::1, or null if this system has no IPv6 loopback.
std::unique_ptr<udp_transport> try_open_v6_loopback(asio::io_context& io) {
    auto t = std::make_unique<udp_transport>(io.get_executor());
    std::error_code ec;
    t->open(bound_to("::1"), ec);
    if (ec) {
        WARN("no IPv6 loopback here (" << ec.message() << "): IPv6 checks skipped");
        t.reset();
    }
    return t;
}

} // namespace

TEST_CASE("asio endpoint conversion keeps families and unmaps IPv4-mapped", "[udp][endpoint]") {
    std::error_code ec;
    const auto v4 = *endpoint::parse("192.0.2.7:5000", ec);
    const asio::ip::udp::endpoint a4 = peerlink::to_asio(v4);
    CHECK(a4.address() == asio::ip::make_address("192.0.2.7"));
    CHECK(a4.port() == 5000);
    CHECK(peerlink::from_asio(a4) == v4);

    const auto v6 = *endpoint::parse("[fe80::1%3]:443", ec);
    const asio::ip::udp::endpoint a6 = peerlink::to_asio(v6);
    REQUIRE(a6.address().is_v6());
    CHECK(a6.address().to_v6().scope_id() == 3);
    CHECK(peerlink::from_asio(a6) == v6);

    const asio::ip::udp::endpoint mapped(asio::ip::make_address("::ffff:192.0.2.7"), 5000);
    const endpoint unmapped = peerlink::from_asio(mapped);
    CHECK(unmapped.address.is_v4());
    CHECK(unmapped == v4);
    CHECK(peerlink::from_asio(asio::ip::udp::endpoint(asio::ip::make_address("::"), 1)) ==
          endpoint{ip_address::any_v6(), 1});
}

TEST_CASE("udp_transport exchanges datagrams over IPv4 loopback", "[udp]") {
    asio::io_context io;
    udp_transport a(io.get_executor(), bound_to("127.0.0.1"));
    udp_transport b(io.get_executor(), bound_to("127.0.0.1"));
    REQUIRE(a.is_open());
    CHECK(a.local_endpoint().address == ip_address::loopback_v4());
    CHECK(a.local_endpoint().port != 0);
    CHECK(a.local_endpoint().port != b.local_endpoint().port);
    CHECK_FALSE(a.dual_stack());

    check_exchange(io, a, b, b.local_endpoint(), "hello from a", a.local_endpoint());
    check_exchange(io, b, a, a.local_endpoint(), "and back from b", b.local_endpoint());

    SECTION("an IPv4 socket refuses an IPv6 destination for that datagram only") {
        const endpoint v6_peer{ip_address::loopback_v6(), 9};
        const std::array<tx_datagram, 3> batch{{{as_bytes("first"), b.local_endpoint()},
                                                {as_bytes("lost"), v6_peer},
                                                {as_bytes("third"), b.local_endpoint()}}};
        std::error_code ec;
        CHECK(a.try_send(batch, ec) == 1);
        CHECK(ec == peerlink::error::address_family_not_enabled);
        CHECK(ec == peerlink::condition::configuration_error);
        CHECK(a.try_send(std::span(batch).subspan(2), ec) == 1);
        CHECK_FALSE(ec);

        const auto got = receive_n(io, b, 2);
        REQUIRE(got.size() == 2);
        CHECK(got[0].text == "first");
        CHECK(got[1].text == "third");
    }

    SECTION("a datagram too large for UDP is refused, the ones around it are sent") {
        const std::vector<std::byte> huge(70000);
        const std::array<tx_datagram, 3> batch{{{as_bytes("one"), b.local_endpoint()},
                                                {huge, b.local_endpoint()},
                                                {as_bytes("three"), b.local_endpoint()}}};
        std::error_code ec;
        CHECK(a.try_send(batch, ec) == 1);
        CHECK(ec == std::errc::message_size);
        CHECK(a.try_send(std::span(batch).subspan(2), ec) == 1);
        CHECK_FALSE(ec);
    }

    SECTION("async_wait_writable completes at once on an idle socket") {
        std::optional<std::error_code> waited;
        a.async_wait_writable([&](std::error_code ec) { waited = ec; });
        CHECK_FALSE(waited); // never inside the initiating call
        REQUIRE(run_until(io, [&] { return waited.has_value(); }));
        CHECK_FALSE(*waited);
    }
}

TEST_CASE("udp_transport exchanges datagrams over IPv6 loopback", "[udp]") {
    asio::io_context io;
    auto a = try_open_v6_loopback(io);
    if (!a)
        return;
    udp_transport b(io.get_executor(), bound_to("[::1]"));
    CHECK(a->local_endpoint().address == ip_address::loopback_v6());
    CHECK(a->local_endpoint().to_string() == "[::1]:" + std::to_string(a->local_endpoint().port));
    CHECK_FALSE(a->dual_stack());

    check_exchange(io, *a, b, b.local_endpoint(), "v6 hello", a->local_endpoint());
    check_exchange(io, b, *a, a->local_endpoint(), "v6 reply", b.local_endpoint());

    // A socket bound to a specific IPv6 address is IPv6-only.
    std::error_code ec;
    CHECK(send_text(*a, "x", loopback_v4(9), ec) == 0);
    CHECK(ec == peerlink::error::address_family_not_enabled);
}

TEST_CASE("a dual-stack transport sees IPv4 peers as plain IPv4 and answers them", "[udp]") {
    asio::io_context io;
    udp_transport dual(io.get_executor(), udp_transport::options{});
    udp_transport v4(io.get_executor(), bound_to("127.0.0.1"));
    const std::uint16_t port = dual.local_endpoint().port;
    REQUIRE(port != 0);
    if (dual.dual_stack()) {
        CHECK(dual.local_endpoint() == endpoint{ip_address::any_v6(), port});
        CHECK(dual.local_endpoint().to_string() == "[::]:" + std::to_string(port));
    } else {
        WARN("no IPv6 here: the default transport fell back to IPv4");
        CHECK(dual.local_endpoint() == endpoint{ip_address::any_v4(), port});
    }

    std::error_code ec;
    REQUIRE(send_text(v4, "from a v4 socket", loopback_v4(port), ec) == 1);
    rx_batch rx(2);
    auto r = receive(io, dual, rx.slots);
    REQUIRE(r);
    REQUIRE_FALSE(r->ec);
    REQUIRE(r->n == 1);
    CHECK(as_text(rx.slots[0]) == "from a v4 socket");
    CHECK(rx.slots[0].from.address.is_v4());
    CHECK(rx.slots[0].from == v4.local_endpoint());

    // The reply goes to the plain IPv4 endpoint; the transport maps it for its socket.
    check_exchange(io, dual, v4, rx.slots[0].from, "reply to v4", loopback_v4(port));

    if (dual.dual_stack()) {
        // ... and the same socket talks IPv6.
        auto v6 = try_open_v6_loopback(io);
        if (v6)
            check_exchange(io, *v6, dual, endpoint{ip_address::loopback_v6(), port}, "v6 too",
                           v6->local_endpoint());
    }
}

TEST_CASE("udp_transport moves a batch of 64 datagrams in one system call", "[udp]") {
    asio::io_context io;
    udp_transport a(io.get_executor(), bound_to("127.0.0.1"));
    udp_transport b(io.get_executor(), bound_to("127.0.0.1"));

    constexpr std::size_t count = 64;
    std::vector<std::string> texts;
    std::vector<tx_datagram> batch;
    for (std::size_t i = 0; i < count; ++i)
        texts.push_back("datagram #" + std::to_string(i) + std::string(i * 7, 'a' + i % 26));
    for (const auto& t : texts)
        batch.push_back({as_bytes(t), b.local_endpoint()});

    const auto sent_calls = a.syscalls_sent();
    std::error_code ec;
    REQUIRE(a.try_send(batch, ec) == count);
    REQUIRE_FALSE(ec);
    const auto send_calls = a.syscalls_sent() - sent_calls;
    if (udp_transport::batches_system_calls)
        CHECK(send_calls == 1);
    else
        CHECK(send_calls == count);

    const auto received_calls = b.syscalls_received();
    const auto got = receive_n(io, b, count);
    REQUIRE(got.size() == count);
    for (std::size_t i = 0; i < count; ++i) { // all of them, intact and in order
        INFO(i);
        CHECK(got[i].text == texts[i]);
        CHECK(got[i].from == a.local_endpoint());
        CHECK_FALSE(got[i].truncated);
    }
    const auto receive_calls = b.syscalls_received() - received_calls;
    if (udp_transport::batches_system_calls)
        CHECK(receive_calls < count / 4);

    SECTION("a batch above max_batch takes one more call") {
        std::vector<tx_datagram> bigger(udp_transport::max_batch + 1,
                                        tx_datagram{as_bytes("x"), b.local_endpoint()});
        const auto before = a.syscalls_sent();
        CHECK(a.try_send(bigger, ec) == bigger.size());
        CHECK_FALSE(ec);
        if (udp_transport::batches_system_calls)
            CHECK(a.syscalls_sent() - before == 2);
    }
}

TEST_CASE("udp_transport flags a datagram larger than its slot as truncated", "[udp]") {
    asio::io_context io;
    udp_transport a(io.get_executor(), bound_to("127.0.0.1"));
    udp_transport b(io.get_executor(), bound_to("127.0.0.1"));

    std::string big(1000, '\0');
    for (std::size_t i = 0; i < big.size(); ++i)
        big[i] = static_cast<char>('A' + i % 23);
    const std::array<tx_datagram, 2> batch{
        {{as_bytes(big), b.local_endpoint()}, {as_bytes("small one"), b.local_endpoint()}}};
    std::error_code ec;
    REQUIRE(a.try_send(batch, ec) == 2);

    const auto got = receive_n(io, b, 2, 100);
    REQUIRE(got.size() == 2);
    CHECK(got[0].text == big.substr(0, 100));
    CHECK(got[0].truncated);
    CHECK(got[1].text == "small one");
    CHECK_FALSE(got[1].truncated);
}

TEST_CASE("udp_transport binds inside a port range and reports when it is full", "[udp]") {
    asio::io_context io;
    // Find two adjacent free ports: hold them with plain sockets, then release them.
    std::uint16_t base = 0;
    for (int attempt = 0; attempt < 50 && base == 0; ++attempt) {
        asio::ip::udp::socket s1(io), s2(io);
        const auto lo = asio::ip::make_address("127.0.0.1");
        s1.open(asio::ip::udp::v4());
        s1.bind({lo, 0});
        const std::uint16_t p = s1.local_endpoint().port();
        if (p == 65535)
            continue;
        std::error_code ec;
        s2.open(asio::ip::udp::v4());
        s2.bind({lo, static_cast<std::uint16_t>(p + 1)}, ec);
        if (!ec)
            base = p;
    }
    REQUIRE(base != 0);

    auto o = bound_to("127.0.0.1");
    o.port_min = base;
    o.port_max = static_cast<std::uint16_t>(base + 1);
    udp_transport first(io.get_executor(), o);
    udp_transport second(io.get_executor(), o);
    const std::uint16_t p1 = first.local_endpoint().port, p2 = second.local_endpoint().port;
    CHECK(p1 >= base);
    CHECK(p1 <= base + 1);
    CHECK(p2 >= base);
    CHECK(p2 <= base + 1);
    CHECK(p1 != p2);

    udp_transport third(io.get_executor());
    std::error_code ec;
    third.open(o, ec);
    CHECK(ec == peerlink::error::no_port_available);
    CHECK(ec == peerlink::condition::configuration_error);
    CHECK_FALSE(third.is_open());
    CHECK(third.local_endpoint() == endpoint{});

    // Freed ports are found again; port_max = 0 means exactly port_min.
    first.close();
    third.open(o, ec);
    CHECK_FALSE(ec);
    CHECK(third.local_endpoint().port == p1);
    second.close();
    auto exact = bound_to("127.0.0.1");
    exact.port_min = p2;
    udp_transport fourth(io.get_executor(), exact);
    CHECK(fourth.local_endpoint().port == p2);
}

TEST_CASE("udp_transport reports bad options with specific errors", "[udp]") {
    asio::io_context io;
    udp_transport t(io.get_executor());
    std::error_code ec;

    for (const char* bad : {"not-an-ip", "127.0.0.1:80", "300.0.0.1", "[127.0.0.1", "localhost"}) {
        INFO(bad);
        t.open(bound_to(bad), ec);
        CHECK(ec == peerlink::error::invalid_endpoint);
        CHECK_FALSE(t.is_open());
    }
    CHECK_THROWS_AS(udp_transport(io.get_executor(), bound_to("nope")), std::system_error);
    try {
        udp_transport thrower(io.get_executor(), bound_to("nope"));
    } catch (const std::system_error& e) {
        CHECK(e.code() == peerlink::error::invalid_endpoint);
    }

    auto v4_only = bound_to("::1");
    v4_only.ipv6 = false;
    t.open(v4_only, ec);
    CHECK(ec == peerlink::error::address_family_not_enabled);

    auto range = bound_to("127.0.0.1");
    range.port_min = 5001;
    range.port_max = 5000;
    t.open(range, ec);
    CHECK(ec == peerlink::error::invalid_config);

    // ipv6 = false with no address: an IPv4 socket on 0.0.0.0.
    udp_transport::options plain_v4;
    plain_v4.ipv6 = false;
    t.open(plain_v4, ec);
    REQUIRE_FALSE(ec);
    CHECK(t.local_endpoint().address == ip_address::any_v4());
    t.open(plain_v4, ec);
    CHECK(ec == asio::error::already_open);

    // A closed transport fails its operations instead of crashing.
    t.close();
    CHECK(t.local_endpoint() == endpoint{});
    CHECK(send_text(t, "x", loopback_v4(9), ec) == 0);
    CHECK(ec == asio::error::bad_descriptor);
    rx_batch rx(1);
    auto r = receive(io, t, rx.slots);
    REQUIRE(r);
    CHECK(r->ec == asio::error::bad_descriptor);
}

TEST_CASE("close() and cancellation abort a pending receive", "[udp]") {
    asio::io_context io;
    udp_transport a(io.get_executor(), bound_to("127.0.0.1"));
    udp_transport b(io.get_executor(), bound_to("127.0.0.1"));
    rx_batch rx(2);

    SECTION("close()") {
        std::optional<receive_result> r;
        b.async_receive(rx.slots, [&](std::error_code ec, std::size_t n) { r = {ec, n}; });
        io.run_for(20ms);
        REQUIRE_FALSE(r); // nothing sent: still waiting
        b.close();
        REQUIRE(run_until(io, [&] { return r.has_value(); }));
        CHECK(r->ec == asio::error::operation_aborted);
        CHECK(r->n == 0);
    }

    SECTION("per-operation cancellation leaves the transport usable") {
        asio::cancellation_signal signal;
        std::optional<receive_result> r;
        b.async_receive(rx.slots, asio::bind_cancellation_slot(
                                      signal.slot(), [&](std::error_code ec, std::size_t n) {
                                          r = {ec, n};
                                      }));
        io.run_for(20ms);
        REQUIRE_FALSE(r);
        signal.emit(asio::cancellation_type::terminal);
        REQUIRE(run_until(io, [&] { return r.has_value(); }));
        CHECK(r->ec == asio::error::operation_aborted);

        // The transport still works, and the next datagram is received.
        check_exchange(io, a, b, b.local_endpoint(), "after cancel", a.local_endpoint());
    }

    SECTION("destroying the transport aborts its receive") {
        std::optional<receive_result> r;
        {
            udp_transport c(io.get_executor(), bound_to("127.0.0.1"));
            c.async_receive(rx.slots, [&](std::error_code ec, std::size_t n) { r = {ec, n}; });
            io.run_for(10ms);
        }
        REQUIRE(run_until(io, [&] { return r.has_value(); }));
        CHECK(r->ec == asio::error::operation_aborted);
    }
}

TEST_CASE("async_receive never completes inside its initiating call", "[udp]") {
    asio::io_context io;
    udp_transport a(io.get_executor(), bound_to("127.0.0.1"));
    udp_transport b(io.get_executor(), bound_to("127.0.0.1"));
    std::error_code ec;
    REQUIRE(send_text(a, "already queued", b.local_endpoint(), ec) == 1);

    rx_batch rx(1);
    std::optional<receive_result> r;
    b.async_receive(rx.slots, [&](std::error_code e, std::size_t n) { r = {e, n}; });
    CHECK_FALSE(r);
    REQUIRE(run_until(io, [&] { return r.has_value(); }));
    CHECK_FALSE(r->ec);
    CHECK(r->n == 1);
    CHECK(as_text(rx.slots[0]) == "already queued");

    std::optional<receive_result> empty;
    b.async_receive(std::span<rx_slot>{}, [&](std::error_code e, std::size_t n) {
        empty = {e, n};
    });
    CHECK_FALSE(empty);
    REQUIRE(run_until(io, [&] { return empty.has_value(); }));
    CHECK_FALSE(empty->ec);
    CHECK(empty->n == 0);
}

TEST_CASE("an ICMP port unreachable does not end receiving", "[udp]") {
    asio::io_context io;
    std::uint16_t a_port = 0, closed_port = 0;
    {
        udp_transport probe(io.get_executor(), bound_to("127.0.0.1"));
        udp_transport gone(io.get_executor(), bound_to("127.0.0.1"));
        a_port = probe.local_endpoint().port;
        closed_port = gone.local_endpoint().port;
    }
    // A fixed port: a UDP socket bound to an ephemeral port loses it when it disconnects.
    auto fixed = bound_to("127.0.0.1");
    fixed.port_min = a_port;
    udp_transport a(io.get_executor(), fixed);
    udp_transport b(io.get_executor(), bound_to("127.0.0.1"));

    // Linux keeps an ICMP error for a socket only while it is connected (or with
    // IP_RECVERR): connect a to the closed port for the send, so the port unreachable
    // is left pending on a, then disconnect it again, as the transport keeps it.
    const auto closed = peerlink::to_asio(loopback_v4(closed_port));
    REQUIRE(::connect(a.native_handle(), closed.data(), static_cast<socklen_t>(closed.size())) ==
            0);
    std::error_code ec;
    CHECK(send_text(a, "to nobody", loopback_v4(closed_port), ec) == 1);
    CHECK_FALSE(ec);
    std::this_thread::sleep_for(20ms); // the ICMP answer comes back
    ::sockaddr unspecified{};
    unspecified.sa_family = AF_UNSPEC;
    REQUIRE(::connect(a.native_handle(), &unspecified, sizeof unspecified) == 0);

    const auto calls = a.syscalls_received();
    check_exchange(io, b, a, a.local_endpoint(), "still receiving", b.local_endpoint());
#if defined(__linux__)
    CHECK(a.syscalls_received() - calls >= 2); // the first receive call met the error
#endif
    check_exchange(io, a, b, b.local_endpoint(), "still sending", a.local_endpoint());
}

TEST_CASE("async_receive works with use_awaitable and use_future", "[udp]") {
    asio::io_context io;
    udp_transport a(io.get_executor(), bound_to("127.0.0.1"));
    udp_transport b(io.get_executor(), bound_to("127.0.0.1"));
    rx_batch rx(4);
    std::error_code ec;

#if defined(ASIO_HAS_CO_AWAIT)
    SECTION("use_awaitable") {
        std::optional<std::size_t> n;
        std::exception_ptr failure;
        asio::co_spawn(
            io,
            [&]() -> asio::awaitable<std::size_t> {
                co_return co_await b.async_receive(rx.slots, asio::use_awaitable);
            },
            [&](std::exception_ptr e, std::size_t got) {
                failure = e;
                n = got;
            });
        io.run_for(10ms);
        REQUIRE(send_text(a, "awaited", b.local_endpoint(), ec) == 1);
        REQUIRE(run_until(io, [&] { return n.has_value(); }));
        CHECK_FALSE(failure);
        CHECK(*n == 1);
        CHECK(as_text(rx.slots[0]) == "awaited");
        CHECK(rx.slots[0].from == a.local_endpoint());
    }

    SECTION("use_awaitable throws on close") {
        std::optional<std::size_t> n;
        std::exception_ptr failure;
        asio::co_spawn(
            io,
            [&]() -> asio::awaitable<std::size_t> {
                co_return co_await b.async_receive(rx.slots, asio::use_awaitable);
            },
            [&](std::exception_ptr e, std::size_t got) {
                failure = e;
                n = got;
            });
        io.run_for(10ms);
        b.close();
        REQUIRE(run_until(io, [&] { return n.has_value(); }));
        REQUIRE(failure);
        try {
            std::rethrow_exception(failure);
        } catch (const std::system_error& e) {
            CHECK(e.code() == asio::error::operation_aborted);
        }
    }

#else
    SECTION("use_awaitable") {
        WARN("Asio's coroutine support is off for this compiler (clang with libstdc++ and "
             "Asio 1.22 needs ASIO_HAS_CO_AWAIT and ASIO_HAS_STD_COROUTINE): skipped");
    }
#endif

    SECTION("use_future") {
        std::future<std::size_t> f = b.async_receive(rx.slots, asio::use_future);
        REQUIRE(send_text(a, "in the future", b.local_endpoint(), ec) == 1);
        REQUIRE(run_until(io, [&] { return f.wait_for(0s) == std::future_status::ready; }));
        CHECK(f.get() == 1);
        CHECK(as_text(rx.slots[0]) == "in the future");
    }

    SECTION("use_future with a datagram already queued completes on the io_context") {
        REQUIRE(send_text(a, "queued", b.local_endpoint(), ec) == 1);
        std::future<std::size_t> f = b.async_receive(rx.slots, asio::use_future);
        // Not on another thread (such as Asio's system executor) behind our back.
        std::this_thread::sleep_for(20ms);
        CHECK(f.wait_for(0s) == std::future_status::timeout);
        REQUIRE(run_until(io, [&] { return f.wait_for(0s) == std::future_status::ready; }));
        CHECK(f.get() == 1);
        CHECK(as_text(rx.slots[0]) == "queued");
    }
}
