// peerlink/net/punch_session.hpp: the Asio driver of the connectivity core
// (`ice::punch_core`, peerlink/proto/punch.hpp).
//
// A `punch_session` owns the main UDP socket (the one the candidates were gathered on)
// and any extra sockets the core asks for (the birthday strategy: 256 sockets bound to
// the main socket's address with ephemeral ports). It runs one receive loop per socket
// and one timer, feeds the core, and sends what the core says from the socket it names.
// Datagrams that are not the core's (application data once a pair works) go to the
// `on_data` callback. No threads.
//
// @par Example
// @code
// peerlink::punch_session s(std::move(socket), cfg);        // cfg: ice::punch_config
// s.core().set_remote_credentials(ufrag, pwd);
// for (auto& c : local) s.core().add_local_candidate(c, peerlink::clock::now());
// for (auto& c : remote) s.core().add_remote_candidate(c, peerlink::clock::now());
// s.on_data([](auto bytes, auto from, auto socket) { ... });
// s.start(agreed, [&](std::error_code ec, peerlink::ice::pair_info p) {
//     if (!ec) s.send(p.socket, hello, p.remote);
// });
// io.run();
// @endcode
//
// After calling the core directly (add_remote_candidate while trickling), call
// `flush()` so what the core wants to send goes out and the timer follows.
#ifndef PEERLINK_NET_PUNCH_SESSION_HPP
#define PEERLINK_NET_PUNCH_SESSION_HPP

#include <peerlink/net/asio_endpoint.hpp>
#include <peerlink/proto/punch.hpp>
#include <peerlink/time.hpp>

#include <asio/any_io_executor.hpp>
#include <asio/ip/udp.hpp>
#include <asio/steady_timer.hpp>

#include <array>
#include <functional>
#include <memory>
#include <span>
#include <system_error>
#include <vector>

namespace peerlink {

/// Drives an `ice::punch_core` on Asio UDP sockets. Not thread-safe; not movable.
class punch_session {
public:
    using executor_type = asio::any_io_executor;
    /// Called once: `{}` and the selected pair, or the core's error (`punch_error::timeout`).
    using done_handler = std::function<void(std::error_code, ice::pair_info)>;
    /// Datagrams the core did not take, with the socket they came in on.
    using data_handler =
        std::function<void(std::span<const std::byte>, const endpoint&, ice::socket_id)>;

    /// @param main an open, bound socket: socket 0 of the core.
    punch_session(asio::ip::udp::socket main, ice::punch_config cfg);
    punch_session(const punch_session&) = delete;
    punch_session& operator=(const punch_session&) = delete;
    ~punch_session();

    executor_type get_executor() const noexcept;
    /// The core, to add candidates and credentials (then call `flush()`).
    ice::punch_core& core() noexcept;
    /// The socket with id `id` (0: the main one); `id` must be valid.
    asio::ip::udp::socket& socket(ice::socket_id id);
    std::size_t socket_count() const noexcept;

    void on_data(data_handler h);
    /// Starts the receive loops and the core at `at` (the agreed start time).
    /// @returns the core's error (`punch_error::no_remote_credentials`) or {}.
    std::error_code start(time_point at, done_handler h);
    /// Sends what the core has queued and re-arms the timer.
    void flush();
    /// Sends application data from socket `id` (synchronously; UDP does not block long).
    std::error_code send(ice::socket_id id, std::span<const std::byte> data, const endpoint& to);
    /// Closes the sockets and the timer. Idempotent.
    void stop() noexcept;

private:
    struct impl;
    std::shared_ptr<impl> impl_;
};

} // namespace peerlink

#include <peerlink/net/impl/punch_session.hpp>

#endif // PEERLINK_NET_PUNCH_SESSION_HPP
