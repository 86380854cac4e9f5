# Finds cpp-httplib for ssepp::httplib. Used by ssepp's own build and by its installed package, so
# that a consumer uses the cpp-httplib of its own machine, configured as that install is: its CMake
# package (upstream's install, httplib::httplib), else its pkg-config file (Debian's
# libcpp-httplib-dev, a compiled library whose Cflags carry the TLS/zlib/brotli switches it was
# built with), else a bare httplib.h on the include path (header-only; the host then enables TLS
# or compression itself, as it would without ssepp). Nothing here asks for OpenSSL or zlib.
# Sets SSEPP_HTTPLIB_FOUND and SSEPP_HTTPLIB_LINK (what ssepp::httplib links: a target, or the
# include directory of a bare header in SSEPP_HTTPLIB_INCLUDE_DIR).
set(SSEPP_HTTPLIB_FOUND FALSE)
set(SSEPP_HTTPLIB_LINK)
if(NOT TARGET httplib::httplib)
  find_package(httplib CONFIG QUIET)
endif()
if(TARGET httplib::httplib)
  set(SSEPP_HTTPLIB_FOUND TRUE)
  set(SSEPP_HTTPLIB_LINK httplib::httplib)
else()
  find_package(PkgConfig QUIET)
  if(PKG_CONFIG_FOUND)
    pkg_check_modules(SSEPP_CPPHTTPLIB QUIET IMPORTED_TARGET GLOBAL cpp-httplib)
  endif()
  if(TARGET PkgConfig::SSEPP_CPPHTTPLIB)
    set(SSEPP_HTTPLIB_FOUND TRUE)
    set(SSEPP_HTTPLIB_LINK PkgConfig::SSEPP_CPPHTTPLIB)
  else()
    find_path(SSEPP_HTTPLIB_INCLUDE_DIR httplib.h)
    if(SSEPP_HTTPLIB_INCLUDE_DIR)
      set(SSEPP_HTTPLIB_FOUND TRUE)
    endif()
  endif()
endif()
