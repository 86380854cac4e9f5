#!/usr/bin/env bash
# tests/readme/check.sh ROOT FIXTURES WORK CXX [INCLUDE_DIR...]: compiles every C++ block of the
# manual — ROOT/README.md and every ROOT/docs/*.md — inside its fixture, so that the manual cannot
# drift from the code. Each ```cpp block has a `<!-- snippet: NAME -->` line right above it (NAME
# unique across all the files); FIXTURES/NAME.cpp is the code around it, with `// @snippet` where
# the block goes and, optionally, `// @includes` where the block's #include lines go (the rest
# then lands in a function body). NAME `sketch` marks pseudo-code that is not compiled. Errors
# point at the Markdown file and line.
set -euo pipefail
root=$1 fixtures=$2 work=$3 cxx=$4
shift 4
incs=()
for d in "$@"; do incs+=(-I "$d"); done
rm -rf "$work" && mkdir -p "$work"
status=0 count=0

files=(README.md)
for f in "$root"/docs/*.md; do [ -f "$f" ] && files+=("docs/${f##*/}"); done

# Split the files into WORK/NAME.block, and list "NAME FILE FIRST_LINE" in WORK/index.
(cd "$root" && awk -v work="$work" '
  FNR == 1 { name = ""; marker = -1; last = 0; inblock = 0 }
  /^<!-- snippet: [a-z0-9-]+ -->$/ { name = $3; marker = FNR; last = FNR; next }
  /^```cpp$/ {
    if (name == "" || last != marker) {
      printf "%s:%d: a C++ block without a <!-- snippet: NAME --> line right above it\n", FILENAME, FNR > "/dev/stderr"
      bad = 1; name = "unnamed" FNR
    }
    if (name != "sketch" && (name in seen)) {
      printf "%s:%d: snippet name %s already used at %s\n", FILENAME, FNR, name, seen[name] > "/dev/stderr"; bad = 1
    }
    seen[name] = FILENAME ":" FNR; inblock = 1; file = work "/" name ".block"
    if (name != "sketch") print name, FILENAME, FNR + 1 >> (work "/index")
    printf "" > file; next
  }
  inblock && /^```$/ { inblock = 0; name = ""; last = FNR; next }
  inblock { print > file; next }
  NF { last = FNR }
  END { exit bad }
' "${files[@]}") || status=1
touch "$work/index"
while read -r name md first; do
  fixture="$fixtures/$name.cpp"
  if [ ! -f "$fixture" ]; then
    echo "$md:$first: no fixture $fixture for snippet $name" >&2; status=1; continue
  fi
  out="$work/$name.cpp"
  hoist=0
  grep -q '^// @includes' "$fixture" && hoist=1
  while IFS= read -r line; do
    case "$line" in
      "// @includes"*) grep '^#include' "$work/$name.block" || true ;;
      "// @snippet"*)
        echo "#line $first \"$md\""
        if [ $hoist = 1 ]; then sed 's/^#include.*//' "$work/$name.block"; else cat "$work/$name.block"; fi
        echo "#line 1 \"$fixture (after the snippet)\"" ;;
      *) printf '%s\n' "$line" ;;
    esac
  done <"$fixture" >"$out"
  count=$((count + 1))
  if ! "$cxx" -std=c++17 -fsyntax-only -Wall -Wextra -Wno-unused -Wno-unused-parameter -Werror "${incs[@]}" "$out"; then
    echo "snippet $name ($md:$first) does not compile in $fixture" >&2
    status=1
  fi
done <"$work/index"

# Every fixture serves a block.
for fixture in "$fixtures"/*.cpp; do
  name=$(basename "$fixture" .cpp)
  if ! grep -q "^$name " "$work/index"; then
    echo "$fixture: no block in README.md or docs/*.md is marked <!-- snippet: $name -->" >&2
    status=1
  fi
done
[ "$count" -gt 0 ] || { echo "no C++ blocks found in ${files[*]}" >&2; exit 1; }
[ $status = 0 ] && echo "$count snippets compile (${files[*]})"
exit $status
