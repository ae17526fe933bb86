// Implementation of peerlink/proto/stun.hpp.
#ifndef PEERLINK_PROTO_IMPL_STUN_HPP
#define PEERLINK_PROTO_IMPL_STUN_HPP

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <algorithm>
#include <cstring>
#include <memory>

namespace peerlink {

namespace detail {

class stun_error_category_impl final : public std::error_category {
public:
    const char* name() const noexcept override { return "peerlink.stun"; }

    std::string message(int ev) const override {
        switch (static_cast<stun_error>(ev)) {
        case stun_error::truncated:
            return "STUN message truncated: shorter than its header or its length field";
        case stun_error::not_stun:
            return "not a STUN message (first two bits not zero)";
        case stun_error::bad_magic_cookie:
            return "STUN message without the magic cookie 0x2112A442 (an RFC 3489 message?)";
        case stun_error::bad_length:
            return "STUN message length not a multiple of 4 or not the datagram's size";
        case stun_error::attribute_overrun:
            return "STUN attribute runs past the end of the message";
        case stun_error::bad_padding:
            return "STUN attribute not padded to a multiple of 4 bytes";
        case stun_error::fingerprint_not_last:
            return "STUN attribute after FINGERPRINT";
        case stun_error::bad_attribute_value:
            return "STUN attribute value of the wrong size or with an invalid field";
        case stun_error::attribute_missing:
            return "STUN message lacks a required attribute";
        case stun_error::fingerprint_missing:
            return "STUN message has no FINGERPRINT";
        case stun_error::fingerprint_mismatch:
            return "STUN FINGERPRINT mismatch: corrupted, or not a STUN message";
        case stun_error::integrity_missing:
            return "STUN message has no MESSAGE-INTEGRITY";
        case stun_error::integrity_mismatch:
            return "STUN MESSAGE-INTEGRITY mismatch: wrong credentials or tampered message";
        case stun_error::value_too_long:
            return "STUN attribute value too long for the message";
        case stun_error::attribute_after_end:
            return "STUN attribute added after MESSAGE-INTEGRITY or FINGERPRINT";
        case stun_error::bad_channel_number:
            return "TURN channel number outside 0x4000..0x4FFF";
        case stun_error::transaction_timeout:
            return "STUN server did not answer (no response after every retransmission)";
        case stun_error::too_many_transactions:
            return "too many STUN transactions at once";
        case stun_error::duplicate_transaction:
            return "a STUN transaction with this id is already running";
        case stun_error::error_response:
            return "STUN error response";
        case stun_error::try_alternate:
            return "STUN server redirects to another server (300 Try Alternate)";
        case stun_error::bad_request:
            return "STUN server rejected the request as malformed (400 Bad Request)";
        case stun_error::unauthorized:
            return "STUN/TURN server rejected the credentials (401 Unauthorized)";
        case stun_error::forbidden:
            return "TURN server forbids the request (403 Forbidden)";
        case stun_error::unknown_attribute:
            return "STUN server does not understand an attribute (420 Unknown Attribute)";
        case stun_error::allocation_mismatch:
            return "TURN allocation mismatch (437)";
        case stun_error::stale_nonce:
            return "STUN/TURN nonce expired (438 Stale Nonce): retry with the new nonce";
        case stun_error::address_family_not_supported:
            return "TURN server does not support the address family (440)";
        case stun_error::wrong_credentials:
            return "TURN credentials differ from the allocation's (441 Wrong Credentials)";
        case stun_error::unsupported_transport:
            return "TURN server does not relay this transport protocol (442)";
        case stun_error::peer_address_family_mismatch:
            return "TURN peer address family differs from the relayed address (443)";
        case stun_error::allocation_quota_reached:
            return "TURN allocation quota reached (486)";
        case stun_error::role_conflict:
            return "ICE role conflict (487)";
        case stun_error::server_error:
            return "STUN server error (500): try again later";
        case stun_error::insufficient_capacity:
            return "TURN server has no capacity left (508)";
        }
        return "unknown STUN error";
    }

    std::error_condition default_error_condition(int ev) const noexcept override {
        switch (static_cast<stun_error>(ev)) {
        case stun_error::truncated:
        case stun_error::not_stun:
        case stun_error::bad_magic_cookie:
        case stun_error::bad_length:
        case stun_error::attribute_overrun:
        case stun_error::bad_padding:
        case stun_error::fingerprint_not_last:
        case stun_error::bad_attribute_value:
        case stun_error::attribute_missing:
        case stun_error::fingerprint_missing:
        case stun_error::fingerprint_mismatch:
        case stun_error::bad_channel_number:
            return make_error_condition(condition::malformed_input);
        case stun_error::integrity_missing:
        case stun_error::integrity_mismatch:
        case stun_error::unauthorized:
        case stun_error::forbidden:
        case stun_error::wrong_credentials:
            return make_error_condition(condition::authentication_failed);
        case stun_error::transaction_timeout:
            return make_error_condition(condition::peer_unreachable);
        default:
            return {ev, *this};
        }
    }
};

} // namespace detail

inline const std::error_category& stun_error_category() noexcept {
    static const detail::stun_error_category_impl instance;
    return instance;
}

namespace stun {

namespace detail {

using peerlink::detail::load_be;
using peerlink::detail::store_be;

inline constexpr std::uint16_t mi_size = 20;

constexpr std::array<std::uint32_t, 256> make_crc_table() noexcept {
    std::array<std::uint32_t, 256> t{};
    for (std::uint32_t i = 0; i < 256; ++i) {
        std::uint32_t c = i;
        for (int k = 0; k < 8; ++k)
            c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
        t[i] = c;
    }
    return t;
}
inline constexpr std::array<std::uint32_t, 256> crc_table = make_crc_table();

// OpenSSL objects fetched once: fetching from the provider is the slow part.
struct evp_mac_deleter {
    void operator()(EVP_MAC_CTX* c) const noexcept { EVP_MAC_CTX_free(c); }
};
inline EVP_MAC* hmac_algorithm() noexcept {
    static EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    return mac;
}

// HMAC over the message prefix [0, end) whose header length field reads `length`:
// the header is patched in a copy, the rest is hashed in place.
inline bool hmac_prefix(const char* digest, std::span<const std::byte> key,
                        std::span<const std::byte> message, std::size_t end, std::uint16_t length,
                        std::byte* out, std::size_t out_size) noexcept {
    EVP_MAC* mac = hmac_algorithm();
    if (mac == nullptr)
        return false;
    std::unique_ptr<EVP_MAC_CTX, evp_mac_deleter> ctx(EVP_MAC_CTX_new(mac));
    if (!ctx)
        return false;
    OSSL_PARAM params[2];
    params[0] =
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>(digest), 0);
    params[1] = OSSL_PARAM_construct_end();
    // HMAC pads a key with zeros to the block size, so an empty key equals one zero
    // byte; OpenSSL refuses an empty key, so give it that byte.
    static const unsigned char zero_key[1] = {0};
    const unsigned char* k =
        key.empty() ? zero_key : reinterpret_cast<const unsigned char*>(key.data());
    const std::size_t kn = key.empty() ? 1 : key.size();
    std::byte head[header_size];
    std::memcpy(head, message.data(), header_size);
    store_be<std::uint16_t>(head + 2, length);
    std::size_t n = 0;
    unsigned char full[EVP_MAX_MD_SIZE];
    if (EVP_MAC_init(ctx.get(), k, kn, params) != 1 ||
        EVP_MAC_update(ctx.get(), reinterpret_cast<const unsigned char*>(head), header_size) != 1 ||
        (end > header_size &&
         EVP_MAC_update(ctx.get(),
                        reinterpret_cast<const unsigned char*>(message.data() + header_size),
                        end - header_size) != 1) ||
        EVP_MAC_final(ctx.get(), full, &n, sizeof full) != 1 || n < out_size)
        return false;
    std::memcpy(out, full, out_size);
    return true;
}

struct evp_md_ctx_deleter {
    void operator()(EVP_MD_CTX* c) const noexcept { EVP_MD_CTX_free(c); }
};

// Digest of the parts joined by ':' (the key and USERHASH texts).
inline bool digest_joined(const char* name, std::initializer_list<std::string_view> parts,
                          std::byte* out, std::size_t out_size) {
    std::unique_ptr<EVP_MD, decltype(&EVP_MD_free)> md(EVP_MD_fetch(nullptr, name, nullptr),
                                                       &EVP_MD_free);
    std::unique_ptr<EVP_MD_CTX, evp_md_ctx_deleter> ctx(EVP_MD_CTX_new());
    if (!md || !ctx || EVP_DigestInit_ex(ctx.get(), md.get(), nullptr) != 1 ||
        static_cast<std::size_t>(EVP_MD_get_size(md.get())) != out_size)
        return false;
    bool first = true;
    for (auto p : parts) {
        if (!first && EVP_DigestUpdate(ctx.get(), ":", 1) != 1)
            return false;
        first = false;
        if (!p.empty() && EVP_DigestUpdate(ctx.get(), p.data(), p.size()) != 1)
            return false;
    }
    unsigned int n = 0;
    return EVP_DigestFinal_ex(ctx.get(), reinterpret_cast<unsigned char*>(out), &n) == 1 &&
           n == out_size;
}

inline std::optional<endpoint> fail_value(std::error_code& ec) noexcept {
    ec = make_error_code(stun_error::bad_attribute_value);
    return std::nullopt;
}

inline std::string_view attribute_name(attribute_type t) noexcept {
    switch (t) {
    case attribute_type::mapped_address:
        return "MAPPED-ADDRESS";
    case attribute_type::username:
        return "USERNAME";
    case attribute_type::message_integrity:
        return "MESSAGE-INTEGRITY";
    case attribute_type::error_code:
        return "ERROR-CODE";
    case attribute_type::unknown_attributes:
        return "UNKNOWN-ATTRIBUTES";
    case attribute_type::realm:
        return "REALM";
    case attribute_type::nonce:
        return "NONCE";
    case attribute_type::message_integrity_sha256:
        return "MESSAGE-INTEGRITY-SHA256";
    case attribute_type::password_algorithm:
        return "PASSWORD-ALGORITHM";
    case attribute_type::userhash:
        return "USERHASH";
    case attribute_type::xor_mapped_address:
        return "XOR-MAPPED-ADDRESS";
    case attribute_type::password_algorithms:
        return "PASSWORD-ALGORITHMS";
    case attribute_type::alternate_domain:
        return "ALTERNATE-DOMAIN";
    case attribute_type::software:
        return "SOFTWARE";
    case attribute_type::alternate_server:
        return "ALTERNATE-SERVER";
    case attribute_type::fingerprint:
        return "FINGERPRINT";
    case attribute_type::source_address:
        return "SOURCE-ADDRESS";
    case attribute_type::changed_address:
        return "CHANGED-ADDRESS";
    case attribute_type::change_request:
        return "CHANGE-REQUEST";
    case attribute_type::padding:
        return "PADDING";
    case attribute_type::response_port:
        return "RESPONSE-PORT";
    case attribute_type::response_origin:
        return "RESPONSE-ORIGIN";
    case attribute_type::other_address:
        return "OTHER-ADDRESS";
    case attribute_type::channel_number:
        return "CHANNEL-NUMBER";
    case attribute_type::lifetime:
        return "LIFETIME";
    case attribute_type::xor_peer_address:
        return "XOR-PEER-ADDRESS";
    case attribute_type::data:
        return "DATA";
    case attribute_type::xor_relayed_address:
        return "XOR-RELAYED-ADDRESS";
    case attribute_type::requested_address_family:
        return "REQUESTED-ADDRESS-FAMILY";
    case attribute_type::even_port:
        return "EVEN-PORT";
    case attribute_type::requested_transport:
        return "REQUESTED-TRANSPORT";
    case attribute_type::dont_fragment:
        return "DONT-FRAGMENT";
    case attribute_type::reservation_token:
        return "RESERVATION-TOKEN";
    case attribute_type::connection_id:
        return "CONNECTION-ID";
    case attribute_type::additional_address_family:
        return "ADDITIONAL-ADDRESS-FAMILY";
    case attribute_type::address_error_code:
        return "ADDRESS-ERROR-CODE";
    case attribute_type::icmp:
        return "ICMP";
    case attribute_type::priority:
        return "PRIORITY";
    case attribute_type::use_candidate:
        return "USE-CANDIDATE";
    case attribute_type::ice_controlled:
        return "ICE-CONTROLLED";
    case attribute_type::ice_controlling:
        return "ICE-CONTROLLING";
    }
    return {};
}

} // namespace detail

inline std::string to_string(attribute_type t) {
    if (auto n = detail::attribute_name(t); !n.empty())
        return std::string(n);
    static const char hex[] = "0123456789abcdef";
    const auto v = static_cast<std::uint16_t>(t);
    std::string s = "0x0000";
    for (int i = 0; i < 4; ++i)
        s[static_cast<std::size_t>(5 - i)] = hex[(v >> (4 * i)) & 0xf];
    return s;
}

inline bool is_known(attribute_type t) noexcept {
    return !detail::attribute_name(t).empty();
}

inline transaction_id message_view::transaction() const noexcept {
    transaction_id id;
    std::memcpy(id.data(), bytes_.data() + 8, id.size());
    return id;
}

inline bool message_view::ignored(std::size_t offset, attribute_type t) const noexcept {
    if (mi256_ != 0 && offset > mi256_)
        return t != attribute_type::fingerprint;
    if (mi_ != 0 && offset > mi_)
        return t != attribute_type::fingerprint && t != attribute_type::message_integrity_sha256;
    return false;
}

inline message_view::iterator::iterator(const message_view* m, std::size_t pos) noexcept
    : m_(m), pos_(pos) {
    load();
}

// Moves forward to the first attribute at or after pos_ that is not ignored, and
// reads it. decode() checked every length, so no bound is checked here.
inline void message_view::iterator::load() noexcept {
    const auto bytes = m_->bytes_;
    while (pos_ < bytes.size()) {
        const auto t = static_cast<attribute_type>(detail::load_be<std::uint16_t>(&bytes[pos_]));
        const std::size_t len = detail::load_be<std::uint16_t>(&bytes[pos_ + 2]);
        if (!m_->ignored(pos_, t)) {
            current_ = attribute{t, bytes.subspan(pos_ + attribute_header_size, len), pos_};
            return;
        }
        pos_ += attribute_header_size + padded(len);
    }
    pos_ = bytes.size();
}

inline message_view::iterator& message_view::iterator::operator++() noexcept {
    pos_ += attribute_header_size + padded(current_.value.size());
    load();
    return *this;
}

inline message_view::iterator message_view::begin() const noexcept {
    return iterator(this, header_size);
}
inline message_view::iterator message_view::end() const noexcept {
    return iterator(this, bytes_.size());
}

inline std::optional<attribute> message_view::find(attribute_type t) const noexcept {
    for (const auto& a : *this)
        if (a.type == t)
            return a;
    return std::nullopt;
}

inline std::optional<header> decode_header(std::span<const std::byte> bytes,
                                           std::error_code& ec) noexcept {
    using detail::load_be;
    if (bytes.size() < header_size) {
        ec = make_error_code(stun_error::truncated);
        return std::nullopt;
    }
    if ((std::to_integer<unsigned>(bytes[0]) & 0xc0) != 0) {
        ec = make_error_code(stun_error::not_stun);
        return std::nullopt;
    }
    ec.clear();
    header h;
    h.type = load_be<std::uint16_t>(bytes.data());
    h.length = load_be<std::uint16_t>(bytes.data() + 2);
    h.cookie = load_be<std::uint32_t>(bytes.data() + 4);
    std::memcpy(h.transaction.data(), bytes.data() + 8, h.transaction.size());
    return h;
}

inline bool is_stun_message(std::span<const std::byte> bytes) noexcept {
    using detail::load_be;
    if (bytes.size() < header_size || (std::to_integer<unsigned>(bytes[0]) & 0xc0) != 0)
        return false;
    const std::size_t len = load_be<std::uint16_t>(bytes.data() + 2);
    return load_be<std::uint32_t>(bytes.data() + 4) == magic_cookie && len % 4 == 0 &&
           header_size + len == bytes.size();
}

inline std::optional<message_view> decode(std::span<const std::byte> bytes, std::error_code& ec,
                                          const decode_options& options) noexcept {
    using detail::load_be;
    auto h = decode_header(bytes, ec);
    if (!h)
        return std::nullopt;
    auto fail = [&](stun_error e) -> std::optional<message_view> {
        ec = make_error_code(e);
        return std::nullopt;
    };
    if (h->length % 4 != 0) {
        // A length equal to the datagram's, but not a multiple of 4: most likely the
        // sender did not pad its last attribute. Say so if the attributes show it.
        if (header_size + h->length == bytes.size())
            for (std::size_t pos = header_size; pos + attribute_header_size <= bytes.size();) {
                const std::size_t value = pos + attribute_header_size;
                const std::size_t len = load_be<std::uint16_t>(&bytes[pos + 2]);
                if (value + len == bytes.size())
                    return fail(stun_error::bad_padding);
                pos = value + padded(len);
            }
        return fail(stun_error::bad_length);
    }
    if (header_size + h->length > bytes.size())
        return fail(stun_error::truncated);
    if (header_size + h->length < bytes.size())
        return fail(stun_error::bad_length);
    if (h->cookie != magic_cookie && !options.allow_classic)
        return fail(stun_error::bad_magic_cookie);

    message_view m;
    m.bytes_ = bytes;
    const std::size_t end = bytes.size();
    std::size_t pos = header_size;
    while (pos < end) {
        // pos and end are multiples of 4, so an attribute header fits.
        if (m.fp_ != 0)
            return fail(stun_error::fingerprint_not_last);
        const auto t = static_cast<attribute_type>(load_be<std::uint16_t>(&bytes[pos]));
        const std::size_t len = load_be<std::uint16_t>(&bytes[pos + 2]);
        const std::size_t value = pos + attribute_header_size;
        // end - value is a multiple of 4, so a value that fits fits with its padding.
        if (len > end - value)
            return fail(stun_error::attribute_overrun);
        // The offsets fit 16 bits: a message is at most 20 + 65535 bytes.
        const auto off = static_cast<std::uint16_t>(pos);
        if (!m.ignored(pos, t)) {
            switch (t) {
            case attribute_type::message_integrity:
                if (len != detail::mi_size)
                    return fail(stun_error::bad_attribute_value);
                if (m.mi_ == 0 && m.mi256_ == 0)
                    m.mi_ = off;
                break;
            case attribute_type::message_integrity_sha256:
                if (len < 16 || len > 32 || len % 4 != 0)
                    return fail(stun_error::bad_attribute_value);
                if (m.mi256_ == 0)
                    m.mi256_ = off;
                break;
            case attribute_type::fingerprint:
                if (len != 4)
                    return fail(stun_error::bad_attribute_value);
                m.fp_ = off;
                break;
            default:
                break;
            }
        }
        pos = value + padded(len);
    }
    ec.clear();
    return m;
}

inline std::optional<endpoint> decode_address(const attribute& a, std::error_code& ec) noexcept {
    const auto v = a.value;
    if (v.size() < 4)
        return detail::fail_value(ec);
    const auto family = std::to_integer<unsigned>(v[1]);
    const std::uint16_t port = detail::load_be<std::uint16_t>(v.data() + 2);
    if (family == 0x01 && v.size() == 8) {
        std::array<std::uint8_t, 4> b;
        std::memcpy(b.data(), v.data() + 4, 4);
        ec.clear();
        return endpoint{ip_address::v4(b), port};
    }
    if (family == 0x02 && v.size() == 20) {
        std::array<std::uint8_t, 16> b;
        std::memcpy(b.data(), v.data() + 4, 16);
        ec.clear();
        return endpoint{ip_address::v6(b), port};
    }
    return detail::fail_value(ec);
}

inline std::optional<endpoint> decode_xor_address(const attribute& a, const transaction_id& id,
                                                  std::error_code& ec) noexcept {
    auto e = decode_address(a, ec);
    if (!e)
        return e;
    std::array<std::uint8_t, 16> mask;
    detail::store_be<std::uint32_t>(reinterpret_cast<std::byte*>(mask.data()), magic_cookie);
    std::memcpy(mask.data() + 4, id.data(), id.size());
    e->port = static_cast<std::uint16_t>(e->port ^ (magic_cookie >> 16));
    if (e->address.is_v4()) {
        auto b = e->address.to_v4_bytes();
        for (std::size_t i = 0; i < 4; ++i)
            b[i] ^= mask[i];
        e->address = ip_address::v4(b);
    } else {
        auto b = e->address.to_v6_bytes();
        for (std::size_t i = 0; i < 16; ++i)
            b[i] ^= mask[i];
        e->address = ip_address::v6(b);
    }
    return e;
}

inline std::optional<std::uint32_t> decode_u32(const attribute& a, std::error_code& ec) noexcept {
    if (a.value.size() != 4) {
        ec = make_error_code(stun_error::bad_attribute_value);
        return std::nullopt;
    }
    ec.clear();
    return detail::load_be<std::uint32_t>(a.value.data());
}

inline std::optional<std::uint64_t> decode_u64(const attribute& a, std::error_code& ec) noexcept {
    if (a.value.size() != 8) {
        ec = make_error_code(stun_error::bad_attribute_value);
        return std::nullopt;
    }
    ec.clear();
    return detail::load_be<std::uint64_t>(a.value.data());
}

namespace detail {
// The class/number/reason layout shared by ERROR-CODE and ADDRESS-ERROR-CODE.
inline std::optional<error_code_value> decode_code(std::span<const std::byte> v,
                                                   std::error_code& ec) noexcept {
    if (v.size() < 4) {
        ec = make_error_code(stun_error::bad_attribute_value);
        return std::nullopt;
    }
    const unsigned cls = std::to_integer<unsigned>(v[2]) & 0x07;
    const unsigned number = std::to_integer<unsigned>(v[3]);
    if (cls < 3 || cls > 6 || number > 99) {
        ec = make_error_code(stun_error::bad_attribute_value);
        return std::nullopt;
    }
    ec.clear();
    error_code_value r;
    r.code = cls * 100 + number;
    r.reason = std::string_view(reinterpret_cast<const char*>(v.data() + 4), v.size() - 4);
    return r;
}
} // namespace detail

inline std::optional<error_code_value> decode_error_code(const attribute& a,
                                                         std::error_code& ec) noexcept {
    return detail::decode_code(a.value, ec);
}

inline std::optional<error_code_value> decode_address_error_code(const attribute& a,
                                                                 std::error_code& ec) noexcept {
    auto r = detail::decode_code(a.value, ec);
    if (!r)
        return r;
    const auto f = std::to_integer<unsigned>(a.value[0]);
    if (f != 0x01 && f != 0x02) {
        ec = make_error_code(stun_error::bad_attribute_value);
        return std::nullopt;
    }
    r->family = f == 0x01 ? ip_address::family::v4 : ip_address::family::v6;
    return r;
}

inline stun_error error_from_code(unsigned code) noexcept {
    switch (code) {
    case 300:
        return stun_error::try_alternate;
    case 400:
        return stun_error::bad_request;
    case 401:
        return stun_error::unauthorized;
    case 403:
        return stun_error::forbidden;
    case 420:
        return stun_error::unknown_attribute;
    case 437:
        return stun_error::allocation_mismatch;
    case 438:
        return stun_error::stale_nonce;
    case 440:
        return stun_error::address_family_not_supported;
    case 441:
        return stun_error::wrong_credentials;
    case 442:
        return stun_error::unsupported_transport;
    case 443:
        return stun_error::peer_address_family_mismatch;
    case 486:
        return stun_error::allocation_quota_reached;
    case 487:
        return stun_error::role_conflict;
    case 500:
        return stun_error::server_error;
    case 508:
        return stun_error::insufficient_capacity;
    default:
        return stun_error::error_response;
    }
}

inline std::string_view reason_phrase(unsigned code) noexcept {
    switch (code) {
    case 300:
        return "Try Alternate";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 420:
        return "Unknown Attribute";
    case 437:
        return "Allocation Mismatch";
    case 438:
        return "Stale Nonce";
    case 440:
        return "Address Family not Supported";
    case 441:
        return "Wrong Credentials";
    case 442:
        return "Unsupported Transport Protocol";
    case 443:
        return "Peer Address Family Mismatch";
    case 486:
        return "Allocation Quota Reached";
    case 487:
        return "Role Conflict";
    case 500:
        return "Server Error";
    case 508:
        return "Insufficient Capacity";
    default:
        return {};
    }
}

inline std::optional<attribute_list> decode_unknown_attributes(const attribute& a,
                                                               std::error_code& ec) noexcept {
    if (a.value.size() % 2 != 0) {
        ec = make_error_code(stun_error::bad_attribute_value);
        return std::nullopt;
    }
    ec.clear();
    return attribute_list(a.value);
}

inline std::optional<change_request> decode_change_request(const attribute& a,
                                                           std::error_code& ec) noexcept {
    auto v = decode_u32(a, ec);
    if (!v)
        return std::nullopt;
    return change_request{(*v & 0x4) != 0, (*v & 0x2) != 0};
}

inline std::optional<std::uint16_t> decode_response_port(const attribute& a,
                                                         std::error_code& ec) noexcept {
    if (a.value.size() != 4) {
        ec = make_error_code(stun_error::bad_attribute_value);
        return std::nullopt;
    }
    ec.clear();
    return detail::load_be<std::uint16_t>(a.value.data());
}

inline std::optional<std::uint16_t> decode_channel_number(const attribute& a,
                                                          std::error_code& ec) noexcept {
    return decode_response_port(a, ec); // the same layout: u16 and two reserved bytes
}

inline std::optional<std::uint8_t> decode_requested_transport(const attribute& a,
                                                              std::error_code& ec) noexcept {
    if (a.value.size() != 4) {
        ec = make_error_code(stun_error::bad_attribute_value);
        return std::nullopt;
    }
    ec.clear();
    return std::to_integer<std::uint8_t>(a.value[0]);
}

inline std::optional<ip_address::family> decode_address_family(const attribute& a,
                                                               std::error_code& ec) noexcept {
    if (a.value.size() == 4) {
        const auto f = std::to_integer<unsigned>(a.value[0]);
        if (f == 0x01 || f == 0x02) {
            ec.clear();
            return f == 0x01 ? ip_address::family::v4 : ip_address::family::v6;
        }
    }
    ec = make_error_code(stun_error::bad_attribute_value);
    return std::nullopt;
}

inline std::optional<bool> decode_even_port(const attribute& a, std::error_code& ec) noexcept {
    if (a.value.size() != 1) {
        ec = make_error_code(stun_error::bad_attribute_value);
        return std::nullopt;
    }
    ec.clear();
    return (std::to_integer<unsigned>(a.value[0]) & 0x80) != 0;
}

inline std::optional<icmp_value> decode_icmp(const attribute& a, std::error_code& ec) noexcept {
    if (a.value.size() != 8) {
        ec = make_error_code(stun_error::bad_attribute_value);
        return std::nullopt;
    }
    ec.clear();
    return icmp_value{std::to_integer<std::uint8_t>(a.value[2]),
                      std::to_integer<std::uint8_t>(a.value[3]),
                      detail::load_be<std::uint32_t>(a.value.data() + 4)};
}

namespace detail {
// One algorithm entry at the front of v: algorithm, parameter length, parameters
// padded to 4. Returns its padded size, or 0 when malformed.
inline std::size_t decode_algorithm_entry(std::span<const std::byte> v,
                                          password_algorithm_entry& out) noexcept {
    if (v.size() < 4)
        return 0;
    const std::size_t len = load_be<std::uint16_t>(v.data() + 2);
    if (padded(len) > v.size() - 4)
        return 0;
    out.algorithm = static_cast<password_algorithm>(load_be<std::uint16_t>(v.data()));
    out.parameters = v.subspan(4, len);
    return 4 + padded(len);
}
} // namespace detail

inline std::optional<password_algorithm_list>
decode_password_algorithms(const attribute& a, std::error_code& ec) noexcept {
    password_algorithm_list list;
    auto v = a.value;
    while (!v.empty()) {
        if (list.count == list.max_entries) {
            ec = make_error_code(stun_error::bad_attribute_value);
            return std::nullopt;
        }
        const std::size_t n = detail::decode_algorithm_entry(v, list.entries[list.count]);
        if (n == 0) {
            ec = make_error_code(stun_error::bad_attribute_value);
            return std::nullopt;
        }
        ++list.count;
        v = v.subspan(n);
    }
    ec.clear();
    return list;
}

inline std::optional<password_algorithm_entry>
decode_password_algorithm(const attribute& a, std::error_code& ec) noexcept {
    // One entry; its parameters may or may not carry their own padding (the
    // attribute's padding follows them anyway).
    const auto v = a.value;
    if (v.size() >= 4) {
        const std::size_t len = detail::load_be<std::uint16_t>(v.data() + 2);
        if (v.size() == 4 + len || v.size() == 4 + padded(len)) {
            ec.clear();
            return password_algorithm_entry{
                static_cast<password_algorithm>(detail::load_be<std::uint16_t>(v.data())),
                v.subspan(4, len)};
        }
    }
    ec = make_error_code(stun_error::bad_attribute_value);
    return std::nullopt;
}

inline std::optional<long_term_key_value>
long_term_key(std::string_view username, std::string_view realm, std::string_view password,
              std::error_code& ec, password_algorithm alg) {
    long_term_key_value k;
    const bool md5 = alg == password_algorithm::md5;
    if (!md5 && alg != password_algorithm::sha256) {
        ec = make_error_code(error::invalid_config);
        return std::nullopt;
    }
    k.size = md5 ? 16 : 32;
    if (!detail::digest_joined(md5 ? "MD5" : "SHA256", {username, realm, password}, k.bytes.data(),
                               k.size)) {
        ec = make_error_code(error::crypto_failure);
        return std::nullopt;
    }
    ec.clear();
    return k;
}

inline std::optional<std::array<std::byte, 32>>
userhash(std::string_view username, std::string_view realm, std::error_code& ec) {
    std::array<std::byte, 32> h;
    if (!detail::digest_joined("SHA256", {username, realm}, h.data(), h.size())) {
        ec = make_error_code(error::crypto_failure);
        return std::nullopt;
    }
    ec.clear();
    return h;
}

inline std::uint32_t crc32(std::span<const std::byte> bytes, std::uint32_t crc) noexcept {
    crc = ~crc;
    for (auto b : bytes)
        crc = detail::crc_table[(crc ^ std::to_integer<std::uint32_t>(b)) & 0xff] ^ (crc >> 8);
    return ~crc;
}

inline std::error_code verify_fingerprint(const message_view& m) noexcept {
    const std::size_t off = m.fingerprint_offset();
    if (off == 0)
        return make_error_code(stun_error::fingerprint_missing);
    const auto bytes = m.bytes();
    const std::uint32_t want = crc32(bytes.first(off)) ^ fingerprint_xor;
    if (detail::load_be<std::uint32_t>(bytes.data() + off + attribute_header_size) != want)
        return make_error_code(stun_error::fingerprint_mismatch);
    return {};
}

inline std::error_code verify_integrity(const message_view& m, std::span<const std::byte> key,
                                        integrity_kind kind) {
    const auto bytes = m.bytes();
    std::size_t off = 0;
    bool sha256 = false;
    if (kind != integrity_kind::sha1 && m.integrity_sha256_offset() != 0) {
        off = m.integrity_sha256_offset();
        sha256 = true;
    } else if (kind != integrity_kind::sha256 && m.integrity_offset() != 0) {
        off = m.integrity_offset();
    }
    if (off == 0)
        return make_error_code(stun_error::integrity_missing);
    const std::size_t len = detail::load_be<std::uint16_t>(bytes.data() + off + 2);
    const std::size_t end = off + attribute_header_size + len; // the length covers the MAC
    std::byte mac[32];
    if (!detail::hmac_prefix(sha256 ? "SHA256" : "SHA1", key, bytes, off,
                             static_cast<std::uint16_t>(end - header_size), mac, len))
        return make_error_code(error::crypto_failure);
    if (CRYPTO_memcmp(mac, bytes.data() + off + attribute_header_size, len) != 0)
        return make_error_code(stun_error::integrity_mismatch);
    return {};
}

inline std::size_t encode_header(std::span<std::byte> out, std::uint16_t type, std::uint16_t length,
                                 const transaction_id& id) noexcept {
    if (out.size() < header_size)
        return 0;
    detail::store_be<std::uint16_t>(out.data(), type);
    detail::store_be<std::uint16_t>(out.data() + 2, length);
    detail::store_be<std::uint32_t>(out.data() + 4, magic_cookie);
    std::memcpy(out.data() + 8, id.data(), id.size());
    return header_size;
}

inline std::size_t encode_attribute_header(std::span<std::byte> out, attribute_type t,
                                           std::uint16_t length) noexcept {
    if (out.size() < attribute_header_size)
        return 0;
    detail::store_be<std::uint16_t>(out.data(), static_cast<std::uint16_t>(t));
    detail::store_be<std::uint16_t>(out.data() + 2, length);
    return attribute_header_size;
}

inline std::size_t encode_address_value(std::span<std::byte> out, const endpoint& e) noexcept {
    const std::size_t n = address_value_size(e);
    if (out.size() < n)
        return 0;
    out[0] = std::byte{0};
    out[1] = std::byte{static_cast<std::uint8_t>(e.address.is_v4() ? 0x01 : 0x02)};
    detail::store_be<std::uint16_t>(out.data() + 2, e.port);
    std::memcpy(out.data() + 4, e.address.data(), e.address.size());
    return n;
}

inline std::size_t encode_xor_address_value(std::span<std::byte> out, const endpoint& e,
                                            const transaction_id& id) noexcept {
    const std::size_t n = encode_address_value(out, e);
    if (n == 0)
        return 0;
    std::byte mask[16];
    detail::store_be<std::uint32_t>(mask, magic_cookie);
    std::memcpy(mask + 4, id.data(), id.size());
    out[2] ^= mask[0];
    out[3] ^= mask[1];
    for (std::size_t i = 0; i + 4 < n; ++i)
        out[4 + i] ^= mask[i];
    return n;
}

// message_writer

inline message_writer::message_writer(std::span<std::byte> out, std::uint16_t type,
                                      const transaction_id& id) noexcept
    : out_(out), id_(id) {
    if (encode_header(out, type, 0, id) == 0)
        fail(make_error_code(error::buffer_too_small));
    else
        size_ = header_size;
}

inline message_writer::message_writer(packet_buffer& out, method m, message_class c,
                                      const transaction_id& id) noexcept
    : message_writer(out.storage().subspan(out.headroom() + out.size()), message_type(m, c), id) {
    packet_ = &out;
}

inline message_writer::message_writer(std::span<std::byte> out, std::uint16_t type,
                                      std::span<const std::byte, 16> classic_id) noexcept
    : out_(out) {
    if (out.size() < header_size) {
        fail(make_error_code(error::buffer_too_small));
        return;
    }
    detail::store_be<std::uint16_t>(out.data(), type);
    detail::store_be<std::uint16_t>(out.data() + 2, 0);
    std::memcpy(out.data() + 4, classic_id.data(), 16);
    std::memcpy(id_.data(), classic_id.data() + 4, id_.size());
    size_ = header_size;
}

// Appends an attribute header for a value of `value_size` bytes, pads it, updates the
// message length, and returns the value's bytes for the caller to fill.
inline std::span<std::byte> message_writer::reserve(attribute_type t,
                                                    std::size_t value_size) noexcept {
    if (ec_)
        return {};
    const std::uint8_t stage = t == attribute_type::fingerprint                ? 3
                               : t == attribute_type::message_integrity_sha256 ? 2
                               : t == attribute_type::message_integrity        ? 1
                                                                               : 0;
    if (stage_ != 0 && stage <= stage_) {
        fail(make_error_code(stun_error::attribute_after_end));
        return {};
    }
    const std::size_t total = attribute_header_size + padded(value_size);
    if (value_size > 0xffff || size_ - header_size + total > 0xffff) {
        fail(make_error_code(stun_error::value_too_long));
        return {};
    }
    if (total > out_.size() - size_) {
        fail(make_error_code(error::buffer_too_small));
        return {};
    }
    std::byte* p = out_.data() + size_;
    encode_attribute_header(std::span<std::byte>(p, attribute_header_size), t,
                            static_cast<std::uint16_t>(value_size));
    std::memset(p + attribute_header_size + value_size, std::to_integer<int>(pad_),
                padded(value_size) - value_size);
    size_ += total;
    detail::store_be<std::uint16_t>(out_.data() + 2,
                                    static_cast<std::uint16_t>(size_ - header_size));
    if (stage > stage_)
        stage_ = stage;
    return std::span<std::byte>(p + attribute_header_size, value_size);
}

inline message_writer& message_writer::add_bytes(attribute_type t,
                                                 std::span<const std::byte> value) noexcept {
    auto v = reserve(t, value.size());
    if (!v.empty())
        std::memcpy(v.data(), value.data(), value.size());
    return *this;
}

inline message_writer& message_writer::add_string(attribute_type t,
                                                  std::string_view text) noexcept {
    return add_bytes(t, std::as_bytes(std::span<const char>(text.data(), text.size())));
}

inline message_writer& message_writer::add_u32(attribute_type t, std::uint32_t v) noexcept {
    auto s = reserve(t, 4);
    if (!s.empty())
        detail::store_be<std::uint32_t>(s.data(), v);
    return *this;
}

inline message_writer& message_writer::add_u64(attribute_type t, std::uint64_t v) noexcept {
    auto s = reserve(t, 8);
    if (!s.empty())
        detail::store_be<std::uint64_t>(s.data(), v);
    return *this;
}

inline message_writer& message_writer::add_address(attribute_type t, const endpoint& e) noexcept {
    auto s = reserve(t, address_value_size(e));
    if (!s.empty())
        encode_address_value(s, e);
    return *this;
}

inline message_writer& message_writer::add_xor_address(attribute_type t,
                                                       const endpoint& e) noexcept {
    auto s = reserve(t, address_value_size(e));
    if (!s.empty())
        encode_xor_address_value(s, e, id_);
    return *this;
}

inline message_writer& message_writer::add_error_code(unsigned code,
                                                      std::string_view reason) noexcept {
    return add_code(attribute_type::error_code, std::byte{0}, code, reason);
}

inline message_writer& message_writer::add_address_error_code(ip_address::family f, unsigned code,
                                                              std::string_view reason) noexcept {
    return add_code(attribute_type::address_error_code,
                    std::byte{static_cast<std::uint8_t>(f == ip_address::family::v4 ? 1 : 2)}, code,
                    reason);
}

inline message_writer& message_writer::add_code(attribute_type t, std::byte first, unsigned code,
                                                std::string_view reason) noexcept {
    if (code < 300 || code > 699) {
        fail(make_error_code(stun_error::bad_attribute_value));
        return *this;
    }
    if (reason.empty())
        reason = reason_phrase(code);
    auto s = reserve(t, 4 + reason.size());
    if (!s.empty()) {
        s[0] = first;
        s[1] = std::byte{0};
        s[2] = std::byte{static_cast<std::uint8_t>(code / 100)};
        s[3] = std::byte{static_cast<std::uint8_t>(code % 100)};
        if (!reason.empty())
            std::memcpy(s.data() + 4, reason.data(), reason.size());
    }
    return *this;
}

inline message_writer&
message_writer::add_unknown_attributes(std::span<const attribute_type> types) noexcept {
    auto s = reserve(attribute_type::unknown_attributes, 2 * types.size());
    if (!s.empty())
        for (std::size_t i = 0; i < types.size(); ++i)
            detail::store_be<std::uint16_t>(s.data() + 2 * i, static_cast<std::uint16_t>(types[i]));
    return *this;
}

inline message_writer& message_writer::add_change_request(change_request r) noexcept {
    return add_u32(attribute_type::change_request,
                   (r.change_ip ? 0x4u : 0u) | (r.change_port ? 0x2u : 0u));
}

inline message_writer& message_writer::add_response_port(std::uint16_t port) noexcept {
    return add_u32(attribute_type::response_port, std::uint32_t{port} << 16);
}

inline message_writer& message_writer::add_padding(std::size_t n) noexcept {
    auto s = reserve(attribute_type::padding, n);
    if (!s.empty())
        std::memset(s.data(), 0, n);
    return *this;
}

inline message_writer& message_writer::add_channel_number(std::uint16_t channel) noexcept {
    return add_u32(attribute_type::channel_number, std::uint32_t{channel} << 16);
}

inline message_writer& message_writer::add_requested_transport(std::uint8_t protocol) noexcept {
    return add_u32(attribute_type::requested_transport, std::uint32_t{protocol} << 24);
}

inline message_writer& message_writer::add_address_family(attribute_type t,
                                                          ip_address::family f) noexcept {
    return add_u32(t, (f == ip_address::family::v4 ? 0x01u : 0x02u) << 24);
}

inline message_writer& message_writer::add_even_port(bool reserve_next) noexcept {
    const std::byte b{static_cast<std::uint8_t>(reserve_next ? 0x80 : 0x00)};
    return add_bytes(attribute_type::even_port, std::span<const std::byte>(&b, 1));
}

inline message_writer& message_writer::add_icmp(const icmp_value& v) noexcept {
    auto s = reserve(attribute_type::icmp, 8);
    if (!s.empty()) {
        s[0] = s[1] = std::byte{0};
        s[2] = std::byte{v.type};
        s[3] = std::byte{v.code};
        detail::store_be<std::uint32_t>(s.data() + 4, v.error_data);
    }
    return *this;
}

namespace detail {
inline std::size_t algorithm_entries_size(std::span<const password_algorithm_entry> e) noexcept {
    std::size_t n = 0;
    for (const auto& x : e)
        n += 4 + padded(x.parameters.size());
    return n;
}
inline void encode_algorithm_entries(std::byte* p,
                                     std::span<const password_algorithm_entry> e) noexcept {
    for (const auto& x : e) {
        store_be<std::uint16_t>(p, static_cast<std::uint16_t>(x.algorithm));
        store_be<std::uint16_t>(p + 2, static_cast<std::uint16_t>(x.parameters.size()));
        if (!x.parameters.empty())
            std::memcpy(p + 4, x.parameters.data(), x.parameters.size());
        std::memset(p + 4 + x.parameters.size(), 0,
                    padded(x.parameters.size()) - x.parameters.size());
        p += 4 + padded(x.parameters.size());
    }
}
} // namespace detail

inline message_writer&
message_writer::add_password_algorithms(std::span<const password_algorithm_entry> e) noexcept {
    for (const auto& x : e)
        if (x.parameters.size() > 0xffff) {
            fail(make_error_code(stun_error::value_too_long));
            return *this;
        }
    auto s = reserve(attribute_type::password_algorithms, detail::algorithm_entries_size(e));
    if (!s.empty())
        detail::encode_algorithm_entries(s.data(), e);
    return *this;
}

inline message_writer&
message_writer::add_password_algorithm(const password_algorithm_entry& e) noexcept {
    if (e.parameters.size() > 0xffff - 4) {
        fail(make_error_code(stun_error::value_too_long));
        return *this;
    }
    auto s = reserve(attribute_type::password_algorithm, 4 + e.parameters.size());
    if (!s.empty()) {
        detail::store_be<std::uint16_t>(s.data(), static_cast<std::uint16_t>(e.algorithm));
        detail::store_be<std::uint16_t>(s.data() + 2,
                                        static_cast<std::uint16_t>(e.parameters.size()));
        if (!e.parameters.empty())
            std::memcpy(s.data() + 4, e.parameters.data(), e.parameters.size());
    }
    return *this;
}

inline message_writer&
message_writer::add_message_integrity(std::span<const std::byte> key) noexcept {
    const std::size_t start = size_;
    auto s = reserve(attribute_type::message_integrity, detail::mi_size);
    if (s.empty())
        return *this;
    // reserve() already set the length to cover the MAC, as RFC 8489 §14.5 requires.
    if (!detail::hmac_prefix("SHA1", key, bytes(), start,
                             static_cast<std::uint16_t>(size_ - header_size), s.data(), s.size()))
        fail(make_error_code(error::crypto_failure));
    return *this;
}

inline message_writer& message_writer::add_message_integrity_sha256(std::span<const std::byte> key,
                                                                    std::size_t size) noexcept {
    if (size < 16 || size > 32 || size % 4 != 0) {
        fail(make_error_code(stun_error::bad_attribute_value));
        return *this;
    }
    const std::size_t start = size_;
    auto s = reserve(attribute_type::message_integrity_sha256, size);
    if (s.empty())
        return *this;
    if (!detail::hmac_prefix("SHA256", key, bytes(), start,
                             static_cast<std::uint16_t>(size_ - header_size), s.data(), s.size()))
        fail(make_error_code(error::crypto_failure));
    return *this;
}

inline message_writer& message_writer::add_fingerprint() noexcept {
    const std::size_t start = size_;
    auto s = reserve(attribute_type::fingerprint, 4);
    if (!s.empty())
        detail::store_be<std::uint32_t>(s.data(), crc32(bytes().first(start)) ^ fingerprint_xor);
    return *this;
}

inline std::size_t message_writer::finish(std::error_code& ec) noexcept {
    if (ec_) {
        ec = ec_;
        return 0;
    }
    if (packet_ != nullptr && packet_->append(size_).size() != size_) {
        ec = make_error_code(error::buffer_too_small);
        return 0;
    }
    packet_ = nullptr; // a second finish() must not append again
    ec.clear();
    return size_;
}

// ChannelData

inline std::optional<channel_data> decode_channel_data(std::span<const std::byte> bytes,
                                                       std::error_code& ec, framing f) noexcept {
    if (bytes.size() < channel_data_header_size) {
        ec = make_error_code(stun_error::truncated);
        return std::nullopt;
    }
    channel_data d;
    d.channel = detail::load_be<std::uint16_t>(bytes.data());
    const std::size_t len = detail::load_be<std::uint16_t>(bytes.data() + 2);
    if (!is_valid_channel(d.channel)) {
        ec = make_error_code(stun_error::bad_channel_number);
        return std::nullopt;
    }
    if (channel_data_header_size + len > bytes.size()) {
        ec = make_error_code(stun_error::truncated);
        return std::nullopt;
    }
    d.wire_size = channel_data_header_size + (f == framing::stream ? padded(len) : len);
    if (d.wire_size > bytes.size()) {
        ec = make_error_code(stun_error::bad_padding);
        return std::nullopt;
    }
    d.data = bytes.subspan(channel_data_header_size, len);
    ec.clear();
    return d;
}

inline std::size_t encode_channel_data(std::span<std::byte> out, std::uint16_t channel,
                                       std::span<const std::byte> data, std::error_code& ec,
                                       framing f) noexcept {
    if (!is_valid_channel(channel)) {
        ec = make_error_code(stun_error::bad_channel_number);
        return 0;
    }
    if (data.size() > 0xffff) {
        ec = make_error_code(stun_error::value_too_long);
        return 0;
    }
    const std::size_t body = f == framing::stream ? padded(data.size()) : data.size();
    if (out.size() < channel_data_header_size + body) {
        ec = make_error_code(error::buffer_too_small);
        return 0;
    }
    detail::store_be<std::uint16_t>(out.data(), channel);
    detail::store_be<std::uint16_t>(out.data() + 2, static_cast<std::uint16_t>(data.size()));
    if (!data.empty())
        std::memmove(out.data() + channel_data_header_size, data.data(), data.size());
    std::memset(out.data() + channel_data_header_size + data.size(), 0, body - data.size());
    ec.clear();
    return channel_data_header_size + body;
}

inline std::error_code wrap_channel_data(packet_buffer& p, std::uint16_t channel,
                                         framing f) noexcept {
    const std::size_t len = p.size();
    if (!is_valid_channel(channel))
        return make_error_code(stun_error::bad_channel_number);
    if (len > 0xffff)
        return make_error_code(stun_error::value_too_long);
    const std::size_t pad = f == framing::stream ? padded(len) - len : 0;
    if (p.headroom() < channel_data_header_size || p.tailroom() < pad)
        return make_error_code(error::buffer_too_small);
    auto h = p.prepend(channel_data_header_size);
    detail::store_be<std::uint16_t>(h.data(), channel);
    detail::store_be<std::uint16_t>(h.data() + 2, static_cast<std::uint16_t>(len));
    if (pad != 0)
        std::memset(p.append(pad).data(), 0, pad);
    return {};
}

inline std::optional<std::size_t> stream_frame_size(std::span<const std::byte> bytes,
                                                    std::error_code& ec) noexcept {
    ec.clear();
    if (bytes.size() < 4)
        return std::nullopt;
    const std::size_t len = detail::load_be<std::uint16_t>(bytes.data() + 2);
    switch (classify_packet(bytes)) {
    case packet_kind::stun:
        return header_size + len;
    case packet_kind::channel_data:
        return channel_data_header_size + padded(len);
    default:
        ec = make_error_code(stun_error::not_stun);
        return std::nullopt;
    }
}

} // namespace stun
} // namespace peerlink

#endif // PEERLINK_PROTO_IMPL_STUN_HPP
