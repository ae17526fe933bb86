// peerlink/completion_tokens.hpp: completion tokens that moved between Asio versions.
//
// `deferred` and `as_tuple` were experimental in Asio 1.22 (Debian 12) and are
// plain `asio::` names in current Asio. peerlink code and examples use these
// aliases so both work.
#ifndef PEERLINK_COMPLETION_TOKENS_HPP
#define PEERLINK_COMPLETION_TOKENS_HPP

#include <asio/version.hpp>

#if ASIO_VERSION >= 102400 // 1.24 made deferred and as_tuple non-experimental
#include <asio/as_tuple.hpp>
#include <asio/deferred.hpp>
#else
#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/deferred.hpp>
#endif

namespace peerlink {

#if ASIO_VERSION >= 102400
/// `asio::deferred`: an operation that starts when it is invoked with a token.
inline constexpr auto& deferred = asio::deferred;
/// Wraps a token so the completion arguments arrive as one tuple (no exceptions).
using asio::as_tuple;
#else
inline constexpr auto& deferred = asio::experimental::deferred;
using asio::experimental::as_tuple;
#endif

} // namespace peerlink

#endif // PEERLINK_COMPLETION_TOKENS_HPP
