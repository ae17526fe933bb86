// libFuzzer target: the TURN client core. The input is a script of operations on one
// `turn::client_core` (UDP or TCP framing, chosen by the first byte): API calls
// (allocate, create_permission, bind_channel, send, refresh, deallocate), time
// passing, raw bytes from the server (datagrams, or stream chunks cut anywhere), the
// TCP connection closing, and answers to the client's last request built from the
// input (success or error, signed or not, with or without LIFETIME, relayed address,
// realm and nonce), so the fuzzer reaches every state. After every step the core is
// drained; it must never hand out a transmit for another address, a stream frame that
// is not whole and padded, a data view outside its buffer, an error event without an
// error, or anything to send once it is idle, closed or failed.
#include <peerlink/proto/turn_client.hpp>

#include <array>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>
#include <vector>

namespace {

namespace stun = peerlink::stun;
namespace turn = peerlink::turn;
using peerlink::endpoint;
using peerlink::ip_address;
using stun::attribute_type;

void check(bool ok) {
    if (!ok)
        __builtin_trap();
}

struct reader {
    const std::uint8_t* p;
    std::size_t n;
    bool empty() const { return n == 0; }
    std::uint8_t byte() {
        if (n == 0)
            return 0;
        --n;
        return *p++;
    }
    std::uint16_t u16() { return static_cast<std::uint16_t>(byte() << 8 | byte()); }
    std::span<const std::byte> bytes(std::size_t len) {
        len = std::min(len, n);
        std::span<const std::byte> s(reinterpret_cast<const std::byte*>(p), len);
        p += len;
        n -= len;
        return s;
    }
};

const endpoint server{ip_address::v4({192, 0, 2, 1}), 3478};
const endpoint relayed{ip_address::v4({192, 0, 2, 1}), 50000};
const endpoint mapped{ip_address::v4({198, 51, 100, 7}), 40000};

endpoint peer_of(std::uint8_t b) {
    return {ip_address::v4({203, 0, 113, static_cast<std::uint8_t>(b % 4)}),
            static_cast<std::uint16_t>(7000 + b % 3)};
}

const stun::long_term_key_value& server_key() {
    static const stun::long_term_key_value k = [] {
        std::error_code ec;
        auto v = stun::long_term_key("alice", "peerlink.test", "secret", ec);
        return v ? *v : stun::long_term_key_value{};
    }();
    return k;
}

struct session {
    turn::client_core core;
    peerlink::time_point now = peerlink::time_point{} + std::chrono::hours(1);
    std::vector<std::byte> last_request;
    std::vector<std::byte> scratch = std::vector<std::byte>(70000);

    explicit session(turn::client_config c) : core(std::move(c)) {}

    bool stream() const { return core.config().framing == stun::framing::stream; }

    void drain() {
        for (int guard = 0; guard < 1000; ++guard) {
            bool progress = false;
            while (auto e = core.poll_event()) {
                progress = true;
                if (auto* d = std::get_if<turn::data_received_event>(&*e)) {
                    volatile std::uint8_t sum = 0;
                    for (auto b : d->data) // every byte of the view must be readable
                        sum = static_cast<std::uint8_t>(sum + std::to_integer<std::uint8_t>(b));
                    (void)sum;
                    check(d->channel == 0 || stun::is_valid_channel(d->channel));
                } else if (auto* err = std::get_if<turn::error_event>(&*e)) {
                    check(static_cast<bool>(err->ec));
                    check(!err->fatal || core.state() == turn::client_state::failed);
                }
            }
            while (auto t = core.poll_transmit()) {
                progress = true;
                check(t->to == server);
                check(!t->data.empty());
                if (stream()) {
                    std::error_code ec;
                    auto size = stun::stream_frame_size(t->data, ec);
                    check(!ec && size && *size == t->data.size() && t->data.size() % 4 == 0);
                }
                std::error_code ec;
                if (auto m = stun::decode(t->data, ec)) {
                    if (m->is_request())
                        last_request.assign(t->data.begin(), t->data.end());
                } else {
                    check(stun::classify_packet(t->data) == stun::packet_kind::channel_data);
                }
            }
            if (!progress)
                break;
        }
        const auto s = core.state();
        if (s == turn::client_state::idle || s == turn::client_state::closed ||
            s == turn::client_state::failed) {
            check(!core.poll_transmit());
            check(!core.poll_timeout());
        }
        check(core.send_capacity() <= core.config().transmit_slots);
    }

    void deliver(std::span<const std::byte> bytes, bool foreign, std::size_t split) {
        if (!stream()) {
            endpoint from = server;
            if (foreign)
                from.port = 3479;
            core.handle_datagram(bytes, from, now);
            drain();
            return;
        }
        // Cut in two at `split`, each piece fed until taken.
        std::span<const std::byte> parts[2] = {bytes.first(std::min(split, bytes.size())),
                                               bytes.subspan(std::min(split, bytes.size()))};
        for (auto part : parts)
            for (int guard = 0; guard < 64 && !part.empty(); ++guard) {
                const std::size_t n = core.handle_stream_bytes(part, now);
                drain();
                if (n == 0)
                    break;
                part = part.subspan(n);
            }
    }

    // An answer to the last request, shaped by the input.
    void respond(reader& r) {
        const std::uint8_t flags = r.byte();
        static constexpr std::array<unsigned, 10> codes{401, 438, 437, 486, 508,
                                                        403, 400, 500, 442, 300};
        const unsigned code = codes[r.byte() % codes.size()];
        const std::uint16_t lifetime = r.u16();
        const auto nonce = r.bytes(r.byte() % 24);
        std::error_code ec;
        auto req = stun::decode(last_request, ec);
        if (!req)
            return;
        const bool error = flags & 1;
        stun::message_writer w(scratch, req->get_method(),
                               error ? stun::message_class::error_response
                                     : stun::message_class::success_response,
                               req->transaction());
        if (error)
            w.add_error_code(code);
        if (flags & 0x20)
            w.add_string(attribute_type::realm, "peerlink.test")
                .add_string(
                    attribute_type::nonce,
                    std::string_view(reinterpret_cast<const char*>(nonce.data()), nonce.size()));
        if (flags & 0x08)
            w.add_u32(attribute_type::lifetime, lifetime);
        if (flags & 0x10)
            w.add_xor_address(attribute_type::xor_relayed_address, relayed)
                .add_xor_address(attribute_type::xor_mapped_address, mapped);
        if (flags & 0x02)
            w.add_message_integrity(server_key().span());
        if (flags & 0x04)
            w.add_fingerprint();
        const std::size_t n = w.finish(ec);
        if (n != 0)
            deliver(std::span<const std::byte>(scratch.data(), n), false, flags >> 6);
    }

    // Data from a peer, as the server would relay it.
    void peer_data(reader& r) {
        const std::uint8_t flags = r.byte();
        const endpoint peer = peer_of(r.byte());
        const auto channel = static_cast<std::uint16_t>(0x4000 + r.byte());
        const auto data = r.bytes(r.byte());
        std::error_code ec;
        std::size_t n = 0;
        if (flags & 1) {
            n = stun::encode_channel_data(scratch, channel, data, ec, core.config().framing);
        } else {
            stun::transaction_id id{};
            stun::message_writer w(scratch, stun::method::data, stun::message_class::indication,
                                   id);
            w.add_xor_address(attribute_type::xor_peer_address, peer)
                .add_bytes(attribute_type::data, data);
            n = w.finish(ec);
        }
        if (n != 0)
            deliver(std::span<const std::byte>(scratch.data(), n), false, flags >> 1);
    }
};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    reader r{data, size};
    turn::client_config cfg;
    cfg.server = server;
    cfg.framing = (r.byte() & 1) ? stun::framing::stream : stun::framing::datagram;
    cfg.username = "alice";
    cfg.password = "secret";
    cfg.max_permissions = 4;
    cfg.max_channels = 4;
    cfg.max_transactions = 4;
    cfg.transmit_slots = 4;
    cfg.event_slots = 8;
    cfg.max_data_size = 512;
    cfg.random = [n = 0u](std::span<std::byte> out) mutable {
        for (auto& b : out)
            b = std::byte(static_cast<unsigned char>(n++));
    };
    session s(std::move(cfg));
    for (int ops = 0; ops < 256 && !r.empty(); ++ops) {
        switch (r.byte() % 12) {
        case 0:
            (void)s.core.allocate(s.now);
            break;
        case 1:
            (void)s.core.create_permission(peer_of(r.byte()), s.now);
            break;
        case 2:
            (void)s.core.bind_channel(peer_of(r.byte()), s.now);
            break;
        case 3: {
            const endpoint peer = peer_of(r.byte());
            const auto payload = r.bytes(r.byte() * 3u);
            const auto ec = s.core.send(peer, payload, s.now);
            check(!ec || ec == peerlink::turn_error::not_allocated ||
                  ec == peerlink::turn_error::no_permission ||
                  ec == peerlink::error::message_too_large ||
                  ec == std::errc::operation_would_block);
            break;
        }
        case 4:
            (void)s.core.deallocate(s.now);
            break;
        case 5:
            (void)s.core.refresh(s.now);
            break;
        case 6: {
            // Time passes (up to ~109 minutes in 100 ms steps), timers run as due.
            const auto until = s.now + std::chrono::milliseconds(100) * r.u16();
            for (int guard = 0; guard < 10000; ++guard) {
                auto next = s.core.poll_timeout();
                if (!next || *next > until)
                    break;
                s.now = std::max(s.now, *next);
                s.core.handle_timeout(s.now);
                s.drain();
            }
            s.now = std::max(s.now, until);
            break;
        }
        case 7: {
            const std::uint8_t flags = r.byte();
            const auto bytes = r.bytes(r.u16());
            s.deliver(bytes, flags & 1, flags >> 1);
            break;
        }
        case 8:
            s.respond(r);
            break;
        case 9:
            s.core.handle_stream_closed(s.now);
            break;
        case 10:
            s.peer_data(r);
            break;
        default:
            break;
        }
        s.drain();
    }
    (void)s.core.stats();
    return 0;
}
