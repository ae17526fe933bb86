// fec_bench: peerlink's Reed-Solomon codec against ISA-L, the yardstick, in the
// same run, on the same buffers.
//
//   fec_bench [--data K] [--parity M] [--size BYTES] [--seconds S] [--kernel NAME]
//
// Defaults: 10 data + 3 parity shards of 1400 bytes (one UDP packet each), the
// fastest kernel of this CPU. Figures are GB/s (10^9 bytes per second) of data
// shards processed: K x size bytes per group, for encoding and for decoding alike.
//
// - encode: all parity shards of a group.
// - decode, 1 loss, same pattern: rebuild one lost data shard; the loss is always
//   the same shard, so both libraries reuse their decoding tables (ISA-L's tables
//   are built once outside the loop, peerlink's codec caches them itself).
// - decode, 1 loss, new pattern: the lost shard changes every group, so each
//   decode inverts the K x K matrix and builds tables first (ISA-L: gf_invert_matrix
//   + ec_init_tables + ec_encode_data, as its own erasure_code_perf does).
//
// Each figure is the best of 3 runs of `--seconds` (default 0.3). The last line is
// JSON with every figure, for scripts.
#include <peerlink/policy/reed_solomon_fec.hpp>
#include <peerlink/proto/reed_solomon.hpp>

#include <immintrin.h>
#include <isa-l/erasure_code.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;

[[noreturn]] void usage(const char* msg) {
    std::fprintf(stderr,
                 "fec_bench: %s\nusage: fec_bench [--data K] [--parity M] [--size BYTES] "
                 "[--seconds S] [--kernel scalar|ssse3|avx2|avx512|gfni_avx2|gfni_avx512]\n",
                 msg);
    std::exit(2);
}

// Runs `step` (one group) until `seconds` pass, 3 times; returns the best GB/s.
template <class Step>
double measure(double seconds, std::size_t bytes_per_step, Step&& step) {
    double best = 0;
    for (int run = 0; run < 3; ++run) {
        std::size_t steps = 0;
        auto start = clock_type::now();
        auto deadline = start + std::chrono::duration<double>(seconds);
        auto now = start;
        do {
            for (int i = 0; i < 64; ++i)
                step(steps + static_cast<std::size_t>(i));
            steps += 64;
            now = clock_type::now();
        } while (now < deadline);
        double s = std::chrono::duration<double>(now - start).count();
        best = std::max(best, static_cast<double>(steps * bytes_per_step) / s / 1e9);
    }
    return best;
}

// ISA-L's AVX-512 code may return with the upper halves of the vector registers in
// use, which slows down the SSE code that runs next on some CPUs: clear them before
// measuring our SSSE3 kernel after it.
__attribute__((target("avx"))) void clear_upper_vector_state() {
    _mm256_zeroupper();
}

struct buffers {
    std::vector<std::uint8_t> storage;
    std::vector<std::uint8_t*> shard;
    buffers(std::size_t count, std::size_t size) {
        const std::size_t stride = (size + 63) / 64 * 64 + 64;
        storage.assign(count * stride + 64, 0);
        auto base = reinterpret_cast<std::uintptr_t>(storage.data());
        auto aligned = storage.data() + ((64 - base % 64) % 64);
        for (std::size_t i = 0; i < count; ++i)
            shard.push_back(aligned + i * stride);
    }
};

} // namespace

int main(int argc, char** argv) {
    std::size_t k = 10, m = 3, size = 1400;
    double seconds = 0.3;
    peerlink::gf_kernel kernel = peerlink::gf_best_kernel();
    for (int i = 1; i < argc; ++i) {
        std::string_view a = argv[i];
        auto value = [&]() -> const char* {
            if (i + 1 >= argc)
                usage("missing value");
            return argv[++i];
        };
        if (a == "--data")
            k = std::strtoul(value(), nullptr, 10);
        else if (a == "--parity")
            m = std::strtoul(value(), nullptr, 10);
        else if (a == "--size")
            size = std::strtoul(value(), nullptr, 10);
        else if (a == "--seconds")
            seconds = std::strtod(value(), nullptr);
        else if (a == "--kernel") {
            std::string_view name = value();
            bool found = false;
            for (auto kk : peerlink::detail::gf256::all_kernels)
                if (name == peerlink::to_string(kk)) {
                    kernel = kk;
                    found = true;
                }
            if (!found)
                usage("unknown kernel");
        } else
            usage("unknown option");
    }
    if (m == 0 || size == 0 || !(seconds > 0))
        usage("need at least one parity shard, a size and a time");

    peerlink::reed_solomon rs;
    if (auto ec = rs.init(k, m))
        usage(ec.message().c_str());
    if (rs.set_kernel(kernel))
        usage("this CPU cannot run that kernel");

    const std::size_t n = k + m;
    buffers ours(n + 1, size), theirs(n + 1, size);
    std::mt19937 rng(1);
    for (std::size_t i = 0; i < k; ++i)
        for (std::size_t j = 0; j < size; ++j)
            ours.shard[i][j] = theirs.shard[i][j] = static_cast<std::uint8_t>(rng());
    const std::size_t group_bytes = k * size;

    // --- peerlink -----------------------------------------------------------------
    std::vector<const std::byte*> data_ptrs(k);
    std::vector<std::byte*> parity_ptrs(m), all_ptrs(n);
    for (std::size_t i = 0; i < n; ++i) {
        all_ptrs[i] = reinterpret_cast<std::byte*>(ours.shard[i]);
        if (i < k)
            data_ptrs[i] = all_ptrs[i];
        else
            parity_ptrs[i - k] = all_ptrs[i];
    }
    double our_encode = measure(seconds, group_bytes, [&](std::size_t) {
        if (rs.encode(data_ptrs, parity_ptrs, size))
            std::abort();
    });
    // Decoding writes the lost shard into the spare buffer, so the group stays intact.
    std::vector<std::byte*> dec_ptrs = all_ptrs;
    bool present[255];
    auto our_decode = [&](std::size_t lost) {
        std::fill(present, present + n, true);
        present[lost] = false;
        dec_ptrs = all_ptrs;
        dec_ptrs[lost] = reinterpret_cast<std::byte*>(ours.shard[n]);
        if (rs.reconstruct_data(dec_ptrs, std::span<const bool>(present, n), size))
            std::abort();
    };
    our_decode(0);
    if (std::memcmp(ours.shard[n], ours.shard[0], size) != 0) {
        std::fprintf(stderr, "fec_bench: peerlink decoded wrong bytes\n");
        return 1;
    }
    double our_decode_same = measure(seconds, group_bytes, [&](std::size_t) { our_decode(0); });
    double our_decode_new =
        measure(seconds, group_bytes, [&](std::size_t i) { our_decode(i % k); });

    // --- ISA-L ----------------------------------------------------------------------
    std::vector<unsigned char> a(n * k), g_tbls(k * m * 32), dec_tbls(k * 32);
    gf_gen_cauchy1_matrix(a.data(), static_cast<int>(n), static_cast<int>(k));
    ec_init_tables(static_cast<int>(k), static_cast<int>(m), &a[k * k], g_tbls.data());
    double isal_encode = measure(seconds, group_bytes, [&](std::size_t) {
        ec_encode_data(static_cast<int>(size), static_cast<int>(k), static_cast<int>(m),
                       g_tbls.data(), theirs.shard.data(), theirs.shard.data() + k);
    });
    std::vector<unsigned char> b(k * k), inv(k * k), row(k);
    std::vector<unsigned char*> sources(k);
    // ISA-L leaves the decoding to the caller: pick k surviving rows, invert, and
    // encode the lost shard with the inverse's row.
    auto isal_tables = [&](std::size_t lost) {
        for (std::size_t r = 0, src = 0; r < k; ++r, ++src) {
            if (src == lost)
                ++src;
            std::memcpy(&b[r * k], &a[src * k], k);
            sources[r] = theirs.shard[src];
        }
        if (gf_invert_matrix(b.data(), inv.data(), static_cast<int>(k)) < 0)
            std::abort();
        std::memcpy(row.data(), &inv[lost * k], k);
        ec_init_tables(static_cast<int>(k), 1, row.data(), dec_tbls.data());
    };
    auto isal_apply = [&] {
        ec_encode_data(static_cast<int>(size), static_cast<int>(k), 1, dec_tbls.data(),
                       sources.data(), &theirs.shard[n]);
    };
    isal_tables(0);
    isal_apply();
    if (std::memcmp(theirs.shard[n], theirs.shard[0], size) != 0) {
        std::fprintf(stderr, "fec_bench: ISA-L decoded wrong bytes\n");
        return 1;
    }
    double isal_decode_same = measure(seconds, group_bytes, [&](std::size_t) { isal_apply(); });
    double isal_decode_new = measure(seconds, group_bytes, [&](std::size_t i) {
        isal_tables(i % k);
        isal_apply();
    });

    // --- every kernel of ours, encode only ---------------------------------------------
    if (__builtin_cpu_supports("avx"))
        clear_upper_vector_state();
    std::string kernels_line, kernels_json;
    for (auto kk : peerlink::detail::gf256::all_kernels) {
        if (!peerlink::gf_kernel_supported(kk))
            continue;
        (void)rs.set_kernel(kk);
        double v = measure(seconds / 3, group_bytes, [&](std::size_t) {
            if (rs.encode(data_ptrs, parity_ptrs, size))
                std::abort();
        });
        char buf[96];
        std::snprintf(buf, sizeof buf, "%s%s %.1f", kernels_line.empty() ? "" : ", ",
                      peerlink::to_string(kk), v);
        kernels_line += buf;
        std::snprintf(buf, sizeof buf, "%s\"%s\":%.2f", kernels_json.empty() ? "" : ",",
                      peerlink::to_string(kk), v);
        kernels_json += buf;
    }

    // --- the policy: framing, copies, group bookkeeping and coding, per packet ------
    (void)rs.set_kernel(kernel);
    double policy_mpps = 0;
    {
        peerlink::fec_config cfg;
        cfg.enabled = true;
        cfg.data_shards = static_cast<std::uint8_t>(k);
        cfg.parity_shards = static_cast<std::uint8_t>(m);
        cfg.max_payload = size;
        std::error_code ec;
        peerlink::reed_solomon_fec<> tx(cfg, ec), rx(cfg, ec);
        if (ec)
            usage(ec.message().c_str());
        std::vector<std::byte> payload(size, std::byte{1}), out(size + 64), par(size + 64),
            in(size + 64);
        std::size_t delivered = 0, counter = 0;
        auto receive = [&](peerlink::packet_buffer& p) {
            if (++counter % 20 == 0)
                return; // lost
            std::memcpy(in.data(), p.data().data(), p.size());
            peerlink::packet_buffer q{std::span<std::byte>(in).first(p.size()), 0};
            q.resize(p.size());
            if (rx.decode(q, {}))
                std::abort();
            delivered += q.empty() ? 0 : 1;
            while (rx.poll_recovered(q))
                ++delivered;
        };
        double gbps = measure(seconds, size, [&](std::size_t) {
            peerlink::packet_buffer p(out, 32);
            p.append(payload);
            if (tx.encode(p, {}))
                std::abort();
            receive(p);
            peerlink::packet_buffer q(par, 32);
            while (tx.poll_parity(q)) {
                receive(q);
                q = peerlink::packet_buffer(par, 32);
            }
        });
        policy_mpps = gbps * 1e9 / static_cast<double>(size) / 1e6;
        if (rx.stats().recovered == 0 || delivered == 0)
            std::abort();
    }

    std::printf("fec_bench: FEC %zu+%zu, %zu-byte shards, peerlink kernel %s, vs ISA-L "
                "(libisal)\n",
                k, m, size, peerlink::to_string(kernel));
    std::printf("%-34s %10s %10s %8s\n", "GB/s of data", "peerlink", "ISA-L", "ratio");
    auto line = [](const char* what, double ours_v, double theirs_v) {
        std::printf("%-34s %10.2f %10.2f %8.2f\n", what, ours_v, theirs_v, ours_v / theirs_v);
    };
    line("encode", our_encode, isal_encode);
    line("decode 1 loss, same pattern", our_decode_same, isal_decode_same);
    line("decode 1 loss, new pattern", our_decode_new, isal_decode_new);
    std::printf("peerlink encode by kernel (GB/s): %s\n", kernels_line.c_str());
    std::printf("peerlink policy, %zu+%zu, %zu-byte packets, every 20th lost: %.2f M packets/s "
                "(%.2f GB/s of payload) through encode + decode\n",
                k, m, size, policy_mpps, policy_mpps * 1e6 * static_cast<double>(size) / 1e9);
    std::printf("{\"data\":%zu,\"parity\":%zu,\"size\":%zu,\"kernel\":\"%s\","
                "\"encode\":{\"peerlink\":%.2f,\"isal\":%.2f},"
                "\"decode_same\":{\"peerlink\":%.2f,\"isal\":%.2f},"
                "\"decode_new\":{\"peerlink\":%.2f,\"isal\":%.2f},\"kernels\":{%s},"
                "\"policy_mpps\":%.3f}\n",
                k, m, size, peerlink::to_string(kernel), our_encode, isal_encode, our_decode_same,
                isal_decode_same, our_decode_new, isal_decode_new, kernels_json.c_str(),
                policy_mpps);
    return 0;
}
