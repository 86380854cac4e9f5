# Finds hiredis (headers and library) for ssepp::redis. Used by ssepp's own build and by its
# installed package, so that a consumer links the hiredis of its own machine. hiredis ships no
# CMake package on every platform (Debian's has none), hence find_path/find_library.
# Sets SSEPP_HIREDIS_FOUND, and SSEPP_HIREDIS_INCLUDE_DIR / SSEPP_HIREDIS_LIBRARY in the cache.
find_path(SSEPP_HIREDIS_INCLUDE_DIR hiredis/hiredis.h)
find_library(SSEPP_HIREDIS_LIBRARY hiredis)
if(SSEPP_HIREDIS_INCLUDE_DIR AND SSEPP_HIREDIS_LIBRARY)
  set(SSEPP_HIREDIS_FOUND TRUE)
else()
  set(SSEPP_HIREDIS_FOUND FALSE)
endif()
