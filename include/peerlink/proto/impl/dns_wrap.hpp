// peerlink/proto/impl/dns_wrap.hpp: definitions for proto/dns_wrap.hpp.
#ifndef PEERLINK_PROTO_IMPL_DNS_WRAP_HPP
#define PEERLINK_PROTO_IMPL_DNS_WRAP_HPP

#include <peerlink/detail/byte_order.hpp>

#include <cstring>

namespace peerlink {

inline std::string detail::dns_wrap_error_category_impl::message(int ev) const {
    switch (static_cast<dns_wrap_error>(ev)) {
    case dns_wrap_error::not_dns:
        return "not a DNS message of the disguise's form (header flags or section counts)";
    case dns_wrap_error::wrong_direction:
        return "DNS message in the wrong direction (a query where a response was expected, "
               "or a response where a query was)";
    case dns_wrap_error::wrong_name:
        return "DNS question name is not a 12-character base32 label under the configured "
               "domain (do both sides use the same domain?)";
    case dns_wrap_error::wrong_record:
        return "DNS question or record of an unexpected type, class or owner name";
    case dns_wrap_error::wrong_option:
        return "DNS OPT record does not hold the expected EDNS options (a query: one with the "
               "configured option code; do both sides use the same one?)";
    case dns_wrap_error::bad_txt:
        return "DNS TXT answer is not in the disguise's chunked form";
    case dns_wrap_error::truncated:
        return "DNS message truncated: a name, record or length runs past its end";
    case dns_wrap_error::trailing_bytes:
        return "DNS message has bytes after its last record";
    }
    return "unknown DNS wrap error";
}

inline std::error_condition
detail::dns_wrap_error_category_impl::default_error_condition(int ev) const noexcept {
    if (ev >= static_cast<int>(dns_wrap_error::not_dns) &&
        ev <= static_cast<int>(dns_wrap_error::trailing_bytes))
        return make_error_condition(condition::malformed_input);
    return {ev, *this};
}

} // namespace peerlink

namespace peerlink::dns {
namespace detail {

using peerlink::detail::load_be;
using peerlink::detail::store_be;

inline constexpr std::uint16_t type_txt = 16;
inline constexpr std::uint16_t type_opt = 41;
inline constexpr std::uint16_t class_in = 1;
inline constexpr std::uint16_t query_flags = 0x0100;    // RD
inline constexpr std::uint16_t response_flags = 0x8180; // QR RD RA
inline constexpr std::uint16_t flag_qr = 0x8000;
// What the receiver insists on: QR, opcode, TC and rcode. The rest (AA, RD, RA, AD, CD)
// is what resolvers and middleboxes set as they like.
inline constexpr std::uint16_t checked_flags = 0xfa0f;
inline constexpr std::size_t answer_header_size = 12;
inline constexpr std::size_t opt_size = 11;
inline constexpr std::size_t option_header_size = 4;
inline constexpr char base32_alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";

constexpr bool is_base32(std::byte b) noexcept {
    const auto c = static_cast<unsigned char>(b);
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '2' && c <= '7');
}

// Length bytes are below 64, so lower-casing every byte of a wire name is safe.
constexpr std::byte to_lower(std::byte b) noexcept {
    const auto c = static_cast<unsigned char>(b);
    return c >= 'A' && c <= 'Z' ? static_cast<std::byte>(c + 32) : b;
}

constexpr std::size_t question_size(std::size_t domain_size) noexcept {
    return 1 + label_size + domain_size + 4;
}

inline void write_header(std::byte* out, std::uint16_t id, std::uint16_t flags,
                         std::uint16_t answers) noexcept {
    store_be<std::uint16_t>(out, id);
    store_be<std::uint16_t>(out + 2, flags);
    store_be<std::uint16_t>(out + 4, 1);
    store_be<std::uint16_t>(out + 6, answers);
    store_be<std::uint16_t>(out + 8, 0);
    store_be<std::uint16_t>(out + 10, 1);
}

inline std::size_t write_question(std::byte* out, const question& q,
                                  std::span<const std::byte> domain) noexcept {
    out[0] = static_cast<std::byte>(label_size);
    std::memcpy(out + 1, q.label.data(), label_size);
    std::memcpy(out + 1 + label_size, domain.data(), domain.size());
    std::byte* t = out + 1 + label_size + domain.size();
    store_be<std::uint16_t>(t, type_txt);
    store_be<std::uint16_t>(t + 2, class_in);
    return question_size(domain.size());
}

inline void write_opt(std::byte* out, std::size_t rdlength) noexcept {
    out[0] = std::byte{0};
    store_be<std::uint16_t>(out + 1, type_opt);
    store_be<std::uint16_t>(out + 3, edns_udp_size);
    store_be<std::uint32_t>(out + 5, 0);
    store_be<std::uint16_t>(out + 9, static_cast<std::uint16_t>(rdlength));
}

// A nonzero byte value absent from the chunk (c <= 254 leaves at least two absent values),
// searched from after `start` so its value does not give the chunking away. A few memchr
// probes usually find one (each value is absent from 254 random bytes with probability
// 0.37); data holding nearly every value falls back to a table of the values present.
inline std::byte choose_key(const std::byte* chunk, std::size_t c, unsigned start) noexcept {
    constexpr unsigned probes = 8;
    for (unsigned t = 1; t <= probes; ++t) {
        const unsigned v = (start + t) & 0xff;
        if (v != 0 && (c == 0 || !std::memchr(chunk, static_cast<int>(v), c)))
            return static_cast<std::byte>(v);
    }
    bool present[256] = {};
    for (std::size_t j = 0; j < c; ++j)
        present[static_cast<unsigned>(chunk[j])] = true;
    for (unsigned t = probes + 1; t < probes + 257; ++t) {
        const unsigned v = (start + t) & 0xff;
        if (v != 0 && !present[v])
            return static_cast<std::byte>(v);
    }
    return std::byte{1}; // unreachable for c <= 254
}

// dst[j] = src[j] ^ key for j < n, 8 bytes at a time. Every load precedes the store of
// the same bytes, so dst may equal src or trail it (unwrap closes gaps going forward).
inline void xor_copy(std::byte* dst, const std::byte* src, std::size_t n, std::byte key) noexcept {
    const std::uint64_t k = 0x0101010101010101ull * static_cast<std::uint8_t>(key);
    std::size_t j = 0;
    for (; j + 8 <= n; j += 8) {
        std::uint64_t w;
        std::memcpy(&w, src + j, 8);
        w ^= k;
        std::memcpy(dst + j, &w, 8);
    }
    for (; j < n; ++j)
        dst[j] = src[j] ^ key;
}

// Checks the header and the question; on success `off` is the offset after the question.
inline std::error_code read_head(std::span<const std::byte> m, bool response, const params& cfg,
                                 std::size_t& off) noexcept {
    if (m.size() < header_size)
        return dns_wrap_error::not_dns;
    const auto flags = load_be<std::uint16_t>(m.data() + 2);
    if (((flags & flag_qr) != 0) != response)
        return dns_wrap_error::wrong_direction;
    if ((flags & checked_flags) != (response ? flag_qr : 0) ||
        load_be<std::uint16_t>(m.data() + 4) != 1 ||
        load_be<std::uint16_t>(m.data() + 6) != (response ? 1 : 0) ||
        load_be<std::uint16_t>(m.data() + 8) != 0 || load_be<std::uint16_t>(m.data() + 10) != 1)
        return dns_wrap_error::not_dns;
    // QNAME: our label, then the domain, compared byte by byte as far as the packet goes.
    const auto domain = cfg.domain.wire();
    const std::size_t name_size = 1 + label_size + domain.size();
    for (std::size_t i = 0; i < name_size; ++i) {
        if (header_size + i >= m.size())
            return dns_wrap_error::truncated;
        const std::byte b = m[header_size + i];
        const bool ok = i == 0            ? b == static_cast<std::byte>(label_size)
                        : i <= label_size ? is_base32(b)
                                          : to_lower(b) == domain[i - 1 - label_size];
        if (!ok)
            return dns_wrap_error::wrong_name;
    }
    off = header_size + name_size;
    if (m.size() - off < 4)
        return dns_wrap_error::truncated;
    if (load_be<std::uint16_t>(m.data() + off) != type_txt ||
        load_be<std::uint16_t>(m.data() + off + 2) != class_in)
        return dns_wrap_error::wrong_record;
    off += 4;
    return {};
}

// Checks an OPT record at `off` that must end the message; returns its RDLENGTH.
inline std::error_code read_opt(std::span<const std::byte> m, std::size_t off,
                                std::size_t& rdlength) noexcept {
    if (m.size() - off < opt_size)
        return dns_wrap_error::truncated;
    if (m[off] != std::byte{0} || load_be<std::uint16_t>(m.data() + off + 1) != type_opt)
        return dns_wrap_error::wrong_record;
    rdlength = load_be<std::uint16_t>(m.data() + off + 9);
    const std::size_t rest = m.size() - off - opt_size;
    if (rdlength > rest)
        return dns_wrap_error::truncated;
    if (rdlength < rest)
        return dns_wrap_error::trailing_bytes;
    return {};
}

inline void read_question(std::span<const std::byte> m, question& q) noexcept {
    q.id = load_be<std::uint16_t>(m.data());
    std::memcpy(q.label.data(), m.data() + header_size + 1, label_size);
}

} // namespace detail

inline encoded_domain::encoded_domain() noexcept {
    assign(default_domain);
}

inline std::error_code encoded_domain::assign(std::string_view text) noexcept {
    if (!text.empty() && text.back() == '.')
        text.remove_suffix(1);
    if (text.empty())
        return error::invalid_config;
    std::array<std::byte, max_domain_size> out{};
    std::size_t n = 0;
    while (true) {
        const auto dot = text.find('.');
        const auto label = text.substr(0, dot);
        if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-' ||
            n + 1 + label.size() + 1 > max_domain_size)
            return error::invalid_config;
        out[n++] = static_cast<std::byte>(label.size());
        for (char c : label) {
            const bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                               (c >= '0' && c <= '9') || c == '-';
            if (!alnum)
                return error::invalid_config;
            out[n++] = detail::to_lower(static_cast<std::byte>(c));
        }
        if (dot == std::string_view::npos)
            break;
        text.remove_prefix(dot + 1);
    }
    out[n++] = std::byte{0};
    bytes_ = out;
    size_ = n;
    return {};
}

inline std::string encoded_domain::to_string() const {
    std::string s;
    for (std::size_t i = 0; i < size_ && bytes_[i] != std::byte{0};) {
        const auto len = static_cast<std::size_t>(bytes_[i]);
        if (!s.empty())
            s += '.';
        for (std::size_t j = 0; j < len; ++j)
            s += static_cast<char>(bytes_[i + 1 + j]);
        i += 1 + len;
    }
    return s;
}

inline question make_question(std::uint16_t id, std::uint64_t bits) noexcept {
    question q;
    q.id = id;
    for (std::size_t i = 0; i < label_size; ++i)
        q.label[i] = detail::base32_alphabet[(bits >> (5 * (label_size - 1 - i))) & 31];
    return q;
}

inline std::error_code wrap_query(packet_buffer& p, const question& q, const params& cfg) noexcept {
    using namespace detail;
    const std::size_t n = p.size();
    if (n > max_query_payload)
        return error::message_too_large;
    const auto domain = cfg.domain.wire();
    const std::size_t head = query_overhead(domain.size());
    if (p.headroom() < head)
        return error::buffer_too_small;
    std::byte* out = p.prepend(head).data();
    write_header(out, q.id, query_flags, 0);
    std::size_t off = header_size + write_question(out + header_size, q, domain);
    write_opt(out + off, n + option_header_size);
    store_be<std::uint16_t>(out + off + opt_size, cfg.option_code);
    store_be<std::uint16_t>(out + off + opt_size + 2, static_cast<std::uint16_t>(n));
    return {};
}

inline std::error_code wrap_response(packet_buffer& p, const question& q,
                                     const params& cfg) noexcept {
    using namespace detail;
    const std::size_t n = p.size();
    if (n > max_response_payload)
        return error::message_too_large;
    const auto domain = cfg.domain.wire();
    const std::size_t k = txt_strings(n);
    const std::size_t head = header_size + question_size(domain.size()) + answer_header_size;
    const std::size_t tail = 2 * k + opt_size;
    if (p.headroom() < head || p.tailroom() < tail)
        return error::buffer_too_small;
    p.append(tail);
    std::byte* base = p.data().data();
    // Spread the chunks out from the last one, so no chunk overwrites one not yet moved.
    for (std::size_t i = k; i-- > 0;) {
        const std::size_t c = i + 1 == k ? n - i * txt_chunk_size : txt_chunk_size;
        std::byte* dst = base + i * (txt_chunk_size + 2) + 2;
        if (c != 0)
            std::memmove(dst, base + i * txt_chunk_size, c);
        const unsigned start = c != 0 ? static_cast<unsigned>(dst[c - 1]) : q.id;
        const std::byte key = choose_key(dst, c, start);
        xor_copy(dst, dst, c, key);
        dst[-2] = static_cast<std::byte>(c + 1);
        dst[-1] = key;
    }
    const std::size_t rdlength = n + 2 * k;
    write_opt(base + rdlength, 0);
    std::byte* out = p.prepend(head).data();
    write_header(out, q.id, response_flags, 1);
    std::byte* a = out + header_size + write_question(out + header_size, q, domain);
    store_be<std::uint16_t>(a, 0xc000 | header_size); // the answer's name: the question's
    store_be<std::uint16_t>(a + 2, type_txt);
    store_be<std::uint16_t>(a + 4, class_in);
    store_be<std::uint32_t>(a + 6, answer_ttl);
    store_be<std::uint16_t>(a + 10, static_cast<std::uint16_t>(rdlength));
    return {};
}

inline std::error_code unwrap_query(packet_buffer& p, const params& cfg, question& q) noexcept {
    using namespace detail;
    const std::span<const std::byte> m = p.data();
    std::size_t off = 0;
    if (auto ec = read_head(m, false, cfg, off))
        return ec;
    std::size_t rdlength = 0;
    if (auto ec = read_opt(m, off, rdlength))
        return ec;
    const std::byte* o = m.data() + off + opt_size;
    if (rdlength < option_header_size || load_be<std::uint16_t>(o) != cfg.option_code ||
        load_be<std::uint16_t>(o + 2) != rdlength - option_header_size)
        return dns_wrap_error::wrong_option;
    read_question(m, q);
    p.consume_front(off + opt_size + option_header_size);
    return {};
}

inline std::error_code unwrap_response(packet_buffer& p, const params& cfg, question& q) noexcept {
    using namespace detail;
    const std::span<const std::byte> m = p.data();
    std::size_t off = 0;
    if (auto ec = read_head(m, true, cfg, off))
        return ec;
    if (m.size() - off < answer_header_size)
        return dns_wrap_error::truncated;
    const std::byte* a = m.data() + off;
    if (load_be<std::uint16_t>(a) != (0xc000 | header_size) ||
        load_be<std::uint16_t>(a + 2) != type_txt || load_be<std::uint16_t>(a + 4) != class_in)
        return dns_wrap_error::wrong_record;
    const std::size_t rdlength = load_be<std::uint16_t>(a + 10);
    const std::size_t rdata = off + answer_header_size;
    if (rdlength > m.size() - rdata)
        return dns_wrap_error::truncated;
    // Validate every string before moving a byte: a rejected packet stays as it came.
    std::size_t n = 0;
    std::size_t strings = 0;
    for (std::size_t in = 0; in < rdlength; ++strings) {
        const auto len = static_cast<std::size_t>(m[rdata + in]);
        if (len == 0 || len > rdlength - in - 1 || m[rdata + in + 1] == std::byte{0})
            return dns_wrap_error::bad_txt;
        const bool last = in + 1 + len == rdlength;
        // Every string but the last is full; only an empty payload has an empty chunk.
        if ((!last && len != txt_chunk_size + 1) || (last && len == 1 && strings != 0))
            return dns_wrap_error::bad_txt;
        n += len - 1;
        in += 1 + len;
    }
    if (strings == 0)
        return dns_wrap_error::bad_txt;
    std::size_t opt_rdlength = 0;
    if (auto ec = read_opt(m, rdata + rdlength, opt_rdlength))
        return ec;
    if (opt_rdlength != 0)
        return dns_wrap_error::wrong_option;
    read_question(m, q);
    // Close the gaps of the string headers, undoing each chunk's XOR on the way. Writes
    // stay behind reads, so one forward pass is safe.
    std::byte* base = p.data().data() + rdata;
    std::size_t out = 0;
    for (std::size_t in = 0; in < rdlength;) {
        const auto len = static_cast<std::size_t>(base[in]);
        const std::byte key = base[in + 1];
        xor_copy(base + out, base + in + 2, len - 1, key);
        out += len - 1;
        in += 1 + len;
    }
    p.consume_front(rdata);
    p.resize(n);
    return {};
}

inline bool is_wrapped(std::span<const std::byte> m) noexcept {
    using namespace detail;
    if (m.size() < header_size + 1 + label_size)
        return false;
    const auto flags = load_be<std::uint16_t>(m.data() + 2);
    const bool response = (flags & flag_qr) != 0;
    if ((flags & checked_flags) != (response ? flag_qr : 0) ||
        load_be<std::uint16_t>(m.data() + 4) != 1 ||
        load_be<std::uint16_t>(m.data() + 6) != (response ? 1 : 0) ||
        load_be<std::uint16_t>(m.data() + 8) != 0 || load_be<std::uint16_t>(m.data() + 10) != 1 ||
        m[header_size] != static_cast<std::byte>(label_size))
        return false;
    for (std::size_t i = 1; i <= label_size; ++i)
        if (!is_base32(m[header_size + i]))
            return false;
    return true;
}

} // namespace peerlink::dns

#endif // PEERLINK_PROTO_IMPL_DNS_WRAP_HPP
