// kcp_bench: bulk transfer over KCP on a real UDP socket, peerlink's kcp_session on
// one side, any KCP peer that follows the same small protocol on the other (another
// kcp_bench, or tests/interop/kcpgo, a kcp-go program).
//
//   kcp_bench --listen ADDR:PORT  [settings]              receives, prints JSON
//   kcp_bench --connect ADDR:PORT --bytes N [settings]    sends N bytes
//
//   settings: --mode normal|fast|turbo (peerlink's kcp_normal/kcp_fast/kcp_turbo)
//             --wnd W (send and receive window) --mtu M --interval MS --conv C
//             --no-cwnd --stream --ack-nodelay --grid-flush --timeout SECONDS --verbose
//
// The core runs with `flush_on_ack` on, as kcp-go's does (it always flushes when an
// ACK slides the window); --grid-flush switches it off (ikcp.c's behaviour: flushes
// only on the interval grid). A listener prints "kcp_bench: listening on ADDR:PORT"
// on stderr once its socket is bound (port 0 picks a free one).
//
// On the wire: raw KCP segments (kcp-go without FEC and without encryption). The
// protocol on top of KCP: the sender writes N as a u64 little-endian, then N bytes
// (a 1 MiB block of splitmix64 output seeded with the conv, repeated); the receiver
// answers with the 32-byte SHA-256 of what it received; the sender ends with one
// byte 'B'. The receiver prints one line of JSON:
//
//   {"role":"receiver","bytes":N,"seconds":S,"mbps":X,"sha256":"..."}
//
// with mbps in MB/s (10^6 bytes per second) from the first payload byte to the last.
// The sender prints the same keys, its time running from the first write to the
// digest's arrival, and "verified". Both add "cpu": the process's CPU time so far
// (user + system seconds), a figure that depends less on the machine's load. Exit: 0 success, 1
// transfer failed, 2 bad usage.
#include <peerlink/net/kcp_session.hpp>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/read.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <openssl/evp.h>
#include <sys/resource.h>

#include <array>
#include <charconv>
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

using session_type = peerlink::kcp_session<peerlink::udp_transport>;
using namespace std::chrono_literals;
constexpr std::size_t block_size = 1 << 20;

[[noreturn]] void die(int code, const std::string& msg) {
    std::fprintf(stderr, "kcp_bench: %s\n", msg.c_str());
    std::fflush(stdout);
    std::exit(code);
}

struct options {
    std::string listen, connect;
    std::uint64_t bytes = 32u << 20;
    peerlink::kcp_settings kcp = peerlink::kcp_fast;
    double timeout_s = 60;
    bool verbose = false;
};

std::uint64_t number(std::string_view flag, std::string_view text) {
    std::uint64_t v = 0;
    auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc{} || p != text.data() + text.size())
        die(2, std::string(flag) + ": not a number: '" + std::string(text) + "'");
    return v;
}

options parse(int argc, char** argv) {
    options o;
    std::string mode = "fast";
    std::optional<std::uint64_t> wnd, mtu, interval, conv;
    bool no_cwnd = false, stream = false, ack_nodelay = false, grid_flush = false;
    for (int i = 1; i < argc; ++i) {
        std::string_view a = argv[i];
        auto value = [&]() -> std::string_view {
            if (i + 1 >= argc)
                die(2, std::string(a) + " needs a value");
            return argv[++i];
        };
        if (a == "--listen")
            o.listen = value();
        else if (a == "--connect")
            o.connect = value();
        else if (a == "--bytes")
            o.bytes = number(a, value());
        else if (a == "--mode")
            mode = value();
        else if (a == "--wnd")
            wnd = number(a, value());
        else if (a == "--mtu")
            mtu = number(a, value());
        else if (a == "--interval")
            interval = number(a, value());
        else if (a == "--conv")
            conv = number(a, value());
        else if (a == "--timeout")
            o.timeout_s = static_cast<double>(number(a, value()));
        else if (a == "--no-cwnd")
            no_cwnd = true;
        else if (a == "--stream")
            stream = true;
        else if (a == "--ack-nodelay")
            ack_nodelay = true;
        else if (a == "--grid-flush")
            grid_flush = true;
        else if (a == "--verbose")
            o.verbose = true;
        else if (a == "--help" || a == "-h") {
            std::puts("kcp_bench --listen ADDR:PORT | --connect ADDR:PORT --bytes N\n"
                      "  [--mode normal|fast|turbo] [--wnd W] [--mtu M] [--interval MS]\n"
                      "  [--conv C] [--no-cwnd] [--stream] [--ack-nodelay] [--grid-flush]\n"
                      "  [--timeout S] [--verbose]");
            std::exit(0);
        } else
            die(2, "unknown argument '" + std::string(a) + "' (see --help)");
    }
    if (o.listen.empty() == o.connect.empty())
        die(2, "give exactly one of --listen ADDR:PORT or --connect ADDR:PORT");
    if (mode == "normal")
        o.kcp = peerlink::kcp_normal;
    else if (mode == "fast")
        o.kcp = peerlink::kcp_fast;
    else if (mode == "turbo")
        o.kcp = peerlink::kcp_turbo;
    else
        die(2, "unknown --mode '" + mode + "' (normal, fast or turbo)");
    if (wnd)
        o.kcp.snd_wnd = o.kcp.rcv_wnd = static_cast<std::uint32_t>(*wnd);
    if (mtu)
        o.kcp.mtu = static_cast<std::uint32_t>(*mtu);
    if (interval)
        o.kcp.interval_ms = static_cast<std::uint32_t>(*interval);
    if (conv) {
        if (*conv > 0xffffffffu)
            die(2, "--conv must fit in 32 bits");
        o.kcp.conv = static_cast<std::uint32_t>(*conv);
    } else {
        o.kcp.conv = 1;
    }
    o.kcp.no_cwnd = o.kcp.no_cwnd || no_cwnd;
    o.kcp.stream = stream;
    o.kcp.ack_nodelay = ack_nodelay;
    o.kcp.flush_on_ack = !grid_flush;
    if (peerlink::kcp_validate(o.kcp))
        die(2, "a KCP setting is out of range (wnd 1..65535, mtu 50..65535, interval 1..5000)");
    return o;
}

// "ADDR:PORT" or "[V6]:PORT" -> the address text and the port.
std::pair<std::string, std::uint16_t> split_host_port(const std::string& text) {
    const auto colon = text.rfind(':');
    if (colon == std::string::npos)
        die(2, "'" + text + "' is not ADDR:PORT");
    std::string host = text.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
        host = host.substr(1, host.size() - 2);
    const auto port = number("port", std::string_view(text).substr(colon + 1));
    if (port > 65535)
        die(2, "port out of range in '" + text + "'");
    return {host, static_cast<std::uint16_t>(port)};
}

std::vector<std::byte> pattern(std::uint32_t conv) {
    std::vector<std::byte> b(block_size);
    std::uint64_t x = conv;
    for (std::size_t i = 0; i < block_size; i += 8) {
        x += 0x9e3779b97f4a7c15ull; // splitmix64, as the Go peer
        std::uint64_t z = x;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        z ^= z >> 31;
        for (int k = 0; k < 8; ++k)
            b[i + static_cast<std::size_t>(k)] = static_cast<std::byte>(z >> (8 * k));
    }
    return b;
}

class sha256 {
public:
    sha256() : ctx_(EVP_MD_CTX_new()) {
        if (!ctx_ || EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr) != 1)
            die(1, "OpenSSL: cannot start SHA-256");
    }
    void update(const void* p, std::size_t n) { EVP_DigestUpdate(ctx_.get(), p, n); }
    std::array<unsigned char, 32> final() {
        std::array<unsigned char, 32> d{};
        unsigned int len = 0;
        EVP_DigestFinal_ex(ctx_.get(), d.data(), &len);
        return d;
    }

private:
    struct deleter {
        void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
    };
    std::unique_ptr<EVP_MD_CTX, deleter> ctx_;
};

std::string hex(const std::array<unsigned char, 32>& d) {
    static const char* digits = "0123456789abcdef";
    std::string s;
    for (unsigned char c : d) {
        s += digits[c >> 4];
        s += digits[c & 15];
    }
    return s;
}

// CPU time of the whole process so far, user + system, in seconds.
double cpu_seconds() {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    auto sec = [](const timeval& t) {
        return double(t.tv_sec) + double(t.tv_usec) / 1e6;
    };
    return sec(ru.ru_utime) + sec(ru.ru_stime);
}

void print_result(const char* role, std::uint64_t n, double seconds,
                  const std::array<unsigned char, 32>& digest, const char* extra = "") {
    const double mbps = seconds > 0 ? static_cast<double>(n) / seconds / 1e6 : 0.0;
    std::printf("{\"role\":\"%s\",\"bytes\":%llu,\"seconds\":%.6f,\"mbps\":%.3f,"
                "\"sha256\":\"%s\",\"cpu\":%.3f%s}\n",
                role, static_cast<unsigned long long>(n), seconds, mbps, hex(digest).c_str(),
                cpu_seconds(), extra);
    std::fflush(stdout);
}

void print_stats(const session_type& s) {
    const auto st = s.stats();
    std::fprintf(
        stderr,
        "kcp_bench: segments sent %llu, retransmits %llu (fast %llu, lost %llu), "
        "received %llu, duplicates %llu, acks %llu; datagrams sent %llu in %llu "
        "batches, received %llu in %llu batches, dropped tx %llu, would_block %llu; "
        "srtt %u ms, rto %u ms, cwnd %u\n",
        (unsigned long long)st.kcp.segments_sent, (unsigned long long)st.kcp.retransmits,
        (unsigned long long)st.kcp.fast_retransmits, (unsigned long long)st.kcp.lost_segments,
        (unsigned long long)st.kcp.segments_received, (unsigned long long)st.kcp.duplicate_segments,
        (unsigned long long)st.kcp.acks_sent, (unsigned long long)st.datagrams_sent,
        (unsigned long long)st.send_batches, (unsigned long long)st.datagrams_received,
        (unsigned long long)st.receive_batches, (unsigned long long)st.kcp.datagrams_dropped,
        (unsigned long long)st.send_would_block, st.kcp.srtt_ms, st.kcp.rto_ms, st.kcp.cwnd);
}

// Waits until every segment written was acknowledged, at most `limit`.
asio::awaitable<void> drain(session_type& s, std::chrono::milliseconds limit) {
    asio::steady_timer t(s.get_executor());
    const auto end = std::chrono::steady_clock::now() + limit;
    while (s.core().waiting_segments() > 0 && !s.core().is_dead() &&
           std::chrono::steady_clock::now() < end) {
        t.expires_after(1ms);
        co_await t.async_wait(asio::use_awaitable);
    }
}

asio::awaitable<void> run_sender(session_type& s, const options& o, int& exit_code) {
    const auto block = pattern(s.core().conv());
    sha256 h;
    for (std::uint64_t left = o.bytes; left > 0;) {
        const std::size_t k = static_cast<std::size_t>(std::min<std::uint64_t>(block_size, left));
        h.update(block.data(), k);
        left -= k;
    }
    const auto want = h.final();

    const auto start = std::chrono::steady_clock::now();
    std::array<std::byte, 8> header{};
    for (int k = 0; k < 8; ++k)
        header[static_cast<std::size_t>(k)] = static_cast<std::byte>(o.bytes >> (8 * k));
    co_await asio::async_write(s, asio::buffer(header), asio::use_awaitable);
    constexpr std::size_t chunk = 256 << 10;
    for (std::uint64_t sent = 0; sent < o.bytes;) {
        const std::size_t off = static_cast<std::size_t>(sent % block_size);
        std::size_t k = std::min(chunk, block_size - off);
        k = static_cast<std::size_t>(std::min<std::uint64_t>(k, o.bytes - sent));
        sent +=
            co_await asio::async_write(s, asio::buffer(block.data() + off, k), asio::use_awaitable);
    }
    std::array<unsigned char, 32> got{};
    co_await asio::async_read(s, asio::buffer(got), asio::use_awaitable);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const bool verified = got == want;
    print_result("sender", o.bytes, seconds, want,
                 verified ? ",\"verified\":true" : ",\"verified\":false");
    const char bye = 'B';
    co_await asio::async_write(s, asio::buffer(&bye, 1), asio::use_awaitable);
    co_await drain(s, 1000ms);
    if (!verified) {
        std::fprintf(stderr, "kcp_bench: the receiver's SHA-256 differs from the data sent\n");
        exit_code = 1;
    } else {
        exit_code = 0;
    }
}

asio::awaitable<void> run_receiver(session_type& s, int& exit_code) {
    std::array<unsigned char, 8> header{};
    co_await asio::async_read(s, asio::buffer(header), asio::use_awaitable);
    std::uint64_t n = 0;
    for (int k = 7; k >= 0; --k)
        n = (n << 8) | header[static_cast<std::size_t>(k)];
    std::vector<unsigned char> buf(256 << 10);
    sha256 h;
    std::uint64_t got = 0;
    std::chrono::steady_clock::time_point start{};
    while (got < n) {
        const std::size_t want =
            static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), n - got));
        const std::size_t k =
            co_await s.async_read_some(asio::buffer(buf.data(), want), asio::use_awaitable);
        if (got == 0)
            start = std::chrono::steady_clock::now();
        h.update(buf.data(), k);
        got += k;
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const auto digest = h.final();
    print_result("receiver", got, seconds, digest);
    co_await asio::async_write(s, asio::buffer(digest), asio::use_awaitable);
    // The bye says the digest arrived; without it, give up after 5 s (the result
    // stands either way).
    asio::steady_timer limit(s.get_executor());
    limit.expires_after(5s);
    limit.async_wait([&s](std::error_code ec) {
        if (!ec)
            s.cancel();
    });
    unsigned char bye = 0;
    try {
        co_await asio::async_read(s, asio::buffer(&bye, 1), asio::use_awaitable);
    } catch (const std::system_error&) {
    }
    limit.cancel();
    co_await drain(s, 500ms);
    exit_code = 0; // closing the session sends the bye's ACK
}

} // namespace

int main(int argc, char** argv) {
    const options o = parse(argc, argv);
    asio::io_context io(1);
    const bool listening = !o.listen.empty();
    const auto [host, port] = split_host_port(listening ? o.listen : o.connect);

    peerlink::udp_transport::options t;
    std::optional<peerlink::endpoint> remote;
    if (listening) {
        t.bind_address = host;
        t.port_min = port;
    } else {
        std::error_code ec;
        remote = peerlink::endpoint::parse(o.connect, ec);
        if (!remote)
            die(2, "--connect: '" + o.connect + "' is not ADDR:PORT (" + ec.message() + ")");
        t.bind_address = remote->address.is_v6() ? "::" : "0.0.0.0";
    }
    std::optional<session_type> session;
    try {
        session.emplace(o.kcp, remote, io.get_executor(), t);
    } catch (const std::system_error& e) {
        die(2, e.what());
    }

    if (listening) {
        std::fprintf(stderr, "kcp_bench: listening on %s\n",
                     session->local_endpoint().to_string().c_str());
        std::fflush(stderr);
    }
    int exit_code = -1;
    auto body = [&]() -> asio::awaitable<void> {
        try {
            if (listening)
                co_await run_receiver(*session, exit_code);
            else
                co_await run_sender(*session, o, exit_code);
        } catch (const std::system_error& e) {
            std::fprintf(stderr, "kcp_bench: %s\n", e.code().message().c_str());
            exit_code = 1;
        }
        io.stop();
    };
    asio::co_spawn(io, body(), asio::detached);

    asio::steady_timer timeout(io);
    timeout.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        std::chrono::duration<double>(o.timeout_s)));
    timeout.async_wait([&](std::error_code ec) {
        if (ec)
            return;
        std::fprintf(stderr, "kcp_bench: timeout after %.0f s\n", o.timeout_s);
        exit_code = 1;
        io.stop();
    });
    io.run();
    if (o.verbose)
        print_stats(*session);
    return exit_code < 0 ? 1 : exit_code;
}
