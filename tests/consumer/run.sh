#!/usr/bin/env bash
# tests/consumer/run.sh MODE SOURCE_DIR WORK_DIR [CXX]: builds and runs the consumer project
# against ssepp through FetchContent (MODE=fetchcontent) or an install (MODE=find_package).
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
  *) echo "usage: $0 fetchcontent|find_package SOURCE_DIR WORK_DIR [CXX]" >&2; exit 2 ;;
esac
cmake --build "$work/build"
"$work/build/consumer"
# Built wherever hiredis is installed (the consumer project insists on ssepp::redis then).
if [ -x "$work/build/consumer_redis" ]; then "$work/build/consumer_redis"; fi
# Built wherever Boost and OpenSSL are installed (the consumer project insists on ssepp::asio then).
if [ -x "$work/build/consumer_asio" ]; then "$work/build/consumer_asio"; fi
