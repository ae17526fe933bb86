# Finds peerlink's dependencies. Used by the source tree and by the installed
# peerlinkConfig.cmake, so a consumer resolves them exactly as the build did.
# Works with the distribution's packages and with vcpkg/Conan package names.

if(CMAKE_FIND_PACKAGE_NAME STREQUAL "peerlink")
    include(CMakeFindDependencyMacro)
    macro(_peerlink_find)
        find_dependency(${ARGV})
    endmacro()
else()
    macro(_peerlink_find)
        find_package(${ARGV} REQUIRED)
    endmacro()
endif()

set(THREADS_PREFER_PTHREAD_FLAG ON)
_peerlink_find(Threads)
_peerlink_find(OpenSSL 3.0)
_peerlink_find(nlohmann_json 3.10 CONFIG)

# Standalone Asio: vcpkg and Conan ship a CONFIG package (asio::asio); the
# distribution ships only the headers.
if(NOT TARGET peerlink::asio)
    find_package(asio CONFIG QUIET)
    if(TARGET asio::asio)
        add_library(peerlink::asio INTERFACE IMPORTED)
        set_target_properties(peerlink::asio PROPERTIES INTERFACE_LINK_LIBRARIES asio::asio)
    else()
        find_path(PEERLINK_ASIO_INCLUDE_DIR asio.hpp PATH_SUFFIXES asio/include)
        if(NOT PEERLINK_ASIO_INCLUDE_DIR)
            set(_peerlink_msg "standalone Asio not found: install libasio-dev, or the asio package of vcpkg/Conan")
            if(CMAKE_FIND_PACKAGE_NAME STREQUAL "peerlink")
                set(peerlink_NOT_FOUND_MESSAGE "${_peerlink_msg}")
                set(peerlink_FOUND FALSE)
                return()
            endif()
            message(FATAL_ERROR "${_peerlink_msg}")
        endif()
        add_library(peerlink::asio INTERFACE IMPORTED)
        set_target_properties(peerlink::asio PROPERTIES
            INTERFACE_INCLUDE_DIRECTORIES "${PEERLINK_ASIO_INCLUDE_DIR}"
            INTERFACE_COMPILE_DEFINITIONS ASIO_STANDALONE)
    endif()
endif()
