// peerlink/policy/kcp.hpp: the KCP reliability policy.
#ifndef PEERLINK_POLICY_KCP_HPP
#define PEERLINK_POLICY_KCP_HPP

#include <peerlink/concepts.hpp>
#include <peerlink/proto/kcp.hpp>

namespace peerlink {

/// Reliability policy: a reliable, ordered channel over KCP (peerlink/proto/kcp.hpp)
/// beside the connection's unreliable datagrams.
///
/// @tparam Settings `kcp_normal`, `kcp_fast`, `kcp_turbo` or settings of your own.
/// The connection sets `mtu` from `config::transport::max_datagram_size` and
/// ignores `conv`: peerlink's frames already tell connections apart.
///
/// With `Settings.stream == false` (all three presets) the connection offers both a
/// byte stream (`async_read_some` / `async_write_some`) and whole messages
/// (`async_send_message` / `async_receive_message`); with `stream == true`, only
/// the byte stream, and small writes are merged into full segments.
///
/// @par Example
/// @code
/// using conn_t = peerlink::peer_connection<peerlink::kcp<peerlink::kcp_turbo>>;
/// @endcode
template <kcp_settings Settings = kcp_normal>
struct kcp {
    using policy_kind = reliability_tag;
    static constexpr bool is_reliable = true;
    static constexpr kcp_settings settings = Settings;
};

/// A reliability policy that names its KCP settings.
template <class T>
concept kcp_reliability = reliability_policy<T> && T::is_reliable && requires {
    { T::settings } -> std::convertible_to<kcp_settings>;
};

static_assert(reliability_policy<kcp<>> && kcp_reliability<kcp<kcp_turbo>>);

} // namespace peerlink

#endif // PEERLINK_POLICY_KCP_HPP
