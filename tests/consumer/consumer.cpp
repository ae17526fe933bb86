// A user's program: include the umbrella header, make an identity and a
// connection type, exchange one datagram with itself on loopback.
#include <peerlink.hpp>

#include <cstdio>

int main() {
    auto me = peerlink::identity::generate();
    std::printf("consumer: peer id %s\n", me.id().to_string().c_str());
    asio::io_context io;
    peerlink::peer_connection<> a(io.get_executor(), me, peerlink::config{});
    return a.local_endpoint().port != 0 ? 0 : 1;
}
