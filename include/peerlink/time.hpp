// peerlink/time.hpp: the time vocabulary of the sans-I/O cores.
//
// Cores never read a clock: every call that needs the time takes `now`. The
// drivers pass `std::chrono::steady_clock::now()`, the simulated transport its
// virtual clock, so the same core runs on real and on virtual time.
#ifndef PEERLINK_TIME_HPP
#define PEERLINK_TIME_HPP

#include <chrono>

namespace peerlink {

/// The clock whose time points the cores use.
using clock = std::chrono::steady_clock;
/// A point in time, as passed to `handle_datagram`, `handle_timeout` and `poll_timeout`.
using time_point = clock::time_point;
/// A span of time.
using duration = clock::duration;

} // namespace peerlink

#endif // PEERLINK_TIME_HPP
