// Catch2 include shim: Catch2 3.x (vcpkg, Conan) or 2.x (Debian 12's package).
#ifndef PEERLINK_TESTS_CATCH_HPP
#define PEERLINK_TESTS_CATCH_HPP

#if __has_include(<catch2/catch_all.hpp>)
#include <catch2/catch_all.hpp>
#else
#include <catch2/catch.hpp>
#endif

#endif
