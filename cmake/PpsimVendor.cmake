# Header-only packages, found as Debian installs them or, on machines without them (the
# lent GPU machines: nothing can be installed there), from a folder of their headers:
# -DPPSIM_VENDOR_INCLUDE=DIR holding boost/, nlohmann/ and CLI/ (tools/vendor_headers.sh
# packs them here, tools/gpu_session.sh unpacks them there). Every use of Boost.Graph,
# nlohmann/json and CLI11 in ppsim is header-only, so a folder of headers is the whole
# package. The one place both the project and the standalone calibrate/ build find them.
set(PPSIM_VENDOR_INCLUDE "" CACHE PATH "folder holding boost/, nlohmann/ and CLI/ headers (machines without the packages)")

# ppsim_header_package(PACKAGE TARGET [find_package arguments]): find_package, else an
# imported target over PPSIM_VENDOR_INCLUDE, else a fatal error that says what to do.
macro(ppsim_header_package package target)
  find_package(${package} ${ARGN} QUIET)
  if(NOT ${package}_FOUND AND NOT TARGET ${target})
    if(NOT PPSIM_VENDOR_INCLUDE)
      message(FATAL_ERROR "${package} not found: install it (tools/setup.sh) or set PPSIM_VENDOR_INCLUDE "
                          "to a folder of its headers (tools/vendor_headers.sh)")
    endif()
    add_library(${target} INTERFACE IMPORTED)
    set_target_properties(${target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES ${PPSIM_VENDOR_INCLUDE})
    message(STATUS "${package}: headers from ${PPSIM_VENDOR_INCLUDE}")
  endif()
endmacro()
