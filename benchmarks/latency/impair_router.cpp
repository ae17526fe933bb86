// impair_router: a userspace link between two network namespaces, with delay,
// jitter, random loss and an optional rate limit, for TCP and UDP alike.
//
// The kernel here has no netem, so the impairment is done in userspace at the IP
// level: the router creates one TUN device in each namespace (it enters each
// namespace with setns(2) just long enough to create the device; the device stays
// in that namespace, its file descriptor with the router). Every IP packet one
// namespace routes into its TUN device is read by the router, dropped with
// probability `loss` (seeded, reproducible), or held for `delay +- jitter` and
// written into the other namespace's device, in order (jitter never reorders, as
// on a real path with one queue). Both directions are impaired the same way, with
// independent random streams. TUN devices vanish when the router exits.
//
// The caller (run_latency.sh) creates the namespaces, waits for the ready file,
// then gives the devices their addresses and routes:
//
//   ip netns add pl_a; ip netns add pl_b
//   impair_router --ns-a pl_a --dev-a pla --ns-b pl_b --dev-b plb --delay-ms 20
//                 --loss 0.05 --ready-file /tmp/ready &
//   ip -n pl_a addr add 10.77.1.1/32 peer 10.77.2.1/32 dev pla; ip -n pl_a link set pla up
//   ip -n pl_b addr add 10.77.2.1/32 peer 10.77.1.1/32 dev plb; ip -n pl_b link set plb up
//
// Options:
//   --ns-a NAME --dev-a DEV --ns-b NAME --dev-b DEV   namespaces (from `ip netns`), devices
//   --delay-ms D      one-way delay added in each direction (default 20)
//   --jitter-ms J     uniform jitter in [-J, +J] ms, never reordering (default 0)
//   --loss P          drop probability per packet and direction, 0..1 (default 0)
//   --seed S          random seed (default 1)
//   --rate-mbit R     serialisation rate per direction, 0 = unlimited (default 0)
//   --queue-packets Q packets held per direction before tail drop (default 4096)
//   --max-seconds T   exit after T seconds whatever happens (default 3600)
//   --ready-file F    created once both devices exist
//
// On SIGINT/SIGTERM or after --max-seconds it prints per-direction counters and exits 0.
#include <asio/io_context.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>

#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

namespace {

using steady = std::chrono::steady_clock;

struct options {
    std::string ns_a, dev_a, ns_b, dev_b;
    double delay_ms = 20, jitter_ms = 0, loss = 0, rate_mbit = 0, max_seconds = 3600;
    std::uint64_t seed = 1;
    std::size_t queue_packets = 4096;
    std::string ready_file;
};

[[noreturn]] void usage(const char* argv0) {
    std::fprintf(stderr,
                 "usage: %s --ns-a NAME --dev-a DEV --ns-b NAME --dev-b DEV [--delay-ms D] "
                 "[--jitter-ms J] [--loss P] [--seed S] [--rate-mbit R] [--queue-packets Q] "
                 "[--max-seconds T] [--ready-file F]\n",
                 argv0);
    std::exit(2);
}

bool plain_name(const std::string& s, std::size_t max) {
    return !s.empty() && s.size() <= max && std::all_of(s.begin(), s.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '_' || c == '-' || c == '.';
    });
}

options parse(int argc, char** argv) {
    options o;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (i + 1 >= argc)
            usage(argv[0]);
        const char* v = argv[++i];
        if (a == "--ns-a")
            o.ns_a = v;
        else if (a == "--dev-a")
            o.dev_a = v;
        else if (a == "--ns-b")
            o.ns_b = v;
        else if (a == "--dev-b")
            o.dev_b = v;
        else if (a == "--delay-ms")
            o.delay_ms = std::strtod(v, nullptr);
        else if (a == "--jitter-ms")
            o.jitter_ms = std::strtod(v, nullptr);
        else if (a == "--loss")
            o.loss = std::strtod(v, nullptr);
        else if (a == "--seed")
            o.seed = std::strtoull(v, nullptr, 10);
        else if (a == "--rate-mbit")
            o.rate_mbit = std::strtod(v, nullptr);
        else if (a == "--queue-packets")
            o.queue_packets = std::strtoull(v, nullptr, 10);
        else if (a == "--max-seconds")
            o.max_seconds = std::strtod(v, nullptr);
        else if (a == "--ready-file")
            o.ready_file = v;
        else
            usage(argv[0]);
    }
    bool ok = plain_name(o.ns_a, 64) && plain_name(o.ns_b, 64) &&
              plain_name(o.dev_a, IFNAMSIZ - 1) && plain_name(o.dev_b, IFNAMSIZ - 1) &&
              o.delay_ms >= 0 && o.delay_ms <= 10000 && o.jitter_ms >= 0 &&
              o.jitter_ms <= o.delay_ms && o.loss >= 0 && o.loss <= 1 && o.rate_mbit >= 0 &&
              o.queue_packets >= 1 && o.queue_packets <= 1 << 20 && o.max_seconds > 0;
    if (!ok) {
        std::fprintf(stderr, "impair_router: bad options (names: [A-Za-z0-9_.-]; 0 <= jitter <= "
                             "delay <= 10000 ms; 0 <= loss <= 1)\n");
        usage(argv[0]);
    }
    return o;
}

// Enters namespace `ns`, creates TUN device `dev` there, returns its descriptor.
int open_tun_in(const std::string& ns, const std::string& dev) {
    std::string path = "/var/run/netns/" + ns;
    int nsfd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (nsfd < 0) {
        std::fprintf(stderr, "impair_router: open %s: %s\n", path.c_str(), std::strerror(errno));
        return -1;
    }
    int rc = ::setns(nsfd, CLONE_NEWNET);
    ::close(nsfd);
    if (rc != 0) {
        std::fprintf(stderr, "impair_router: setns %s: %s\n", ns.c_str(), std::strerror(errno));
        return -1;
    }
    int fd = ::open("/dev/net/tun", O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        std::fprintf(stderr, "impair_router: open /dev/net/tun: %s\n", std::strerror(errno));
        return -1;
    }
    ifreq ifr{};
    ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
    std::memcpy(ifr.ifr_name, dev.c_str(), dev.size());
    if (::ioctl(fd, TUNSETIFF, &ifr) != 0) {
        std::fprintf(stderr, "impair_router: TUNSETIFF %s in %s: %s\n", dev.c_str(), ns.c_str(),
                     std::strerror(errno));
        ::close(fd);
        return -1;
    }
    return fd;
}

// splitmix64: small, seedable, good enough for loss and jitter draws.
struct rng {
    std::uint64_t s;
    std::uint64_t next() {
        std::uint64_t z = (s += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    }
    double uniform() { return double(next() >> 11) * (1.0 / 9007199254740992.0); } // [0, 1)
};

// One direction of the link: reads packets from `in`, holds them, writes them to `out`.
class direction {
public:
    direction(asio::io_context& io, const char* name, int in_fd, int out_fd, const options& o,
              std::uint64_t seed)
        : name_(name), in_(io, in_fd), out_fd_(out_fd), timer_(io), opt_(o), rng_{seed},
          ring_(o.queue_packets) {}

    void start() { read(); }

    void report() const {
        std::printf("router %s: %llu packets in, %llu lost (%.2f%%), %llu queue drops, %llu "
                    "forwarded, %llu write errors\n",
                    name_, static_cast<unsigned long long>(received_),
                    static_cast<unsigned long long>(lost_),
                    received_ ? 100.0 * double(lost_) / double(received_) : 0.0,
                    static_cast<unsigned long long>(queue_drops_),
                    static_cast<unsigned long long>(forwarded_),
                    static_cast<unsigned long long>(write_errors_));
    }

private:
    struct packet {
        steady::time_point release;
        std::size_t size = 0;
        std::array<std::byte, 2048> data;
    };

    void read() {
        in_.async_read_some(asio::buffer(scratch_), [this](std::error_code ec, std::size_t n) {
            if (ec) {
                if (ec != asio::error::operation_aborted)
                    std::fprintf(stderr, "impair_router %s: read: %s\n", name_,
                                 ec.message().c_str());
                return;
            }
            on_packet(n);
            read();
        });
    }

    void on_packet(std::size_t n) {
        ++received_;
        if (opt_.loss > 0 && rng_.uniform() < opt_.loss) {
            ++lost_;
            return;
        }
        if (count_ == ring_.size() || n > ring_[0].data.size()) { // full, or above any MTU here
            ++queue_drops_;
            return;
        }
        auto now = steady::now();
        auto leave = now;
        if (opt_.rate_mbit > 0) { // serialisation behind the packets already on the wire
            auto start = std::max(now, link_free_);
            link_free_ =
                start + std::chrono::duration_cast<steady::duration>(std::chrono::duration<double>(
                            double(n) * 8.0 / (opt_.rate_mbit * 1e6)));
            leave = link_free_;
        }
        double ms = opt_.delay_ms;
        if (opt_.jitter_ms > 0)
            ms += (2 * rng_.uniform() - 1) * opt_.jitter_ms;
        auto release = leave + std::chrono::duration_cast<steady::duration>(
                                   std::chrono::duration<double, std::milli>(ms));
        release = std::max(release, last_release_); // one queue: no reordering
        last_release_ = release;
        auto& p = ring_[(head_ + count_) % ring_.size()];
        p.release = release;
        p.size = n;
        std::memcpy(p.data.data(), scratch_.data(), n);
        ++count_;
        if (count_ == 1)
            arm();
    }

    void arm() {
        timer_.expires_at(ring_[head_].release);
        timer_.async_wait([this](std::error_code ec) {
            if (!ec)
                release_due();
        });
    }

    void release_due() {
        auto now = steady::now();
        while (count_ > 0 && ring_[head_].release <= now) {
            auto& p = ring_[head_];
            if (::write(out_fd_, p.data.data(), p.size) == static_cast<ssize_t>(p.size))
                ++forwarded_;
            else
                ++write_errors_;
            head_ = (head_ + 1) % ring_.size();
            --count_;
        }
        if (count_ > 0)
            arm();
    }

    const char* name_;
    asio::posix::stream_descriptor in_;
    int out_fd_;
    asio::steady_timer timer_;
    const options& opt_;
    rng rng_;
    std::array<std::byte, 65536> scratch_{};
    std::vector<packet> ring_;
    std::size_t head_ = 0, count_ = 0;
    steady::time_point link_free_{}, last_release_{};
    std::uint64_t received_ = 0, lost_ = 0, queue_drops_ = 0, forwarded_ = 0, write_errors_ = 0;
};

} // namespace

int main(int argc, char** argv) {
    const options o = parse(argc, argv);
    int home = ::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    if (home < 0) {
        std::perror("impair_router: open /proc/self/ns/net");
        return 1;
    }
    int fd_a = open_tun_in(o.ns_a, o.dev_a);
    int fd_b = fd_a < 0 ? -1 : open_tun_in(o.ns_b, o.dev_b);
    if (::setns(home, CLONE_NEWNET) != 0)
        std::perror("impair_router: setns back");
    ::close(home);
    if (fd_a < 0 || fd_b < 0)
        return 1;

    asio::io_context io;
    // Each direction owns its input descriptor; writes go to the other's.
    direction a_to_b(io, "a->b", fd_a, fd_b, o, o.seed * 2 + 1);
    direction b_to_a(io, "b->a", fd_b, fd_a, o, o.seed * 2 + 2);
    a_to_b.start();
    b_to_a.start();

    asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](std::error_code, int) { io.stop(); });
    asio::steady_timer limit(io);
    limit.expires_after(
        std::chrono::duration_cast<steady::duration>(std::chrono::duration<double>(o.max_seconds)));
    limit.async_wait([&](std::error_code ec) {
        if (!ec) {
            std::fprintf(stderr, "impair_router: --max-seconds reached\n");
            io.stop();
        }
    });

    std::printf("router: %s/%s <-> %s/%s, delay %.1f ms +- %.1f ms, loss %.3f, rate %s, seed "
                "%llu\n",
                o.ns_a.c_str(), o.dev_a.c_str(), o.ns_b.c_str(), o.dev_b.c_str(), o.delay_ms,
                o.jitter_ms, o.loss,
                o.rate_mbit > 0 ? (std::to_string(o.rate_mbit) + " Mbit/s").c_str() : "unlimited",
                static_cast<unsigned long long>(o.seed));
    std::fflush(stdout);
    if (!o.ready_file.empty())
        std::ofstream(o.ready_file) << "ready\n";
    io.run();
    a_to_b.report();
    b_to_a.report();
    std::fflush(stdout);
    return 0;
}
