// udp_blast: the physical limit of bulk UDP on a path, as a yardstick for KCP.
//
//   udp_blast --listen ADDR:PORT [--timeout S]
//   udp_blast --connect ADDR:PORT --bytes N [--size 1400]
//
// The sender sends N bytes as datagrams of `size` bytes, 64 per sendmmsg, as fast as
// the socket takes them, then a few 1-byte end markers. The receiver takes them with
// recvmmsg, 64 at a time, and prints one line of JSON:
//
//   {"role":"receiver","bytes":B,"seconds":S,"mbps":X,"datagrams":D,"cpu":C}
//
// B is what arrived (UDP drops what the receiver cannot take: that is the limit being
// measured), S runs from the first datagram to the last, X = B / S / 10^6 (MB/s), C
// the process's CPU time (user + system seconds); the sender prints the same. A
// listener prints "udp_blast: listening on ADDR:PORT" on stderr once bound (port 0
// picks a free one). Linux only (sendmmsg/recvmmsg). Exit: 0 done, 1 failed, 2 usage.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr unsigned batch = 64;
using steady = std::chrono::steady_clock;

[[noreturn]] void die(int code, const std::string& msg) {
    std::fprintf(stderr, "udp_blast: %s\n", msg.c_str());
    std::exit(code);
}

std::uint64_t number(std::string_view flag, std::string_view text) {
    std::uint64_t v = 0;
    auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc{} || p != text.data() + text.size())
        die(2, std::string(flag) + ": not a number: '" + std::string(text) + "'");
    return v;
}

struct address {
    sockaddr_storage ss{};
    socklen_t len = 0;
};

address parse_address(const std::string& text) {
    const auto colon = text.rfind(':');
    if (colon == std::string::npos)
        die(2, "'" + text + "' is not ADDR:PORT");
    std::string host = text.substr(0, colon);
    const auto port = number("port", std::string_view(text).substr(colon + 1));
    if (port > 65535)
        die(2, "port out of range in '" + text + "'");
    address a;
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
        auto* s6 = reinterpret_cast<sockaddr_in6*>(&a.ss);
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(static_cast<std::uint16_t>(port));
        if (inet_pton(AF_INET6, host.substr(1, host.size() - 2).c_str(), &s6->sin6_addr) != 1)
            die(2, "bad IPv6 address in '" + text + "'");
        a.len = sizeof(sockaddr_in6);
    } else {
        auto* s4 = reinterpret_cast<sockaddr_in*>(&a.ss);
        s4->sin_family = AF_INET;
        s4->sin_port = htons(static_cast<std::uint16_t>(port));
        if (inet_pton(AF_INET, host.c_str(), &s4->sin_addr) != 1)
            die(2, "bad IPv4 address in '" + text + "'");
        a.len = sizeof(sockaddr_in);
    }
    return a;
}

int open_socket(const address& a, int buffer_bytes) {
    const int fd = socket(a.ss.ss_family, SOCK_DGRAM, 0);
    if (fd < 0)
        die(1, std::string("socket: ") + std::strerror(errno));
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buffer_bytes, sizeof buffer_bytes);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buffer_bytes, sizeof buffer_bytes);
    return fd;
}

void set_receive_timeout(int fd, double seconds) {
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(seconds);
    tv.tv_usec = static_cast<suseconds_t>((seconds - static_cast<double>(tv.tv_sec)) * 1e6);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

double cpu_seconds() {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    auto sec = [](const timeval& t) {
        return double(t.tv_sec) + double(t.tv_usec) / 1e6;
    };
    return sec(ru.ru_utime) + sec(ru.ru_stime);
}

double seconds_between(steady::time_point a, steady::time_point b) {
    return std::chrono::duration<double>(b - a).count();
}

int receive(const address& where, double timeout_s) {
    const int fd = open_socket(where, 4 << 20);
    if (bind(fd, reinterpret_cast<const sockaddr*>(&where.ss), where.len) != 0)
        die(1, std::string("bind: ") + std::strerror(errno));
    address bound;
    bound.len = sizeof bound.ss;
    getsockname(fd, reinterpret_cast<sockaddr*>(&bound.ss), &bound.len);
    char text[INET6_ADDRSTRLEN] = {};
    std::uint16_t port = 0;
    if (bound.ss.ss_family == AF_INET6) {
        const auto* s6 = reinterpret_cast<const sockaddr_in6*>(&bound.ss);
        inet_ntop(AF_INET6, &s6->sin6_addr, text, sizeof text);
        port = ntohs(s6->sin6_port);
        std::fprintf(stderr, "udp_blast: listening on [%s]:%u\n", text, port);
    } else {
        const auto* s4 = reinterpret_cast<const sockaddr_in*>(&bound.ss);
        inet_ntop(AF_INET, &s4->sin_addr, text, sizeof text);
        port = ntohs(s4->sin_port);
        std::fprintf(stderr, "udp_blast: listening on %s:%u\n", text, port);
    }
    std::fflush(stderr);

    constexpr std::size_t slot = 65536;
    std::vector<char> storage(batch * slot);
    mmsghdr msgs[batch];
    iovec iov[batch];
    for (unsigned i = 0; i < batch; ++i) {
        iov[i] = {storage.data() + i * slot, slot};
        msgs[i] = {};
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    const auto deadline = steady::now() + std::chrono::duration_cast<steady::duration>(
                                              std::chrono::duration<double>(timeout_s));
    set_receive_timeout(fd, 0.5);
    std::uint64_t bytes = 0, datagrams = 0;
    steady::time_point first{}, last{};
    bool started = false, ended = false;
    while (!ended && steady::now() < deadline) {
        const int n = recvmmsg(fd, msgs, batch, 0, nullptr);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                if (started) // the sender stopped and its markers were lost
                    break;
                continue;
            }
            die(1, std::string("recvmmsg: ") + std::strerror(errno));
        }
        const auto now = steady::now();
        for (int i = 0; i < n; ++i) {
            const unsigned len = msgs[i].msg_len;
            if (len <= 1) { // an end marker
                ended = started;
                continue;
            }
            if (!started) {
                started = true;
                first = now;
            }
            last = now;
            bytes += len;
            ++datagrams;
        }
    }
    close(fd);
    if (!started)
        die(1, "nothing received before the timeout");
    const double s = seconds_between(first, last);
    std::printf("{\"role\":\"receiver\",\"bytes\":%llu,\"seconds\":%.6f,\"mbps\":%.3f,"
                "\"datagrams\":%llu,\"cpu\":%.3f}\n",
                static_cast<unsigned long long>(bytes), s,
                s > 0 ? static_cast<double>(bytes) / s / 1e6 : 0.0,
                static_cast<unsigned long long>(datagrams), cpu_seconds());
    return 0;
}

int send(const address& to, std::uint64_t total, std::size_t size) {
    const int fd = open_socket(to, 4 << 20);
    std::vector<char> payload(size);
    for (std::size_t i = 0; i < size; ++i)
        payload[i] = static_cast<char>(i * 131 + 7);
    mmsghdr msgs[batch];
    iovec iov[batch];
    for (unsigned i = 0; i < batch; ++i) {
        iov[i] = {payload.data(), size};
        msgs[i] = {};
        msgs[i].msg_hdr.msg_name = const_cast<sockaddr_storage*>(&to.ss);
        msgs[i].msg_hdr.msg_namelen = to.len;
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    const std::uint64_t count = (total + size - 1) / size;
    const auto start = steady::now();
    for (std::uint64_t sent = 0; sent < count;) {
        const unsigned k = static_cast<unsigned>(std::min<std::uint64_t>(batch, count - sent));
        const int n = sendmmsg(fd, msgs, k, 0);
        if (n < 0) {
            if (errno == EAGAIN || errno == ENOBUFS || errno == EINTR)
                continue;
            die(1, std::string("sendmmsg: ") + std::strerror(errno));
        }
        sent += static_cast<unsigned>(n);
    }
    const double s = seconds_between(start, steady::now());
    const char marker = 'E';
    for (int i = 0; i < 16; ++i) {
        sendto(fd, &marker, 1, 0, reinterpret_cast<const sockaddr*>(&to.ss), to.len);
        usleep(1000);
    }
    close(fd);
    std::printf("{\"role\":\"sender\",\"bytes\":%llu,\"seconds\":%.6f,\"mbps\":%.3f,"
                "\"datagrams\":%llu,\"cpu\":%.3f}\n",
                static_cast<unsigned long long>(count * size), s,
                s > 0 ? static_cast<double>(count * size) / s / 1e6 : 0.0,
                static_cast<unsigned long long>(count), cpu_seconds());
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    std::string listen, connect;
    std::uint64_t bytes = 256u << 20, size = 1400;
    double timeout_s = 60;
    for (int i = 1; i < argc; ++i) {
        const std::string_view a = argv[i];
        auto value = [&]() -> std::string_view {
            if (i + 1 >= argc)
                die(2, std::string(a) + " needs a value");
            return argv[++i];
        };
        if (a == "--listen")
            listen = value();
        else if (a == "--connect")
            connect = value();
        else if (a == "--bytes")
            bytes = number(a, value());
        else if (a == "--size")
            size = number(a, value());
        else if (a == "--timeout")
            timeout_s = static_cast<double>(number(a, value()));
        else
            die(2, "unknown argument '" + std::string(a) + "'");
    }
    if (listen.empty() == connect.empty())
        die(2, "give exactly one of --listen ADDR:PORT or --connect ADDR:PORT");
    if (size < 2 || size > 65507)
        die(2, "--size must be 2..65507");
    if (!listen.empty())
        return receive(parse_address(listen), timeout_s);
    return send(parse_address(connect), bytes, static_cast<std::size_t>(size));
}
