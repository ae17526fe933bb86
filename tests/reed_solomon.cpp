#include <peerlink/proto/reed_solomon.hpp>

#include "catch.hpp"

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace gf = peerlink::detail::gf256;
using peerlink::fec_error;
using peerlink::gf_kernel;
using peerlink::reed_solomon;

namespace {

// GF(2^8) multiplication the slow way: carry-less multiply, reduce by 0x11d.
std::uint8_t slow_mul(std::uint8_t a, std::uint8_t b) {
    unsigned r = 0;
    for (unsigned i = 0; i < 8; ++i)
        if (b & (1u << i))
            r ^= static_cast<unsigned>(a) << i;
    for (unsigned bit = 15; bit >= 8; --bit)
        if (r & (1u << bit))
            r ^= 0x11du << (bit - 8);
    return static_cast<std::uint8_t>(r);
}

// What GF2P8AFFINEQB computes for one byte, from Intel's pseudo-code.
std::uint8_t affine_apply(std::uint64_t matrix, std::uint8_t x) {
    unsigned r = 0;
    for (unsigned i = 0; i < 8; ++i) {
        auto row = static_cast<unsigned>((matrix >> (8 * (7 - i))) & 0xff);
        r |= static_cast<unsigned>(__builtin_parity(row & x)) << i;
    }
    return static_cast<std::uint8_t>(r);
}

std::vector<gf_kernel> supported_kernels() {
    std::vector<gf_kernel> out;
    for (auto k : gf::all_kernels)
        if (peerlink::gf_kernel_supported(k))
            out.push_back(k);
    return out;
}

// Shards of one group, owned, with the pointer lists the codec takes.
struct group {
    std::vector<std::vector<std::byte>> shards;
    std::size_t data;
    group(std::size_t k, std::size_t m, std::size_t size) : shards(k + m), data(k) {
        for (auto& s : shards)
            s.assign(size, std::byte{0});
    }
    std::vector<const std::byte*> data_ptrs() const {
        std::vector<const std::byte*> v;
        for (std::size_t i = 0; i < data; ++i)
            v.push_back(shards[i].data());
        return v;
    }
    std::vector<std::byte*> parity_ptrs() {
        std::vector<std::byte*> v;
        for (std::size_t i = data; i < shards.size(); ++i)
            v.push_back(shards[i].data());
        return v;
    }
    std::vector<std::byte*> all_ptrs() {
        std::vector<std::byte*> v;
        for (auto& s : shards)
            v.push_back(s.data());
        return v;
    }
};

// The shard generator of tests/interop/rs/main.go.
void fill_lcg(group& g, std::uint64_t seed) {
    std::uint64_t x = seed;
    for (std::size_t i = 0; i < g.data; ++i)
        for (auto& b : g.shards[i]) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            b = static_cast<std::byte>(x >> 56);
        }
}

void fill_random(group& g, std::mt19937& rng) {
    for (std::size_t i = 0; i < g.data; ++i)
        for (auto& b : g.shards[i])
            b = static_cast<std::byte>(rng() & 0xff);
}

// Parity by the definition: row (data + p) of the matrix times the data column.
std::vector<std::byte> reference_parity(const reed_solomon& rs, const group& g, std::size_t p) {
    std::vector<std::byte> out(g.shards[0].size());
    for (std::size_t i = 0; i < out.size(); ++i) {
        std::uint8_t v = 0;
        for (std::size_t c = 0; c < g.data; ++c)
            v ^= gf::mul(rs.coefficient(g.data + p, c), static_cast<std::uint8_t>(g.shards[c][i]));
        out[i] = static_cast<std::byte>(v);
    }
    return out;
}

std::string hex(const std::uint8_t* p, std::size_t n) {
    static const char digits[] = "0123456789abcdef";
    std::string s;
    for (std::size_t i = 0; i < n; ++i) {
        s += digits[p[i] >> 4];
        s += digits[p[i] & 15];
    }
    return s;
}

std::string matrix_row_hex(const reed_solomon& rs, std::size_t row) {
    std::vector<std::uint8_t> v;
    for (std::size_t c = 0; c < rs.data_shards(); ++c)
        v.push_back(rs.coefficient(row, c));
    return hex(v.data(), v.size());
}

} // namespace

TEST_CASE("gf256: multiplication matches carry-less multiply mod 0x11d", "[fec][rs]") {
    for (unsigned a = 0; a < 256; ++a)
        for (unsigned b = 0; b < 256; ++b)
            if (gf::mul(static_cast<std::uint8_t>(a), static_cast<std::uint8_t>(b)) !=
                slow_mul(static_cast<std::uint8_t>(a), static_cast<std::uint8_t>(b)))
                FAIL("mul(" << a << ", " << b << ")");
    CHECK(gf::mul(0x80, 2) == 0x1d); // x^8 reduces to x^4 + x^3 + x^2 + 1
    CHECK(gf::tables.exp[0] == 1);
    CHECK(gf::tables.exp[8] == 0x1d);
}

TEST_CASE("gf256: field laws", "[fec][rs]") {
    std::mt19937 rng(1);
    for (unsigned a = 1; a < 256; ++a) {
        auto x = static_cast<std::uint8_t>(a);
        REQUIRE(gf::mul(x, gf::inv(x)) == 1);
        REQUIRE(gf::div(x, x) == 1);
        REQUIRE(gf::mul(x, 1) == x);
        REQUIRE(gf::mul(x, 0) == 0);
        REQUIRE(gf::pow(x, 255) == 1); // the multiplicative group has order 255
        REQUIRE(gf::pow(x, 0) == 1);
    }
    CHECK(gf::pow(0, 0) == 1);
    CHECK(gf::pow(0, 3) == 0);
    CHECK(gf::pow(2, 8) == 0x1d);
    for (int i = 0; i < 20000; ++i) {
        auto a = static_cast<std::uint8_t>(rng()), b = static_cast<std::uint8_t>(rng()),
             c = static_cast<std::uint8_t>(rng());
        REQUIRE(gf::mul(a, b) == gf::mul(b, a));
        REQUIRE(gf::mul(gf::mul(a, b), c) == gf::mul(a, gf::mul(b, c)));
        REQUIRE(gf::mul(a, b ^ c) == (gf::mul(a, b) ^ gf::mul(a, c)));
        if (b != 0)
            REQUIRE(gf::mul(gf::div(a, b), b) == a);
    }
    // 2 generates the whole multiplicative group.
    std::array<bool, 256> seen{};
    for (unsigned i = 0; i < 255; ++i)
        seen[gf::tables.exp[i]] = true;
    CHECK(std::count(seen.begin(), seen.end(), true) == 255);
    CHECK(!seen[0]);
}

TEST_CASE("gf256: nibble tables and affine matrices multiply like mul", "[fec][rs]") {
    for (unsigned c = 0; c < 256; ++c) {
        std::uint8_t t[32];
        gf::nibble_table(static_cast<std::uint8_t>(c), t);
        auto m = gf::affine_matrix(static_cast<std::uint8_t>(c));
        for (unsigned x = 0; x < 256; ++x) {
            auto want = gf::mul(static_cast<std::uint8_t>(c), static_cast<std::uint8_t>(x));
            if ((t[x & 15] ^ t[16 + (x >> 4)]) != want ||
                affine_apply(m, static_cast<std::uint8_t>(x)) != want)
                FAIL("c=" << c << " x=" << x);
        }
    }
}

TEST_CASE("gf256: matrix inversion", "[fec][rs]") {
    std::mt19937 rng(5);
    for (std::size_t n : {1u, 2u, 3u, 7u, 16u}) {
        std::vector<std::uint8_t> m(n * n), inv, work(2 * n * n);
        bool inverted = false;
        while (!inverted) {
            for (auto& v : m)
                v = static_cast<std::uint8_t>(rng());
            inv = m;
            inverted = gf::invert(inv.data(), work.data(), n);
        }
        for (std::size_t r = 0; r < n; ++r)
            for (std::size_t c = 0; c < n; ++c) {
                std::uint8_t v = 0;
                for (std::size_t i = 0; i < n; ++i)
                    v ^= gf::mul(m[r * n + i], inv[i * n + c]);
                REQUIRE(v == (r == c ? 1 : 0));
            }
    }
    std::vector<std::uint8_t> singular{1, 2, 1, 2}, work(8);
    auto before = singular;
    CHECK(!gf::invert(singular.data(), work.data(), 2));
    CHECK(singular == before);
}

TEST_CASE("reed_solomon: shard count limits", "[fec][rs]") {
    reed_solomon rs;
    CHECK(rs.init(0, 3) == fec_error::invalid_shard_count);
    CHECK(rs.init(255, 1) == fec_error::invalid_shard_count);
    CHECK(rs.init(1, 255) == fec_error::invalid_shard_count);
    CHECK(rs.data_shards() == 0);
    CHECK(rs.init(0, 3) == peerlink::condition::configuration_error);
    CHECK(!rs.init(1, 254));
    CHECK(!rs.init(255, 0));
    CHECK(!rs.init(128, 127));
    CHECK(rs.total_shards() == 255);
    std::vector<const std::byte*> too_few(3, nullptr);
    std::vector<std::byte*> parity(127, nullptr);
    CHECK(rs.encode(too_few, parity, 10) == fec_error::wrong_shard_list);
}

TEST_CASE("reed_solomon: matrix is klauspost/reedsolomon's default", "[fec][rs]") {
    // Rows printed by tests/interop/rs/main.go (klauspost/reedsolomon 1.9.13, the one
    // kcp-go uses), kept here so the check runs without Go.
    struct expected {
        std::size_t data, parity;
        std::vector<std::string> rows;
    };
    const expected cases[] = {
        {10, 3, {"8196afb8d2c4fee80302", "9681b8afc4d2e8fe0203", "bfd6620a066fdfb70504"}},
        {4, 4, {"1b1c1214", "1c1b1412", "12141b1c", "14121c1b"}},
        {6, 3, {"070605040302", "060704050203", "a0dfdfb7fee8"}},
        {3, 5, {"010101", "0f0806", "0e0906", "0e0807", "0f0907"}},
        {8, 2, {"1a84ba33e710c627", "841a33ba10e727c6"}},
        {10, 1, {"8196afb8d2c4fee80302"}},
        {1, 1, {"01"}},
    };
    for (const auto& c : cases) {
        reed_solomon rs;
        REQUIRE(!rs.init(c.data, c.parity));
        for (std::size_t r = 0; r < c.data; ++r)
            for (std::size_t col = 0; col < c.data; ++col)
                REQUIRE(rs.coefficient(r, col) == (r == col ? 1 : 0));
        for (std::size_t p = 0; p < c.parity; ++p) {
            INFO(c.data << ":" << c.parity << " parity row " << p);
            CHECK(matrix_row_hex(rs, c.data + p) == c.rows[p]);
        }
    }
}

TEST_CASE("reed_solomon: parity equals klauspost/reedsolomon's (runs Go when installed)",
          "[fec][rs][interop]") {
#ifdef PEERLINK_TESTDATA
    const std::filesystem::path program =
        std::filesystem::path(PEERLINK_TESTDATA) / ".." / "interop" / "rs" / "main.go";
#else
    const std::filesystem::path program = "tests/interop/rs/main.go";
#endif
    if (std::system("command -v go >/dev/null 2>&1") != 0 || !std::filesystem::exists(program) ||
        !std::filesystem::exists("/usr/share/gocode/src/github.com/klauspost/reedsolomon")) {
        WARN("go or golang-github-klauspost-reedsolomon-dev missing: comparison skipped");
        return;
    }
    const std::string cases = "10:3:1400:7 4:4:1001:3 6:3:777:11 3:5:64:5 8:2:1:9 20:12:333:13 "
                              "128:127:65:17";
    const std::string cmd = "GO111MODULE=off GOPATH=/usr/share/gocode GOFLAGS= go run " +
                            program.string() + " " + cases + " 2>&1";
    FILE* pipe = ::popen(cmd.c_str(), "r");
    REQUIRE(pipe);
    std::string out;
    char buf[65536];
    while (std::size_t n = std::fread(buf, 1, sizeof buf, pipe))
        out.append(buf, n);
    REQUIRE(::pclose(pipe) == 0);

    std::istringstream in(out);
    std::string word;
    std::size_t checked_cases = 0;
    while (in >> word) {
        REQUIRE(word == "case");
        std::size_t k, m, size;
        std::uint64_t seed;
        in >> k >> m >> size >> seed;
        reed_solomon rs;
        REQUIRE(!rs.init(k, m));
        group g(k, m, size);
        fill_lcg(g, seed);
        for (std::size_t p = 0; p < m; ++p) {
            std::string tag, row;
            in >> tag >> row;
            REQUIRE(tag == "matrix");
            CHECK(matrix_row_hex(rs, k + p) == row);
        }
        for (auto kernel : supported_kernels()) {
            REQUIRE(!rs.set_kernel(kernel));
            REQUIRE(!rs.encode(g.data_ptrs(), g.parity_ptrs(), size));
            std::istringstream again(out);
            // Re-read this case's parity lines for every kernel.
            std::string line, want_case = "case " + std::to_string(k) + " " + std::to_string(m) +
                                          " " + std::to_string(size) + " " + std::to_string(seed);
            while (std::getline(again, line) && line != want_case) {
            }
            for (std::size_t p = 0; p < m; ++p)
                std::getline(again, line);
            for (std::size_t p = 0; p < m; ++p) {
                REQUIRE(std::getline(again, line));
                INFO(k << ":" << m << " size " << size << " kernel " << to_string(kernel)
                       << " parity " << p);
                CHECK(line ==
                      "parity " +
                          hex(reinterpret_cast<const std::uint8_t*>(g.shards[k + p].data()), size));
            }
        }
        for (std::size_t p = 0; p < m; ++p) {
            std::string tag, row;
            in >> tag >> row;
            REQUIRE(tag == "parity");
        }
        ++checked_cases;
    }
    CHECK(checked_cases == 7);
}

TEST_CASE("reed_solomon: every kernel gives the same parity", "[fec][rs]") {
    auto kernels = supported_kernels();
    REQUIRE(kernels.front() == gf_kernel::scalar);
    INFO("best kernel: " << to_string(peerlink::gf_best_kernel()));
    CHECK(peerlink::gf_kernel_supported(peerlink::gf_best_kernel()));
    std::mt19937 rng(42);
    const std::pair<std::size_t, std::size_t> ratios[] = {{10, 3}, {1, 1},  {3, 5}, {8, 2},
                                                          {4, 4},  {17, 9}, {2, 11}};
    const std::size_t sizes[] = {0,  1,  7,   15,  16,  17,  31,  32,   33,   63,   64,
                                 65, 95, 127, 128, 129, 200, 255, 1400, 1401, 1499, 4099};
    for (auto [k, m] : ratios) {
        reed_solomon rs;
        REQUIRE(!rs.init(k, m));
        for (auto size : sizes) {
            group g(k, m, size);
            fill_random(g, rng);
            std::vector<std::vector<std::byte>> want;
            for (std::size_t p = 0; p < m; ++p)
                want.push_back(reference_parity(rs, g, p));
            for (auto kernel : kernels) {
                REQUIRE(!rs.set_kernel(kernel));
                for (std::size_t p = 0; p < m; ++p) // stale bytes must not survive
                    std::fill(g.shards[k + p].begin(), g.shards[k + p].end(), std::byte{0xa5});
                REQUIRE(!rs.encode(g.data_ptrs(), g.parity_ptrs(), size));
                for (std::size_t p = 0; p < m; ++p) {
                    INFO(k << ":" << m << " size " << size << " kernel " << to_string(kernel)
                           << " parity " << p);
                    REQUIRE(g.shards[k + p] == want[p]);
                }
            }
        }
    }
}

TEST_CASE("reed_solomon: unsupported kernels are refused", "[fec][rs]") {
    reed_solomon rs;
    REQUIRE(!rs.init(4, 2));
    CHECK(rs.kernel() == peerlink::gf_best_kernel());
    for (auto k : gf::all_kernels) {
        auto ec = rs.set_kernel(k);
        if (peerlink::gf_kernel_supported(k)) {
            CHECK(!ec);
            CHECK(rs.kernel() == k);
        } else {
            CHECK(ec == fec_error::unsupported_kernel);
            CHECK(rs.kernel() != k);
        }
    }
    CHECK(std::string(to_string(gf_kernel::gfni_avx512)) == "gfni_avx512");
}

TEST_CASE("reed_solomon: any loss up to the parity count is recovered", "[fec][rs]") {
    std::mt19937 rng(7);
    const std::pair<std::size_t, std::size_t> ratios[] = {{10, 3}, {4, 4},  {3, 5}, {6, 3},
                                                          {8, 2},  {10, 1}, {1, 3}};
    std::size_t patterns = 0;
    for (auto [k, m] : ratios) {
        const std::size_t n = k + m, size = 77;
        reed_solomon rs;
        REQUIRE(!rs.init(k, m));
        group g(k, m, size);
        fill_random(g, rng);
        REQUIRE(!rs.encode(g.data_ptrs(), g.parity_ptrs(), size));
        const auto original = g.shards;
        for (auto kernel : {gf_kernel::scalar, peerlink::gf_best_kernel()}) {
            REQUIRE(!rs.set_kernel(kernel));
            // Every subset of lost shards with at most m members.
            for (std::uint32_t lost = 0; lost < (1u << n); ++lost) {
                if (static_cast<std::size_t>(__builtin_popcount(lost)) > m)
                    continue;
                std::vector<bool> flags(n);
                std::array<bool, 255> present{};
                for (std::size_t i = 0; i < n; ++i) {
                    present[i] = !(lost & (1u << i));
                    if (!present[i])
                        std::fill(g.shards[i].begin(), g.shards[i].end(), std::byte{0xee});
                }
                auto ptrs = g.all_ptrs();
                REQUIRE(!rs.reconstruct(ptrs, std::span<const bool>(present.data(), n), size));
                for (std::size_t i = 0; i < n; ++i) {
                    INFO(k << ":" << m << " lost mask " << lost << " shard " << i);
                    REQUIRE(g.shards[i] == original[i]);
                }
                ++patterns;
            }
        }
    }
    // 10:3 alone has 1 + 13 + 78 + 286 = 378 patterns; 4:4 has 163.
    CHECK(patterns > 2 * (378 + 163));
}

TEST_CASE("reed_solomon: more losses than parity are refused", "[fec][rs]") {
    reed_solomon rs;
    REQUIRE(!rs.init(10, 3));
    group g(10, 3, 32);
    std::array<bool, 13> present{};
    present.fill(true);
    present[0] = present[4] = present[7] = present[12] = false;
    auto ptrs = g.all_ptrs();
    CHECK(rs.reconstruct_data(ptrs, present, 32) == fec_error::too_few_shards);
    CHECK(rs.reconstruct_data(std::span<std::byte* const>(ptrs.data(), 12), present, 32) ==
          fec_error::wrong_shard_list);
    present[12] = true; // three lost: fine
    CHECK(!rs.reconstruct_data(ptrs, present, 32));
}

TEST_CASE("reed_solomon: the decode cache follows changing loss patterns", "[fec][rs]") {
    std::mt19937 rng(3);
    reed_solomon rs;
    REQUIRE(!rs.init(10, 3));
    group g(10, 3, 300);
    fill_random(g, rng);
    REQUIRE(!rs.encode(g.data_ptrs(), g.parity_ptrs(), 300));
    const auto original = g.shards;
    // Alternate patterns, repeat some: a stale cache entry would rebuild wrong bytes.
    const std::vector<std::vector<int>> patterns = {{0}, {0},     {1},       {0, 1}, {9, 11},
                                                    {0}, {9, 11}, {2, 3, 4}, {10},   {5}};
    for (const auto& lost : patterns) {
        std::array<bool, 13> present{};
        present.fill(true);
        for (int i : lost) {
            present[static_cast<std::size_t>(i)] = false;
            std::fill(g.shards[static_cast<std::size_t>(i)].begin(),
                      g.shards[static_cast<std::size_t>(i)].end(), std::byte{0});
        }
        auto ptrs = g.all_ptrs();
        REQUIRE(!rs.reconstruct_data(ptrs, present, 300));
        for (std::size_t i = 0; i < 10; ++i)
            REQUIRE(g.shards[i] == original[i]);
        for (int i : lost) // parity is not rebuilt by reconstruct_data: restore it
            g.shards[static_cast<std::size_t>(i)] = original[static_cast<std::size_t>(i)];
    }
}

TEST_CASE("reed_solomon: 255 shards in a group", "[fec][rs]") {
    std::mt19937 rng(11);
    for (auto [k, m] : {std::pair<std::size_t, std::size_t>{128, 127}, {200, 55}, {1, 254}}) {
        reed_solomon rs;
        REQUIRE(!rs.init(k, m));
        const std::size_t size = 96;
        group g(k, m, size);
        fill_random(g, rng);
        REQUIRE(!rs.encode(g.data_ptrs(), g.parity_ptrs(), size));
        const auto original = g.shards;
        // Lose m shards, as many data shards as possible.
        std::vector<std::size_t> order(k + m);
        for (std::size_t i = 0; i < order.size(); ++i)
            order[i] = i;
        std::shuffle(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k), rng);
        std::array<bool, 255> present{};
        for (std::size_t i = 0; i < k + m; ++i)
            present[i] = true;
        for (std::size_t i = 0; i < m; ++i) {
            std::size_t victim = i < k ? order[i] : k + (i - k);
            present[victim] = false;
            std::fill(g.shards[victim].begin(), g.shards[victim].end(), std::byte{0});
        }
        auto ptrs = g.all_ptrs();
        REQUIRE(!rs.reconstruct(ptrs, std::span<const bool>(present.data(), k + m), size));
        for (std::size_t i = 0; i < k + m; ++i) {
            INFO(k << ":" << m << " shard " << i);
            REQUIRE(g.shards[i] == original[i]);
        }
    }
}
