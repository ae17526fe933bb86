// Must not compile: two cipher policies. The test checks the diagnostic text.
#include <peerlink/peer_connection.hpp>

using bad = peerlink::peer_connection<peerlink::no_cipher, peerlink::no_fec, peerlink::no_cipher>;
bad* instantiate = nullptr;
static_assert(sizeof(bad) > 0);
