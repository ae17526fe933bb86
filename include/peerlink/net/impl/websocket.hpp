// Implementation of peerlink/net/websocket.hpp.
//
// The protocol decisions are in proto/websocket.hpp; this file moves bytes. State
// lives in a shared `impl` so that socket and timer handlers keep it alive after the
// websocket_stream is gone. Completions always go through detail::pending_op, which
// posts them: nothing completes inside an initiating call.
//
// Invariant of the read side: a read on the socket is in flight only when every
// received byte has been fed to the parser and no event waits (`held`). So the
// handlers that decide to tear down never race with a read of their own.
#ifndef PEERLINK_NET_IMPL_WEBSOCKET_HPP
#define PEERLINK_NET_IMPL_WEBSOCKET_HPP

#include <peerlink/detail/pending_op.hpp>
#include <peerlink/endpoint.hpp>

#include <asio/associated_cancellation_slot.hpp>
#include <asio/error.hpp>
#include <asio/post.hpp>
#include <asio/read.hpp>
#include <asio/ssl/host_name_verification.hpp>
#include <asio/steady_timer.hpp>
#include <asio/write.hpp>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <deque>
#include <optional>
#include <vector>

namespace peerlink {

namespace detail {

// Where async_read puts a message: the caller's dynamic buffer, type-erased.
class websocket_read_sink {
public:
    virtual ~websocket_read_sink() = default;
    virtual std::error_code store(std::span<const std::byte> message) = 0;
};

template <class DynamicBuffer>
class websocket_dynamic_sink final : public websocket_read_sink {
public:
    explicit websocket_dynamic_sink(DynamicBuffer b) : buffer_(std::move(b)) {}

    std::error_code store(std::span<const std::byte> m) override {
        auto n = m.size();
        if (n > buffer_.max_size() - buffer_.size())
            return make_error_code(error::buffer_too_small);
        if constexpr (asio::is_dynamic_buffer_v2<DynamicBuffer>::value) {
            auto at = buffer_.size();
            buffer_.grow(n);
            asio::buffer_copy(buffer_.data(at, n), asio::buffer(m.data(), n));
        } else {
            asio::buffer_copy(buffer_.prepare(n), asio::buffer(m.data(), n));
            buffer_.commit(n);
        }
        return {};
    }

private:
    DynamicBuffer buffer_;
};

class websocket_string_sink final : public websocket_read_sink {
public:
    explicit websocket_string_sink(std::string& s) : out_(s) {}
    std::error_code store(std::span<const std::byte> m) override {
        out_.assign(reinterpret_cast<const char*>(m.data()), m.size());
        return {};
    }

private:
    std::string& out_;
};

} // namespace detail

template <class NextLayer>
struct websocket_stream<NextLayer>::impl : std::enable_shared_from_this<impl> {
    static constexpr bool is_tls = detail::tls_stream<NextLayer>;
    static constexpr std::size_t rx_size = 16 * 1024;
    static constexpr std::size_t scratch_size = 16 * 1024;
    static constexpr std::size_t control_frame_size =
        websocket::max_frame_header_size + websocket::max_control_payload;
    using role = websocket::role;
    using opcode = websocket::opcode;
    enum class phase : std::uint8_t { fresh, handshaking, open, closed };

    // A ping or pong, framed (and masked) when queued.
    struct control_item {
        std::array<std::byte, control_frame_size> frame;
        std::size_t size = 0;
        bool is_pong = false;
        detail::pending_op_ptr<std::error_code> done; // async_ping's handler; none for pongs
    };
    // A data message, or the close frame (framed when queued), in the order they go out.
    struct message_item {
        opcode op = opcode::binary;
        asio::const_buffer data;
        std::array<std::byte, control_frame_size> close_frame;
        std::size_t close_size = 0;
        detail::pending_op_ptr<std::error_code, std::size_t> done;
    };
    struct read_request {
        detail::pending_op_ptr<std::error_code, std::size_t> done;
        std::unique_ptr<detail::websocket_read_sink> sink;
    };

    template <class... Args>
    explicit impl(Args&&... args) : next(std::forward<Args>(args)...), timer(next.get_executor()) {}

    auto executor() { return next.get_executor(); }

    // --- timers --------------------------------------------------------------------

    void arm(duration d, std::error_code why) {
        ++timer_gen;
        timer.expires_after(d);
        timer.async_wait(
            [self = this->shared_from_this(), gen = timer_gen, why](std::error_code ec) {
                if (ec || gen != self->timer_gen || self->ph == phase::closed)
                    return;
                // During teardown the close handshake is already over: the end is orderly.
                self->finish(self->tearing_down ? make_error_code(websocket_error::closed) : why);
            });
    }

    void disarm() {
        ++timer_gen;
        timer.cancel();
    }

    // --- the end ---------------------------------------------------------------------

    // Closes the socket and completes every pending operation. `ec` is why: closed
    // (orderly), a socket error, a timeout, or operation_aborted (close()).
    void finish(std::error_code ec) {
        if (ph == phase::closed)
            return;
        ph = phase::closed;
        disarm();
        std::error_code ignored;
        next.lowest_layer().close(ignored);
        bool orderly = close_sent && close_received && !failed;
        end_ec = failed ? fail_ec : close_received ? make_error_code(websocket_error::closed) : ec;
        held.reset();
        if (read.done)
            complete_read(end_ec, 0);
        if (close_op)
            detail::complete_op(close_op, orderly ? std::error_code{} : failed ? fail_ec : ec);
        if (handshake_op)
            detail::complete_op(handshake_op, hs_result ? hs_result : ec);
        // The queues stay: a write cancelled by the close above may still hold their bytes.
        for (auto& c : controls)
            if (c.done)
                detail::complete_op(c.done, ec);
        for (auto& m : messages)
            if (m.done)
                detail::complete_op(m.done, ec, std::size_t{0});
        hook = nullptr;
        request.reset();
        response.reset();
    }

    void complete_read(std::error_code ec, std::size_t n) {
        ++read_gen; // a cancellation posted for this read must not hit the next one
        read.sink.reset();
        detail::complete_op(read.done, ec, n);
    }

    // The close handshake is over (or given up after an error): send our FIN, read
    // until the peer's so that a reset does not destroy the last frames in flight,
    // then close. Bounded by close_timeout.
    void begin_teardown() {
        if (tearing_down || ph == phase::closed)
            return;
        tearing_down = true;
        std::error_code ignored;
        next.lowest_layer().shutdown(asio::socket_base::shutdown_send, ignored);
        arm(cfg.close_timeout, make_error_code(websocket_error::closed));
        drain();
    }

    // The TCP socket under the WebSocket (under TLS): the teardown bypasses TLS.
    auto& socket() {
        if constexpr (is_tls)
            return next.next_layer();
        else
            return next;
    }

    void drain() {
        reading = true;
        socket().async_read_some(
            asio::buffer(rx.data(), rx.size()),
            [self = this->shared_from_this()](std::error_code ec, std::size_t) {
                self->reading = false;
                if (self->ph == phase::closed)
                    return;
                if (ec)
                    return self->finish(make_error_code(websocket_error::closed));
                self->drain();
            });
    }

    // --- opening handshake -------------------------------------------------------

    void start_handshake(role r) {
        ph = phase::handshaking;
        side = r;
        websocket::parser_settings ps;
        ps.max_message_size = cfg.max_message_size;
        parser = websocket::frame_parser(r, ps);
        rx.resize(rx_size);
        rx_pos = rx_end = 0;
        // Messages are small and latency matters: no Nagle delay (node's ws does the same).
        std::error_code ignored;
        socket().set_option(asio::ip::tcp::no_delay(true), ignored);
        arm(cfg.handshake_timeout, make_error_code(websocket_error::handshake_timeout));
    }

    template <class HandshakeType, class Next>
    void tls_then(HandshakeType type, Next next_step) {
        next.async_handshake(
            type, [self = this->shared_from_this(), next_step](std::error_code ec) mutable {
                if (self->ph == phase::closed)
                    return;
                if (ec)
                    return self->finish(ec);
                next_step(*self);
            });
    }

    void start_accept() {
        start_handshake(role::server);
        request = std::make_unique<websocket::http_request_parser>(cfg.max_header_size);
        if constexpr (is_tls)
            tls_then(NextLayer::server, [](impl& s) { s.accept_read(); });
        else
            accept_read();
    }

    // Feeds the buffered bytes to `parser` (the request or response parser); reads
    // more until its head is complete, then calls `done`.
    template <class Parser, class Done>
    void read_head(Parser& p, Done done) {
        if (rx_pos < rx_end) {
            std::error_code ec;
            rx_pos += p.feed(std::span<const std::byte>(rx.data() + rx_pos, rx_end - rx_pos), ec);
            if (ec || p.done())
                return done(ec);
        }
        rx_pos = rx_end = 0;
        reading = true;
        next.async_read_some(
            asio::buffer(rx.data(), rx.size()),
            [self = this->shared_from_this(), &p, done](std::error_code ec, std::size_t n) {
                self->reading = false;
                if (self->ph == phase::closed)
                    return;
                if (ec)
                    return self->finish(ec);
                self->rx_end = n;
                self->read_head(p, done);
            });
    }

    void accept_read() {
        read_head(*request, [this](std::error_code ec) {
            if (ec)
                return answer_and_close(ec, {});
            on_request();
        });
    }

    void on_request() {
        websocket::handshake_decision d;
        if (hook) {
            d = hook(*request);
        } else if (!request->is_upgrade()) {
            return answer_and_close(make_error_code(websocket_error::not_upgrade), {});
        }
        if (auto* r = std::get_if<websocket::http_response>(&d)) {
            hs_out.clear();
            auto ec = websocket::write_http_response(hs_out, *r, request->method() == "HEAD");
            if (ec)
                return answer_and_close(ec, {});
            return answer_and_close(make_error_code(websocket_error::http_answered),
                                    std::move(hs_out));
        }
        auto& a = std::get<websocket::accept_upgrade>(d);
        auto ec = request->check_upgrade();
        if (!ec && !a.subprotocol.empty() && !request->offers_subprotocol(a.subprotocol))
            ec = make_error_code(websocket_error::unexpected_subprotocol); // a bug in the hook: 500
        hs_out.clear();
        if (!ec)
            ec = websocket::write_accept_response(hs_out, *request->header("Sec-WebSocket-Key"),
                                                  a.subprotocol);
        if (ec)
            return answer_and_close(ec, {});
        agreed_subprotocol = a.subprotocol;
        write_handshake([](impl& s) {
            s.request.reset();
            s.hook = nullptr;
            s.open();
        });
    }

    // Sends `answer` (or the error response for `why`), then closes; the accept
    // completes with `why`.
    void answer_and_close(std::error_code why, std::string answer) {
        hs_result = why;
        if (answer.empty()) {
            hs_out.clear();
            websocket::write_error_response(hs_out, why);
        } else {
            hs_out = std::move(answer);
        }
        write_handshake([](impl& s) { s.begin_teardown(); });
    }

    template <class Next>
    void write_handshake(Next next_step) {
        writing = true;
        asio::async_write(
            next, asio::buffer(hs_out),
            [self = this->shared_from_this(), next_step](std::error_code ec, std::size_t) {
                self->writing = false;
                if (self->ph == phase::closed)
                    return;
                if (ec)
                    return self->finish(ec);
                next_step(*self);
            });
    }

    std::error_code start_client(std::string_view host, std::string_view target) {
        std::array<std::byte, 16> nonce;
        if (RAND_bytes(reinterpret_cast<unsigned char*>(nonce.data()), 16) != 1)
            return make_error_code(error::crypto_failure);
        client_key = websocket::make_key(nonce);
        hs_out.clear();
        websocket::request_options o;
        o.host = host;
        o.path = target;
        o.subprotocols = cfg.subprotocols;
        if (auto ec = websocket::write_request(hs_out, o, client_key))
            return ec;
        start_handshake(role::client);
        response = std::make_unique<websocket::http_response_parser>(cfg.max_header_size);
        if constexpr (is_tls) {
            auto name = tls_name(host);
            std::error_code ip_ec;
            if (!ip_address::parse(name, ip_ec))
                SSL_set_tlsext_host_name(next.native_handle(), name.c_str());
            if (cfg.verify_host_name)
                next.set_verify_callback(asio::ssl::host_name_verification(name));
            tls_then(NextLayer::client, [](impl& s) { s.client_write(); });
        } else {
            client_write();
        }
        return {};
    }

    // The host of a Host header, for SNI and the certificate check: no port, no brackets.
    static std::string tls_name(std::string_view host) {
        if (!host.empty() && host.front() == '[')
            return std::string(host.substr(1, host.find(']') - 1));
        return std::string(host.substr(0, host.rfind(':')));
    }

    void client_write() {
        write_handshake([](impl& s) {
            s.read_head(*s.response, [&s](std::error_code ec) {
                if (!ec)
                    ec =
                        websocket::validate_response(*s.response, s.client_key, s.cfg.subprotocols);
                s.status = s.response->status();
                if (ec)
                    return s.finish(ec);
                if (auto p = s.response->header("Sec-WebSocket-Protocol"))
                    s.agreed_subprotocol = std::string(*p);
                s.response.reset();
                s.open();
            });
        });
    }

    void open() {
        ph = phase::open;
        ++handshake_gen;
        disarm();
        detail::complete_op(handshake_op, std::error_code{});
        // Frames that came with the handshake wait in rx for the first read.
    }

    // --- reading -------------------------------------------------------------------

    template <class Handler>
    void start_read(Handler handler, std::unique_ptr<detail::websocket_read_sink> sink) {
        bool accepted = !read.done && ph == phase::open;
        if (accepted) {
            ++read_gen;
            on_cancel(handler, &impl::read_gen, [](impl& i) {
                if (i.read.done)
                    i.complete_read(make_error_code(asio::error::operation_aborted), 0);
            });
        }
        auto op =
            detail::make_pending_op<std::error_code, std::size_t>(std::move(handler), executor());
        if (read.done)
            return detail::complete_op(op, make_error_code(error::operation_in_progress),
                                       std::size_t{0});
        if (ph == phase::fresh || ph == phase::handshaking)
            return detail::complete_op(op, make_error_code(error::not_connected), std::size_t{0});
        if (ph == phase::closed)
            return detail::complete_op(
                op, end_ec ? end_ec : make_error_code(websocket_error::closed), std::size_t{0});
        read.done = std::move(op);
        read.sink = std::move(sink);
        if (held || rx_pos < rx_end) // a message may be ready: deliver it from a fresh handler
            asio::post(executor(), [self = this->shared_from_this()] {
                if (self->ph == phase::open && !self->reading)
                    self->process_then_read();
            });
        else
            ensure_reading();
    }

    bool wants_input() const {
        return ph == phase::open && !tearing_down && !held && !close_received && !failed &&
               (read.done || close_queued);
    }

    void ensure_reading() {
        if (reading || !wants_input())
            return;
        if (rx_pos < rx_end)
            return process_then_read();
        rx_pos = rx_end = 0;
        reading = true;
        next.async_read_some(asio::buffer(rx.data(), rx.size()),
                             [self = this->shared_from_this()](std::error_code ec, std::size_t n) {
                                 self->reading = false;
                                 if (self->ph == phase::closed)
                                     return;
                                 if (ec)
                                     return self->finish(ec);
                                 self->rx_end += n;
                                 self->process_then_read();
                             });
    }

    void process_then_read() {
        process();
        ensure_reading();
    }

    // Feeds buffered bytes to the parser and acts on its events until it needs more
    // bytes, or a message waits for an async_read.
    void process() {
        while (ph == phase::open) {
            if (!held) {
                if (close_received || failed || rx_pos == rx_end)
                    return;
                std::error_code ec;
                rx_pos += parser.feed(
                    std::span<const std::byte>(rx.data() + rx_pos, rx_end - rx_pos), ec);
                if (ec)
                    return protocol_failure(ec);
                held = parser.poll_event();
                if (!held)
                    return;
            }
            auto e = *held;
            switch (e.op) {
            case opcode::ping:
                held.reset();
                if (!close_queued)
                    queue_pong(e.payload);
                notify(e);
                break;
            case opcode::pong:
                held.reset();
                notify(e);
                break;
            case opcode::close:
                held.reset();
                peer_close.code = e.close_code;
                peer_close.reason = std::string(e.close_reason);
                notify(e);
                return on_close_frame();
            default:
                if (read.done) {
                    held.reset();
                    last_kind = e.op == opcode::text ? websocket::message_kind::text
                                                     : websocket::message_kind::binary;
                    auto ec = read.sink->store(e.payload);
                    complete_read(ec, ec ? 0 : e.payload.size());
                } else if (close_queued) {
                    held.reset(); // nobody reads while closing: dropped
                } else {
                    return; // waits for the next async_read
                }
            }
        }
    }

    void notify(const websocket::received& e) {
        if (on_control)
            on_control(e.op, e.payload);
    }

    void on_close_frame() {
        close_received = true;
        if (!close_queued) {
            auto code = peer_close.code == websocket::close_code::no_status ? 0 : peer_close.code;
            queue_close(code, {}, true);
        } else if (close_sent) {
            begin_teardown();
        } else {
            drop_unstarted(make_error_code(websocket_error::closed)); // our close goes next
            pump_write();
        }
    }

    void protocol_failure(std::error_code ec) {
        failed = true;
        fail_ec = ec;
        if (!close_queued) {
            queue_close(websocket::close_code_for(ec), ec.message(), true);
        } else if (close_sent) {
            begin_teardown();
        } else {
            drop_unstarted(ec);
            pump_write();
        }
    }

    // --- writing -------------------------------------------------------------------

    websocket::mask_key next_mask() {
        if (rand_pos + 4 > rand_pool.size()) {
            if (RAND_bytes(reinterpret_cast<unsigned char*>(rand_pool.data()),
                           static_cast<int>(rand_pool.size())) != 1) {
                // Masking protects intermediaries from a client an attacker scripts
                // (browsers); a weak key here harms no peerlink peer. Keep going.
                for (auto& b : rand_pool)
                    b = static_cast<std::byte>((++fallback_counter * 0x9E3779B97F4A7C15ull) >> 56);
            }
            rand_pos = 0;
        }
        websocket::mask_key k;
        std::memcpy(k.data(), rand_pool.data() + rand_pos, 4);
        rand_pos += 4;
        return k;
    }

    std::optional<websocket::mask_key> frame_mask() {
        if (side == role::client)
            return next_mask();
        return std::nullopt;
    }

    std::size_t make_control(std::array<std::byte, control_frame_size>& out, opcode op,
                             std::span<const std::byte> payload) {
        auto mask = frame_mask();
        auto h =
            websocket::write_frame_header(std::span<std::byte, websocket::max_frame_header_size>(
                                              out.data(), websocket::max_frame_header_size),
                                          op, true, payload.size(), mask);
        if (!payload.empty())
            std::memcpy(out.data() + h, payload.data(), payload.size());
        if (mask)
            websocket::apply_mask(std::span<std::byte>(out.data() + h, payload.size()), *mask);
        return h + payload.size();
    }

    void queue_pong(std::span<const std::byte> payload) {
        // Only the latest ping needs an answer (RFC 6455 §5.5.3): replace a queued pong.
        std::size_t first = control_in_flight ? 1 : 0;
        for (std::size_t i = first; i < controls.size(); ++i)
            if (controls[i].is_pong) {
                controls[i].size = make_control(controls[i].frame, opcode::pong, payload);
                return pump_write();
            }
        control_item c;
        c.is_pong = true;
        c.size = make_control(c.frame, opcode::pong, payload);
        controls.push_back(std::move(c));
        pump_write();
    }

    // Completes and removes the queued messages that have not started going out.
    void drop_unstarted(std::error_code ec) {
        for (auto it = messages.begin(); it != messages.end();) {
            bool started = it == messages.begin() && msg_started;
            if (it->op == opcode::close || started) {
                ++it;
                continue;
            }
            detail::complete_op(it->done, ec, std::size_t{0});
            it = messages.erase(it);
        }
    }

    // Queues our close frame. `urgent` (an answer to the peer's close, or a failure):
    // queued messages not started yet are dropped so that the close goes next.
    void queue_close(std::uint16_t code, std::string_view reason, bool urgent) {
        close_queued = true;
        std::array<std::byte, websocket::max_control_payload> payload;
        std::size_t n = 0;
        if (code != 0) {
            std::error_code ec;
            reason = reason.substr(0, websocket::max_control_payload - 2);
            n = websocket::write_close_payload(payload, code, reason, ec);
            if (ec)
                n = websocket::write_close_payload(payload, code, {}, ec);
        }
        if (urgent)
            drop_unstarted(failed ? fail_ec : make_error_code(websocket_error::closed));
        message_item m;
        m.op = opcode::close;
        m.close_size = make_control(m.close_frame, opcode::close, std::span(payload).first(n));
        messages.push_back(std::move(m));
        arm(cfg.close_timeout, make_error_code(websocket_error::close_timeout));
        pump_write();
    }

    void pump_write() {
        if (writing || ph != phase::open || tearing_down)
            return;
        if (!in_frame) {
            if (!controls.empty()) {
                if (!close_sent)
                    return write_control();
                for (auto& c : controls)
                    if (c.done)
                        detail::complete_op(c.done, make_error_code(websocket_error::closed));
                controls.clear();
            }
            if (messages.empty() || close_sent)
                return;
            auto& m = messages.front();
            if (m.op == opcode::close)
                return write_close();
            start_frame(m);
        }
        write_frame_part();
    }

    void write_control() {
        writing = control_in_flight = true;
        auto& c = controls.front();
        asio::async_write(next, asio::buffer(c.frame.data(), c.size),
                          [self = this->shared_from_this()](std::error_code ec, std::size_t) {
                              self->writing = self->control_in_flight = false;
                              if (self->ph == phase::closed)
                                  return;
                              if (ec)
                                  return self->finish(ec);
                              auto c = std::move(self->controls.front());
                              self->controls.pop_front();
                              if (c.done)
                                  detail::complete_op(c.done, std::error_code{});
                              self->pump_write();
                          });
    }

    void write_close() {
        writing = true;
        auto& m = messages.front();
        close_out = m.close_frame;
        asio::async_write(next, asio::buffer(close_out.data(), m.close_size),
                          [self = this->shared_from_this()](std::error_code ec, std::size_t) {
                              self->writing = false;
                              if (self->ph == phase::closed)
                                  return;
                              if (ec)
                                  return self->finish(ec);
                              self->messages.pop_front();
                              self->close_sent = true;
                              if (self->close_received || self->failed)
                                  return self->begin_teardown();
                              self->pump_write(); // drops pings queued meanwhile
                              self->ensure_reading();
                          });
    }

    void start_frame(const message_item& m) {
        std::size_t remaining = m.data.size() - msg_sent;
        std::size_t n =
            cfg.write_fragment_size ? std::min(remaining, cfg.write_fragment_size) : remaining;
        auto op = msg_started ? opcode::continuation : m.op;
        frame_fin = n == remaining;
        cur_mask = frame_mask();
        hdr_size = websocket::write_frame_header(hdr, op, frame_fin, n, cur_mask);
        hdr_pending = true;
        frame_left = n;
        frame_done = 0;
        msg_started = in_frame = true;
    }

    // Writes the current frame's header and payload: a server in one gather write
    // straight from the caller's buffer; a client masks through `scratch`, a piece at
    // a time.
    void write_frame_part() {
        auto& m = messages.front();
        auto src = static_cast<const std::byte*>(m.data.data()) + msg_sent;
        std::size_t h = hdr_pending ? hdr_size : 0;
        writing = true;
        auto on_written = [self = this->shared_from_this()](std::size_t k) {
            return [self, k](std::error_code ec, std::size_t) {
                self->on_frame_written(ec, k);
            };
        };
        if (side == role::server) {
            std::array<asio::const_buffer, 2> bufs{asio::buffer(hdr.data(), h),
                                                   asio::buffer(src, frame_left)};
            asio::async_write(next, bufs, on_written(frame_left));
            return;
        }
        if (scratch.empty())
            scratch.resize(scratch_size);
        std::size_t k = std::min(frame_left, scratch.size() - h);
        std::memcpy(scratch.data(), hdr.data(), h);
        if (k)
            std::memcpy(scratch.data() + h, src, k);
        websocket::apply_mask(std::span<std::byte>(scratch.data() + h, k), *cur_mask, frame_done);
        asio::async_write(next, asio::buffer(scratch.data(), h + k), on_written(k));
    }

    void on_frame_written(std::error_code ec, std::size_t k) {
        writing = false;
        if (ph == phase::closed)
            return;
        if (ec)
            return finish(ec);
        hdr_pending = false;
        frame_left -= k;
        frame_done += k;
        msg_sent += k;
        if (frame_left == 0) {
            in_frame = false;
            if (frame_fin) {
                auto m = std::move(messages.front());
                messages.pop_front();
                auto size = msg_sent;
                msg_sent = 0;
                msg_started = false;
                detail::complete_op(m.done, std::error_code{}, size);
            }
        }
        pump_write();
    }

    // --- cancellation ----------------------------------------------------------------

    // Runs `f(impl&)` when the handler's slot is cancelled (posted: the slot's own
    // handler must not free the op it belongs to), unless the op has ended by then.
    template <class Handler, class F>
    void on_cancel(Handler& h, std::uint64_t impl::*gen_of, F f) {
        auto slot = asio::get_associated_cancellation_slot(h);
        if (!slot.is_connected())
            return;
        slot.assign(
            [w = this->weak_from_this(), gen_of, gen = this->*gen_of, f](asio::cancellation_type) {
                if (auto s = w.lock())
                    asio::post(s->executor(), [s, gen_of, gen, f] {
                        if ((*s).*gen_of == gen)
                            f(*s);
                    });
            });
    }

    NextLayer next;
    asio::steady_timer timer;
    websocket_settings cfg;
    role side = role::server;
    phase ph = phase::fresh;
    std::uint64_t timer_gen = 0;

    // Reading.
    websocket::frame_parser parser;
    std::vector<std::byte> rx;
    std::size_t rx_pos = 0, rx_end = 0;
    bool reading = false;
    std::optional<websocket::received> held;
    read_request read;
    std::uint64_t read_gen = 0;
    websocket::message_kind last_kind = websocket::message_kind::binary;
    websocket::control_callback on_control;

    // Handshake.
    std::unique_ptr<websocket::http_request_parser> request;
    std::unique_ptr<websocket::http_response_parser> response;
    websocket::accept_hook hook;
    std::string hs_out, client_key, agreed_subprotocol;
    std::error_code hs_result;
    unsigned status = 0;
    detail::pending_op_ptr<std::error_code> handshake_op;
    std::uint64_t handshake_gen = 0;

    // Writing.
    std::deque<control_item> controls;
    std::deque<message_item> messages;
    bool writing = false, control_in_flight = false;
    bool in_frame = false, hdr_pending = false, frame_fin = false, msg_started = false;
    std::array<std::byte, websocket::max_frame_header_size> hdr{};
    std::size_t hdr_size = 0, frame_left = 0, frame_done = 0, msg_sent = 0;
    std::optional<websocket::mask_key> cur_mask;
    std::vector<std::byte> scratch;
    std::array<std::byte, control_frame_size> close_out{};
    std::array<std::byte, 64> rand_pool{};
    std::size_t rand_pos = 64;
    std::uint64_t fallback_counter = 0;

    // Closing.
    bool close_queued = false, close_sent = false, close_received = false, failed = false;
    bool tearing_down = false;
    std::error_code fail_ec, end_ec;
    websocket_close_reason peer_close;
    detail::pending_op_ptr<std::error_code> close_op;
    std::uint64_t close_gen = 0;
};

template <class NextLayer>
template <class... Args>
requires std::is_constructible_v<NextLayer, Args&&...>
websocket_stream<NextLayer>::websocket_stream(Args&&... args)
    : impl_(std::make_shared<impl>(std::forward<Args>(args)...)) {}

template <class NextLayer>
websocket_stream<NextLayer>&
websocket_stream<NextLayer>::operator=(websocket_stream&& other) noexcept {
    if (this != &other) {
        if (impl_)
            impl_->finish(make_error_code(asio::error::operation_aborted));
        impl_ = std::move(other.impl_);
    }
    return *this;
}

template <class NextLayer>
websocket_stream<NextLayer>::~websocket_stream() {
    if (impl_)
        impl_->finish(make_error_code(asio::error::operation_aborted));
}

template <class NextLayer>
auto websocket_stream<NextLayer>::get_executor() noexcept -> executor_type {
    return impl_->next.get_executor();
}

template <class NextLayer>
auto websocket_stream<NextLayer>::next_layer() noexcept -> next_layer_type& {
    return impl_->next;
}

template <class NextLayer>
auto websocket_stream<NextLayer>::lowest_layer() noexcept -> lowest_layer_type& {
    return impl_->next.lowest_layer();
}

template <class NextLayer>
const websocket_settings& websocket_stream<NextLayer>::settings() const noexcept {
    return impl_->cfg;
}

template <class NextLayer>
void websocket_stream<NextLayer>::set_settings(const websocket_settings& s) {
    impl_->cfg = s;
}

template <class NextLayer>
void websocket_stream<NextLayer>::set_control_callback(websocket::control_callback cb) {
    impl_->on_control = std::move(cb);
}

template <class NextLayer>
template <class CompletionToken>
auto websocket_stream<NextLayer>::async_accept(websocket::accept_hook hook,
                                               CompletionToken&& token) {
    return asio::async_initiate<CompletionToken, void(std::error_code)>(
        [s = impl_](auto handler, websocket::accept_hook hook) {
            if (!s->handshake_op && s->ph == impl::phase::fresh) {
                ++s->handshake_gen;
                s->on_cancel(handler, &impl::handshake_gen, [](impl& i) {
                    i.finish(make_error_code(asio::error::operation_aborted));
                });
            }
            auto op = detail::make_pending_op<std::error_code>(std::move(handler), s->executor());
            if (s->handshake_op)
                return detail::complete_op(op, make_error_code(error::operation_in_progress));
            if (s->ph != impl::phase::fresh)
                return detail::complete_op(op, make_error_code(error::already_connecting));
            s->handshake_op = std::move(op);
            s->hook = std::move(hook);
            s->start_accept();
        },
        token, std::move(hook));
}

template <class NextLayer>
template <class CompletionToken>
auto websocket_stream<NextLayer>::async_accept(CompletionToken&& token) {
    return async_accept(websocket::accept_hook{}, std::forward<CompletionToken>(token));
}

template <class NextLayer>
template <class CompletionToken>
auto websocket_stream<NextLayer>::async_handshake(std::string_view host, std::string_view target,
                                                  CompletionToken&& token) {
    return asio::async_initiate<CompletionToken, void(std::error_code)>(
        [s = impl_](auto handler, std::string host, std::string target) {
            if (!s->handshake_op && s->ph == impl::phase::fresh) {
                ++s->handshake_gen;
                s->on_cancel(handler, &impl::handshake_gen, [](impl& i) {
                    i.finish(make_error_code(asio::error::operation_aborted));
                });
            }
            auto op = detail::make_pending_op<std::error_code>(std::move(handler), s->executor());
            if (s->handshake_op)
                return detail::complete_op(op, make_error_code(error::operation_in_progress));
            if (s->ph != impl::phase::fresh)
                return detail::complete_op(op, make_error_code(error::already_connecting));
            s->handshake_op = std::move(op);
            if (auto ec = s->start_client(host, target))
                detail::complete_op(s->handshake_op, ec);
        },
        token, std::string(host), std::string(target));
}

template <class NextLayer>
template <class CompletionToken>
auto websocket_stream<NextLayer>::async_handshake(const ws_url& url, CompletionToken&& token) {
    return async_handshake(url.host_header(), url.target, std::forward<CompletionToken>(token));
}

template <class NextLayer>
template <class DynamicBuffer, class CompletionToken>
requires(asio::is_dynamic_buffer_v1<DynamicBuffer>::value ||
         asio::is_dynamic_buffer_v2<DynamicBuffer>::value) auto websocket_stream<NextLayer>::
    async_read(DynamicBuffer buffer, CompletionToken&& token) {
    return asio::async_initiate<CompletionToken, void(std::error_code, std::size_t)>(
        [s = impl_](auto handler, DynamicBuffer buffer) {
            auto sink =
                std::make_unique<detail::websocket_dynamic_sink<DynamicBuffer>>(std::move(buffer));
            s->start_read(std::move(handler), std::move(sink));
        },
        token, std::move(buffer));
}

template <class NextLayer>
template <class CompletionToken>
auto websocket_stream<NextLayer>::async_read(std::string& out, CompletionToken&& token) {
    return asio::async_initiate<CompletionToken, void(std::error_code, std::size_t)>(
        [s = impl_](auto handler, std::string* out) {
            s->start_read(std::move(handler),
                          std::make_unique<detail::websocket_string_sink>(*out));
        },
        token, &out);
}

template <class NextLayer>
websocket::message_kind websocket_stream<NextLayer>::message_type() const noexcept {
    return impl_->last_kind;
}

template <class NextLayer>
template <class CompletionToken>
auto websocket_stream<NextLayer>::async_write(asio::const_buffer message,
                                              websocket::message_kind kind,
                                              CompletionToken&& token) {
    return asio::async_initiate<CompletionToken, void(std::error_code, std::size_t)>(
        [s = impl_](auto handler, asio::const_buffer message, websocket::message_kind kind) {
            auto op = detail::make_pending_op<std::error_code, std::size_t>(std::move(handler),
                                                                            s->executor());
            if (s->ph == impl::phase::fresh || s->ph == impl::phase::handshaking)
                return detail::complete_op(op, make_error_code(error::not_connected),
                                           std::size_t{0});
            if (s->ph == impl::phase::closed || s->close_queued)
                return detail::complete_op(op, make_error_code(websocket_error::closed),
                                           std::size_t{0});
            typename impl::message_item m;
            m.op = kind == websocket::message_kind::text ? websocket::opcode::text
                                                         : websocket::opcode::binary;
            m.data = message;
            m.done = std::move(op);
            s->messages.push_back(std::move(m));
            s->pump_write();
        },
        token, message, kind);
}

template <class NextLayer>
template <class CompletionToken>
auto websocket_stream<NextLayer>::async_ping(asio::const_buffer payload, CompletionToken&& token) {
    return asio::async_initiate<CompletionToken, void(std::error_code)>(
        [s = impl_](auto handler, asio::const_buffer payload) {
            auto op = detail::make_pending_op<std::error_code>(std::move(handler), s->executor());
            if (payload.size() > websocket::max_control_payload)
                return detail::complete_op(op, make_error_code(websocket_error::control_too_large));
            if (s->ph == impl::phase::fresh || s->ph == impl::phase::handshaking)
                return detail::complete_op(op, make_error_code(error::not_connected));
            if (s->ph == impl::phase::closed || s->close_queued)
                return detail::complete_op(op, make_error_code(websocket_error::closed));
            typename impl::control_item c;
            c.size =
                s->make_control(c.frame, websocket::opcode::ping,
                                std::span<const std::byte>(
                                    static_cast<const std::byte*>(payload.data()), payload.size()));
            c.done = std::move(op);
            s->controls.push_back(std::move(c));
            s->pump_write();
        },
        token, payload);
}

template <class NextLayer>
template <class CompletionToken>
auto websocket_stream<NextLayer>::async_close(std::uint16_t code, std::string_view reason,
                                              CompletionToken&& token) {
    return asio::async_initiate<CompletionToken, void(std::error_code)>(
        [s = impl_](auto handler, std::uint16_t code, std::string reason) {
            if (!s->close_op && s->ph == impl::phase::open) {
                ++s->close_gen;
                s->on_cancel(handler, &impl::close_gen, [](impl& i) {
                    i.finish(make_error_code(asio::error::operation_aborted));
                });
            }
            auto op = detail::make_pending_op<std::error_code>(std::move(handler), s->executor());
            if (s->close_op)
                return detail::complete_op(op, make_error_code(error::operation_in_progress));
            if (s->ph == impl::phase::fresh || s->ph == impl::phase::handshaking)
                return detail::complete_op(op, make_error_code(error::not_connected));
            if (s->ph == impl::phase::closed) {
                bool orderly = s->close_sent && s->close_received && !s->failed;
                return detail::complete_op(op, orderly ? std::error_code{}
                                                       : make_error_code(websocket_error::closed));
            }
            std::array<std::byte, websocket::max_control_payload> check;
            std::error_code ec;
            websocket::write_close_payload(check, code, reason, ec);
            if (ec)
                return detail::complete_op(op, ec);
            s->close_op = std::move(op);
            if (!s->close_queued)
                s->queue_close(code, reason, false);
            s->ensure_reading();
        },
        token, code, std::string(reason));
}

template <class NextLayer>
void websocket_stream<NextLayer>::close() {
    impl_->finish(make_error_code(asio::error::operation_aborted));
}

template <class NextLayer>
bool websocket_stream<NextLayer>::is_open() const noexcept {
    return impl_->ph == impl::phase::open;
}

template <class NextLayer>
const websocket_close_reason& websocket_stream<NextLayer>::close_reason() const noexcept {
    return impl_->peer_close;
}

template <class NextLayer>
const std::string& websocket_stream<NextLayer>::subprotocol() const noexcept {
    return impl_->agreed_subprotocol;
}

template <class NextLayer>
unsigned websocket_stream<NextLayer>::handshake_status() const noexcept {
    return impl_->status;
}

} // namespace peerlink

#endif // PEERLINK_NET_IMPL_WEBSOCKET_HPP
