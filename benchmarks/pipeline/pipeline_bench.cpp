// pipeline_bench: bulk transfer through the whole packet pipeline of peer_connection
// over a real UDP socket: KCP (kcp_turbo) + Reed-Solomon FEC 10:3 + the Noise /
// ChaCha20-Poly1305 cipher. run_pipeline.sh puts it beside kcp-go with FEC 10/3 and
// salsa20 (kcpgo_pipeline.go).
//
//   pipeline_bench --listen ADDR:PORT [settings]
//       accepts one peer, reads the stream to EOF, prints JSON
//   pipeline_bench --connect ADDR:PORT --bytes N [--peer ID] [settings]
//       connects, writes N bytes with asio::async_write, closes with async_close
//   settings: --wnd 256|4096 (default 256, kcp_turbo's; both sides equal; 4096 also
//             switches flush_on_ack on) --timeout S --no-fec --verbose
//
// The listener prints "pipeline_bench: listening on ADDR:PORT peer ID" on stderr once
// bound (port 0 picks a free one). With --peer ID (the listener's id) the handshake is
// Noise IK, without it Noise XX. KCP runs with kcp_turbo's settings: nodelay 1,
// interval 10 ms, fast resend 2, no congestion window, windows 256/256, flushes on the
// interval grid only (flush_on_ack off), message mode; with --wnd 4096, windows of 4096
// and flush_on_ack on (kcp_bench's and kcp_throughput.sh's settings). Its MTU follows from the
// 1400-byte datagrams (config::transport::max_datagram_size) minus the frame header. FEC is
// switched on by cfg.features.fec on both sides and agreed at connect (the default ratio, 10:3).
//
// The N bytes are a 1 MiB block of splitmix64 output seeded with 1, repeated (the
// same bytes as kcpgo_pipeline sends, so equal N gives equal digests). Each side
// prints one line of JSON:
//
//   {"role":"receiver","bytes":N,"seconds":S,"mbps":X,"sha256":"...","cpu":C,
//    "fec":"10:3","cipher":"noise-ik","fec_recovered":K}
//
// mbps is MB/s (10^6 bytes per second): the receiver's from the first payload byte to
// EOF, the sender's from the first write to the completion of async_close (every byte
// acknowledged). cpu is the process's user + system seconds so far. Exit: 0 success,
// 1 transfer failed, 2 bad usage.
#include <peerlink/peer_connection.hpp>

#include <peerlink/net/udp_transport.hpp>
#include <peerlink/policy/noise_chacha20poly1305.hpp>
#include <peerlink/policy/reed_solomon_fec.hpp>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/redirect_error.hpp>
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
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace {

// kcp_turbo as it is (windows 256/256, flushes on the 10 ms grid), and with windows of
// 4096 and flush_on_ack (--wnd 4096, as benchmarks/kcp_throughput.sh runs): at 256
// segments per 10 ms flush the window holds a transfer to about 256 * 1.3 KB / 10 ms
// = 33 MB/s (kcp-go too: it flushes when the window slides, but 256 segments stay 256).
constexpr peerlink::kcp_settings kcp_turbo_wide = [] {
    auto s = peerlink::kcp_turbo;
    s.snd_wnd = s.rcv_wnd = 4096;
    s.flush_on_ack = true;
    return s;
}();

template <peerlink::kcp_settings Settings>
using conn_for =
    peerlink::peer_connection<peerlink::udp_transport, peerlink::kcp<Settings>,
                              peerlink::noise_chacha20poly1305, peerlink::reed_solomon_fec<>>;
constexpr std::size_t block_size = 1 << 20;

[[noreturn]] void die(int code, const std::string& msg) {
    std::fprintf(stderr, "pipeline_bench: %s\n", msg.c_str());
    std::fflush(stdout);
    std::exit(code);
}

struct options {
    std::string listen, connect, peer;
    std::uint64_t bytes = 32u << 20;
    std::uint64_t wnd = peerlink::kcp_turbo.snd_wnd;
    double timeout_s = 120;
    bool fec = true;
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
        else if (a == "--wnd")
            o.wnd = number(a, value());
        else if (a == "--peer")
            o.peer = value();
        else if (a == "--timeout")
            o.timeout_s = static_cast<double>(number(a, value()));
        else if (a == "--no-fec")
            o.fec = false;
        else if (a == "--verbose")
            o.verbose = true;
        else if (a == "--help" || a == "-h") {
            std::puts(
                "pipeline_bench --listen ADDR:PORT | --connect ADDR:PORT --bytes N [--peer ID]\n"
                "  [--wnd 256|4096] [--timeout S] [--no-fec] [--verbose]");
            std::exit(0);
        } else
            die(2, "unknown argument '" + std::string(a) + "' (see --help)");
    }
    if (o.listen.empty() == o.connect.empty())
        die(2, "give exactly one of --listen ADDR:PORT or --connect ADDR:PORT");
    if (o.wnd != peerlink::kcp_turbo.snd_wnd && o.wnd != kcp_turbo_wide.snd_wnd)
        die(2, "--wnd: 256 (kcp_turbo's) or 4096");
    return o;
}

std::vector<std::byte> pattern(std::uint64_t seed) {
    std::vector<std::byte> b(block_size);
    std::uint64_t x = seed;
    for (std::size_t i = 0; i < block_size; i += 8) {
        x += 0x9e3779b97f4a7c15ull; // splitmix64, as the Go program
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
    std::string hex_final() {
        std::array<unsigned char, 32> d{};
        unsigned int len = 0;
        EVP_DigestFinal_ex(ctx_.get(), d.data(), &len);
        static const char* digits = "0123456789abcdef";
        std::string s;
        for (unsigned char c : d) {
            s += digits[c >> 4];
            s += digits[c & 15];
        }
        return s;
    }

private:
    struct deleter {
        void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
    };
    std::unique_ptr<EVP_MD_CTX, deleter> ctx_;
};

double cpu_seconds() {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    auto sec = [](const timeval& t) {
        return double(t.tv_sec) + double(t.tv_usec) / 1e6;
    };
    return sec(ru.ru_utime) + sec(ru.ru_stime);
}

void print_result(const char* role, std::uint64_t n, double seconds, const std::string& digest,
                  const peerlink::stats& st) {
    const double mbps = seconds > 0 ? static_cast<double>(n) / seconds / 1e6 : 0.0;
    std::printf("{\"role\":\"%s\",\"bytes\":%llu,\"seconds\":%.6f,\"mbps\":%.3f,"
                "\"sha256\":\"%s\",\"cpu\":%.3f,\"fec\":\"%s\",\"cipher\":\"%s\","
                "\"fec_recovered\":%llu}\n",
                role, static_cast<unsigned long long>(n), seconds, mbps, digest.c_str(),
                cpu_seconds(), st.fec.c_str(), st.cipher.c_str(),
                static_cast<unsigned long long>(st.fec_recovered));
    std::fflush(stdout);
}

void print_stats(const peerlink::stats& st) {
    std::fprintf(stderr,
                 "pipeline_bench: packets sent %llu, received %llu; dropped malformed %llu, "
                 "unauthenticated %llu, send errors %llu; would_block %llu; fec recovered "
                 "%llu; srtt %lld us; fec %s, cipher %s\n",
                 (unsigned long long)st.packets_sent, (unsigned long long)st.packets_received,
                 (unsigned long long)st.dropped_malformed,
                 (unsigned long long)st.dropped_unauthenticated,
                 (unsigned long long)st.dropped_send_errors,
                 (unsigned long long)st.send_would_block, (unsigned long long)st.fec_recovered,
                 (long long)st.srtt.count(), st.fec.c_str(), st.cipher.c_str());
}

void print_kcp_stats(const peerlink::kcp_stats& k) {
    std::fprintf(stderr,
                 "pipeline_bench: kcp segments sent %llu, retransmits %llu (fast %llu, lost "
                 "%llu), received %llu, duplicates %llu, acks %llu\n",
                 (unsigned long long)k.segments_sent, (unsigned long long)k.retransmits,
                 (unsigned long long)k.fast_retransmits, (unsigned long long)k.lost_segments,
                 (unsigned long long)k.segments_received, (unsigned long long)k.duplicate_segments,
                 (unsigned long long)k.acks_sent);
}

// The pipeline agreed at connect: FEC at 10:3 when asked for, the cipher on.
template <class Conn>
bool check_pipeline(Conn& c, const options& o) {
    const auto st = c.stats();
    const auto& f = c.features();
    std::fprintf(stderr,
                 "pipeline_bench: connected, fec %s (features: fec %d, ratio %u:%u), cipher %s\n",
                 st.fec.c_str(), f.fec ? 1 : 0, unsigned(f.ratio.data_shards),
                 unsigned(f.ratio.parity_shards), st.cipher.c_str());
    if (o.fec && (!f.fec || st.fec != "10:3")) {
        std::fprintf(stderr, "pipeline_bench: FEC 10:3 was not agreed\n");
        return false;
    }
    if (st.cipher != "noise-ik" && st.cipher != "noise-xx") {
        std::fprintf(stderr, "pipeline_bench: the cipher is not on\n");
        return false;
    }
    return true;
}

template <class Conn>
asio::awaitable<void> run_sender(Conn& c, const options& o, const peerlink::endpoint& remote,
                                 std::optional<peerlink::peer_id> expected, int& exit_code) {
    co_await c.async_connect(remote, expected, asio::use_awaitable);
    if (!check_pipeline(c, o)) {
        exit_code = 1;
        co_return;
    }
    const auto block = pattern(1);
    sha256 h;
    for (std::uint64_t left = o.bytes; left > 0;) {
        const std::size_t k = static_cast<std::size_t>(std::min<std::uint64_t>(block_size, left));
        h.update(block.data(), k);
        left -= k;
    }
    const auto digest = h.hex_final();

    const auto start = std::chrono::steady_clock::now();
    constexpr std::size_t chunk = 256 << 10;
    for (std::uint64_t sent = 0; sent < o.bytes;) {
        const std::size_t off = static_cast<std::size_t>(sent % block_size);
        std::size_t k = std::min(chunk, block_size - off);
        k = static_cast<std::size_t>(std::min<std::uint64_t>(k, o.bytes - sent));
        sent +=
            co_await asio::async_write(c, asio::buffer(block.data() + off, k), asio::use_awaitable);
    }
    co_await c.async_close(asio::use_awaitable);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    print_result("sender", o.bytes, seconds, digest, c.stats());
    exit_code = 0;
}

template <class Conn>
asio::awaitable<void> run_receiver(Conn& c, const options& o, int& exit_code) {
    co_await c.async_accept(std::nullopt, asio::use_awaitable);
    if (!check_pipeline(c, o)) {
        exit_code = 1;
        co_return;
    }
    std::vector<unsigned char> buf(256 << 10);
    sha256 h;
    std::uint64_t got = 0;
    std::chrono::steady_clock::time_point start{};
    for (;;) {
        std::error_code ec;
        const std::size_t k = co_await c.async_read_some(
            asio::buffer(buf), asio::redirect_error(asio::use_awaitable, ec));
        if (k > 0) {
            if (got == 0)
                start = std::chrono::steady_clock::now();
            h.update(buf.data(), k);
            got += k;
        }
        if (ec == asio::error::eof)
            break;
        if (ec)
            throw std::system_error(ec);
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    print_result("receiver", got, seconds, h.hex_final(), c.stats());
    c.close();
    exit_code = 0;
}

template <class Conn>
int run(const options& o) {
    asio::io_context io(1);
    const bool listening = !o.listen.empty();

    std::error_code ec;
    const auto where = peerlink::endpoint::parse(listening ? o.listen : o.connect, ec);
    if (!where)
        die(2,
            "'" + (listening ? o.listen : o.connect) + "' is not ADDR:PORT (" + ec.message() + ")");
    std::optional<peerlink::peer_id> expected;
    if (!o.peer.empty()) {
        expected = peerlink::peer_id::parse(o.peer, ec);
        if (!expected)
            die(2, "--peer: not a peer id (" + ec.message() + ")");
    }

    peerlink::config cfg;
    cfg.features.fec = o.fec;          // agreed at connect; the default ratio is 10:3
    cfg.features.fec_adaptive = false; // stays at 10:3 (adaptive: 10:1 on a clean path)
    cfg.features.cipher = true;
    cfg.transport.ipv6 = where->address.is_v6();
    if (listening) {
        cfg.transport.bind_address = where->address.to_string();
        cfg.transport.port_min = cfg.transport.port_max = where->port;
    } else {
        cfg.transport.bind_address = where->address.is_v6() ? "::1" : "127.0.0.1";
        if (!where->address.is_loopback())
            cfg.transport.bind_address = where->address.is_v6() ? "::" : "0.0.0.0";
    }
    const auto me = peerlink::identity::generate();
    std::optional<Conn> conn;
    try {
        conn.emplace(io.get_executor(), me, cfg);
    } catch (const std::system_error& e) {
        die(2, e.what());
    }
    if (listening) {
        std::fprintf(stderr, "pipeline_bench: listening on %s peer %s\n",
                     conn->local_endpoint().to_string().c_str(), me.id().to_string().c_str());
        std::fflush(stderr);
    }

    int exit_code = -1;
    auto body = [&]() -> asio::awaitable<void> {
        try {
            if (listening)
                co_await run_receiver(*conn, o, exit_code);
            else
                co_await run_sender(*conn, o, *where, expected, exit_code);
        } catch (const std::system_error& e) {
            std::fprintf(stderr, "pipeline_bench: %s\n", e.code().message().c_str());
            exit_code = 1;
        }
        io.stop();
    };
    asio::co_spawn(io, body(), asio::detached);

    asio::steady_timer timeout(io);
    timeout.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        std::chrono::duration<double>(o.timeout_s)));
    timeout.async_wait([&](std::error_code e) {
        if (e)
            return;
        std::fprintf(stderr, "pipeline_bench: timeout after %.0f s\n", o.timeout_s);
        exit_code = 1;
        io.stop();
    });
    io.run();
    if (o.verbose) {
        print_stats(conn->stats());
        print_kcp_stats(conn->core().reliable_stats());
    }
    return exit_code < 0 ? 1 : exit_code;
}

} // namespace

int main(int argc, char** argv) {
    const options o = parse(argc, argv);
    if (o.wnd == kcp_turbo_wide.snd_wnd)
        return run<conn_for<kcp_turbo_wide>>(o);
    return run<conn_for<peerlink::kcp_turbo>>(o);
}
