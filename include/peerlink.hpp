// peerlink.hpp: everything peerlink offers, in one include.
#ifndef PEERLINK_HPP
#define PEERLINK_HPP

#include <peerlink/completion_tokens.hpp>
#include <peerlink/concepts.hpp>
#include <peerlink/config.hpp>
#include <peerlink/endpoint.hpp>
#include <peerlink/error.hpp>
#include <peerlink/identity.hpp>
#include <peerlink/log.hpp>
#include <peerlink/net/sim_transport.hpp>
#include <peerlink/net/transport.hpp>
#include <peerlink/net/udp_transport.hpp>
#include <peerlink/peer_connection.hpp>
#include <peerlink/state.hpp>
#include <peerlink/stats.hpp>
#include <peerlink/version.hpp>

#endif // PEERLINK_HPP
