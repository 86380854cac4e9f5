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

# What every build needs.
SSEPP_BUILD_DEBS=(cmake ninja-build g++ clang libclang-rt-14-dev libfmt-dev catch2
  nlohmann-json3-dev libboost-dev libssl-dev openssl libcpp-httplib-dev libhiredis-dev redis-server)

jobs() { nproc 2>/dev/null || echo 2; }
