// libFuzzer target: the STUN codec. Arbitrary bytes are (1) decoded as a STUN
// message (plain and RFC 3489), every attribute read with its decoder, the
// fingerprint and integrity checked, and the message rebuilt attribute by attribute
// with the writer, which must decode to the same header and attributes (and to the
// same bytes when the input padded with zeros and had nothing to ignore); (2) decoded
// as TURN ChannelData over datagrams and streams, which must re-encode to the same
// bytes; (3) cut as a stream frame, which must agree with the decoders.
#include <peerlink/proto/stun.hpp>

#include <array>
#include <cstdint>
#include <cstring>

namespace {

namespace stun = peerlink::stun;
using stun::attribute_type;

void check(bool ok) {
    if (!ok)
        __builtin_trap();
}

// Reads one attribute with the decoder of its type; a value it accepts must re-encode
// to itself where the codec has a writer for it.
void read_value(const stun::attribute& a, const stun::message_view& m) {
    std::error_code ec;
    switch (a.type) {
    case attribute_type::mapped_address:
    case attribute_type::alternate_server:
    case attribute_type::response_origin:
    case attribute_type::other_address:
    case attribute_type::source_address:
    case attribute_type::changed_address:
        if (auto e = stun::decode_address(a, ec)) {
            std::array<std::byte, 20> out;
            std::size_t n = stun::encode_address_value(out, *e);
            check(n == a.value.size() &&
                  std::memcmp(out.data() + 1, a.value.data() + 1, n - 1) == 0);
        }
        break;
    case attribute_type::xor_mapped_address:
    case attribute_type::xor_peer_address:
    case attribute_type::xor_relayed_address:
        if (auto e = stun::decode_xor_address(a, m, ec)) {
            std::array<std::byte, 20> out;
            std::size_t n = stun::encode_xor_address_value(out, *e, m.transaction());
            check(n == a.value.size() &&
                  std::memcmp(out.data() + 1, a.value.data() + 1, n - 1) == 0);
        }
        break;
    case attribute_type::error_code:
        if (auto c = stun::decode_error_code(a, ec))
            check(c->code >= 300 && c->code <= 699 && c->reason.size() + 4 == a.value.size());
        break;
    case attribute_type::address_error_code:
        (void)stun::decode_address_error_code(a, ec);
        break;
    case attribute_type::unknown_attributes:
        if (auto l = stun::decode_unknown_attributes(a, ec))
            for (std::size_t i = 0; i < l->size(); ++i)
                (void)(*l)[i];
        break;
    case attribute_type::change_request:
        (void)stun::decode_change_request(a, ec);
        break;
    case attribute_type::response_port:
        (void)stun::decode_response_port(a, ec);
        break;
    case attribute_type::channel_number:
        (void)stun::decode_channel_number(a, ec);
        break;
    case attribute_type::requested_transport:
        (void)stun::decode_requested_transport(a, ec);
        break;
    case attribute_type::requested_address_family:
    case attribute_type::additional_address_family:
        (void)stun::decode_address_family(a, ec);
        break;
    case attribute_type::even_port:
        (void)stun::decode_even_port(a, ec);
        break;
    case attribute_type::icmp:
        (void)stun::decode_icmp(a, ec);
        break;
    case attribute_type::password_algorithms:
        if (auto l = stun::decode_password_algorithms(a, ec))
            for (std::size_t i = 0; i < l->count; ++i)
                check(l->entries[i].parameters.data() >= a.value.data() &&
                      l->entries[i].parameters.data() + l->entries[i].parameters.size() <=
                          a.value.data() + a.value.size());
        break;
    case attribute_type::password_algorithm:
        (void)stun::decode_password_algorithm(a, ec);
        break;
    case attribute_type::lifetime:
    case attribute_type::priority:
    case attribute_type::connection_id:
        (void)stun::decode_u32(a, ec);
        break;
    case attribute_type::ice_controlled:
    case attribute_type::ice_controlling:
    case attribute_type::reservation_token:
        (void)stun::decode_u64(a, ec);
        break;
    default:
        (void)stun::decode_string(a);
        break;
    }
}

std::array<std::byte, 65536 + 64> rebuilt;

void fuzz_message(std::span<const std::byte> in, bool classic) {
    std::error_code ec;
    auto m = stun::decode(in, ec, {.allow_classic = classic});
    if (!m) {
        check(!!ec);
        return;
    }
    check(m->size() == in.size() && m->size() >= stun::header_size);
    (void)stun::verify_fingerprint(*m);
    (void)stun::verify_integrity(*m, stun::short_term_key("key"));

    bool zero_padding = true;
    std::size_t count = 0, expected_offset = stun::header_size;
    bool contiguous = true;
    for (const auto& a : *m) {
        check(a.value.data() >= in.data() &&
              a.value.data() + a.value.size() <= in.data() + in.size());
        read_value(a, *m);
        for (std::size_t i = a.value.size(); i < stun::padded(a.value.size()); ++i)
            zero_padding = zero_padding && a.value.data()[i] == std::byte{0};
        contiguous = contiguous && a.offset == expected_offset;
        expected_offset = a.offset + stun::attribute_header_size + stun::padded(a.value.size());
        ++count;
    }
    contiguous = contiguous && expected_offset == in.size();

    // Rebuild from the attributes the view shows.
    std::size_t n = 0;
    if (m->is_classic()) {
        stun::message_writer w(rebuilt, m->type(), m->classic_transaction());
        for (const auto& a : *m)
            w.add_bytes(a.type, a.value);
        n = w.finish(ec);
    } else {
        stun::message_writer w(rebuilt, m->type(), m->transaction());
        for (const auto& a : *m)
            w.add_bytes(a.type, a.value);
        n = w.finish(ec);
    }
    check(n != 0);
    auto again =
        stun::decode(std::span<const std::byte>(rebuilt.data(), n), ec, {.allow_classic = classic});
    check(again.has_value());
    check(again->type() == m->type() && again->transaction() == m->transaction());
    auto it = again->begin();
    for (const auto& a : *m) {
        check(it != again->end());
        check(it->type == a.type && it->value.size() == a.value.size() &&
              std::memcmp(it->value.data(), a.value.data(), a.value.size()) == 0);
        ++it;
    }
    check(it == again->end());
    if (zero_padding && contiguous)
        check(n == in.size() && std::memcmp(rebuilt.data(), in.data(), n) == 0);
}

void fuzz_channel_data(std::span<const std::byte> in, stun::framing f) {
    std::error_code ec;
    auto d = stun::decode_channel_data(in, ec, f);
    if (!d) {
        check(!!ec);
        return;
    }
    check(stun::is_valid_channel(d->channel) && d->wire_size <= in.size());
    check(d->data.data() == in.data() + stun::channel_data_header_size);
    std::size_t n = stun::encode_channel_data(rebuilt, d->channel, d->data, ec, f);
    check(n == d->wire_size && std::memcmp(rebuilt.data(), in.data(), 4 + d->data.size()) == 0);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::span<const std::byte> in(reinterpret_cast<const std::byte*>(data), size);
    fuzz_message(in, false);
    fuzz_message(in, true);
    fuzz_channel_data(in, stun::framing::datagram);
    fuzz_channel_data(in, stun::framing::stream);
    std::error_code ec;
    if (stun::decode(in, ec))
        check(stun::is_stun_message(in));
    if (auto frame = stun::stream_frame_size(in, ec)) {
        check(*frame >= 4);
        if (*frame <= in.size()) {
            auto first = in.first(*frame);
            if (stun::classify_packet(in) == stun::packet_kind::stun)
                (void)stun::decode(first, ec);
            else
                check(stun::decode_channel_data(first, ec, stun::framing::stream).has_value() ||
                      ec == peerlink::stun_error::bad_channel_number);
        }
    } else {
        check(size < 4 ? !ec : !!ec);
    }
    (void)stun::classify_packet(in);
    return 0;
}
