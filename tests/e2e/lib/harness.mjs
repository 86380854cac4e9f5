// Shared by the end-to-end tests: starts the real demo server on a free loopback port, talks to
// its HTTP API, opens raw and EventSource streams, and waits for conditions with timeouts.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { createParser } from 'eventsource-parser';

const HOST = '127.0.0.1';

/** Waits until `fn()` returns a truthy value (polled every 20 ms); returns it, or throws. */
export async function waitFor(fn, { timeout = 10000, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeout} ms waiting for ${what}` +
                      (last instanceof Error ? `: ${last.message}` : ''));
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Rejects when `promise` takes longer than `ms`. */
export function within(promise, ms, what) {
  let timer;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    }),
  ]);
}

/**
 * Starts ssepp-demo (path in $SSEPP_DEMO, or `bin`) on a free loopback port (`--port 0`) with
 * `args`, and reads the port it chose from the first line it prints ("... listening on
 * http://HOST:PORT/"). `stop()` ends it with SIGTERM and reports how it exited.
 */
export async function startServer(args = [], { bin = process.env.SSEPP_DEMO,
                                               prefix = ['--host', HOST, '--port', '0'] } = {}) {
  if (!bin) throw new Error('set SSEPP_DEMO to the ssepp-demo executable');
  const child = spawn(bin, [...prefix, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d) => { stderr = (stderr + d).slice(-200000); });
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));

  const firstLine = await within(new Promise((resolve, reject) => {
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d) => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve(out.slice(0, nl));
    });
    exited.then(({ code, signal }) => reject(new Error(`${bin} exited (${code ?? signal}) before listening:\n${stderr}`)));
  }), 30000, 'the server to print its address');
  const m = /^\S+ listening on (https?):\/\/([^/]+):(\d+)\/$/.exec(firstLine);
  if (!m) throw new Error(`unexpected first line from ${bin}: ${firstLine}`);
  const port = Number(m[3]);
  const server = {
    port,
    pid: child.pid,
    url: `${m[1]}://${HOST}:${port}`,  // https with --tls-cert
    stderr: () => stderr,
    exited,
    /** SIGTERM, then waits (SIGKILL after `timeout`); resolves to {code, signal, stderr}. */
    async stop({ timeout = 20000 } = {}) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), timeout);
      const result = await exited;
      clearTimeout(timer);
      return { ...result, stderr };
    },
  };
  return server;
}

/** Resident memory of a process, in KiB (Linux). */
export function rssKiB(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)[1]);
}

/** POST JSON (or GET when body is undefined); resolves to {status, json, headers}. */
export async function api(server, path, body, { token, method, headers = {}, raw } = {}) {
  const init = { method: method ?? (body === undefined ? 'GET' : 'POST'), headers: { ...headers } };
  if (body !== undefined) {
    init.body = raw ? body : JSON.stringify(body);
    init.headers['Content-Type'] ??= 'application/json';
  }
  if (token) init.headers.Authorization = `Bearer ${token}`;
  const res = await fetch(server.url + path, init);
  const text = await res.text();
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: res.status, json, text, headers: res.headers };
}

/** Logs `user` in; resolves to its session token. */
export async function login(server, user) {
  const r = await api(server, '/login', { user });
  if (r.status !== 200) throw new Error(`login ${user}: ${r.status} ${r.text}`);
  return r.json.token;
}

/** Publishes; resolves to the 202 body {id, delivered} (throws on another status). */
export async function publish(server, message) {
  const r = await api(server, '/publish', message);
  if (r.status !== 202) throw new Error(`publish ${JSON.stringify(message)}: ${r.status} ${r.text}`);
  return r.json;
}

/** /metrics parsed into {name: number}. */
export async function metrics(server) {
  const r = await api(server, '/metrics');
  const out = {};
  for (const line of r.text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const [name, value] = line.split(' ');
    out[name] = Number(value);
  }
  return out;
}

/** The query string of a stream URL. */
export function streamPath({ channels = [], query = '' } = {}) {
  const params = channels.map((c) => `channel=${encodeURIComponent(c)}`);
  if (query) params.push(query);
  return '/events' + (params.length ? '?' + params.join('&') : '');
}

/**
 * A raw stream client: node:http + eventsource-parser, with full control of the request (headers,
 * Last-Event-ID) and of how it ends (`kill()` destroys the socket abruptly). Every event lands in
 * `events` ({type, data, id}); `connected` resolves with the first (connected) event's data.
 */
export function openRaw(server, { channels, query, token, lastEventId, headers = {} } = {}) {
  const events = [];
  const client = { events, comments: [], status: undefined, headers: undefined, ended: false, complete: false,
                   error: undefined };
  const reqHeaders = { Accept: 'text/event-stream', ...headers };
  if (token) reqHeaders.Authorization = `Bearer ${token}`;
  if (lastEventId !== undefined) reqHeaders['Last-Event-ID'] = lastEventId;
  let resolveConnected, rejectConnected;
  client.connected = new Promise((res, rej) => { resolveConnected = res; rejectConnected = rej; });
  client.connected.catch(() => {});
  const parser = createParser({
    onEvent(ev) {
      const e = { type: ev.event || 'message', data: ev.data, id: ev.id };
      events.push(e);
      if (events.length === 1) {
        if (e.type === 'connected') resolveConnected(JSON.parse(e.data));
        else rejectConnected(new Error(`first event is ${e.type}, not connected`));
      }
    },
    onRetry(ms) { client.retry = ms; },
    onComment(text) { client.comments.push(text); },
  });
  // Over HTTPS (a test certificate): no verification, the test is about the stream.
  const tls = server.url.startsWith('https:');
  const req = (tls ? https : http).request(server.url + streamPath({ channels, query }),
                                           { headers: reqHeaders, agent: false, rejectUnauthorized: !tls });
  client.request = req;
  req.on('response', (res) => {
    client.status = res.statusCode;
    client.headers = res.headers;
    res.setEncoding('utf8');
    let body = '';
    res.on('data', (chunk) => {
      if (res.statusCode === 200) parser.feed(chunk);
      else body += chunk;
    });
    // complete: the body ended as HTTP says it must (the final chunk), not by a cut connection.
    res.on('end', () => {
      client.complete = res.complete;
      client.ended = true;
      if (res.statusCode !== 200) {
        client.body = body;
        rejectConnected(new Error(`stream answered ${res.statusCode}: ${body}`));
      }
    });
    res.on('error', () => { client.ended = true; });
    res.on('close', () => { client.complete = res.complete; client.ended = true; });
  });
  req.on('error', (err) => { client.error = err; client.ended = true; rejectConnected(err); });
  req.end();
  client.of = (type) => events.filter((e) => e.type === type);
  client.waitFor = (pred, opts) => waitFor(() => events.find(pred), opts);
  client.waitCount = (type, n, opts = {}) =>
    waitFor(() => client.of(type).length >= n && client.of(type), { what: `${n} ${type} events`, ...opts });
  client.lastId = () => { for (let i = events.length - 1; i >= 0; --i) if (events[i].id) return events[i].id; return undefined; };
  /** Ends the connection abruptly (no FIN handshake from the client's side: RST). */
  client.kill = () => { req.socket?.resetAndDestroy?.() ?? req.destroy(); };
  client.close = () => req.destroy();
  return client;
}

/**
 * A WHATWG EventSource (npm `eventsource`) on the demo's stream, authenticated with a Bearer
 * token when given. Records every event of `types` (plus connected and message) in `events`
 * ({type, data, lastEventId}) and every `connected` payload in `connections`.
 */
export async function openEventSource(server, { channels, query, token, types = [] } = {}) {
  const { EventSource } = await import('eventsource');
  const init = {};
  if (token) {
    init.fetch = (input, options) =>
      fetch(input, { ...options, headers: { ...options.headers, Authorization: `Bearer ${token}` } });
  }
  const es = new EventSource(server.url + streamPath({ channels, query }), init);
  const client = { es, events: [], connections: [], errors: 0 };
  for (const type of new Set(['connected', 'message', ...types])) {
    es.addEventListener(type, (e) => {
      client.events.push({ type, data: e.data, lastEventId: e.lastEventId });
      if (type === 'connected') client.connections.push(JSON.parse(e.data));
    });
  }
  es.addEventListener('error', () => { client.errors++; });
  client.of = (type) => client.events.filter((e) => e.type === type);
  client.waitFor = (pred, opts) => waitFor(() => client.events.find(pred), opts);
  client.ready = (n = 1) =>
    waitFor(() => client.connections.length >= n && client.connections[n - 1], { what: `connected #${n}` });
  client.id = () => client.connections.at(-1)?.client;
  client.close = () => es.close();
  return client;
}

/**
 * A slow consumer: an openRaw stream that stops reading as soon as its response starts. Its
 * socket is paused, so the kernel's buffers fill, then the server's queue for it. `resume()`
 * reads on: what the connection still delivers lands in `events`, as with openRaw, and `bytes`
 * counts the body bytes received.
 */
export function openStalled(server, options = {}) {
  const client = openRaw(server, options);
  let res;
  let resumed = false;
  client.bytes = 0;
  client.request.on('response', (r) => {
    res = r;
    r.on('data', (chunk) => { client.bytes += chunk.length; });
    if (!resumed) r.pause();
  });
  client.resume = () => {
    resumed = true;
    res?.resume();
  };
  return client;
}

/**
 * startServer with extra environment variables for the server process only, e.g.
 * `{ ASAN_OPTIONS: asanOptions('quarantine_size_mb=16') }`.
 */
export function startServerWithEnv(args, env, options) {
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  Object.assign(process.env, env);
  try {
    return startServer(args, options);  // spawns before its first await: env is read by then
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

/** $ASAN_OPTIONS with `extra` options appended (a later option overrides an earlier one). */
export function asanOptions(...extra) {
  return [process.env.ASAN_OPTIONS, ...extra].filter(Boolean).join(':');
}
