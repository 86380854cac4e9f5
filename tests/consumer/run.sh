#!/usr/bin/env bash
# tests/consumer/run.sh MODE SOURCE_DIR WORK_DIR [CXX]: builds and runs the consumer project
# against ssepp the ways an outside project gets it:
#   fetchcontent  FetchContent from the source tree
#   find_package  an install (cmake --install), then find_package(ssepp)
#   pkg-config    an install, then `c++ main.cpp $(pkg-config --cflags --libs ssepp)`, no CMake
#   fmt_missing   fmt hidden and not fetchable: the configure stops with one line naming the
#                 package to install; and with fmt reachable (a local stand-in repository) it is
#                 fetched and the consumer builds
set -euo pipefail
mode=$1 src=$2 work=$3 cxx=${4:-c++}
gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
rm -rf "$work" && mkdir -p "$work"
case "$mode" in
  fetchcontent)
    cmake -S "$src/tests/consumer" -B "$work/build" "${gen[@]}" -DCMAKE_CXX_COMPILER="$cxx" \
      -DSSEPP_CONSUME=fetchcontent -DSSEPP_SOURCE_DIR="$src" -DFETCHCONTENT_FULLY_DISCONNECTED=ON
    ;;
  find_package)
    cmake -S "$src" -B "$work/ssepp" "${gen[@]}" -DCMAKE_CXX_COMPILER="$cxx" \
      -DSSEPP_BUILD_TESTS=OFF -DSSEPP_BUILD_EXAMPLES=OFF -DSSEPP_INSTALL=ON \
      -DCMAKE_INSTALL_PREFIX="$work/prefix"
    cmake --build "$work/ssepp"
    cmake --install "$work/ssepp"
    test -f "$work/prefix/lib/cmake/ssepp/ssepp-config-version.cmake"
    cmake -S "$src/tests/consumer" -B "$work/build" "${gen[@]}" -DCMAKE_CXX_COMPILER="$cxx" \
      -DSSEPP_CONSUME=find_package -DCMAKE_PREFIX_PATH="$work/prefix"
    ;;
  pkg-config)
    command -v pkg-config >/dev/null || { echo "pkg-config not found (Debian: pkgconf)" >&2; exit 1; }
    cmake -S "$src" -B "$work/ssepp" "${gen[@]}" -DCMAKE_CXX_COMPILER="$cxx" \
      -DSSEPP_BUILD_TESTS=OFF -DSSEPP_BUILD_EXAMPLES=OFF -DSSEPP_INSTALL=ON \
      -DCMAKE_INSTALL_PREFIX=/nonexistent/configure-time-prefix
    cmake --build "$work/ssepp"
    # Installed somewhere else than configured: the file must name the prefix installed to.
    cmake --install "$work/ssepp" --prefix "$work/prefix"
    pc=$work/prefix/share/pkgconfig/ssepp.pc
    cat "$pc"
    export PKG_CONFIG_PATH="$work/prefix/share/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
    version=$(sed -nE 's/^project\(ssepp VERSION ([0-9.]+).*/\1/p' "$src/CMakeLists.txt")
    test "$(pkg-config --modversion ssepp)" = "$version"
    pkg-config --cflags ssepp | grep -qF -- "-I$work/prefix/include"
    if grep -q configure-time-prefix "$pc"; then echo "ssepp.pc names the configure-time prefix" >&2; exit 1; fi
    pkg-config --print-requires ssepp | grep -q '^fmt'
    mkdir -p "$work/build"
    # shellcheck disable=SC2046
    "$cxx" -std=c++17 -Wall -Wextra -Wpedantic -Werror "$src/tests/consumer/main.cpp" \
      $(pkg-config --cflags --libs ssepp) -o "$work/build/consumer"
    "$work/build/consumer"
    exit 0
    ;;
  fmt_missing)
    # A consumer's configure with fmt hidden from find_package, each way fetching is impossible.
    n=0
    for how in -DFETCHCONTENT_FULLY_DISCONNECTED=ON -DSSEPP_FETCH_DEPS=OFF \
               -DSSEPP_FMT_GIT_REPOSITORY="file://$work/no-such-repository"; do
      n=$((n + 1)) log=$work/configure-$n.log
      if cmake -S "$src/tests/consumer" -B "$work/build-$n" "${gen[@]}" -DCMAKE_CXX_COMPILER="$cxx" \
           -DSSEPP_CONSUME=fetchcontent -DSSEPP_SOURCE_DIR="$src" \
           -DCMAKE_DISABLE_FIND_PACKAGE_fmt=ON "$how" >"$log" 2>&1; then
        echo "$how: the configure succeeded without fmt" >&2; exit 1
      fi
      cat "$log"
      lines=$(grep -c '^ *ssepp needs fmt 9 or newer: install libfmt-dev (Debian/Ubuntu)' "$log" || true)
      [ "$lines" = 1 ] || { echo "$how: expected one line naming libfmt-dev, got $lines" >&2; exit 1; }
      if grep -Eiq 'clone|fmt-populate|fmt-subbuild' "$log"; then
        echo "$how: a fetch was attempted; the error should be the one line only" >&2; exit 1
      fi
    done
    # A reachable repository is fetched (a stand-in for fmt: the installed headers, header-only).
    repo=$work/fmt-repository
    mkdir -p "$repo"
    cat >"$repo/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.14)
project(fmt CXX)
add_library(fmt INTERFACE)
add_library(fmt::fmt ALIAS fmt)
target_compile_definitions(fmt INTERFACE FMT_HEADER_ONLY)
set(STAND_IN_FMT_FETCHED ON CACHE BOOL "")
CMAKE
    git -C "$repo" init -q
    git -C "$repo" add CMakeLists.txt
    git -C "$repo" -c user.name=ssepp -c user.email=ssepp@localhost commit -qm "stand-in fmt"
    git -C "$repo" tag 10.2.1
    cmake -S "$src/tests/consumer" -B "$work/build" "${gen[@]}" -DCMAKE_CXX_COMPILER="$cxx" \
      -DSSEPP_CONSUME=fetchcontent -DSSEPP_SOURCE_DIR="$src" -DCMAKE_DISABLE_FIND_PACKAGE_fmt=ON \
      -DSSEPP_FMT_GIT_REPOSITORY="file://$repo"
    grep -q '^STAND_IN_FMT_FETCHED:BOOL=ON' "$work/build/CMakeCache.txt"
    ;;
  *) echo "usage: $0 fetchcontent|find_package|pkg-config|fmt_missing SOURCE_DIR WORK_DIR [CXX]" >&2; exit 2 ;;
esac
cmake --build "$work/build"
"$work/build/consumer"
# Built wherever hiredis is installed (the consumer project insists on ssepp::redis then).
if [ -x "$work/build/consumer_redis" ]; then "$work/build/consumer_redis"; fi
# Likewise wherever zlib is installed (ssepp::compress).
if [ -x "$work/build/consumer_compress" ]; then "$work/build/consumer_compress"; fi
# Likewise wherever cpp-httplib is installed (ssepp::httplib).
if [ -x "$work/build/consumer_httplib" ]; then "$work/build/consumer_httplib"; fi
# Built wherever Boost and OpenSSL are installed (the consumer project insists on ssepp::asio then).
if [ -x "$work/build/consumer_asio" ]; then "$work/build/consumer_asio"; fi
