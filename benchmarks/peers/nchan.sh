#!/usr/bin/env bash
# nginx + nchan, the C server people pick for SSE fan-out, as a benchmark peer: one nginx process
# (no master, one worker), `nchan_subscriber eventsource` on GET /events and a publisher on
# POST /publish, both on one channel. The publisher's JSON body becomes each event's data as it
# is, which carries the load generator's send time and sequence number like the other peers.
#   benchmarks/peers/nchan.sh [--host 127.0.0.1] [--port 0]
# Prints "nchan listening on http://HOST:PORT/" once it accepts connections, then runs in the
# foreground as the nginx process itself (so its PID is the one to measure). Debian packages:
# nginx-light, libnginx-mod-nchan.
set -euo pipefail
host=127.0.0.1 port=0
while [ $# -gt 0 ]; do
  case "$1" in
    --host) host=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
module=/usr/lib/nginx/modules/ngx_nchan_module.so
if ! command -v nginx >/dev/null || [ ! -f "$module" ]; then
  echo "nchan peer: needs Debian packages nginx-light and libnginx-mod-nchan" >&2
  exit 1
fi
if [ "$port" = 0 ]; then
  port=$(node -e 'const s=require("net").createServer().listen(0,process.argv[1],()=>{console.log(s.address().port);s.close()})' "$host")
fi
dir=$(mktemp -d /tmp/ssepp-nchan.XXXXXX)
cat >"$dir/nginx.conf" <<CONF
load_module $module;
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile 65536;
error_log $dir/error.log warn;
pid $dir/nginx.pid;
events { worker_connections 30000; multi_accept on; }
http {
  access_log off;
  client_body_temp_path $dir/body;
  server {
    listen $host:$port backlog=4096;
    location = /events {
      nchan_subscriber eventsource;
      nchan_channel_id bench;
      nchan_subscriber_first_message newest;
    }
    location = /publish {
      nchan_publisher;
      nchan_channel_id bench;
    }
  }
}
CONF
# Announces the port once nginx accepts connections, and removes the folder when nginx (this
# process, after the exec below) has exited.
self=$$
(
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then
      echo "nchan listening on http://$host:$port/"
      break
    fi
    sleep 0.1
  done
  while kill -0 "$self" 2>/dev/null; do sleep 0.5; done
  rm -rf "$dir"
) &
exec nginx -c "$dir/nginx.conf" -p "$dir"
