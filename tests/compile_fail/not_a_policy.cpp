// Must not compile: a type without a policy_kind tag. The test checks the diagnostic text.
#include <peerlink/peer_connection.hpp>

struct looks_like_a_cipher { // has the members, lacks the opt-in tag
    static constexpr std::size_t max_overhead = 0;
};
using bad = peerlink::peer_connection<looks_like_a_cipher>;
static_assert(sizeof(bad) > 0);
