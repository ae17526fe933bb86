// Interop: reed_solomon_fec<fec_framing::kcp_go> under peerlink's KCP core
// against a real kcp-go session with FEC 10/3 (tests/interop/kcpfec/main.go), on
// loopback, with 10% of the datagrams dropped on both sides: ours before they
// leave (kcp-go's FEC decoder must rebuild them), kcp-go's before they leave
// (ours must). The data is echoed, so it crosses the lossy link both ways.
// Skipped (with a warning) when Go or the kcp-go package is not installed.
#include <peerlink/policy/reed_solomon_fec.hpp>

#include <peerlink/proto/kcp.hpp>

#include "catch.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace {

using peerlink::fec_framing;
using peerlink::packet_buffer;
using fec_type = peerlink::reed_solomon_fec<fec_framing::kcp_go>;

std::byte pattern(std::size_t i) {
    return static_cast<std::byte>(((i * 131) ^ (i >> 9) ^ (i >> 17)) & 0xff);
}

// "key":number pairs of a flat JSON object.
std::map<std::string, long long> parse_json_numbers(const std::string& line) {
    std::map<std::string, long long> out;
    std::size_t i = 0;
    while ((i = line.find('"', i)) != std::string::npos) {
        auto end = line.find('"', i + 1);
        if (end == std::string::npos)
            break;
        auto key = line.substr(i + 1, end - i - 1);
        auto colon = line.find(':', end);
        if (colon == std::string::npos)
            break;
        out[key] = std::atoll(line.c_str() + colon + 1);
        i = colon;
    }
    return out;
}

std::filesystem::path source_dir() {
#ifdef PEERLINK_TESTDATA
    return std::filesystem::path(PEERLINK_TESTDATA) / "..";
#else
    return "tests";
#endif
}

} // namespace

TEST_CASE("reed_solomon_fec: kcp-go FEC 10/3 interop, both directions, 10% loss",
          "[fec][interop][kcpgo]") {
    const auto program = source_dir() / "interop" / "kcpfec" / "main.go";
    if (std::system("command -v go >/dev/null 2>&1") != 0 || !std::filesystem::exists(program) ||
        !std::filesystem::exists("/usr/share/gocode/src/github.com/xtaci/kcp-go/fec.go")) {
        WARN("go or golang-github-xtaci-kcp-dev missing: kcp-go FEC interop skipped");
        return;
    }
    const auto binary =
        std::filesystem::temp_directory_path() / ("peerlink_kcpfec_" + std::to_string(::getpid()));
    const std::string build = "GO111MODULE=off GOPATH=/usr/share/gocode GOFLAGS= go build -o " +
                              binary.string() + " " + program.string();
    REQUIRE(std::system(build.c_str()) == 0);
    FILE* peer = ::popen((binary.string() + " -listen 127.0.0.1:0 -ds 10 -ps 3 -loss 0.1 "
                                            "-seed 7 -timeout 60s")
                             .c_str(),
                         "r");
    REQUIRE(peer);
    char line[512] = {};
    REQUIRE(std::fgets(line, sizeof line, peer));
    std::string listening(line);
    REQUIRE(listening.rfind("listening 127.0.0.1:", 0) == 0);
    const int port = std::atoi(listening.c_str() + std::strlen("listening 127.0.0.1:"));
    REQUIRE(port > 0);

    int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    REQUIRE(fd >= 0);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(static_cast<std::uint16_t>(port));
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) == 0);

    // kcp-go with FEC: datagrams of 1400 bytes, 8 of them FEC header and size.
    peerlink::kcp_settings ks = peerlink::kcp_turbo;
    ks.conv = 0x5eed1234;
    ks.mtu = 1400 - 8;
    ks.stream = true;
    ks.ack_nodelay = true;
    auto start = std::chrono::steady_clock::now();
    peerlink::kcp_core kcp(ks, start);
    peerlink::fec_config fc;
    fc.enabled = true;
    fc.data_shards = 10;
    fc.parity_shards = 3;
    fc.max_payload = ks.mtu;
    std::error_code ec;
    fec_type fec(fc, ec);
    REQUIRE(!ec);

    std::mt19937 rng(11);
    std::bernoulli_distribution drop(0.10);
    std::size_t dropped = 0, sent_datagrams = 0;
    auto transmit = [&](packet_buffer& p) {
        ++sent_datagrams;
        if (drop(rng)) {
            ++dropped;
            return;
        }
        (void)::send(fd, p.data().data(), p.size(), 0);
    };

    const std::size_t total = 1 << 20;
    std::vector<std::byte> stream(8 + total);
    for (int i = 0; i < 8; ++i)
        stream[static_cast<std::size_t>(i)] = static_cast<std::byte>((total >> (8 * i)) & 0xff);
    for (std::size_t i = 0; i < total; ++i)
        stream[8 + i] = pattern(i);
    std::size_t queued = 0, echoed = 0, mismatches = 0;
    bool bye_queued = false;
    const auto deadline = start + std::chrono::seconds(45);
    std::array<std::byte, 2048> out{}, in{};
    std::vector<std::byte> rx(64 * 1024);

    while (std::chrono::steady_clock::now() < deadline) {
        auto now = std::chrono::steady_clock::now();
        while (queued < stream.size() && kcp.send_capacity() > 0) {
            auto n = std::min({kcp.send_capacity(), stream.size() - queued, std::size_t{65536}});
            REQUIRE(!kcp.send(std::span(stream).subspan(queued, n)));
            queued += n;
        }
        if (echoed == total && !bye_queued) {
            const std::byte bye[] = {std::byte{'B'}};
            REQUIRE(!kcp.send(bye));
            bye_queued = true;
        }
        if (bye_queued && kcp.waiting_segments() == 0)
            break; // kcp-go acknowledged the bye
        kcp.handle_timeout(now);
        while (true) {
            packet_buffer p(out, fec_type::max_overhead);
            std::size_t n = kcp.poll_transmit(p.storage().subspan(fec_type::max_overhead));
            if (n == 0)
                break;
            p.resize(n);
            REQUIRE(!fec.encode(p, now));
            transmit(p);
            std::array<std::byte, 2048> ps{};
            packet_buffer q(ps, fec_type::max_overhead);
            while (fec.poll_parity(q)) {
                transmit(q);
                q = packet_buffer(ps, fec_type::max_overhead);
            }
        }
        // Wait for a datagram or the core's next timer, at most 5 ms.
        auto wait = std::chrono::milliseconds(5);
        if (auto t = kcp.poll_timeout())
            wait = std::clamp(std::chrono::duration_cast<std::chrono::milliseconds>(*t - now),
                              std::chrono::milliseconds(0), wait);
        pollfd pfd{fd, POLLIN, 0};
        ::poll(&pfd, 1, static_cast<int>(wait.count()));
        while (true) {
            ssize_t n = ::recv(fd, in.data(), in.size(), 0);
            if (n <= 0)
                break;
            now = std::chrono::steady_clock::now();
            packet_buffer p(in, 0);
            p.resize(static_cast<std::size_t>(n));
            REQUIRE(!fec.decode(p, now));
            if (!p.empty())
                (void)kcp.input(p.data(), now);
            while (fec.poll_recovered(p))
                (void)kcp.input(p.data(), now);
        }
        while (true) {
            std::error_code rec;
            std::size_t n = kcp.receive(rx, rec);
            if (n == 0)
                break;
            for (std::size_t i = 0; i < n && echoed + i < total; ++i)
                mismatches += rx[i] != pattern(echoed + i) ? 1 : 0;
            echoed += n;
        }
    }
    ::close(fd);

    std::string result;
    while (std::fgets(line, sizeof line, peer))
        result += line;
    const int status = ::pclose(peer);
    std::filesystem::remove(binary);

    INFO("kcp-go said: " << result);
    INFO("our stats: recovered " << fec.stats().recovered << ", parity received "
                                 << fec.stats().parity_received << ", dropped by us " << dropped
                                 << " of " << sent_datagrams);
    CHECK(echoed == total);
    CHECK(mismatches == 0);
    CHECK(status == 0);
    auto go = parse_json_numbers(result);
    CHECK(go["echoed"] == static_cast<long long>(total));
    // Our losses were rebuilt by kcp-go's FEC decoder...
    CHECK(dropped > 50);
    CHECK(go["fec_recovered"] > 20);
    CHECK(go["fec_errs"] == 0);
    // ...and kcp-go's losses by ours.
    CHECK(go["dropped"] > 50);
    CHECK(fec.stats().recovered > 20);
    CHECK(fec.stats().parity_received > 50);
    CHECK(fec.stats().malformed == 0);
    CHECK(fec.stats().inconsistent == 0);
    CHECK(fec.stats().ratio_mismatch == 0);
}
