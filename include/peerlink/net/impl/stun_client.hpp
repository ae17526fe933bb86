// Implementation of peerlink/net/stun_client.hpp.
#ifndef PEERLINK_NET_IMPL_STUN_CLIENT_HPP
#define PEERLINK_NET_IMPL_STUN_CLIENT_HPP

#include <utility>

namespace peerlink {

namespace detail {

// One Binding transaction as a job for stun_operation.
class stun_binding_job {
public:
    stun_binding_job(const endpoint& server, const stun_binding_options& o)
        : client_(config_for(o)), server_(server), software_(o.software) {
        request_.change = o.change;
        request_.fingerprint = o.fingerprint;
    }

    void start(time_point now, const endpoint&) {
        request_.software = software_; // a view of our own string, which stays put now
        std::error_code ec;
        if (!client_.start_binding(server_, now, ec, request_))
            finish(ec);
    }
    void handle_datagram(std::span<const std::byte> bytes, const endpoint& from, time_point now) {
        client_.handle_datagram(bytes, from, now);
        collect();
    }
    void handle_timeout(time_point now) {
        client_.handle_timeout(now);
        collect();
    }
    std::optional<stun::transmit> poll_transmit() { return client_.poll_transmit(); }
    std::optional<time_point> poll_timeout() const { return client_.poll_timeout(); }
    bool done() const noexcept { return done_; }
    std::error_code error() const noexcept { return ec_; }
    stun_binding_result result() const { return result_; }

private:
    static stun::client_config config_for(const stun_binding_options& o) {
        stun::client_config c;
        c.rto = o.rto;
        c.max_requests = o.max_requests;
        c.final_wait_factor = o.final_wait_factor;
        c.max_transactions = 1;
        c.random = o.random;
        return c;
    }

    void finish(std::error_code ec) {
        done_ = true;
        ec_ = ec;
    }

    void collect() {
        while (auto r = client_.poll_event()) {
            result_.server = r->from;
            result_.rtt = r->rtt;
            result_.requests_sent = r->requests_sent;
            std::error_code ec = r->ec;
            if (!ec) {
                if (auto b = stun::decode_binding_response(*r->response, ec)) {
                    result_.mapped = b->mapped;
                    result_.response_origin = b->response_origin;
                    result_.other_address = b->other_address;
                }
            }
            finish(ec);
        }
    }

    stun::client_core client_;
    endpoint server_;
    std::string software_;
    stun::binding_request request_;
    stun_binding_result result_;
    std::error_code ec_;
    bool done_ = false;
};

} // namespace detail

namespace detail {

// The initiation of async_stun_binding; its executor is the socket's.
template <class Socket>
struct initiate_stun_binding {
    using executor_type = typename Socket::executor_type;
    Socket* socket;

    executor_type get_executor() const noexcept { return socket->get_executor(); }

    template <class Handler>
    void operator()(Handler&& handler, const endpoint& server,
                    const stun_binding_options& options) const {
        start_stun_operation(*socket, stun_binding_job(server, options),
                             std::forward<Handler>(handler));
    }
};

} // namespace detail

template <stun_socket Socket, class Token>
auto async_stun_binding(Socket& socket, const endpoint& server, const stun_binding_options& options,
                        Token&& token) {
    return asio::async_initiate<Token, void(std::error_code, stun_binding_result)>(
        detail::initiate_stun_binding<Socket>{&socket}, token, server, options);
}

} // namespace peerlink

#endif // PEERLINK_NET_IMPL_STUN_CLIENT_HPP
