// latency_peer: one end of a timestamped message stream, over peerlink KCP or TCP.
//
// The sender writes `--count` messages of `--size` bytes, one every `--interval-ms`
// (timer-paced, no drift), each carrying its sequence number and the
// steady_clock time at which the application handed it over. The receiver takes
// them whole and in order and records one-way latency = arrival - stamp. Both ends
// run on one host (in two network namespaces, see run_latency.sh); CLOCK_MONOTONIC
// is the same clock in every network namespace, so one-way times are exact.
//
// Messages that wait for a full window keep their stamp: queueing counts as latency.
//
//   latency_peer --role recv --proto kcp-fast --addr 10.77.2.1 --port 7001 --count 3000
//   latency_peer --role send --proto kcp-fast --addr 10.77.2.1 --port 7001 --count 3000
//                --interval-ms 10 --size 200   (one line)
//
//   --proto tcp | kcp-fast | kcp-turbo | kcp-normal, or the variants below
//     kcp-turbo-ack  kcp_turbo with ack_nodelay (ACKs leave at once, not at the flush)
//     kcp-lowlat     kcp_turbo with ack_nodelay and a 2 ms flush interval
//     kcp-fast-onack kcp_fast with flush_on_ack (new segments leave when an ACK opens the
//                    window, as kcp-go does, not at the next flush)
//   --timeout-s T   give up after T seconds (exit 1) (default 120)
//   --label TEXT    copied into the RESULT line
//   --interval-ms   the sender's pace; the receiver needs it too, for the line below
//
// The receiver prints
//   RESULT proto=kcp-fast label=... count=3000 received=3000 complete=1 out_of_order=0
//          p50_ms=.. p90_ms=.. p99_ms=.. p999_ms=.. max_ms=.. mean_ms=..
// also when it times out (complete=0): the messages that never arrived then count with
// the time they waited from their scheduled send to the timeout, so the figures are
// lower bounds. The sender prints `SENDER proto=... retransmits=...` (KCP: its
// retransmissions; TCP: tcpi_total_retrans). Exit 0 when every message arrived in
// order.
#include <peerlink/peer_connection.hpp>

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/steady_timer.hpp>
#include <asio/write.hpp>

#include <netinet/tcp.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

struct options {
    std::string role, proto, addr, label = "-";
    unsigned short port = 0;
    std::size_t count = 1000, size = 200;
    double interval_ms = 10, timeout_s = 120;
    bool trace = false; // sender, KCP: print the KCP state every 50 messages
};

[[noreturn]] void usage(const char* argv0) {
    std::fprintf(
        stderr,
        "usage: %s --role send|recv --proto tcp|kcp-fast|kcp-turbo|kcp-normal|kcp-turbo-ack|"
        "kcp-lowlat|kcp-fast-onack --addr IP "
        "--port P [--count N] [--size B] [--interval-ms MS] [--timeout-s T] "
        "[--label TEXT]\n",
        argv0);
    std::exit(2);
}

options parse(int argc, char** argv) {
    options o;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (i + 1 >= argc)
            usage(argv[0]);
        const char* v = argv[++i];
        if (a == "--role")
            o.role = v;
        else if (a == "--proto")
            o.proto = v;
        else if (a == "--addr")
            o.addr = v;
        else if (a == "--port")
            o.port = static_cast<unsigned short>(std::strtoul(v, nullptr, 10));
        else if (a == "--count")
            o.count = std::strtoull(v, nullptr, 10);
        else if (a == "--size")
            o.size = std::strtoull(v, nullptr, 10);
        else if (a == "--interval-ms")
            o.interval_ms = std::strtod(v, nullptr);
        else if (a == "--timeout-s")
            o.timeout_s = std::strtod(v, nullptr);
        else if (a == "--label")
            o.label = v;
        else if (a == "--trace")
            o.trace = std::string(v) == "1";
        else
            usage(argv[0]);
    }
    if ((o.role != "send" && o.role != "recv") || o.addr.empty() || o.port == 0 || o.count == 0 ||
        o.count > 10'000'000 || o.size < 12 || o.size > 60000 || o.interval_ms < 0 ||
        o.timeout_s <= 0)
        usage(argv[0]);
    return o;
}

std::int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(steady::now().time_since_epoch())
        .count();
}

// A message: [u32 sequence][i64 stamp ns][filler], little-endian (this host only).
void stamp(std::byte* m, std::size_t size, std::uint32_t seq) {
    std::int64_t t = now_ns();
    std::memcpy(m, &seq, 4);
    std::memcpy(m + 4, &t, 8);
    std::memset(m + 12, 0x5a, size - 12);
}

// What the receiver records.
struct recorder {
    const options& opt;
    std::vector<double> latency_ms;
    std::uint32_t next_seq = 0;
    std::size_t out_of_order = 0;
    std::int64_t first_stamp_ns = 0; // of message 0: message i is due at + i * interval

    explicit recorder(const options& o) : opt(o) { latency_ms.reserve(o.count); }

    void on_message(const std::byte* m) {
        std::uint32_t seq;
        std::int64_t t;
        std::memcpy(&seq, m, 4);
        std::memcpy(&t, m + 4, 8);
        if (seq != next_seq)
            ++out_of_order;
        if (seq == 0)
            first_stamp_ns = t;
        next_seq = seq + 1;
        latency_ms.push_back(double(now_ns() - t) / 1e6);
    }
    bool complete() const { return latency_ms.size() >= opt.count; }

    // Prints the RESULT line. When the stream did not complete (the sender could not
    // keep up and the time ran out), each message that never arrived counts with the
    // time it has waited so far, from its scheduled send: the percentiles are then
    // lower bounds, and the line says complete=0.
    void print() {
        auto v = latency_ms;
        const bool whole = complete();
        if (!whole && first_stamp_ns != 0) {
            const double now = double(now_ns());
            for (std::size_t i = v.size(); i < opt.count; ++i)
                v.push_back(std::max(0.0, (now - double(first_stamp_ns)) / 1e6 -
                                              double(i) * opt.interval_ms));
        }
        std::sort(v.begin(), v.end());
        auto q = [&](double p) {
            if (v.empty())
                return 0.0;
            auto i = static_cast<std::size_t>(p * double(v.size() - 1) + 0.5);
            return v[std::min(i, v.size() - 1)];
        };
        double mean = 0;
        for (double x : v)
            mean += x;
        mean = v.empty() ? 0 : mean / double(v.size());
        std::printf("RESULT proto=%s label=%s count=%zu received=%zu complete=%d out_of_order=%zu "
                    "p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f p999_ms=%.2f max_ms=%.2f mean_ms=%.2f\n",
                    opt.proto.c_str(), opt.label.c_str(), opt.count, latency_ms.size(),
                    whole ? 1 : 0, out_of_order, q(0.50), q(0.90), q(0.99), q(0.999),
                    v.empty() ? 0.0 : v.back(), mean);
        std::fflush(stdout);
    }
};

// Paces the sender: calls `tick(i)` at start + i * interval for i < count.
struct pacer {
    asio::steady_timer timer;
    steady::time_point start;
    steady::duration interval;
    std::size_t i = 0, count;
    std::function<void(std::size_t)> tick;

    pacer(asio::io_context& io, const options& o, std::function<void(std::size_t)> f)
        : timer(io), interval(std::chrono::duration_cast<steady::duration>(
                         std::chrono::duration<double, std::milli>(o.interval_ms))),
          count(o.count), tick(std::move(f)) {}

    void run() {
        start = steady::now();
        next();
    }
    void next() {
        timer.expires_at(start + interval * static_cast<long>(i));
        timer.async_wait([this](std::error_code ec) {
            if (ec)
                return;
            tick(i);
            if (++i < count)
                next();
        });
    }
};

// Variants that show what the presets leave on the table for latency.
constexpr peerlink::kcp_settings turbo_ack = [] {
    auto s = peerlink::kcp_turbo;
    s.ack_nodelay = true;
    return s;
}();
constexpr peerlink::kcp_settings lowlat = [] {
    auto s = turbo_ack;
    s.interval_ms = 2;
    return s;
}();
constexpr peerlink::kcp_settings fast_onack = [] {
    auto s = peerlink::kcp_fast;
    s.flush_on_ack = true;
    return s;
}();

// ---- peerlink KCP ------------------------------------------------------------------

template <class Reliability>
int run_kcp(const options& o) {
    using conn_t = peerlink::peer_connection<Reliability>;
    asio::io_context io;
    peerlink::config cfg;
    cfg.transport.ipv6 = false;
    std::error_code pec;
    auto remote = peerlink::endpoint::parse(o.addr + ":" + std::to_string(o.port), pec);
    if (!remote) {
        std::fprintf(stderr, "bad address %s\n", o.addr.c_str());
        return 2;
    }
    if (o.role == "recv") {
        cfg.transport.bind_address = o.addr;
        cfg.transport.port_min = cfg.transport.port_max = o.port;
    }
    conn_t c(io.get_executor(), peerlink::identity::generate(), cfg);
    if (o.size > c.max_message_size()) {
        std::fprintf(stderr, "--size above max_message_size %zu\n", c.max_message_size());
        return 2;
    }
    int code = 1;
    asio::steady_timer deadline(io);
    deadline.expires_after(
        std::chrono::duration_cast<steady::duration>(std::chrono::duration<double>(o.timeout_s)));
    deadline.async_wait([&](std::error_code ec) {
        if (!ec) {
            std::fprintf(stderr, "latency_peer %s %s: timeout\n", o.role.c_str(), o.proto.c_str());
            io.stop();
        }
    });

    if (o.role == "recv") {
        recorder rec(o);
        std::vector<std::byte> buf(c.max_message_size());
        asio::steady_timer linger(io);
        std::function<void()> receive = [&] {
            c.async_receive_message(asio::buffer(buf), [&](std::error_code ec, std::size_t n) {
                if (ec) {
                    // After the last message the sender closes in order: that is the end.
                    if (!rec.complete())
                        std::fprintf(stderr, "receive: %s\n", ec.message().c_str());
                    io.stop();
                    return;
                }
                if (n == o.size)
                    rec.on_message(buf.data());
                if (rec.complete() && code != 0) {
                    rec.print();
                    code = rec.out_of_order == 0 ? 0 : 1;
                    // Keep acknowledging until the sender has closed, 3 s at most.
                    linger.expires_after(3s);
                    linger.async_wait([&](std::error_code lec) {
                        if (!lec)
                            io.stop();
                    });
                }
                receive();
            });
        };
        c.async_accept(std::nullopt, [&](std::error_code ec) {
            if (ec) {
                std::fprintf(stderr, "accept: %s\n", ec.message().c_str());
                io.stop();
                return;
            }
            receive();
        });
        io.run();
        if (code != 0 && !rec.latency_ms.empty())
            rec.print();
        return code;
    }

    // Sender.
    std::vector<std::byte> messages(o.count * o.size);
    std::size_t queued = 0, sent = 0;
    bool sending = false;
    std::function<void()> send_next = [&] {
        if (sending || sent == queued)
            return;
        sending = true;
        c.async_send_message(asio::buffer(messages.data() + sent * o.size, o.size),
                             [&](std::error_code ec, std::size_t) {
                                 sending = false;
                                 if (ec) {
                                     std::fprintf(stderr, "send: %s\n", ec.message().c_str());
                                     io.stop();
                                     return;
                                 }
                                 if (++sent < o.count)
                                     return send_next();
                                 auto ks = c.core().reliable_stats();
                                 std::printf("SENDER proto=%s label=%s retransmits=%llu "
                                             "fast_retransmits=%llu srtt_ms=%u\n",
                                             o.proto.c_str(), o.label.c_str(),
                                             static_cast<unsigned long long>(ks.retransmits),
                                             static_cast<unsigned long long>(ks.fast_retransmits),
                                             ks.srtt_ms);
                                 std::fflush(stdout);
                                 c.async_close([&](std::error_code cec) {
                                     code = cec ? 1 : 0;
                                     if (cec)
                                         std::fprintf(stderr, "close: %s\n", cec.message().c_str());
                                     io.stop();
                                 });
                             });
    };
    pacer pace(io, o, [&](std::size_t i) {
        stamp(messages.data() + i * o.size, o.size, static_cast<std::uint32_t>(i));
        ++queued;
        send_next();
        if (o.trace && i % 50 == 0) {
            auto ks = c.core().reliable_stats();
            std::printf("trace i=%zu backlog=%zu srtt=%u rto=%u cwnd=%u ssthresh=%u inflight=%u "
                        "queued=%u retx=%llu fast=%llu\n",
                        i, queued - sent, ks.srtt_ms, ks.rto_ms, ks.cwnd, ks.ssthresh, ks.in_flight,
                        ks.queued, static_cast<unsigned long long>(ks.retransmits),
                        static_cast<unsigned long long>(ks.fast_retransmits));
        }
    });
    c.async_connect(*remote, std::nullopt, [&](std::error_code ec) {
        if (ec) {
            std::fprintf(stderr, "connect: %s\n", ec.message().c_str());
            io.stop();
            return;
        }
        pace.run();
    });
    io.run();
    return code;
}

// ---- TCP ---------------------------------------------------------------------------

int run_tcp(const options& o) {
    using asio::ip::tcp;
    asio::io_context io;
    std::error_code ec;
    tcp::endpoint ep(asio::ip::make_address(o.addr, ec), o.port);
    if (ec) {
        std::fprintf(stderr, "bad address %s\n", o.addr.c_str());
        return 2;
    }
    int code = 1;
    asio::steady_timer deadline(io);
    deadline.expires_after(
        std::chrono::duration_cast<steady::duration>(std::chrono::duration<double>(o.timeout_s)));
    deadline.async_wait([&](std::error_code e) {
        if (!e) {
            std::fprintf(stderr, "latency_peer %s tcp: timeout\n", o.role.c_str());
            io.stop();
        }
    });
    tcp::socket sock(io);

    if (o.role == "recv") {
        tcp::acceptor acc(io);
        acc.open(ep.protocol());
        acc.set_option(tcp::acceptor::reuse_address(true));
        acc.bind(ep);
        acc.listen();
        recorder rec(o);
        std::vector<std::byte> buf(o.size);
        std::function<void()> receive = [&] {
            asio::async_read(sock, asio::buffer(buf), [&](std::error_code e, std::size_t) {
                if (e) {
                    if (!rec.complete())
                        std::fprintf(stderr, "read: %s\n", e.message().c_str());
                    io.stop();
                    return;
                }
                rec.on_message(buf.data());
                if (rec.complete()) {
                    rec.print();
                    code = rec.out_of_order == 0 ? 0 : 1;
                    sock.shutdown(tcp::socket::shutdown_both, e);
                    sock.close(e);
                    io.stop();
                    return;
                }
                receive();
            });
        };
        acc.async_accept(sock, [&](std::error_code e) {
            if (e) {
                std::fprintf(stderr, "accept: %s\n", e.message().c_str());
                io.stop();
                return;
            }
            sock.set_option(tcp::no_delay(true));
            receive();
        });
        io.run();
        if (code != 0 && !rec.latency_ms.empty())
            rec.print();
        return code;
    }

    // Sender: connect (retrying while the receiver is not listening yet), then pace.
    std::vector<std::byte> messages(o.count * o.size);
    std::size_t queued = 0, sent = 0;
    bool writing = false, all_written = false;
    char eof_byte;
    std::function<void()> write_next = [&] {
        if (writing || sent == queued)
            return;
        writing = true;
        // Everything queued goes in one write: what TCP would do with a send buffer.
        asio::async_write(
            sock, asio::buffer(messages.data() + sent * o.size, (queued - sent) * o.size),
            [&](std::error_code e, std::size_t n) {
                writing = false;
                if (e) {
                    std::fprintf(stderr, "write: %s\n", e.message().c_str());
                    io.stop();
                    return;
                }
                sent += n / o.size;
                if (sent < o.count)
                    return write_next();
                all_written = true;
                tcp_info ti{};
                socklen_t len = sizeof ti;
                ::getsockopt(sock.native_handle(), IPPROTO_TCP, TCP_INFO, &ti, &len);
                std::printf("SENDER proto=tcp label=%s retransmits=%u srtt_ms=%.1f\n",
                            o.label.c_str(), ti.tcpi_total_retrans, ti.tcpi_rtt / 1000.0);
                std::fflush(stdout);
                // The receiver closes once it has everything: wait for that.
                sock.async_read_some(asio::buffer(&eof_byte, 1), [&](std::error_code re,
                                                                     std::size_t) {
                    code = re == asio::error::eof || re == asio::error::connection_reset ? 0 : 1;
                    io.stop();
                });
            });
    };
    pacer pace(io, o, [&](std::size_t i) {
        stamp(messages.data() + i * o.size, o.size, static_cast<std::uint32_t>(i));
        ++queued;
        write_next();
    });
    int tries = 0;
    asio::steady_timer retry(io);
    std::function<void()> connect = [&] {
        sock.async_connect(ep, [&](std::error_code e) {
            if (e && ++tries < 50) {
                std::error_code ignore;
                sock.close(ignore);
                retry.expires_after(200ms);
                retry.async_wait([&](std::error_code) { connect(); });
                return;
            }
            if (e) {
                std::fprintf(stderr, "connect: %s\n", e.message().c_str());
                io.stop();
                return;
            }
            sock.set_option(tcp::no_delay(true));
            pace.run();
        });
    };
    connect();
    io.run();
    (void)all_written;
    return code;
}

} // namespace

int main(int argc, char** argv) {
    const options o = parse(argc, argv);
    try {
        if (o.proto == "tcp")
            return run_tcp(o);
        if (o.proto == "kcp-fast")
            return run_kcp<peerlink::kcp<peerlink::kcp_fast>>(o);
        if (o.proto == "kcp-turbo")
            return run_kcp<peerlink::kcp<peerlink::kcp_turbo>>(o);
        if (o.proto == "kcp-normal")
            return run_kcp<peerlink::kcp<peerlink::kcp_normal>>(o);
        if (o.proto == "kcp-turbo-ack")
            return run_kcp<peerlink::kcp<turbo_ack>>(o);
        if (o.proto == "kcp-lowlat")
            return run_kcp<peerlink::kcp<lowlat>>(o);
        if (o.proto == "kcp-fast-onack")
            return run_kcp<peerlink::kcp<fast_onack>>(o);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "latency_peer: %s\n", e.what());
        return 1;
    }
    usage(argv[0]);
}
