#!/usr/bin/env bash
# sse-encode: JSON Lines in, SSE out; the first invalid line stops with its number and status 1.
set -u
tool=$1
fail=0
check() {  # check NAME EXPECTED ACTUAL
  if [ "$2" != "$3" ]; then
    echo "FAIL $1"; echo "--- expected"; printf '%s' "$2" | od -c | head; echo "--- got"; printf '%s' "$3" | od -c | head
    fail=1
  else
    echo "ok   $1"
  fi
}

out=$(printf '%s\n' '{"event":"price","data":"{\"x\":1}","id":"7","retry":3000}' | "$tool"; echo .)
check "full event" $'event: price\nid: 7\nretry: 3000\ndata: {"x":1}\n\n.' "$out"

out=$(printf '%s\n' '{"data":"a\rb\r\nc\nd"}' '' '{"comment":"hi"}' '{"retry":10}' '{}' | "$tool"; echo .)
check "data split, comment, retry, keep-alive" $'data: a\ndata: b\ndata: c\ndata: d\n\n: hi\n\nretry: 10\n\n:\n\n.' "$out"

out=$(printf '%s\n' '{"data":{"n":[1,2]},"id":42}' | "$tool"; echo .)
check "non-string data and id as JSON" $'id: 42\ndata: {"n":[1,2]}\n\n.' "$out"

err=$(mktemp)
out=$(printf '%s\n' '{"data":"one"}' '{"data":"two"}' '{"event":"bad\nname","data":"x"}' '{"data":"never"}' | "$tool" 2>"$err"; echo "status $?")
check "invalid event: earlier output kept, status 1" $'data: one\n\ndata: two\n\nstatus 1' "$out"
grep -q 'line 3: event type contains a line break' "$err" || { echo "FAIL message: $(cat "$err")"; fail=1; }

out=$(printf '%s\n' '{"data":"ok"}' 'not json' | "$tool" 2>"$err"; echo "status $?")
check "invalid JSON" $'data: ok\n\nstatus 1' "$out"
grep -q 'line 2: invalid JSON' "$err" || { echo "FAIL message: $(cat "$err")"; fail=1; }

out=$(printf '%s\n' '{"id":"a\u0000b","data":"x"}' | "$tool" 2>"$err"; echo "status $?")
check "NUL in id rejected" 'status 1' "$out"
grep -q 'line 1: event id' "$err" || { echo "FAIL message: $(cat "$err")"; fail=1; }

out=$(printf '%s\n' '{"retry":-1}' | "$tool" 2>"$err"; echo "status $?")
check "negative retry rejected" 'status 1' "$out"
rm -f "$err"
exit $fail
