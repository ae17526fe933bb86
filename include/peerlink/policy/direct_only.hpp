// peerlink/policy/direct_only.hpp: the simplest traversal policy.
#ifndef PEERLINK_POLICY_DIRECT_ONLY_HPP
#define PEERLINK_POLICY_DIRECT_ONLY_HPP

#include <peerlink/concepts.hpp>
#include <peerlink/error.hpp>

namespace peerlink {

/// Traversal policy for peers that can reach each other directly: the address of
/// the peer is given (by the user, or by a rendezvous), no STUN, no punching, no
/// relay. It works on a LAN, on loopback and towards a public or port-forwarded
/// peer. `start` fails with `error::not_connected` when no address is given.
class direct_only {
public:
    using policy_kind = traversal_tag;

    std::error_code start(const traversal_request& request, time_point) noexcept {
        path_ = request.remote;
        return path_ ? std::error_code{} : make_error_code(error::not_connected);
    }

    std::optional<endpoint> poll_path() const noexcept { return path_; }

private:
    std::optional<endpoint> path_;
};

static_assert(traversal_policy<direct_only>);

} // namespace peerlink

#endif // PEERLINK_POLICY_DIRECT_ONLY_HPP
