// Memory and idle CPU per peerlink KCP session.
//
// Builds N connected pairs of peer_connection<kcp<...>> on loopback UDP in one
// io_context (one thread), then measures, per session (one peer_connection; a pair
// is two), the resident set (/proc/self/statm) and the heap in use (every operator
// new of the process, counted with malloc_usable_size):
//   - what one session allocates at construction, block by block, each named by
//     the formula that gives its size and marked [socket] (the driver's receive
//     batch: one per UDP socket, however many sessions a socket would serve) or
//     [session]; and the kernel's objects behind one socket (/proc/slabinfo, root),
//   - memory just connected, and again after `--idle-seconds` of idleness (a
//     connection that trims its buffers when quiet shows it there),
//   - idle CPU: process CPU time (CLOCK_PROCESS_CPUTIME_ID) over the idle period,
//     in one-second slices, while every session sits connected and keeps its path
//     alive; from it, how many idle sessions one io_context thread holds at 1% of a
//     core,
//   - memory while every pair moves `--bytes` through its reliable channel (the
//     peak, without the benchmark's own buffers) and after.
//
// Output ends in `RESULT key=value ...` lines that run_sessions.sh compares with
// the kcp-go yardstick (kcpgo_sessions.go).
//
//   kcp_sessions [--pairs N] [--idle-seconds S] [--bytes B] [--mode fast|turbo|normal]
//                [--keepalive-ms MS]
#include <peerlink/peer_connection.hpp>

#include <asio/io_context.hpp>
#include <asio/read.hpp>
#include <asio/steady_timer.hpp>
#include <asio/write.hpp>

#include <malloc.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <new>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

// ---- heap accounting: every operator new/delete of the process ---------------------

namespace {

struct heap_counter {
    std::size_t live_bytes = 0; // malloc_usable_size of the blocks alive
    std::size_t live_blocks = 0;
    bool tracing = false;
    std::array<std::size_t, 256> traced{}; // requested sizes while tracing
    std::size_t traced_count = 0;
};
heap_counter heap;

void* counted_alloc(std::size_t n, std::size_t align) {
    void* p =
        align > alignof(std::max_align_t)
            ? std::aligned_alloc(align, (std::max<std::size_t>(n, 1) + align - 1) / align * align)
            : std::malloc(std::max<std::size_t>(n, 1));
    if (!p)
        throw std::bad_alloc();
    heap.live_bytes += malloc_usable_size(p);
    ++heap.live_blocks;
    if (heap.tracing && heap.traced_count < heap.traced.size())
        heap.traced[heap.traced_count++] = n;
    return p;
}

void counted_free(void* p) noexcept {
    if (!p)
        return;
    heap.live_bytes -= malloc_usable_size(p);
    --heap.live_blocks;
    std::free(p);
}

} // namespace

void* operator new(std::size_t n) {
    return counted_alloc(n, 0);
}
void* operator new[](std::size_t n) {
    return counted_alloc(n, 0);
}
void* operator new(std::size_t n, std::align_val_t a) {
    return counted_alloc(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a) {
    return counted_alloc(n, static_cast<std::size_t>(a));
}
void operator delete(void* p) noexcept {
    counted_free(p);
}
void operator delete[](void* p) noexcept {
    counted_free(p);
}
void operator delete(void* p, std::size_t) noexcept {
    counted_free(p);
}
void operator delete[](void* p, std::size_t) noexcept {
    counted_free(p);
}
void operator delete(void* p, std::align_val_t) noexcept {
    counted_free(p);
}
void operator delete[](void* p, std::align_val_t) noexcept {
    counted_free(p);
}
void operator delete(void* p, std::size_t, std::align_val_t) noexcept {
    counted_free(p);
}
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept {
    counted_free(p);
}

namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

std::size_t rss_bytes() {
    std::ifstream f("/proc/self/statm");
    std::size_t size = 0, resident = 0;
    f >> size >> resident;
    return resident * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
}

// Kernel memory of all UDP sockets (pages), from /proc/net/sockstat: "UDP: inuse N mem M".
std::size_t udp_kernel_bytes() {
    std::ifstream f("/proc/net/sockstat");
    std::string word;
    while (f >> word)
        if (word == "UDP:") {
            std::string k;
            std::size_t inuse = 0, mem = 0;
            f >> k >> inuse >> k >> mem;
            return mem * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
        }
    return 0;
}

// Process CPU time from the scheduler's exact run time. getrusage's user/system times
// are sampled at the tick on many kernels (this one included): a process that wakes
// briefly on a timer is charged whole ticks, which inflates idle figures tenfold.
double cpu_seconds() {
    timespec t{};
    ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) / 1e9;
}

struct options {
    std::size_t pairs = 100;
    double idle_seconds = 20;
    std::size_t bytes = 256 * 1024;
    std::string mode = "fast";
    long keepalive_ms = 0; // 0: the config's default
};

options parse(int argc, char** argv) {
    options o;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto next = [&]() -> const char* {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "%s needs a value\n", a.c_str());
                std::exit(2);
            }
            return argv[++i];
        };
        if (a == "--pairs")
            o.pairs = std::strtoull(next(), nullptr, 10);
        else if (a == "--idle-seconds")
            o.idle_seconds = std::strtod(next(), nullptr);
        else if (a == "--bytes")
            o.bytes = std::strtoull(next(), nullptr, 10);
        else if (a == "--mode")
            o.mode = next();
        else if (a == "--keepalive-ms")
            o.keepalive_ms = std::strtol(next(), nullptr, 10);
        else {
            std::fprintf(stderr,
                         "usage: %s [--pairs N] [--idle-seconds S] [--bytes B] "
                         "[--mode fast|turbo|normal] [--keepalive-ms MS]\n",
                         argv[0]);
            std::exit(2);
        }
    }
    if (o.pairs == 0 || o.pairs > 20000 || o.idle_seconds < 0 || o.idle_seconds > 3600) {
        std::fprintf(stderr, "out of range: 1 <= pairs <= 20000, 0 <= idle-seconds <= 3600\n");
        std::exit(2);
    }
    return o;
}

double kib(double bytes) {
    return bytes / 1024.0;
}

// Names an allocation of one session by the formula that gives its size, and says
// whether it is the socket's (the driver's receive batch: one per socket, however many
// sessions a socket would serve) or the session's.
struct block_name {
    std::string what = "?";
    bool per_socket = false;
};

template <class Conn>
block_name name_block(std::size_t n, const peerlink::config& cfg) {
    const std::size_t mds = cfg.transport.max_datagram_size;
    const std::size_t overhead = Conn::core_type::pipeline_overhead;
    const std::size_t payload = mds - overhead;
    const std::size_t mss = payload - peerlink::frame::header_size - peerlink::kcp_header_size;
    const std::size_t frags =
        std::clamp<std::size_t>(Conn::reliability_type::settings.rcv_wnd - 1, 1, 255);
    const peerlink::connection_settings defaults;
    struct slot_like { // connection_core's transmit slot: offset, size, endpoint
        std::size_t offset, size;
        peerlink::endpoint to;
    };
    struct candidate {
        std::size_t size;
        std::string what;
        bool per_socket;
    };
    const candidate table[] = {
        {defaults.transmit_slots * (mds + 2 * overhead),
         "connection_core tx ring: transmit_slots(" + std::to_string(defaults.transmit_slots) +
             ") x (max_datagram_size + 2*overhead), zero-filled",
         false},
        {defaults.receive_slots * payload,
         "connection_core rx ring: receive_slots(" + std::to_string(defaults.receive_slots) +
             ") x max payload, zero-filled",
         false},
        {frags * mss,
         "connection_core staging_: one max message (" + std::to_string(frags) + " x mss " +
             std::to_string(mss) + "), zero-filled",
         false},
        {defaults.transmit_slots * sizeof(slot_like),
         "connection_core tx slot headers: transmit_slots x " + std::to_string(sizeof(slot_like)),
         false},
        {defaults.receive_slots * sizeof(std::size_t), "connection_core rx sizes", false},
        {32 * (mds + 1), "driver receive batch: 32 x (max_datagram_size + 1), zero-filled", true},
    };
    for (const auto& c : table)
        if (c.size == n)
            return {c.what, c.per_socket};
    constexpr std::size_t core_size = sizeof(typename Conn::core_type);
    if (n >= core_size + sizeof(typename Conn::transport_type) && n < core_size + 16384)
        return {"peer_connection::impl (make_shared): udp_transport, connection_core (" +
                    std::to_string(core_size) +
                    " B, kcp_core inside: " + std::to_string(sizeof(peerlink::kcp_core)) +
                    " B), timer, 32 rx_slot + 64 tx_datagram descriptors, operations",
                false};
    return {};
}

// The kernel's objects behind one UDP socket (slab object sizes, /proc/slabinfo; root
// only): the socket, its inode, the file, the dentry and the epoll item. Queued
// datagrams come on top (sockstat's "mem").
std::size_t kernel_socket_bytes() {
    std::ifstream f("/proc/slabinfo");
    std::string line;
    std::size_t total = 0;
    int found = 0;
    while (std::getline(f, line)) {
        std::istringstream in(line);
        std::string name;
        std::size_t active = 0, count = 0, objsize = 0;
        in >> name >> active >> count >> objsize;
        if (name == "UDP" || name == "sock_inode_cache" || name == "filp" || name == "dentry" ||
            name == "eventpoll_epi") {
            total += objsize;
            ++found;
        }
    }
    return found == 5 ? total : 0;
}

template <class Reliability>
int run(const options& o, const char* mode_name) {
    using conn = peerlink::peer_connection<Reliability>;
    asio::io_context io;
    peerlink::config cfg;
    cfg.transport.bind_address = "127.0.0.1";
    if (o.keepalive_ms > 0)
        cfg.timers.keepalive_interval = std::chrono::milliseconds(o.keepalive_ms);
    const std::size_t sessions = 2 * o.pairs;

    // Two sockets per pair, plus slack.
    rlimit nofile{};
    ::getrlimit(RLIMIT_NOFILE, &nofile);
    if (nofile.rlim_cur < sessions + 64) {
        nofile.rlim_cur = std::min<rlim_t>(nofile.rlim_max, sessions + 256);
        ::setrlimit(RLIMIT_NOFILE, &nofile);
        if (nofile.rlim_cur < sessions + 64) {
            std::fprintf(stderr, "need %zu file descriptors, have %llu\n", sessions + 64,
                         static_cast<unsigned long long>(nofile.rlim_cur));
            return 1;
        }
    }

    auto me = peerlink::identity::generate();
    std::vector<std::unique_ptr<conn>> a, b;
    a.reserve(o.pairs);
    b.reserve(o.pairs);

    // One session built alone, with every allocation recorded.
    ::malloc_trim(0);
    std::size_t heap_before_one = heap.live_bytes;
    std::size_t rss_before_one = rss_bytes();
    heap.tracing = true;
    heap.traced_count = 0;
    a.push_back(std::make_unique<conn>(io.get_executor(), me, cfg));
    heap.tracing = false;
    std::size_t heap_one = heap.live_bytes - heap_before_one;
    std::size_t rss_one = rss_bytes() - rss_before_one;
    std::printf("peerlink peer_connection<kcp<kcp_%s>>, udp_transport on 127.0.0.1, "
                "max_datagram_size %zu\n",
                mode_name, cfg.transport.max_datagram_size);
    std::printf("one session at construction: %.1f KiB heap, %.1f KiB resident; blocks >= 1 "
                "KiB:\n",
                kib(double(heap_one)), kib(double(rss_one)));
    std::vector<std::size_t> blocks(heap.traced.begin(), heap.traced.begin() + heap.traced_count);
    std::sort(blocks.rbegin(), blocks.rend());
    std::size_t small = 0, small_count = 0, per_socket = 0;
    for (auto n : blocks) {
        if (n >= 1024) {
            const auto name = name_block<conn>(n, cfg);
            std::printf("  %9zu B  %-9s %s\n", n, name.per_socket ? "[socket]" : "[session]",
                        name.what.c_str());
            per_socket += name.per_socket ? n : 0;
        } else {
            small += n;
            ++small_count;
        }
    }
    std::printf("  %9zu B  %-9s in %zu blocks under 1 KiB (Asio's socket and timer state, ...)\n",
                small, "[both]", small_count);
    const std::size_t kernel_socket = kernel_socket_bytes();
    if (kernel_socket)
        std::printf("  kernel objects of the socket: %zu B (slab sizes of UDP, sock_inode_cache, "
                    "filp, dentry, eventpoll_epi), plus queued datagrams\n",
                    kernel_socket);
    std::printf("  [socket]: one per UDP socket; today each peer_connection has its own socket, so "
                "they count per session here\n");

    // The rest of the sessions; the baseline is the process before the first one.
    b.push_back(std::make_unique<conn>(io.get_executor(), me, cfg));
    const std::size_t rss0 = rss_before_one;
    const std::size_t heap0 = heap_before_one;
    const std::size_t kernel0 = udp_kernel_bytes();
    for (std::size_t i = 1; i < o.pairs; ++i) {
        a.push_back(std::make_unique<conn>(io.get_executor(), me, cfg));
        b.push_back(std::make_unique<conn>(io.get_executor(), me, cfg));
    }
    std::size_t connected = 0;
    for (std::size_t i = 0; i < o.pairs; ++i) {
        b[i]->async_accept(std::nullopt, [&](std::error_code ec) { connected += !ec; });
        a[i]->async_connect(b[i]->local_endpoint(), std::nullopt,
                            [&](std::error_code ec) { connected += !ec; });
    }
    auto deadline = steady::now() + 60s;
    while (connected < sessions && steady::now() < deadline)
        io.run_for(10ms);
    if (connected < sessions) {
        std::fprintf(stderr, "only %zu of %zu sessions connected\n", connected, sessions);
        return 1;
    }
    io.run_for(200ms);
    ::malloc_trim(0);
    // Memory per session now (just connected) and again after the idle period.
    auto memory = [&](const char* when) {
        ::malloc_trim(0);
        const std::size_t rss = rss_bytes(), live = heap.live_bytes;
        const std::size_t kernel = udp_kernel_bytes();
        const double rss_per = double(rss - rss0) / double(sessions);
        const double heap_per = double(live - heap0) / double(sessions);
        std::printf("\n%zu sessions (%zu pairs) %s:\n", sessions, o.pairs, when);
        std::printf("  resident  %10.1f KiB per session (%.1f MiB in all)\n", kib(rss_per),
                    double(rss - rss0) / 1048576.0);
        std::printf("  heap      %10.1f KiB per session\n", kib(heap_per));
        std::printf("  kernel    %10.1f KiB per session in UDP socket buffers "
                    "(/proc/net/sockstat)\n",
                    kib(double(kernel > kernel0 ? kernel - kernel0 : 0) / double(sessions)));
        return std::pair{rss_per, heap_per};
    };
    const auto [connected_rss_per, connected_heap_per] = memory("just connected");

    // Idle CPU: every session connected, nothing to send but keepalives. Measured in
    // one-second slices, so a transient (the tail of the handshakes, a burst of
    // keepalives that all fall due together) shows as what it is.
    //
    // On some virtual machines (this one) a sleeping process is charged CPU in
    // proportion to its resident memory (about 15 ms per second per GiB here, with
    // nothing to do): the median second, quiet before the first keepalive falls due,
    // shows that charge. run_sessions.sh separates the keepalives' own cost with a
    // second run at a short keepalive interval.
    double cpu_fraction = 0, sessions_at_1pct = 0, quiet_fraction = 0;
    if (o.idle_seconds > 0) {
        auto wall0 = steady::now();
        double cpu0 = cpu_seconds();
        std::vector<double> slice_ms;
        std::string slices;
        for (double left = o.idle_seconds; left > 0; left -= 1) {
            double c = cpu_seconds();
            io.run_for(std::chrono::duration_cast<steady::duration>(
                std::chrono::duration<double>(std::min(left, 1.0))));
            slice_ms.push_back((cpu_seconds() - c) * 1000);
            char b[32];
            std::snprintf(b, sizeof b, " %.1f", slice_ms.back());
            slices += b;
        }
        double wall = std::chrono::duration<double>(steady::now() - wall0).count();
        double cpu = cpu_seconds() - cpu0;
        cpu_fraction = cpu / wall;
        sessions_at_1pct = cpu_fraction > 0 ? 0.01 * double(sessions) / cpu_fraction : 0;
        auto sorted = slice_ms;
        std::sort(sorted.begin(), sorted.end());
        quiet_fraction = sorted[sorted.size() / 2] / 1000;
        std::printf("\nidle for %.1f s (keepalive every %lld ms): %.3f s CPU = %.4f%% of one core "
                    "for %zu sessions\n  CPU ms per second:%s\n",
                    wall, static_cast<long long>(cfg.timers.keepalive_interval.count()), cpu,
                    100 * cpu_fraction, sessions, slices.c_str());
        std::printf("  -> as measured: one io_context thread holds ~%.0f idle sessions at 1%% CPU "
                    "(extrapolated linearly)\n",
                    sessions_at_1pct);
        std::printf("  median second: %.1f ms (before the first keepalive: what this platform "
                    "charges a sleeping process of this size)\n",
                    quiet_fraction * 1000);
    }
    const auto [idle_rss_per, idle_heap_per] =
        o.idle_seconds > 0 ? memory("after the idle period")
                           : std::pair{connected_rss_per, connected_heap_per};
    std::printf("  of the heap, per socket: %.1f KiB (driver receive batch at construction); the "
                "rest, %.1f KiB, per session\n",
                kib(double(per_socket)), kib(idle_heap_per - double(per_socket)));

    // Under load: every pair moves o.bytes from a to b through the reliable channel.
    std::vector<std::byte> out(o.bytes, std::byte{0x5a});
    std::vector<std::vector<std::byte>> in(o.pairs);
    std::size_t done = 0, failed = 0;
    for (std::size_t i = 0; i < o.pairs; ++i) {
        in[i].resize(o.bytes);
        asio::async_write(*a[i], asio::buffer(out),
                          [&](std::error_code ec, std::size_t) { failed += bool(ec); });
        asio::async_read(*b[i], asio::buffer(in[i]), [&](std::error_code ec, std::size_t n) {
            failed += bool(ec);
            done += !ec && n == o.bytes;
        });
    }
    std::size_t rss_peak = rss_bytes(), heap_peak = heap.live_bytes;
    auto load0 = steady::now();
    deadline = load0 + 120s;
    while (done + failed < o.pairs && steady::now() < deadline) {
        io.run_for(20ms);
        rss_peak = std::max(rss_peak, rss_bytes());
        heap_peak = std::max(heap_peak, heap.live_bytes);
    }
    double load_seconds = std::chrono::duration<double>(steady::now() - load0).count();
    const std::size_t kernel_peak = udp_kernel_bytes();
    io.run_for(500ms); // the last ACKs
    in.clear();
    in.shrink_to_fit();
    out.clear();
    out.shrink_to_fit();
    ::malloc_trim(0);
    const std::size_t rss_after = rss_bytes(), heap_after = heap.live_bytes;
    const double after_rss_per = double(rss_after - rss0) / double(sessions);
    std::printf(
        "\nafter each pair moved %zu KiB (%zu of %zu pairs complete, %zu errors, %.2f s):\n",
        o.bytes / 1024, done, o.pairs, failed, load_seconds);
    // The benchmark's own buffers (o.bytes per pair to read, o.bytes to write) are in the
    // peaks, not after.
    const double bench_bytes = double((o.pairs + 1) * o.bytes);
    const double peak_rss_per = (double(rss_peak - rss0) - bench_bytes) / double(sessions);
    const double peak_heap_per = (double(heap_peak - heap0) - bench_bytes) / double(sessions);
    std::printf("  resident  %10.1f KiB per session, peak %.1f KiB (peak without the benchmark's "
                "read buffers)\n",
                kib(after_rss_per), kib(peak_rss_per));
    std::printf("  heap      %10.1f KiB per session, peak %.1f KiB (same)\n",
                kib(double(heap_after - heap0) / double(sessions)), kib(peak_heap_per));
    std::printf("  kernel    %10.1f KiB per session in UDP socket buffers at the end of load\n",
                kib(double(kernel_peak > kernel0 ? kernel_peak - kernel0 : 0) / double(sessions)));

    std::printf("\nRESULT impl=peerlink mode=%s sessions=%zu connected_rss_per_session=%.0f "
                "connected_heap_per_session=%.0f idle_rss_per_session=%.0f "
                "idle_heap_per_session=%.0f loaded_rss_per_session=%.0f "
                "loaded_heap_per_session=%.0f peak_rss_per_session=%.0f "
                "peak_heap_per_session=%.0f idle_cpu_fraction=%.6f "
                "sessions_at_1pct_cpu=%.0f quiet_cpu_fraction=%.6f keepalive_ms=%lld "
                "construct_heap=%zu per_socket_heap=%zu kernel_socket_bytes=%zu "
                "transferred_pairs=%zu\n",
                mode_name, sessions, connected_rss_per, connected_heap_per, idle_rss_per,
                idle_heap_per, after_rss_per, double(heap_after - heap0) / double(sessions),
                peak_rss_per, peak_heap_per, cpu_fraction, sessions_at_1pct, quiet_fraction,
                static_cast<long long>(cfg.timers.keepalive_interval.count()), heap_one, per_socket,
                kernel_socket, done);

    for (std::size_t i = 0; i < o.pairs; ++i) {
        a[i]->close();
        b[i]->close();
    }
    io.run_for(50ms);
    a.clear();
    b.clear();
    io.run_for(50ms);
    return done == o.pairs && failed == 0 ? 0 : 1;
}

} // namespace

int main(int argc, char** argv) {
    auto o = parse(argc, argv);
    if (o.mode == "fast")
        return run<peerlink::kcp<peerlink::kcp_fast>>(o, "fast");
    if (o.mode == "turbo")
        return run<peerlink::kcp<peerlink::kcp_turbo>>(o, "turbo");
    if (o.mode == "normal")
        return run<peerlink::kcp<peerlink::kcp_normal>>(o, "normal");
    std::fprintf(stderr, "unknown mode %s\n", o.mode.c_str());
    return 2;
}
