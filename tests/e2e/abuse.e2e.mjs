// Abuse against ssepp-demo: 1,000 streams opened and dropped abruptly while publishing, malformed
// and oversized requests, a slow-loris request, and a client that never reads. The server must
// answer with 4xx JSON errors, never crash, keep serving the others, bound its memory and cut the
// stuck client.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import {
  api, metrics, openRaw, publish, rssKiB, startServer, waitFor, within,
} from './lib/harness.mjs';

const CONNECTIONS = 1000;
let server;

before(async () => {
  server = await startServer(['--ticker', '0', '--history', '64', '--queue-bytes', String(2 << 20), '--threads', '2',
                              '--heartbeat', '1']);
});

after(async () => {
  const { code, signal, stderr } = await server.stop();
  assert.equal(signal, null, stderr);
  assert.equal(code, 0, `ssepp-demo exited with ${code}:\n${stderr}`);
});

/** Sends `bytes` on a fresh TCP connection and collects the answer until the server closes (or
 *  `timeout`). Resolves to {status, headers, body, raw, closed}. */
function exchange(port, bytes, { timeout = 5000, endAfterWrite = false } = {}) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    const chunks = [];
    let closed = false;
    const timer = setTimeout(() => { sock.destroy(); finish(); }, timeout);
    function finish() {
      clearTimeout(timer);
      const raw = Buffer.concat(chunks).toString('latin1');
      const head = raw.split('\r\n\r\n')[0];
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(head);
      const body = raw.slice(head.length + 4);
      resolve({ status: m ? Number(m[1]) : undefined, head, body, raw, closed });
    }
    sock.on('data', (d) => chunks.push(d));
    sock.on('end', () => { closed = true; });
    sock.on('close', () => { closed = true; finish(); });
    sock.on('error', () => {});
    sock.on('connect', () => {
      sock.write(bytes);
      if (endAfterWrite) sock.end();
    });
    sock.on('timeout', reject);
  });
}

function jsonError(r, what) {
  let parsed;
  try { parsed = JSON.parse(r.body); } catch { assert.fail(`${what}: body is not JSON: ${r.raw.slice(0, 300)}`); }
  assert.equal(typeof parsed.error, 'string', what);
}

test(`${CONNECTIONS} streams opened and dropped abruptly while publishing`, async () => {
  const watcher = openRaw(server, { channels: ['room:abuse'] });
  await watcher.connected;
  const base = (await metrics(server)).ssepp_clients;

  let n = 0;
  let stop = false;
  const publisher = (async () => {
    while (!stop) {
      ++n;
      await publish(server, { channel: 'room:abuse', event: 'seq', data: String(n) });
      await new Promise((r) => setTimeout(r, 2));
    }
  })();

  // Open them all (each sends a complete stream request and waits for the response head).
  const sockets = [];
  const opened = [];
  for (let i = 0; i < CONNECTIONS; ++i) {
    const sock = net.connect(server.port, '127.0.0.1');
    sock.on('error', () => {});
    sockets.push(sock);
    opened.push(new Promise((resolve) => {
      let seen = '';
      const onData = (d) => {
        seen += d.toString('latin1');
        if (seen.includes('event: connected')) { sock.off('data', onData); resolve(true); }
      };
      sock.on('data', onData);
      sock.on('close', () => resolve(false));
    }));
    sock.on('connect', () => sock.write(`GET /events?channel=room:abuse&channel=room:c${i % 7} HTTP/1.1\r\nHost: x\r\n\r\n`));
    if (i % 100 === 99) await new Promise((r) => setTimeout(r, 10));
  }
  const ok = await within(Promise.all(opened), 60000, 'every stream to start');
  assert.equal(ok.filter(Boolean).length, CONNECTIONS);
  const held = (await metrics(server)).ssepp_clients;
  assert.ok(held >= base + CONNECTIONS, `clients held: ${held}`);
  console.log(`held ${held} streams at once, server RSS ${Math.round(rssKiB(server.pid) / 1024)} MiB`);

  // Drop them every way a client can vanish: RST, FIN, half-close, mid-request.
  sockets.forEach((s, i) => {
    if (i % 3 === 0) s.resetAndDestroy();
    else if (i % 3 === 1) s.destroy();
    else s.end();
  });
  const midRequest = [];
  for (let i = 0; i < 200; ++i) {
    const s = net.connect(server.port, '127.0.0.1');
    s.on('error', () => {});
    s.on('connect', () => {
      s.write('GET /events?channel=room:abuse HTTP/1.1\r\nHo');
      if (i % 2) s.resetAndDestroy(); else s.destroy();
    });
    midRequest.push(s);
  }

  await waitFor(async () => (await metrics(server)).ssepp_clients === base,
                { timeout: 30000, what: 'the dropped streams to be forgotten' });
  await waitFor(async () => (await metrics(server)).ssepp_demo_connections_open <= base + 2,
                { timeout: 30000, what: 'the dropped sockets to be closed' });
  stop = true;
  await publisher;
  // The steady client saw every event, in order, none twice, all along.
  await watcher.waitCount('seq', n, { timeout: 15000 });
  assert.deepEqual(watcher.of('seq').map((e) => Number(e.data)), Array.from({ length: n }, (_, i) => i + 1));
  watcher.close();
  assert.equal((await api(server, '/health')).status, 200);
});

test('malformed and oversized requests get a 4xx JSON error, never a crash', async () => {
  const port = server.port;
  const cases = [
    ['garbage request line', 'GARBAGE\r\n\r\n', 400],
    ['bad version', 'GET / HTTP/9.x\r\nHost: x\r\n\r\n', 400],
    ['bad header line', 'GET / HTTP/1.1\r\nHost x\r\n\r\n', 400],
    ['header too large', `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20000)}\r\n\r\n`, 431],
    ['many headers', `GET / HTTP/1.1\r\nHost: x\r\n${'X-H: 1\r\n'.repeat(3000)}\r\n`, 431],
    ['body too large', 'POST /publish HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n', 413],
    ['chunked body too large', `POST /publish HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n${'10000\r\n' + 'a'.repeat(65536) + '\r\n'}${'10000\r\n' + 'a'.repeat(65536) + '\r\n'}0\r\n\r\n`, 413],
    ['bad chunk size', 'POST /publish HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n', 400],
    ['bad content-length', 'POST /publish HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n', 400],
  ];
  for (const [what, bytes, status] of cases) {
    const r = await exchange(port, bytes);
    assert.equal(r.status, status, `${what}: ${r.raw.slice(0, 200)}`);
    jsonError(r, what);
  }

  const post = (path, body, headers = '') =>
    exchange(port, `POST ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n` +
                   `${headers}Content-Length: ${Buffer.byteLength(body, 'latin1')}\r\n\r\n${body}`);
  const bodies = [
    ['/publish', '{not json', 400],
    ['/publish', '[1,2,3]', 400],
    ['/publish', '"a string"', 400],
    ['/publish', '', 400],
    ['/publish', '['.repeat(30000), 400],
    ['/publish', '{"data":"\xff\xfe"}', 400],  // invalid UTF-8
    ['/publish', '{"data":"x","event":{"a":1}}', 400],
    ['/publish', '{"data":"x","channel":"' + 'c'.repeat(100) + '"}', 400],
    ['/publish', '{"data":"x","user":"a\\nb"}', 400],
    ['/login', '{"user":5}', 400],
    ['/login', '{"user":""}', 400],
    ['/login', '{"user":"' + 'u'.repeat(33) + '"}', 400],
    ['/login', '{"user":"bad name"}', 400],
    ['/login', '{}', 400],
    ['/subscribe', '{"client":"1","channel":"room:a"}', 401],
    ['/subscribe', '{"client":1}', 400],
    ['/jobs', '{}', 401],
    ['/nope', '{}', 404],
  ];
  for (const [path, body, status] of bodies) {
    const r = await post(path, body);
    assert.equal(r.status, status, `${path} ${body.slice(0, 60)}: ${r.raw.slice(0, 200)}`);
    jsonError(r, `${path} ${body.slice(0, 60)}`);
  }
  const get = (target) => exchange(port, `GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
  for (const [target, status] of [
    ['/nope', 404],
    ['/publish', 405],
    ['/events?channel=' + 'x'.repeat(65), 400],
    ['/events?channel=a%0Ab', 400],
    ['/events?channel=room:a&' + Array.from({ length: 40 }, (_, i) => `channel=c${i}`).join('&'), 400],
    ['/events?lastEventId=%00', 400],
  ]) {
    const r = await get(target);
    assert.equal(r.status, status, `${target.slice(0, 60)}: ${r.raw.slice(0, 200)}`);
    jsonError(r, target.slice(0, 60));
  }
  // Truncated requests and bodies (the client half-closes mid-request): the connection just
  // ends, unanswered. Binary garbage: a 400, then the server closes. Each closed by the server,
  // before the exchange's own timeout.
  for (const [what, bytes, options, status] of [
    ['truncated body', 'POST /publish HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"a"', { endAfterWrite: true }, undefined],
    ['truncated head', 'GET /events HTTP/1.1\r\nHo', { endAfterWrite: true }, undefined],
    ['binary garbage', '\x00\x01\x02\xff\r\n\r\n', {}, 400],
  ]) {
    const r = await exchange(port, bytes, options);
    assert.ok(r.closed, `${what}: the server closed the connection`);
    assert.equal(r.status, status, `${what}: ${r.raw.slice(0, 200)}`);
    if (status === undefined) assert.equal(r.raw, '', `${what}: no answer at all`);
    else jsonError(r, what);
  }

  assert.equal((await api(server, '/health')).status, 200);
  assert.ok((await metrics(server)).ssepp_demo_bad_requests_total >= cases.length + bodies.length);
});

test('a request that never completes is timed out (slow loris)', async () => {
  const slow = await startServer(['--ticker', '0', '--request-timeout', '1']);
  try {
    const started = Date.now();
    const r = await exchange(slow.port, 'GET /health HTTP/1.1\r\nHost: x\r\n', { timeout: 10000 });
    assert.ok(r.closed, 'the server closed the connection');
    assert.ok(Date.now() - started < 5000, `closed after ${Date.now() - started} ms`);
    assert.equal((await api(slow, '/health')).status, 200);
  } finally {
    const { code, stderr } = await slow.stop();
    assert.equal(code, 0, stderr);
  }
});

test('a client that never reads is cut; the others and the server carry on, memory bounded', async () => {
  const healthy = openRaw(server, { channels: ['room:flood'] });
  await healthy.connected;
  const stuck = net.connect(server.port, '127.0.0.1');
  stuck.on('error', () => {});
  let stuckClosed = false;
  stuck.on('close', () => { stuckClosed = true; });
  await new Promise((r) => stuck.on('connect', r));
  stuck.write('GET /events?channel=room:flood HTTP/1.1\r\nHost: x\r\n\r\n');
  stuck.pause();  // never read: the kernel buffers fill, then its mailbox, then it is cut
  await waitFor(async () => (await metrics(server)).ssepp_clients >= 2, { what: 'both streams' });

  const rssBefore = rssKiB(server.pid);
  const cutBefore = (await metrics(server)).ssepp_demo_streams_cut_total;
  const payload = 'x'.repeat(48 * 1024);
  let sent = 0;
  let slowest = 0;
  const deadline = Date.now() + 90000;
  for (;;) {
    await publish(server, { channel: 'room:flood', event: 'blob', data: payload });
    ++sent;
    if (sent % 25 === 0) {
      const t0 = Date.now();
      const h = await api(server, '/health');
      slowest = Math.max(slowest, Date.now() - t0);
      assert.equal(h.status, 200);
      if ((await metrics(server)).ssepp_demo_streams_cut_total > cutBefore) break;
      // Let the healthy reader keep up: it must never be the one cut.
      await healthy.waitCount('blob', sent - 10, { timeout: 20000 });
    }
    assert.ok(sent < 2000 && Date.now() < deadline, `the stuck client was not cut after ${sent} events`);
  }
  const m = await metrics(server);
  const rssAfter = rssKiB(server.pid);
  console.log(`stuck client cut after ${sent} events of 48 KiB (${(sent * 48 / 1024).toFixed(1)} MiB); ` +
              `RSS ${Math.round(rssBefore / 1024)} -> ${Math.round(rssAfter / 1024)} MiB; slowest /health ${slowest} ms`);
  assert.equal(m.ssepp_clients, 1, 'only the healthy stream remains');
  assert.ok(m.ssepp_demo_streams_cut_total > cutBefore);
  assert.ok(slowest < 2000, `the server stayed responsive (slowest /health ${slowest} ms)`);
  // Bounded: a 2 MiB queue for the stuck client and 64 events of history, not the whole flood
  // (the allowance covers the sanitizer's quarantine of freed frames).
  assert.ok(rssAfter - rssBefore < 200 * 1024, `RSS grew by ${rssAfter - rssBefore} KiB`);

  // The healthy one got every event; the stuck socket, once read, ends.
  await healthy.waitCount('blob', sent, { timeout: 30000 });
  assert.equal(healthy.of('blob').length, sent);
  healthy.close();
  stuck.resume();
  await waitFor(() => stuckClosed, { timeout: 30000, what: 'the stuck socket to end' });
});
