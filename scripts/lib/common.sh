# Shared by scripts/*: dependency installation and small helpers. Source it; it defines functions.

SSEPP_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# ensure_debs PKG...: installs the Debian packages that are missing (apt-get as root or through
# password-less sudo), or names them and fails.
ensure_debs() {
  local missing=() p sudo=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
      sudo=(sudo -n)
    else
      echo "ssepp needs these Debian packages: ${missing[*]}" >&2
      echo "install them with: sudo apt-get install ${missing[*]}" >&2
      return 1
    fi
  fi
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if ! "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

# ensure_node: node and npm, from Debian when absent (a machine may already have its own).
ensure_node() {
  command -v node >/dev/null 2>&1 || ensure_debs nodejs
  command -v npm >/dev/null 2>&1 || ensure_debs npm
}

# ensure_npm DIR: installs DIR/package.json's packages into DIR/node_modules (git-ignored).
ensure_npm() {
  local dir=$1
  ensure_node
  if [ ! -d "$dir/node_modules" ] || [ "$dir/package.json" -nt "$dir/node_modules" ]; then
    log "installing Node packages in ${dir#"$SSEPP_ROOT"/}"
    (cd "$dir" && npm install --no-audit --no-fund --loglevel=error) && touch "$dir/node_modules"
  fi
}

# What scripts/demo needs to configure and build ssepp-demo (examples/beast, with the other
# examples configured beside it, tests off): the library's fmt, Boost's headers (Beast, Asio),
# OpenSSL for ssepp::asio's TLS, zlib for --compress, and nlohmann-json for the examples. hiredis and cpp-httplib are
# optional there (with hiredis the demo gains --redis; without cpp-httplib examples/httplib is
# skipped).
SSEPP_DEMO_DEBS=(cmake ninja-build g++ libfmt-dev libboost-dev libssl-dev zlib1g-dev
  nlohmann-json3-dev)
# What every test build needs (scripts/test, scripts/bench, ...): the demo's, plus clang and its
# sanitizer/libFuzzer runtime, Catch2, cpp-httplib, hiredis and a real redis-server, pkg-config
# for the pkg-config consumer test, git for the fmt_missing consumer test's stand-in repository,
# zlib for ssepp::compress, and the openssl tool that makes the TLS tests' certificates.
SSEPP_BUILD_DEBS=("${SSEPP_DEMO_DEBS[@]}" clang libclang-rt-14-dev catch2 libcpp-httplib-dev
  libhiredis-dev redis-server pkgconf git zlib1g-dev openssl)

jobs() { nproc 2>/dev/null || echo 2; }
