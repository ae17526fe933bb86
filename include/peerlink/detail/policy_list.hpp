// Finding policies by kind in a template argument list (MP11 style, no MP11).
#ifndef PEERLINK_DETAIL_POLICY_LIST_HPP
#define PEERLINK_DETAIL_POLICY_LIST_HPP

#include <peerlink/concepts.hpp>

#include <cstddef>
#include <type_traits>

namespace peerlink::detail {

template <class Kind, class P>
inline constexpr bool is_kind_v = [] {
    if constexpr (policy<P>)
        return std::is_same_v<typename P::policy_kind, Kind>;
    else
        return false;
}();

/// How many of `Ps` are of kind `Kind`.
template <class Kind, class... Ps>
inline constexpr std::size_t count_kind_v = (std::size_t{0} + ... + (is_kind_v<Kind, Ps> ? 1 : 0));

/// Whether every kind occurs at most once among `Ps`.
template <class... Ps>
inline constexpr bool unique_kinds_v =
    count_kind_v<transport_tag, Ps...> <= 1 && count_kind_v<reliability_tag, Ps...> <= 1 &&
    count_kind_v<fec_tag, Ps...> <= 1 && count_kind_v<cipher_tag, Ps...> <= 1 &&
    count_kind_v<obfuscation_tag, Ps...> <= 1 && count_kind_v<traversal_tag, Ps...> <= 1;

/// The first of `Ps` of kind `Kind`, or `Default`. Picking the first keeps a
/// duplicate from causing a cascade of errors after the one static_assert.
template <class Kind, class Default, class... Ps>
struct find_kind {
    using type = Default;
};
template <class Kind, class Default, class P, class... Ps>
struct find_kind<Kind, Default, P, Ps...> {
    using type =
        std::conditional_t<is_kind_v<Kind, P>, P, typename find_kind<Kind, Default, Ps...>::type>;
};
template <class Kind, class Default, class... Ps>
using find_kind_t = typename find_kind<Kind, Default, Ps...>::type;

} // namespace peerlink::detail

#endif // PEERLINK_DETAIL_POLICY_LIST_HPP
