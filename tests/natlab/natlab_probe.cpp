// natlab_probe: the NAT lab's own measuring tool (no peerlink dependency).
//
//   natlab_probe reflect --addr IP1 --addr IP2 --port P1 --port P2
//       On the public host: answers on IP{1,2} x P{1,2} (UDP) and on IP1:P1 (TCP).
//       "BIND <id> [ip] [port]"  -> "MAPPED <id> <seen ip:port> <reply origin ip:port>",
//           sent from the other address and/or port when "ip"/"port" is asked for.
//       "REG <session> <side>"   -> rendezvous: once both sides of a session have
//           registered, "PEER <session> <other side's mapped ip:port>" goes to both.
//       TCP: writes "MAPPED tcp <seen ip:port>\n" and closes.
//   natlab_probe classify --server IP1 --alt-server IP2 --port P1 --alt-port P2
//                         [--local-port N] [--filtering 0] [--tries 2] [--wait-ms 250]
//       Classifies the NAT in front of this host (RFC 4787 / RFC 5780 behaviour);
//       --filtering 0 measures the mapping only.
//   natlab_probe punch --server IP:P --session S --side a|b [--local-port N]
//       Simple simultaneous hole punch between two hosts via the reflector's rendezvous.
//   natlab_probe tcp-check --server IP:P
//       One TCP exchange with the reflector (proves TCP passes the NAT).
//   natlab_probe ct-flush
//       Deletes every IPv4 conntrack entry of the current network namespace (a NAT
//       "reboot": the next packet of every flow gets a fresh mapping).
//
// Output is "key=value" lines for scripts. Exit status: 0 success, 1 measured failure
// (no punch, no TCP answer), 2 usage or system error.
#include <arpa/inet.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <linux/netlink.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

using steady = std::chrono::steady_clock;

[[noreturn]] void die(const std::string& what) {
    std::fprintf(stderr, "natlab_probe: %s: %s\n", what.c_str(), std::strerror(errno));
    std::exit(2);
}

[[noreturn]] void usage(const std::string& what) {
    std::fprintf(stderr, "natlab_probe: %s (see the comment at the top of natlab_probe.cpp)\n",
                 what.c_str());
    std::exit(2);
}

struct addr4 {
    std::uint32_t ip = 0;   // network order
    std::uint16_t port = 0; // host order

    friend bool operator==(const addr4&, const addr4&) = default;
    friend auto operator<=>(const addr4&, const addr4&) = default;

    sockaddr_in to_sockaddr() const {
        sockaddr_in sa{};
        sa.sin_family = AF_INET;
        sa.sin_addr.s_addr = ip;
        sa.sin_port = htons(port);
        return sa;
    }
    static addr4 from_sockaddr(const sockaddr_in& sa) {
        return addr4{sa.sin_addr.s_addr, ntohs(sa.sin_port)};
    }
    std::string ip_string() const {
        char buf[INET_ADDRSTRLEN] = {};
        in_addr a{};
        a.s_addr = ip;
        ::inet_ntop(AF_INET, &a, buf, sizeof buf);
        return buf;
    }
    std::string to_string() const { return ip_string() + ":" + std::to_string(port); }
};

std::optional<std::uint32_t> parse_ip(const std::string& s) {
    in_addr a{};
    if (::inet_pton(AF_INET, s.c_str(), &a) != 1)
        return std::nullopt;
    return a.s_addr;
}

std::optional<std::uint16_t> parse_port(const std::string& s) {
    char* end = nullptr;
    unsigned long v = std::strtoul(s.c_str(), &end, 10);
    if (s.empty() || *end != '\0' || v > 65535)
        return std::nullopt;
    return static_cast<std::uint16_t>(v);
}

std::optional<addr4> parse_addr(const std::string& s) {
    auto colon = s.rfind(':');
    if (colon == std::string::npos)
        return std::nullopt;
    auto ip = parse_ip(s.substr(0, colon));
    auto port = parse_port(s.substr(colon + 1));
    if (!ip || !port)
        return std::nullopt;
    return addr4{*ip, *port};
}

class fd_guard {
public:
    explicit fd_guard(int fd = -1) : fd_(fd) {}
    fd_guard(fd_guard&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
    fd_guard& operator=(fd_guard&& o) noexcept {
        if (this != &o) {
            reset();
            fd_ = std::exchange(o.fd_, -1);
        }
        return *this;
    }
    fd_guard(const fd_guard&) = delete;
    fd_guard& operator=(const fd_guard&) = delete;
    ~fd_guard() { reset(); }
    int get() const { return fd_; }
    void reset() {
        if (fd_ >= 0)
            ::close(fd_);
        fd_ = -1;
    }

private:
    int fd_;
};

fd_guard udp_socket(addr4 bind_to) {
    fd_guard s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (s.get() < 0)
        die("socket");
    int one = 1;
    ::setsockopt(s.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    auto sa = bind_to.to_sockaddr();
    if (::bind(s.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0)
        die("bind " + bind_to.to_string());
    return s;
}

void send_to(int fd, addr4 to, std::string_view msg) {
    auto sa = to.to_sockaddr();
    // Errors (ENETUNREACH, ECONNREFUSED from an ICMP error) are part of what is measured.
    (void)::sendto(fd, msg.data(), msg.size(), 0, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
}

// Waits up to `timeout` for a datagram on fd; returns it with its source.
std::optional<std::pair<std::string, addr4>> recv_from(int fd, std::chrono::milliseconds timeout) {
    pollfd p{fd, POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(timeout.count()));
    if (r <= 0)
        return std::nullopt;
    char buf[1500];
    sockaddr_in sa{};
    socklen_t len = sizeof sa;
    ssize_t n = ::recvfrom(fd, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&sa), &len);
    if (n < 0)
        return std::nullopt; // an ICMP error surfaced; the caller retries or times out
    return std::pair{std::string(buf, static_cast<std::size_t>(n)), addr4::from_sockaddr(sa)};
}

std::vector<std::string> split(const std::string& s) {
    std::istringstream in(s);
    std::vector<std::string> out;
    for (std::string w; in >> w;)
        out.push_back(w);
    return out;
}

addr4 local_address(int fd) {
    sockaddr_in sa{};
    socklen_t len = sizeof sa;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len) != 0)
        die("getsockname");
    return addr4::from_sockaddr(sa);
}

// The source address the kernel would pick toward `to` (a connected UDP socket sends nothing).
std::uint32_t source_ip_toward(addr4 to) {
    fd_guard s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    auto sa = to.to_sockaddr();
    if (::connect(s.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0)
        return 0;
    return local_address(s.get()).ip;
}

struct options {
    std::multimap<std::string, std::string> values;

    std::string get(const std::string& key, const std::string& fallback = {}) const {
        auto it = values.find(key);
        return it == values.end() ? fallback : it->second;
    }
    std::vector<std::string> all(const std::string& key) const {
        std::vector<std::string> out;
        auto [b, e] = values.equal_range(key);
        for (auto it = b; it != e; ++it)
            out.push_back(it->second);
        return out;
    }
    std::string need(const std::string& key) const {
        auto v = get(key);
        if (v.empty())
            usage("missing --" + key);
        return v;
    }
    int number(const std::string& key, int fallback) const {
        auto v = get(key);
        return v.empty() ? fallback : std::atoi(v.c_str());
    }
};

options parse_options(int argc, char** argv, int first) {
    options o;
    for (int i = first; i < argc; ++i) {
        std::string k = argv[i];
        if (k.rfind("--", 0) != 0 || i + 1 >= argc)
            usage("bad argument '" + k + "'");
        o.values.emplace(k.substr(2), argv[++i]);
    }
    return o;
}

// ---------------------------------------------------------------------------------- reflect

int run_reflect(const options& o) {
    auto ip_strings = o.all("addr");
    auto port_strings = o.all("port");
    if (ip_strings.size() != 2 || port_strings.size() != 2)
        usage("reflect needs --addr twice and --port twice");
    std::uint32_t ips[2];
    std::uint16_t ports[2];
    for (int i = 0; i < 2; ++i) {
        auto ip = parse_ip(ip_strings[static_cast<std::size_t>(i)]);
        auto port = parse_port(port_strings[static_cast<std::size_t>(i)]);
        if (!ip || !port)
            usage("bad --addr or --port");
        ips[i] = *ip;
        ports[i] = *port;
    }
    // sockets[ip index][port index]
    fd_guard sockets[2][2];
    for (int i = 0; i < 2; ++i)
        for (int p = 0; p < 2; ++p)
            sockets[i][p] = udp_socket(addr4{ips[i], ports[p]});
    fd_guard listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    {
        int one = 1;
        ::setsockopt(listener.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        auto sa = addr4{ips[0], ports[0]}.to_sockaddr();
        if (::bind(listener.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 ||
            ::listen(listener.get(), 64) != 0)
            die("tcp listen");
    }
    std::printf("reflect=ready\n");
    std::fflush(stdout);

    struct registration {
        addr4 mapped;
        int ip_index;
        int port_index;
    };
    std::map<std::string, registration> sessions; // key: session + "/" + side
    for (;;) {
        pollfd fds[5];
        for (int i = 0; i < 4; ++i)
            fds[i] = pollfd{sockets[i / 2][i % 2].get(), POLLIN, 0};
        fds[4] = pollfd{listener.get(), POLLIN, 0};
        if (::poll(fds, 5, -1) < 0) {
            if (errno == EINTR)
                continue;
            die("poll");
        }
        if (fds[4].revents & POLLIN) {
            sockaddr_in sa{};
            socklen_t len = sizeof sa;
            fd_guard c(
                ::accept4(listener.get(), reinterpret_cast<sockaddr*>(&sa), &len, SOCK_CLOEXEC));
            if (c.get() >= 0) {
                auto line = "MAPPED tcp " + addr4::from_sockaddr(sa).to_string() + "\n";
                (void)::send(c.get(), line.data(), line.size(), MSG_NOSIGNAL);
            }
        }
        for (int i = 0; i < 4; ++i) {
            if (!(fds[i].revents & POLLIN))
                continue;
            int ip_index = i / 2, port_index = i % 2;
            auto got = recv_from(fds[i].fd, std::chrono::milliseconds(0));
            if (!got)
                continue;
            auto words = split(got->first);
            addr4 from = got->second;
            if (words.size() >= 2 && words[0] == "BIND") {
                int ri = ip_index, rp = port_index;
                for (std::size_t w = 2; w < words.size(); ++w) {
                    if (words[w] == "ip")
                        ri ^= 1;
                    else if (words[w] == "port")
                        rp ^= 1;
                }
                auto origin = addr4{ips[ri], ports[rp]};
                send_to(sockets[ri][rp].get(), from,
                        "MAPPED " + words[1] + " " + from.to_string() + " " + origin.to_string());
            } else if (words.size() == 3 && words[0] == "REG" &&
                       (words[2] == "a" || words[2] == "b")) {
                if (sessions.size() > 4096)
                    sessions.clear(); // bounded memory; sessions are short-lived
                const auto& session = words[1];
                auto other = session + "/" + (words[2] == "a" ? "b" : "a");
                sessions[session + "/" + words[2]] = registration{from, ip_index, port_index};
                auto it = sessions.find(other);
                if (it == sessions.end()) {
                    send_to(fds[i].fd, from, "WAIT " + session);
                    continue;
                }
                // Both sides known: tell both at once, so they start punching together.
                const auto& peer = it->second;
                send_to(fds[i].fd, from, "PEER " + session + " " + peer.mapped.to_string());
                send_to(sockets[peer.ip_index][peer.port_index].get(), peer.mapped,
                        "PEER " + session + " " + from.to_string());
            }
        }
    }
}

// --------------------------------------------------------------------------------- classify

struct prober {
    int fd;
    int tries;
    std::chrono::milliseconds wait;
    int next_id = 1;

    // Sends BIND (with change flags) to `to`; returns (mapped, origin) of the answer.
    std::optional<std::pair<addr4, addr4>> bind(addr4 to, const std::string& flags) {
        auto id = std::to_string(next_id++);
        for (int t = 0; t < tries; ++t) {
            send_to(fd, to, "BIND " + id + (flags.empty() ? "" : " " + flags));
            auto deadline = steady::now() + wait;
            while (steady::now() < deadline) {
                auto left =
                    std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now());
                auto got = recv_from(fd, left + std::chrono::milliseconds(1));
                if (!got)
                    continue;
                auto w = split(got->first);
                if (w.size() == 4 && w[0] == "MAPPED" && w[1] == id) {
                    auto mapped = parse_addr(w[2]);
                    auto origin = parse_addr(w[3]);
                    if (mapped && origin && *origin == got->second)
                        return std::pair{*mapped, *origin};
                }
            }
        }
        return std::nullopt;
    }
};

int run_classify(const options& o) {
    auto ip1 = parse_ip(o.need("server"));
    auto ip2 = parse_ip(o.need("alt-server"));
    auto p1 = parse_port(o.need("port"));
    auto p2 = parse_port(o.need("alt-port"));
    if (!ip1 || !ip2 || !p1 || !p2)
        usage("bad classify address");
    int tries = o.number("tries", 2);
    auto wait = std::chrono::milliseconds(o.number("wait-ms", 250));
    auto local_port = static_cast<std::uint16_t>(o.number("local-port", 0));
    addr4 s11{*ip1, *p1}, s21{*ip2, *p1}, s12{*ip1, *p2};

    auto sock = udp_socket(addr4{0, local_port});
    addr4 local{source_ip_toward(s11), local_address(sock.get()).port};
    std::printf("local=%s\n", local.to_string().c_str());
    prober pr{sock.get(), tries, wait};

    // Mapping: the same socket toward (ip1,p1), (ip2,p1), (ip1,p2).
    auto m1 = pr.bind(s11, "");
    if (!m1) {
        std::printf("mapping=none\nfiltering=none\nnat=udp-blocked\n");
        return 0;
    }
    auto m2 = pr.bind(s21, "");
    auto m3 = pr.bind(s12, "");
    std::printf("mapped_ip1_p1=%s\n", m1->first.to_string().c_str());
    std::printf("mapped_ip2_p1=%s\n", m2 ? m2->first.to_string().c_str() : "none");
    std::printf("mapped_ip1_p2=%s\n", m3 ? m3->first.to_string().c_str() : "none");
    std::string mapping;
    if (!m2 || !m3)
        mapping = "inconsistent";
    else if (m1->first == local && m2->first == local && m3->first == local)
        mapping = "no-nat";
    else if (m1->first == m2->first && m1->first == m3->first)
        mapping = "endpoint-independent";
    else if (m1->first == m3->first)
        mapping = "address-dependent";
    else
        mapping = "address-and-port-dependent";

    if (o.number("filtering", 1) == 0) {
        std::printf("mapping=%s\n", mapping.c_str());
        return 0;
    }

    // Filtering: a fresh socket that has only ever talked to (ip1,p1).
    auto fsock = udp_socket(addr4{0, 0});
    prober fp{fsock.get(), tries, wait};
    std::string filtering;
    if (!fp.bind(s11, ""))
        filtering = "inconsistent";
    else if (fp.bind(s11, "ip port"))
        filtering = "endpoint-independent";
    else if (fp.bind(s11, "port"))
        filtering = "address-dependent";
    else
        filtering = "address-and-port-dependent";

    std::string nat = "other";
    if (mapping == "no-nat")
        nat = filtering == "endpoint-independent" ? "none" : "firewall";
    else if (mapping == "endpoint-independent" && filtering == "endpoint-independent")
        nat = "full-cone";
    else if (mapping == "endpoint-independent" && filtering == "address-dependent")
        nat = "restricted-cone";
    else if (mapping == "endpoint-independent" && filtering == "address-and-port-dependent")
        nat = "port-restricted-cone";
    else if ((mapping == "address-dependent" || mapping == "address-and-port-dependent") &&
             filtering != "endpoint-independent")
        nat = "symmetric";
    std::printf("mapping=%s\nfiltering=%s\nnat=%s\n", mapping.c_str(), filtering.c_str(),
                nat.c_str());
    return 0;
}

// ------------------------------------------------------------------------------------ punch

int run_punch(const options& o) {
    auto server = parse_addr(o.need("server"));
    if (!server)
        usage("bad --server");
    auto session = o.need("session");
    auto side = o.need("side");
    if (side != "a" && side != "b")
        usage("--side is a or b");
    auto local_port = static_cast<std::uint16_t>(o.number("local-port", 0));
    auto rendezvous_ms = std::chrono::milliseconds(o.number("rendezvous-ms", 3000));
    auto duration = std::chrono::milliseconds(o.number("duration-ms", 2000));
    auto interval = std::chrono::milliseconds(o.number("interval-ms", 20));

    auto sock = udp_socket(addr4{0, local_port});
    std::printf("side=%s\nlocal=%s:%u\n", side.c_str(),
                addr4{source_ip_toward(*server), 0}.ip_string().c_str(),
                local_address(sock.get()).port);

    // Rendezvous: register every 50 ms until the reflector names the peer.
    std::optional<addr4> peer;
    auto start = steady::now();
    while (!peer && steady::now() - start < rendezvous_ms) {
        send_to(sock.get(), *server, "REG " + session + " " + side);
        auto until = steady::now() + std::chrono::milliseconds(50);
        while (!peer && steady::now() < until) {
            auto got = recv_from(sock.get(), std::chrono::milliseconds(10));
            if (!got || got->second != *server)
                continue;
            auto w = split(got->first);
            if (w.size() == 3 && w[0] == "PEER" && w[1] == session)
                peer = parse_addr(w[2]);
        }
    }
    if (!peer) {
        std::printf("peer=none\nreceived=0\nresult=no-rendezvous\n");
        return 1;
    }
    std::printf("peer=%s\n", peer->to_string().c_str());

    // Punch: send to every known address of the peer each interval; an address a punch
    // arrives from becomes a target too (peer-reflexive). Stop once both sides have heard
    // each other (the peer's "ack" flag), after a few more rounds so the peer hears our ack
    // (counted in rounds, not time: a loaded machine may sleep through a time window).
    const std::string other = side == "a" ? "b" : "a";
    std::set<addr4> targets{*peer};
    std::set<addr4> heard_from;
    int sent = 0, received = 0;
    bool peer_heard_us = false;
    std::optional<std::chrono::milliseconds> first_rx;
    int linger_rounds = -1; // rounds left to send once done; -1: not done yet
    auto punch_start = steady::now();
    auto next_send = punch_start;
    while (steady::now() - punch_start < duration) {
        auto now = steady::now();
        if (linger_rounds == 0)
            break;
        if (now >= next_send) {
            if (linger_rounds > 0)
                --linger_rounds;
            for (auto t : targets) {
                send_to(sock.get(), t,
                        "PUNCH " + session + " " + side + " " + std::to_string(sent) + " " +
                            (received > 0 ? "1" : "0"));
                ++sent;
            }
            next_send = now + interval;
        }
        auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next_send - now);
        auto got = recv_from(sock.get(), std::max(wait, std::chrono::milliseconds(1)));
        if (!got)
            continue;
        auto w = split(got->first);
        if (w.size() != 5 || w[0] != "PUNCH" || w[1] != session || w[2] != other)
            continue;
        if (received++ == 0)
            first_rx =
                std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - punch_start);
        heard_from.insert(got->second);
        targets.insert(got->second);
        if (w[4] == "1")
            peer_heard_us = true;
        if (received > 0 && peer_heard_us && linger_rounds < 0)
            linger_rounds = 5;
    }
    std::string from;
    for (auto a : heard_from)
        from += (from.empty() ? "" : ",") + a.to_string();
    std::printf("sent=%d\nreceived=%d\nfrom=%s\npeer_heard_us=%d\n", sent, received,
                from.empty() ? "none" : from.c_str(), peer_heard_us ? 1 : 0);
    if (first_rx)
        std::printf("first_rx_ms=%lld\n", static_cast<long long>(first_rx->count()));
    bool ok = received > 0 && peer_heard_us;
    std::printf("result=%s\n", ok ? "punched" : "failed");
    return ok ? 0 : 1;
}

// -------------------------------------------------------------------------------- tcp-check

int run_tcp_check(const options& o) {
    auto server = parse_addr(o.need("server"));
    if (!server)
        usage("bad --server");
    fd_guard s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    auto sa = server->to_sockaddr();
    if (::connect(s.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 &&
        errno != EINPROGRESS)
        die("connect");
    std::string line;
    auto deadline = steady::now() + std::chrono::milliseconds(o.number("wait-ms", 2000));
    while (steady::now() < deadline && line.find('\n') == std::string::npos) {
        pollfd p{s.get(), POLLIN, 0};
        if (::poll(&p, 1, 20) <= 0)
            continue;
        char buf[256];
        ssize_t n = ::recv(s.get(), buf, sizeof buf, 0);
        if (n <= 0)
            break;
        line.append(buf, static_cast<std::size_t>(n));
    }
    auto w = split(line);
    if (w.size() == 3 && w[0] == "MAPPED" && w[1] == "tcp") {
        std::printf("tcp_mapped=%s\nresult=ok\n", w[2].c_str());
        return 0;
    }
    std::printf("result=failed\n");
    return 1;
}

// --------------------------------------------------------------------------------- ct-flush

int run_ct_flush() {
    fd_guard s(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER));
    if (s.get() < 0)
        die("netlink socket");
    struct {
        nlmsghdr nh;
        nfgenmsg nfg;
    } req{};
    req.nh.nlmsg_len = sizeof req;
    req.nh.nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE;
    req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
    req.nh.nlmsg_seq = 1;
    req.nfg.nfgen_family = AF_INET;
    req.nfg.version = NFNETLINK_V0;
    sockaddr_nl kernel{};
    kernel.nl_family = AF_NETLINK;
    if (::sendto(s.get(), &req, sizeof req, 0, reinterpret_cast<sockaddr*>(&kernel),
                 sizeof kernel) < 0)
        die("netlink send");
    alignas(nlmsghdr) char buf[4096];
    ssize_t n = ::recv(s.get(), buf, sizeof buf, 0);
    if (n < static_cast<ssize_t>(sizeof(nlmsghdr) + sizeof(nlmsgerr)))
        die("netlink recv");
    auto* nh = reinterpret_cast<nlmsghdr*>(buf);
    if (nh->nlmsg_type == NLMSG_ERROR) {
        auto* err = reinterpret_cast<nlmsgerr*>(NLMSG_DATA(nh));
        if (err->error != 0) {
            errno = -err->error;
            die("conntrack flush");
        }
    }
    std::printf("result=flushed\n");
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    if (argc < 2)
        usage("missing mode (reflect, classify, punch, tcp-check, ct-flush)");
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    std::string mode = argv[1];
    auto o = parse_options(argc, argv, 2);
    if (mode == "reflect")
        return run_reflect(o);
    if (mode == "classify")
        return run_classify(o);
    if (mode == "punch")
        return run_punch(o);
    if (mode == "tcp-check")
        return run_tcp_check(o);
    if (mode == "ct-flush")
        return run_ct_flush();
    usage("unknown mode '" + mode + "'");
}
