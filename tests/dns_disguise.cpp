#include <peerlink/policy/dns_disguise.hpp>

#include <peerlink/proto/dns_wrap.hpp>

#include "catch.hpp"

#include <algorithm>
#include <cstdint>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace dns = peerlink::dns;
using peerlink::dns_disguise;
using peerlink::dns_wrap_error;
using peerlink::packet_buffer;

namespace {

using bytes = std::vector<std::byte>;

// Owns storage with room on both sides, like a transmit slot of the connection.
struct slot {
    bytes storage;
    packet_buffer p;
    explicit slot(const bytes& payload, std::size_t room = 2 * dns_disguise::max_overhead)
        : storage(payload.size() + 2 * room), p(storage, room) {
        p.append(payload);
    }
    bytes data() const { return {p.data().begin(), p.data().end()}; }
};

bytes random_bytes(std::size_t n, std::mt19937& rng) {
    bytes b(n);
    for (auto& x : b)
        x = static_cast<std::byte>(rng() & 0xff);
    return b;
}

unsigned u8(std::byte b) {
    return static_cast<unsigned>(b);
}
unsigned u16(const bytes& b, std::size_t off) {
    return u8(b[off]) << 8 | u8(b[off + 1]);
}

std::pair<dns_disguise, dns_disguise> pair_of(std::uint64_t seed) {
    std::pair<dns_disguise, dns_disguise> ab{dns_disguise(seed), dns_disguise(seed + 1)};
    ab.first.configure(true);
    ab.second.configure(false);
    return ab;
}

bool is_base32(unsigned c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '2' && c <= '7');
}

// Default domain "cdn.example.com": 17 encoded bytes at offset 25.
constexpr std::size_t d_size = 17;
constexpr std::size_t q_off = 12 + 13 + d_size; // QTYPE

// Whether flipping `bit` of byte `pos` of a wrapped message must still unwrap: the
// fields "What the receiver checks" in proto/dns_wrap.hpp says are ignored, and the
// payload. Every other flip must be rejected.
bool flip_accepted(const bytes& m, bool response, std::size_t pos, unsigned bit) {
    const unsigned v = u8(m[pos]);
    const unsigned flipped = v ^ (1u << bit);
    if (pos < 2)
        return true; // ID
    if (pos == 2)
        return bit == 0 || bit == 2; // RD, AA (QR, opcode, TC checked)
    if (pos == 3)
        return bit >= 4; // RA, Z, AD, CD (rcode checked)
    if (pos < 13)
        return false; // counts, label length
    if (pos < 25)
        return is_base32(flipped);
    if (pos < 25 + d_size) // domain: case flips of letters only
        return bit == 5 && ((v >= 'a' && v <= 'z') || (v >= 'A' && v <= 'Z'));
    std::size_t o = q_off + 4; // after QTYPE, QCLASS
    if (pos < o)
        return false;
    if (!response) {
        // OPT: name, type (reject), class, TTL (ignored), RDLENGTH, option header (reject).
        if (pos < o + 3)
            return false;
        if (pos < o + 9)
            return true;
        return pos >= o + 15;
    }
    // Answer: name, type, class (reject), TTL (ignored), RDLENGTH (reject).
    if (pos < o + 6)
        return false;
    if (pos < o + 10)
        return true;
    if (pos < o + 12)
        return false;
    const std::size_t rdata = o + 12;
    const std::size_t rdlength = u16(m, o + 10);
    if (pos < rdata + rdlength) {
        std::size_t s = rdata;
        while (s + 1 + u8(m[s]) <= pos)
            s += 1 + u8(m[s]);
        if (pos == s)
            return false; // string length
        if (pos == s + 1)
            return flipped != 0; // key byte: any nonzero value decodes
        return true;             // data
    }
    const std::size_t opt = rdata + rdlength;
    return pos >= opt + 3 && pos < opt + 9; // OPT class and TTL
}

} // namespace

TEST_CASE("dns: a query has the documented byte layout", "[dns]") {
    bytes payload{std::byte{0xaa}, std::byte{0xbb}, std::byte{0xcc}};
    slot s(payload);
    const auto q = dns::make_question(0x1234, 0);
    dns::params cfg;
    REQUIRE(!dns::wrap_query(s.p, q, cfg));
    const auto m = s.data();
    REQUIRE(m.size() == payload.size() + 61);
    CHECK(dns::query_overhead(cfg.domain.size()) == 61);
    CHECK(u16(m, 0) == 0x1234);
    CHECK(u16(m, 2) == 0x0100);
    CHECK((u16(m, 4) == 1 && u16(m, 6) == 0 && u16(m, 8) == 0 && u16(m, 10) == 1));
    CHECK(u8(m[12]) == 12);
    CHECK(std::string(reinterpret_cast<const char*>(m.data()) + 13, 12) == "aaaaaaaaaaaa");
    const char domain[] = "\3cdn\7example\3com";
    CHECK(std::equal(m.begin() + 25, m.begin() + 25 + 17,
                     reinterpret_cast<const std::byte*>(domain)));
    CHECK(u16(m, 42) == 16); // TXT
    CHECK(u16(m, 44) == 1);  // IN
    CHECK(u8(m[46]) == 0);   // OPT owner: root
    CHECK(u16(m, 47) == 41);
    CHECK(u16(m, 49) == 4096);
    CHECK((u16(m, 51) == 0 && u16(m, 53) == 0));
    CHECK(u16(m, 55) == payload.size() + 4);
    CHECK(u16(m, 57) == 65001);
    CHECK(u16(m, 59) == payload.size());
    CHECK(std::equal(m.begin() + 61, m.end(), payload.begin()));
    CHECK(dns::make_question(0, 0x0123456789abcdefull).label ==
          std::array<char, 12>{'c', 'i', '2', 'f', 'm', '6', 'e', '2', 'x', 't', 'p', 'p'});
}

TEST_CASE("dns: a response has the documented byte layout", "[dns]") {
    std::mt19937 rng(7);
    dns::params cfg;
    const auto q = dns::make_question(0xbeef, 12345);
    for (std::size_t n : {0u, 1u, 254u, 255u, 600u, 1400u}) {
        CAPTURE(n);
        const auto payload = random_bytes(n, rng);
        slot s(payload);
        REQUIRE(!dns::wrap_response(s.p, q, cfg));
        const auto m = s.data();
        const std::size_t k = dns::txt_strings(n);
        REQUIRE(m.size() == n + 69 + 2 * k);
        CHECK(m.size() - n == dns::response_overhead(n, cfg.domain.size()));
        CHECK(u16(m, 0) == 0xbeef);
        CHECK(u16(m, 2) == 0x8180);
        CHECK((u16(m, 4) == 1 && u16(m, 6) == 1 && u16(m, 8) == 0 && u16(m, 10) == 1));
        CHECK(u16(m, 46) == 0xc00c);
        CHECK(u16(m, 48) == 16);
        CHECK(u16(m, 50) == 1);
        CHECK((u16(m, 52) == 0 && u16(m, 54) == 60));
        CHECK(u16(m, 56) == n + 2 * k);
        // Strings: full ones of 255, a shorter last one; no zero byte anywhere in them.
        std::size_t off = 58;
        bytes decoded;
        for (std::size_t i = 0; i < k; ++i) {
            const std::size_t len = u8(m[off]);
            CHECK(len == (i + 1 < k ? 255u : n - i * 254 + 1));
            const auto key = m[off + 1];
            CHECK(key != std::byte{0});
            for (std::size_t j = 2; j <= len; ++j) {
                CHECK(m[off + j] != std::byte{0});
                decoded.push_back(m[off + j] ^ key);
            }
            off += 1 + len;
        }
        CHECK(decoded == payload);
        REQUIRE(m.size() == off + 11);
        CHECK((u8(m[off]) == 0 && u16(m, off + 1) == 41 && u16(m, off + 3) == 4096));
        CHECK(u16(m, off + 9) == 0);
    }
    CHECK(dns::response_overhead(1400, 17) == 81);
    CHECK(dns::response_overhead(0, 17) == 71);
}

TEST_CASE("dns: payloads of 0..1500 bytes round-trip in both roles", "[dns]") {
    std::mt19937 rng(1);
    auto [client, server] = pair_of(100);
    for (std::size_t n = 0; n <= 1500; ++n) {
        CAPTURE(n);
        const auto payload = random_bytes(n, rng);
        slot up(payload);
        REQUIRE(!client.wrap(up.p));
        REQUIRE(up.p.size() == n + 61);
        REQUIRE(dns::is_wrapped(up.p.data()));
        REQUIRE(!server.unwrap(up.p));
        REQUIRE(up.data() == payload);

        slot down(payload);
        REQUIRE(!server.wrap(down.p));
        REQUIRE(down.p.size() == n + dns::response_overhead(n, 17));
        if (n <= dns::overhead_bound_payload)
            REQUIRE(down.p.size() - n <= dns_disguise::max_overhead);
        REQUIRE(!client.unwrap(down.p));
        REQUIRE(down.data() == payload);
    }
    CHECK(client.counters().wrapped == 1501);
    CHECK(client.counters().unwrapped == 1501);
    CHECK(server.counters().answered == 1501);
    CHECK(client.counters().rejected + server.counters().rejected == 0);

    // Payloads with every byte value, or none but one, still find a key per chunk.
    for (int fill : {0x00, 0x01, 0xff}) {
        bytes payload(1400, static_cast<std::byte>(fill));
        for (std::size_t i = 0; i < 1400 && fill == 0x01; ++i)
            payload[i] = static_cast<std::byte>(i % 254 + 1); // 254 values per chunk
        slot s(payload);
        REQUIRE(!server.wrap(s.p));
        REQUIRE(!client.unwrap(s.p));
        CHECK(s.data() == payload);
    }
}

TEST_CASE("dns: the largest payloads round-trip, larger ones are refused", "[dns]") {
    dns::params cfg;
    const auto q = dns::make_question(1, 2);
    std::mt19937 rng(3);
    {
        const auto payload = random_bytes(dns::max_response_payload, rng);
        slot s(payload, 600);
        REQUIRE(!dns::wrap_response(s.p, q, cfg));
        dns::question got;
        REQUIRE(!dns::unwrap_response(s.p, cfg, got));
        CHECK(got == q);
        CHECK(s.data() == payload);
        slot big(random_bytes(dns::max_response_payload + 1, rng), 600);
        CHECK(dns::wrap_response(big.p, q, cfg) == peerlink::error::message_too_large);
    }
    {
        const auto payload = random_bytes(dns::max_query_payload, rng);
        slot s(payload);
        REQUIRE(!dns::wrap_query(s.p, q, cfg));
        dns::question got;
        REQUIRE(!dns::unwrap_query(s.p, cfg, got));
        CHECK(got == q);
        CHECK(s.data() == payload);
        slot big(random_bytes(dns::max_query_payload + 1, rng));
        CHECK(dns::wrap_query(big.p, q, cfg) == peerlink::error::message_too_large);
    }
}

TEST_CASE("dns: every truncation and extension of a valid message is rejected", "[dns]") {
    std::mt19937 rng(5);
    auto [client, server] = pair_of(200);
    for (bool response : {false, true}) {
        CAPTURE(response);
        const auto payload = random_bytes(600, rng);
        slot s(payload);
        REQUIRE(!(response ? server : client).wrap(s.p));
        const auto m = s.data();
        auto& receiver = response ? client : server;
        const auto rejected = receiver.counters().rejected;
        for (std::size_t len = 0; len < m.size(); ++len) {
            CAPTURE(len);
            slot t(bytes(m.begin(), m.begin() + static_cast<std::ptrdiff_t>(len)));
            const auto before = t.data();
            const auto ec = receiver.unwrap(t.p);
            REQUIRE(ec);
            CHECK(ec == peerlink::condition::malformed_input);
            CHECK(t.data() == before); // unchanged on error
        }
        CHECK(receiver.counters().rejected - rejected == m.size());
        bytes longer = m;
        longer.push_back(std::byte{0});
        slot t(longer);
        CHECK(receiver.unwrap(t.p) == dns_wrap_error::trailing_bytes);
    }
}

TEST_CASE("dns: bit flips are rejected unless they hit an ignored field", "[dns]") {
    std::mt19937 rng(9);
    auto [client, server] = pair_of(300);
    for (bool response : {false, true}) {
        CAPTURE(response);
        const auto payload = random_bytes(response ? 600 : 300, rng);
        slot s(payload);
        REQUIRE(!(response ? server : client).wrap(s.p));
        const auto m = s.data();
        auto& receiver = response ? client : server;
        std::size_t rejected = 0;
        for (std::size_t pos = 0; pos < m.size(); ++pos) {
            for (unsigned bit = 0; bit < 8; ++bit) {
                CAPTURE(pos, bit);
                bytes f = m;
                f[pos] ^= static_cast<std::byte>(1u << bit);
                slot t(f);
                const auto ec = receiver.unwrap(t.p);
                REQUIRE(!ec == flip_accepted(m, response, pos, bit));
                if (ec) {
                    ++rejected;
                    CHECK(t.data() == f);
                } else {
                    CHECK(t.p.size() == payload.size());
                }
            }
        }
        CHECK(rejected > 8 * 40); // the header, question and record fields at least
    }
}

TEST_CASE("dns: a message of the wrong direction is rejected", "[dns]") {
    auto [client, server] = pair_of(400);
    bytes payload(100, std::byte{0x42});
    slot q(payload);
    REQUIRE(!client.wrap(q.p));
    const auto query = q.data();
    CHECK(client.unwrap(q.p) == dns_wrap_error::wrong_direction); // a query at the initiator
    CHECK(q.data() == query);
    CHECK(client.counters().rejected == 1);

    slot r(payload);
    REQUIRE(!server.wrap(r.p));
    const auto response = r.data();
    CHECK(server.unwrap(r.p) == dns_wrap_error::wrong_direction); // a response at the responder
    CHECK(r.data() == response);
    CHECK(server.counters().rejected == 1);

    // The free functions agree.
    dns::question got;
    slot q2(query);
    CHECK(dns::unwrap_response(q2.p, {}, got) == dns_wrap_error::wrong_direction);
    slot r2(response);
    CHECK(dns::unwrap_query(r2.p, {}, got) == dns_wrap_error::wrong_direction);
}

TEST_CASE("dns: IDs and labels vary and do not repeat", "[dns]") {
    auto [client, server] = pair_of(500);
    std::set<unsigned> ids;
    std::set<std::string> labels;
    std::vector<unsigned> sequence;
    for (int i = 0; i < 4096; ++i) {
        slot s(bytes(1, std::byte{1}));
        REQUIRE(!client.wrap(s.p));
        const auto m = s.data();
        ids.insert(u16(m, 0));
        sequence.push_back(u16(m, 0));
        labels.insert(std::string(reinterpret_cast<const char*>(m.data()) + 13, 12));
    }
    CHECK(ids.size() == 4096); // a permutation: no repeat within 65536 queries
    CHECK(labels.size() == 4096);
    // Not a counter: consecutive IDs are not one apart.
    std::size_t steps = 0;
    for (std::size_t i = 1; i < sequence.size(); ++i)
        steps += (sequence[i] - sequence[i - 1]) % 65536 == 1;
    CHECK(steps < 10);

    // The same seed gives the same sequence, another seed another one.
    dns_disguise same(500), other(501);
    slot a(bytes{}), b(bytes{});
    REQUIRE(!same.wrap(a.p));
    REQUIRE(!other.wrap(b.p));
    CHECK(u16(a.data(), 0) == sequence[0]);
    CHECK(a.data() != b.data());
    // Default construction seeds from OpenSSL: two policies differ.
    dns_disguise r1, r2;
    slot c(bytes{}), d(bytes{});
    REQUIRE(!r1.wrap(c.p));
    REQUIRE(!r2.wrap(d.p));
    CHECK(c.data() != d.data());
}

TEST_CASE("dns: the responder answers received queries, then uses fresh IDs", "[dns]") {
    auto [client, server] = pair_of(600);
    std::vector<bytes> queries;
    for (int i = 0; i < 3; ++i) {
        slot s(bytes(10, std::byte{1}));
        REQUIRE(!client.wrap(s.p));
        queries.push_back(s.data());
        REQUIRE(!server.unwrap(s.p));
    }
    std::set<unsigned> query_ids;
    for (const auto& q : queries)
        query_ids.insert(u16(q, 0));
    for (int i = 0; i < 5; ++i) {
        slot s(bytes(10, std::byte{2}));
        REQUIRE(!server.wrap(s.p));
        const auto m = s.data();
        if (i < 3) { // same ID and question as query i
            CHECK(std::equal(m.begin(), m.begin() + 2, queries[i].begin()));
            CHECK(std::equal(m.begin() + 12, m.begin() + 46, queries[i].begin() + 12));
        } else {
            CHECK(query_ids.count(u16(m, 0)) == 0);
        }
        REQUIRE(!client.unwrap(s.p));
    }
    CHECK(server.counters().answered == 3);

    // More queries than it remembers: the oldest are dropped, the newest answered.
    std::vector<unsigned> ids;
    for (std::size_t i = 0; i < dns_disguise::pending_queries + 3; ++i) {
        slot s(bytes{});
        REQUIRE(!client.wrap(s.p));
        ids.push_back(u16(s.data(), 0));
        REQUIRE(!server.unwrap(s.p));
    }
    for (std::size_t i = 0; i < dns_disguise::pending_queries; ++i) {
        slot s(bytes{});
        REQUIRE(!server.wrap(s.p));
        CHECK(u16(s.data(), 0) == ids[i + 3]);
    }

    // Fresh IDs avoid every query ID seen, also with many of them.
    std::set<unsigned> seen;
    for (int i = 0; i < 20000; ++i) {
        slot s(bytes{});
        REQUIRE(!client.wrap(s.p));
        seen.insert(u16(s.data(), 0));
        REQUIRE(!server.unwrap(s.p));
    }
    for (std::size_t i = 0; i < dns_disguise::pending_queries; ++i) {
        slot s(bytes{});
        REQUIRE(!server.wrap(s.p)); // drain the pending answers
    }
    int collisions = 0;
    for (int i = 0; i < 20000; ++i) {
        slot s(bytes{});
        REQUIRE(!server.wrap(s.p));
        collisions += static_cast<int>(seen.count(u16(s.data(), 0)));
    }
    CHECK(collisions == 0);
}

TEST_CASE("dns: disabled, the policy passes packets through untouched", "[dns]") {
    auto [client, server] = pair_of(700);
    client.set_enabled(false);
    server.set_enabled(false);
    CHECK(!client.enabled());
    const bytes payload{std::byte{1}, std::byte{2}, std::byte{3}};
    slot s(payload);
    const auto head = s.p.headroom();
    REQUIRE(!client.wrap(s.p));
    CHECK(s.data() == payload);
    CHECK(s.p.headroom() == head);
    REQUIRE(!server.unwrap(s.p));
    CHECK(s.data() == payload);
    CHECK(client.counters().wrapped == 0);
    CHECK(server.counters().unwrapped == 0);

    // A disguised packet reaching a disabled side is left as it is, too.
    server.set_enabled(true);
    slot r(payload);
    REQUIRE(!server.wrap(r.p));
    const auto wrapped = r.data();
    REQUIRE(!client.unwrap(r.p));
    CHECK(r.data() == wrapped);
    client.set_enabled(true);
    REQUIRE(!client.unwrap(r.p));
    CHECK(r.data() == payload);
}

TEST_CASE("dns: domain and option code must match on both sides", "[dns]") {
    auto [client, server] = pair_of(800);
    CHECK(client.set_domain("updates.example.org.") == std::error_code{});
    CHECK(client.params().domain.to_string() == "updates.example.org");
    slot s(bytes(5, std::byte{9}));
    REQUIRE(!client.wrap(s.p));
    const auto m = s.data();
    CHECK(m.size() == 5 + 44 + 21);
    CHECK(server.unwrap(s.p) == dns_wrap_error::wrong_name);
    REQUIRE(!server.set_domain("Updates.EXAMPLE.org"));
    REQUIRE(!server.unwrap(s.p));

    REQUIRE(!client.set_option_code(65100));
    slot t(bytes(5, std::byte{9}));
    REQUIRE(!client.wrap(t.p));
    CHECK(server.unwrap(t.p) == dns_wrap_error::wrong_option);
    REQUIRE(!server.set_option_code(65100));
    CHECK(!server.unwrap(t.p));

    // Upper-case names on the wire (DNS 0x20 by a middlebox) are accepted.
    slot u(bytes(5, std::byte{9}));
    REQUIRE(!client.wrap(u.p));
    for (std::size_t i = 13; i < 13 + 12 + 21; ++i) {
        auto c = static_cast<unsigned char>(u.p.data()[i]);
        if (c >= 'a' && c <= 'z')
            u.p.data()[i] = static_cast<std::byte>(c - 32);
    }
    CHECK(!server.unwrap(u.p));

    using peerlink::error;
    for (const char* bad : {"", ".", "a..b", "-a.com", "a-.com", "a_b.com", "ex ample.com",
                            "this-domain-name-is-far-too-long.example.com"}) {
        CAPTURE(bad);
        CHECK(client.set_domain(bad) == error::invalid_config);
    }
    CHECK(client.params().domain.to_string() == "updates.example.org");      // unchanged
    CHECK(client.set_domain(std::string(63, 'a')) == error::invalid_config); // 65 bytes
    CHECK(!client.set_domain(std::string(30, 'a'))); // 32 bytes: the longest
    CHECK(client.set_option_code(65000) == error::invalid_config);
    CHECK(client.set_option_code(65535) == error::invalid_config);
    CHECK(client.params().option_code == 65100);
}

TEST_CASE("dns: max_overhead bounds every wrap up to the documented payload", "[dns]") {
    STATIC_REQUIRE(dns_disguise::max_overhead == 96);
    STATIC_REQUIRE(dns::query_overhead(dns::max_domain_size) <= dns_disguise::max_overhead);
    STATIC_REQUIRE(dns::response_overhead(dns::overhead_bound_payload, dns::max_domain_size) ==
                   dns_disguise::max_overhead);
    STATIC_REQUIRE(dns::overhead_bound_payload >= 1472);
    auto [client, server] = pair_of(900);
    REQUIRE(!client.set_domain(std::string(30, 'z')));
    REQUIRE(!server.set_domain(std::string(30, 'z')));
    for (std::size_t n : {0u, 1u, 1400u, 1472u, 1524u}) {
        CAPTURE(n);
        // Exactly max_overhead of room on each side is enough.
        bytes storage(n + 2 * dns_disguise::max_overhead);
        for (auto* side : {&client, &server}) {
            packet_buffer p(storage, dns_disguise::max_overhead);
            p.append(bytes(n, std::byte{3}));
            REQUIRE(!side->wrap(p));
            CHECK(p.size() - n <= dns_disguise::max_overhead);
        }
    }
    // Not enough room: refused, packet unchanged.
    bytes storage(100 + 60);
    packet_buffer p(storage, 60);
    p.append(bytes(100, std::byte{4}));
    CHECK(client.wrap(p) == peerlink::error::buffer_too_small);
    CHECK(server.wrap(p) == peerlink::error::buffer_too_small);
    CHECK((p.size() == 100 && p.headroom() == 60));
    CHECK(client.counters().wrapped == 5);
}

TEST_CASE("dns: looks_like_dns_disguise tells disguised packets from others", "[dns]") {
    std::mt19937 rng(11);
    auto [client, server] = pair_of(1000);
    int hits = 0;
    for (int i = 0; i < 2000; ++i) {
        const auto payload = random_bytes(rng() % 1400, rng);
        CHECK(!peerlink::looks_like_dns_disguise(payload));
        slot s(payload);
        REQUIRE(!(i % 2 ? client : server).wrap(s.p));
        hits += peerlink::looks_like_dns_disguise(s.p.data());
    }
    CHECK(hits == 2000);
    CHECK(!peerlink::looks_like_dns_disguise({}));
}

TEST_CASE("dns: errors have messages and map to malformed_input", "[dns]") {
    for (int e = 1; e <= static_cast<int>(dns_wrap_error::trailing_bytes); ++e) {
        const std::error_code ec = static_cast<dns_wrap_error>(e);
        CHECK(ec == peerlink::condition::malformed_input);
        CHECK(ec.message().find("unknown") == std::string::npos);
    }
    CHECK(std::string(peerlink::dns_wrap_error_category().name()) == "peerlink.dns_wrap");
}
