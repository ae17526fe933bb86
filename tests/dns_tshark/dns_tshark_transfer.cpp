// A test transfer through the DNS disguise over real UDP sockets on 127.0.0.1, for
// check_dns_pcap.sh to show to tshark.
//
// Two sockets, an initiator (sends DNS queries) and a responder (sends DNS responses), each
// with its own dns_disguise. Every payload is wrapped by its sender, sent through the
// kernel, received, written to a pcap file exactly as received (with the Ethernet, IPv4
// and UDP headers a capture on `lo` would show), unwrapped and compared with what was sent.
// Payload sizes: the edges (0, 1, 253..256, 508..509, 1400, 1472, 1500) in both directions,
// then a seeded random walk of directions (so queries and responses come in bursts, and
// responses both answer queries and go unsolicited) and sizes 0..1472.
//
// Usage: dns_tshark_transfer --pcap FILE [--wait-go] [--seed N] [--steps N] [--truncate-last]
// --truncate-last writes the last datagram 5 bytes short into the pcap: a malformed packet
// the checker must catch (its negative control).
// Prints "ports <initiator> <responder>" first (with --wait-go it then waits for a line
// on stdin before sending, so a capture can be started on those ports), and at the end
// "sent <total> queries <q> responses <r> answered <a>". Exit 0 when every payload came
// back intact, 1 otherwise, 2 on a usage or socket error.
#include <peerlink/policy/dns_disguise.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <random>
#include <string>
#include <vector>

namespace {

// Closes the socket on every exit path.
struct udp_socket {
    int fd = -1;
    std::uint16_t port = 0;
    udp_socket() {
        fd = ::socket(AF_INET, SOCK_DGRAM, 0);
        if (fd < 0)
            return;
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof a;
        if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
            ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
            ::close(fd);
            fd = -1;
            return;
        }
        port = ntohs(a.sin_port);
    }
    udp_socket(const udp_socket&) = delete;
    udp_socket& operator=(const udp_socket&) = delete;
    ~udp_socket() {
        if (fd >= 0)
            ::close(fd);
    }
};

// A classic pcap file (LINKTYPE_ETHERNET), the format tshark and dumpcap read and write.
class pcap_writer {
public:
    explicit pcap_writer(const char* path) : f_(std::fopen(path, "wb")) {
        if (!f_)
            return;
        std::uint8_t h[24];
        put32le(h, 0xa1b2c3d4); // microsecond timestamps
        put16le(h + 4, 2);
        put16le(h + 6, 4);
        put32le(h + 8, 0);  // thiszone
        put32le(h + 12, 0); // sigfigs
        put32le(h + 16, 262144);
        put32le(h + 20, 1); // Ethernet
        std::fwrite(h, 1, sizeof h, f_);
    }
    pcap_writer(const pcap_writer&) = delete;
    pcap_writer& operator=(const pcap_writer&) = delete;
    ~pcap_writer() {
        if (f_)
            std::fclose(f_);
    }
    explicit operator bool() const { return f_ != nullptr; }

    // One IPv4/UDP datagram from 127.0.0.1:sport to 127.0.0.1:dport, as lo shows it: an
    // Ethernet header with zero addresses, checksums filled in.
    void write(std::uint16_t sport, std::uint16_t dport, std::span<const std::byte> payload) {
        const std::size_t udp_len = 8 + payload.size();
        const std::size_t ip_len = 20 + udp_len;
        std::vector<std::uint8_t> f(14 + ip_len);
        f[12] = 0x08; // EtherType IPv4
        std::uint8_t* ip = f.data() + 14;
        ip[0] = 0x45;
        put16be(ip + 2, static_cast<std::uint16_t>(ip_len));
        put16be(ip + 4, ip_id_++);
        put16be(ip + 6, 0x4000); // DF
        ip[8] = 64;
        ip[9] = 17;
        const std::uint8_t lo[4] = {127, 0, 0, 1};
        std::memcpy(ip + 12, lo, 4);
        std::memcpy(ip + 16, lo, 4);
        put16be(ip + 10, fold(sum(ip, 20, 0)));
        std::uint8_t* udp = ip + 20;
        put16be(udp, sport);
        put16be(udp + 2, dport);
        put16be(udp + 4, static_cast<std::uint16_t>(udp_len));
        if (!payload.empty())
            std::memcpy(udp + 8, payload.data(), payload.size());
        // Pseudo-header: addresses, protocol, UDP length.
        std::uint32_t s = sum(ip + 12, 8, 17 + static_cast<std::uint32_t>(udp_len));
        std::uint16_t c = fold(sum(udp, udp_len, s));
        put16be(udp + 6, c == 0 ? 0xffff : c);

        const auto now = std::chrono::system_clock::now().time_since_epoch();
        const auto us = std::chrono::duration_cast<std::chrono::microseconds>(now).count();
        std::uint8_t r[16];
        put32le(r, static_cast<std::uint32_t>(us / 1000000));
        put32le(r + 4, static_cast<std::uint32_t>(us % 1000000));
        put32le(r + 8, static_cast<std::uint32_t>(f.size()));
        put32le(r + 12, static_cast<std::uint32_t>(f.size()));
        std::fwrite(r, 1, sizeof r, f_);
        std::fwrite(f.data(), 1, f.size(), f_);
    }

private:
    static void put16le(std::uint8_t* p, std::uint16_t v) {
        p[0] = v & 0xff;
        p[1] = v >> 8;
    }
    static void put32le(std::uint8_t* p, std::uint32_t v) {
        for (int i = 0; i < 4; ++i)
            p[i] = (v >> (8 * i)) & 0xff;
    }
    static void put16be(std::uint8_t* p, std::uint16_t v) {
        p[0] = v >> 8;
        p[1] = v & 0xff;
    }
    static std::uint32_t sum(const std::uint8_t* p, std::size_t n, std::uint32_t s) {
        for (std::size_t i = 0; i + 1 < n; i += 2)
            s += static_cast<std::uint32_t>(p[i] << 8 | p[i + 1]);
        if (n % 2)
            s += static_cast<std::uint32_t>(p[n - 1] << 8);
        return s;
    }
    static std::uint16_t fold(std::uint32_t s) {
        while (s >> 16)
            s = (s & 0xffff) + (s >> 16);
        return static_cast<std::uint16_t>(~s & 0xffff);
    }

    std::FILE* f_;
    std::uint16_t ip_id_ = 1;
};

struct step {
    bool from_initiator;
    std::size_t size;
};

std::vector<step> plan(std::uint32_t seed, std::size_t random_steps) {
    std::vector<step> steps;
    for (std::size_t n : {0, 1, 253, 254, 255, 256, 508, 509, 1000, 1400, 1472, 1500}) {
        steps.push_back({true, n});
        steps.push_back({false, n});
    }
    std::mt19937 rng(seed);
    for (std::size_t i = 0; i < random_steps; ++i)
        steps.push_back({rng() % 2 == 0, rng() % 1473});
    return steps;
}

} // namespace

int main(int argc, char** argv) {
    const char* pcap_path = nullptr;
    bool wait_go = false;
    std::uint32_t seed = 2026;
    std::size_t random_steps = 400;
    bool truncate_last = false;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--pcap" && i + 1 < argc)
            pcap_path = argv[++i];
        else if (a == "--wait-go")
            wait_go = true;
        else if (a == "--truncate-last")
            truncate_last = true;
        else if (a == "--seed" && i + 1 < argc)
            seed = static_cast<std::uint32_t>(std::strtoul(argv[++i], nullptr, 10));
        else if (a == "--steps" && i + 1 < argc)
            random_steps = std::strtoul(argv[++i], nullptr, 10);
        else {
            std::fprintf(stderr,
                         "usage: %s --pcap FILE [--wait-go] [--seed N] [--steps N] "
                         "[--truncate-last]\n",
                         argv[0]);
            return 2;
        }
    }
    if (!pcap_path) {
        std::fprintf(stderr, "--pcap FILE is required\n");
        return 2;
    }
    udp_socket init_sock, resp_sock;
    if (init_sock.fd < 0 || resp_sock.fd < 0) {
        std::perror("socket/bind on 127.0.0.1");
        return 2;
    }
    pcap_writer pcap(pcap_path);
    if (!pcap) {
        std::perror(pcap_path);
        return 2;
    }
    std::printf("ports %u %u\n", init_sock.port, resp_sock.port);
    std::fflush(stdout);
    if (wait_go) {
        std::string line;
        if (!std::getline(std::cin, line))
            return 2;
    }

    peerlink::dns_disguise initiator(seed), responder(seed ^ 0x5a5a5a5au);
    initiator.configure(true);
    responder.configure(false);
    std::mt19937 rng(seed + 1);
    const auto steps = plan(seed, random_steps);
    constexpr std::size_t room = peerlink::dns_disguise::max_overhead + 64;
    std::vector<std::byte> tx(1500 + 2 * room), rx(1500 + 2 * room);
    std::size_t queries = 0, responses = 0;

    for (std::size_t i = 0; i < steps.size(); ++i) {
        const auto& s = steps[i];
        auto& sender = s.from_initiator ? initiator : responder;
        auto& receiver = s.from_initiator ? responder : initiator;
        const udp_socket& from = s.from_initiator ? init_sock : resp_sock;
        const udp_socket& to = s.from_initiator ? resp_sock : init_sock;

        std::vector<std::byte> payload(s.size);
        for (auto& b : payload)
            b = static_cast<std::byte>(rng() & 0xff);
        peerlink::packet_buffer p(tx, room);
        p.append(payload);
        if (auto ec = sender.wrap(p)) {
            std::fprintf(stderr, "step %zu: wrap failed: %s\n", i, ec.message().c_str());
            return 1;
        }
        sockaddr_in dst{};
        dst.sin_family = AF_INET;
        dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        dst.sin_port = htons(to.port);
        if (::sendto(from.fd, p.data().data(), p.size(), 0, reinterpret_cast<sockaddr*>(&dst),
                     sizeof dst) != static_cast<ssize_t>(p.size())) {
            std::perror("sendto");
            return 2;
        }
        pollfd pfd{to.fd, POLLIN, 0};
        if (::poll(&pfd, 1, 2000) != 1) {
            std::fprintf(stderr, "step %zu: datagram not received within 2 s\n", i);
            return 1;
        }
        sockaddr_in src{};
        socklen_t src_len = sizeof src;
        const ssize_t n = ::recvfrom(to.fd, rx.data() + room, rx.size() - room, 0,
                                     reinterpret_cast<sockaddr*>(&src), &src_len);
        if (n < 0) {
            std::perror("recvfrom");
            return 2;
        }
        peerlink::packet_buffer r(rx, room);
        r.resize(static_cast<std::size_t>(n));
        const bool cut = truncate_last && i + 1 == steps.size() && r.size() > 5;
        pcap.write(ntohs(src.sin_port), to.port, r.data().first(r.size() - (cut ? 5 : 0)));
        if (auto ec = receiver.unwrap(r)) {
            std::fprintf(stderr, "step %zu: unwrap failed: %s\n", i, ec.message().c_str());
            return 1;
        }
        if (r.size() != payload.size() ||
            (!payload.empty() && std::memcmp(r.data().data(), payload.data(), payload.size()))) {
            std::fprintf(stderr, "step %zu: payload of %zu bytes changed\n", i, payload.size());
            return 1;
        }
        ++(s.from_initiator ? queries : responses);
    }
    std::printf("sent %zu queries %zu responses %zu answered %llu\n", steps.size(), queries,
                responses, static_cast<unsigned long long>(responder.counters().answered));
    return 0;
}
