# Finds what ssepp::asio needs: Boost (Asio and Beast, headers only, >= 1.74) and OpenSSL (for
# TLS streams). Used by ssepp's own build and by its installed package, so that a consumer uses
# the Boost and OpenSSL of its own machine. Sets SSEPP_ASIO_FOUND and SSEPP_ASIO_LIBRARIES.
find_package(Boost 1.74 QUIET)
find_package(OpenSSL QUIET)
find_package(Threads QUIET)
set(SSEPP_ASIO_FOUND FALSE)
set(SSEPP_ASIO_LIBRARIES)
if(Boost_FOUND AND TARGET Boost::headers AND OpenSSL_FOUND AND TARGET OpenSSL::SSL)
  set(SSEPP_ASIO_FOUND TRUE)
  set(SSEPP_ASIO_LIBRARIES Boost::headers OpenSSL::SSL OpenSSL::Crypto Threads::Threads)
endif()
