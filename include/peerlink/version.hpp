// peerlink/version.hpp: the library's version.
#ifndef PEERLINK_VERSION_HPP
#define PEERLINK_VERSION_HPP

/// MAJOR * 10000 + MINOR * 100 + PATCH.
#define PEERLINK_VERSION 100 // 0.1.0
#define PEERLINK_VERSION_STRING "0.1.0"

#endif // PEERLINK_VERSION_HPP
