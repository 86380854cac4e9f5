#!/usr/bin/env bash
# tests/readme/check.sh README FIXTURES WORK CXX [INCLUDE_DIR...]: compiles every C++ block of the
# README inside its fixture, so that the manual cannot drift from the code. Each ```cpp block has
# a `<!-- snippet: NAME -->` line right above it; FIXTURES/NAME.cpp is the code around it, with
# `// @snippet` where the block goes and, optionally, `// @includes` where the block's #include
# lines go (the rest then lands in a function body). NAME `sketch` marks pseudo-code that is not
# compiled. Errors point at README lines.
set -euo pipefail
readme=$1 fixtures=$2 work=$3 cxx=$4
shift 4
incs=()
for d in "$@"; do incs+=(-I "$d"); done
rm -rf "$work" && mkdir -p "$work"
status=0 count=0

# Split the README into WORK/NAME.block, and list "NAME FIRST_LINE" in WORK/index.
awk -v work="$work" '
  /^<!-- snippet: [a-z0-9-]+ -->$/ { name = $3; marker = NR; last = NR; next }
  /^```cpp$/ {
    if (name == "" || last != marker) {
      printf "README.md:%d: a C++ block without a <!-- snippet: NAME --> line right above it\n", NR > "/dev/stderr"
      bad = 1; name = "unnamed" NR
    }
    if (name != "sketch" && (name in seen)) {
      printf "README.md:%d: snippet name %s used twice\n", NR, name > "/dev/stderr"; bad = 1
    }
    seen[name] = 1; inblock = 1; file = work "/" name ".block"
    if (name != "sketch") print name, NR + 1 >> (work "/index")
    printf "" > file; next
  }
  inblock && /^```$/ { inblock = 0; name = ""; last = NR; next }
  inblock { print > file; next }
  NF { last = NR }
  END { exit bad }
' "$readme" || status=1
touch "$work/index"
while read -r name first; do
  fixture="$fixtures/$name.cpp"
  if [ ! -f "$fixture" ]; then
    echo "README.md:$first: no fixture $fixture for snippet $name" >&2; status=1; continue
  fi
  out="$work/$name.cpp"
  hoist=0
  grep -q '^// @includes' "$fixture" && hoist=1
  while IFS= read -r line; do
    case "$line" in
      "// @includes"*) grep '^#include' "$work/$name.block" || true ;;
      "// @snippet"*)
        echo "#line $first \"README.md\""
        if [ $hoist = 1 ]; then sed 's/^#include.*//' "$work/$name.block"; else cat "$work/$name.block"; fi
        echo "#line 1 \"$fixture (after the snippet)\"" ;;
      *) printf '%s\n' "$line" ;;
    esac
  done <"$fixture" >"$out"
  count=$((count + 1))
  if ! "$cxx" -std=c++17 -fsyntax-only -Wall -Wextra -Wno-unused -Wno-unused-parameter -Werror "${incs[@]}" "$out"; then
    echo "snippet $name (README.md:$first) does not compile in $fixture" >&2
    status=1
  fi
done <"$work/index"

# Every fixture serves a block.
for fixture in "$fixtures"/*.cpp; do
  name=$(basename "$fixture" .cpp)
  if ! grep -q "^$name " "$work/index"; then
    echo "$fixture: no README block is marked <!-- snippet: $name -->" >&2
    status=1
  fi
done
[ "$count" -gt 0 ] || { echo "no C++ blocks found in $readme" >&2; exit 1; }
[ $status = 0 ] && echo "$count README snippets compile"
exit $status
