#!/usr/bin/env bash
# sse-dump: SSE in, one JSON object per event / retry out; the same output however it is chunked;
# a parser limit stops with its message and status 1.
set -u
tool=$1
fail=0
check() {  # check NAME EXPECTED ACTUAL
  if [ "$2" != "$3" ]; then
    echo "FAIL $1"; echo "--- expected"; printf '%s\n' "$2"; echo "--- got"; printf '%s\n' "$3"
    fail=1
  else
    echo "ok   $1"
  fi
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

stream=$'\xEF\xBB\xBFretry: 1500\nid: 1\nevent: add\ndata: {"a":1}\ndata: two\n\n: note\r\ndata: b\r\n\r\ndata: c\rid: 2\r\rdata: cut'
expected='{"retry":1500}
{"event":"add","data":"{\"a\":1}\ntwo","id":"1"}
{"event":"message","data":"b","id":"1"}
{"event":"message","data":"c","id":"2"}'
printf '%s' "$stream" > "$tmp/in.sse"
check "events and retry in stream order" "$expected" "$("$tool" < "$tmp/in.sse")"
check "file argument" "$expected" "$("$tool" "$tmp/in.sse")"
for n in 1 2 3 7 64; do
  check "--chunk $n" "$expected" "$("$tool" --chunk "$n" "$tmp/in.sse")"
done
check "--comments" '{"comment":"note"}' "$("$tool" --comments "$tmp/in.sse" | grep comment)"

printf 'data: \xF0\x9F\x98x\n\n' > "$tmp/bad.sse"
check "--replace-invalid-utf8" '{"event":"message","data":"�x","id":""}' \
  "$("$tool" --replace-invalid-utf8 "$tmp/bad.sse")"

out=$(printf 'data: ok\n\ndata: 0123456789\n\ndata: never\n\n' | "$tool" --max-line 10 2>"$tmp/err"; echo "status $?")
check "limit: earlier output kept, status 1" $'{"event":"message","data":"ok","id":""}\nstatus 1' "$out"
grep -q 'line too long: the line starting at byte 10' "$tmp/err" || { echo "FAIL message: $(cat "$tmp/err")"; fail=1; }

out=$("$tool" "$tmp/missing.sse" 2>"$tmp/err"; echo "status $?")
check "missing file" 'status 1' "$out"
out=$("$tool" --chunk 2>/dev/null; echo "status $?")
check "bad usage" 'status 2' "$out"
exit $fail
