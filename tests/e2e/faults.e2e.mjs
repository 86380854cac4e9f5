// Faults against ssepp-demo while streams run: oversized requests (request lines, headers and
// Last-Event-IDs of megabytes, bodies past the limit) get a 4xx JSON error at the documented
// limits, with every other client keeping its stream, none cut, nothing lost; and no session can
// reach another's streams or private events, whatever ids it guesses or tokens it sends.
// (abuse.e2e.mjs covers malformed requests and bodies; streams.e2e.mjs the basic permissions.)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import {
  api, asanOptions, login, metrics, openRaw, publish, rssKiB, startServerWithEnv, within,
} from './lib/harness.mjs';

let server;
const open = [];

before(async () => {
  // A small ASan quarantine (gcc-asan-cxx20 build) so that RSS shows what the server keeps.
  server = await startServerWithEnv(['--ticker', '0', '--threads', '2', '--history', '4096'],
                                    { ASAN_OPTIONS: asanOptions('quarantine_size_mb=4', 'thread_local_quarantine_size_kb=64') });
});

after(async () => {
  for (const c of open) c.close();
  const { code, signal, stderr } = await server.stop();
  assert.equal(signal, null, stderr);
  assert.equal(code, 0, `ssepp-demo exited with ${code}:\n${stderr}`);
});

function raw(options) {
  const c = openRaw(server, options);
  open.push(c);
  return c;
}

const seqs = (c) => c.of('seq').map((e) => Number(e.data));
const range = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/**
 * Sends `head` on a fresh connection, then (with `endless`) keeps writing `endless` bytes for as
 * long as the server reads and has not answered, up to `max`. Resolves when the connection has
 * ended (or after `timeout`) to {status, json, raw, written, closed, reset}.
 */
function exchange(head, { endless, max = 64 << 20, timeout = 15000 } = {}) {
  return new Promise((resolve) => {
    const sock = net.connect(server.port, '127.0.0.1');
    const chunks = [];
    let written = 0;
    let closed = false;
    const timer = setTimeout(() => sock.destroy(), timeout);
    sock.on('data', (d) => chunks.push(d));
    let reset = false;
    sock.on('error', (err) => { reset ||= err.code === 'ECONNRESET' || err.code === 'EPIPE'; });
    sock.on('close', () => {
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
      let json;
      try { json = JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)); } catch { json = undefined; }
      resolve({ status: m && Number(m[1]), json, raw: text.slice(0, 300), written, closed, reset });
    });
    sock.on('end', () => { closed = true; });
    sock.on('connect', async () => {
      sock.write(head);
      written += Buffer.byteLength(head, 'latin1');
      if (!endless) return;
      const chunk = Buffer.alloc(endless.length, endless);
      while (!sock.destroyed && !closed && chunks.length === 0 && written < max) {
        written += chunk.length;
        if (!sock.write(chunk)) {
          await new Promise((r) => { sock.once('drain', r); sock.once('close', r); });
        }
      }
    });
  });
}

const get = (target, headers = '') =>
  exchange(`GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n${headers}\r\n`);

function refused(r, status, what) {
  assert.equal(r.status, status, `${what}: ${r.raw}`);
  assert.equal(typeof r.json?.error, 'string', `${what}: a JSON error, got ${r.raw}`);
  return r;
}

/** For a client that sends megabytes past the limit without reading: the server answers, reads
 *  on for at most 1 MiB (a lingering close), then closes; the reset that closing with unread
 *  bytes sends may erase the answer before the client reads it (RFC 9112, 9.6). So: the 4xx, or
 *  the connection reset, for any one request; counted in `outcomes`, and across all of them some
 *  must have been answered (a server that resets them all without answering fails). */
const outcomes = { answered: 0, reset: 0 };
function refusedOrReset(r, status, what) {
  if (r.status === null && r.reset) {
    ++outcomes.reset;
    return r;
  }
  refused(r, status, what);
  ++outcomes.answered;
  return r;
}

test('oversized requests get a 4xx at the limits; every other stream carries on, nothing lost', async () => {
  // The bystanders: anonymous and logged-in streams that must never notice anything.
  const users = ['fay', 'gus', 'hal'];
  const tokens = await Promise.all(users.map((u) => login(server, u)));
  const bystanders = [
    ...[0, 1, 2].map(() => raw({ channels: ['room:calm'] })),
    ...tokens.map((token, i) => raw({ channels: ['room:calm', `user:${users[i]}`], token })),
  ];
  await Promise.all(bystanders.map((c) => c.connected));
  let n = 0;
  let stop = false;
  const publisher = (async () => {
    while (!stop) {
      ++n;
      await publish(server, { channel: 'room:calm', event: 'seq', data: String(n) });
      await new Promise((r) => setTimeout(r, 3));
    }
  })();
  try {
    await oversized();
  } finally {
    stop = true;
    await publisher;
  }
  // The server stayed up and bounded; every bystander kept its one stream and got everything.
  assert.equal((await api(server, '/health')).status, 200);
  for (const c of bystanders) {
    await c.waitCount('seq', n, { timeout: 20000 });
    assert.deepEqual(seqs(c), range(1, n), 'every event, in order, once');
    assert.equal(c.of('connected').length, 1);
    assert.ok(!c.ended, 'the stream is still open');
  }
  const m = await metrics(server);
  assert.equal(m.ssepp_demo_streams_cut_total, 0, 'no stream was cut');
  console.log(`${n} events reached ${bystanders.length} bystanders intact meanwhile; blasting clients: ` +
              `${outcomes.answered} read their 431, ${outcomes.reset} were reset`);
});

async function oversized() {
  // Request lines and header values of megabytes: 431 once past 8 KiB, without reading on. The
  // first round warms the allocator up; RSS is compared after it.
  const ROUNDS = 4;
  const mib = 1 << 20;
  let r;
  let rssBefore;
  for (let round = 0; round < ROUNDS; ++round) {
    if (round === 1) rssBefore = rssKiB(server.pid);
    refused(await get(`/events?channel=${'a'.repeat(mib)}`), 431, '1 MiB request line');
    refused(await get(`/events?lastEventId=${'1'.repeat(mib)}`), 431, '1 MiB ?lastEventId=');
    refused(await get('/events', `Last-Event-ID: ${'1'.repeat(mib)}\r\n`), 431, '1 MiB Last-Event-ID');
    refused(await get('/health', `Cookie: ssepp_session=${'c'.repeat(mib)}\r\n`), 431, '1 MiB cookie');
    refusedOrReset(await get('/events', `Last-Event-ID: ${'1'.repeat(8 * mib)}\r\n`), 431, '8 MiB Last-Event-ID');
    // A request line or header that never ends: the server stops reading and closes, long
    // before the 64 MiB the client would send.
    r = refusedOrReset(await exchange('GET /events?channel=', { endless: 'a'.repeat(64 << 10) }), 431,
                       'endless request line');
    assert.ok(r.written < 32 * mib, `the server read on: ${r.written} bytes written`);
    r = refusedOrReset(await exchange('GET /health HTTP/1.1\r\nHost: x\r\nX-Endless: ', { endless: 'h'.repeat(64 << 10) }),
                       431, 'endless header');
    assert.ok(r.written < 32 * mib, `the server read on: ${r.written} bytes written`);
    // Fifty at once.
    const many = await within(Promise.all(Array.from({ length: 50 }, (_, i) =>
      (i % 2 ? get(`/events?channel=${'m'.repeat(2 * mib)}`) : get('/events', `Last-Event-ID: ${'9'.repeat(2 * mib)}\r\n`)))),
    60000, 'fifty oversized requests');
    for (const x of many) refusedOrReset(x, 431, 'one of fifty oversized requests');
  }
  assert.ok(outcomes.answered > 0,
            `none of ${outcomes.reset} blasting clients read a 431: every one was reset without an answer`);
  const grown = rssKiB(server.pid) - rssBefore;
  console.log(`RSS grew by ${(grown / 1024).toFixed(1)} MiB over ${(ROUNDS - 1) * 166} MiB of oversized requests`);
  assert.ok(grown < 16 * 1024, `RSS grew by ${grown} KiB`);

  // The limits themselves: an 8 KiB header block passes, a larger one is refused.
  const pad = (total) => {
    const head = 'GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Pad: ';
    return `${head}${'p'.repeat(total - head.length - 4)}\r\n\r\n`;
  };
  assert.equal((await exchange(pad(8192))).status, 200, '8 KiB of request line and headers');
  refused(await exchange(pad(8192 + 1024)), 431, '9 KiB of request line and headers');
  // Last-Event-ID: 1 KiB passes (unknown id: reported, no replay), one byte more is a 400.
  const atLimit = raw({ lastEventId: '7'.repeat(1024) });
  assert.equal((await atLimit.connected).replay, 'unknown');
  atLimit.close();
  r = refused(await get('/events', `Last-Event-ID: ${'7'.repeat(1025)}\r\n`), 400, '1025-byte Last-Event-ID');
  assert.equal(r.json.error, 'invalid Last-Event-ID');
  // Bodies: 64 KiB passes, one byte more is a 413, announced or not.
  const body = (size) => {
    const pre = '{"channel":"room:big","event":"big","data":"';
    return `${pre}${'d'.repeat(size - pre.length - 2)}"}`;
  };
  const post = (b, headers = '') => exchange(`POST /publish HTTP/1.1\r\nHost: x\r\nConnection: close\r\n` +
    `Content-Type: application/json\r\n${headers}Content-Length: ${b.length}\r\n\r\n${b}`);
  assert.equal((await post(body(65536))).status, 202, 'a 64 KiB body');
  refused(await post(body(65537)), 413, 'a body of 64 KiB + 1');
  r = refused(await exchange('POST /publish HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n' +
                             'Content-Length: 1000000000\r\n\r\n'), 413, '1 GB announced with Expect');
  assert.doesNotMatch(r.raw, /100 Continue/, 'refused before the body is invited');
  // Ambiguous framing (request smuggling): refused, not guessed.
  refused(await exchange('POST /publish HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n' +
                         'Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n'), 400, 'Content-Length and chunked');
  refused(await exchange('POST /publish HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n' +
                         'Content-Length: 3\r\n\r\n{}'), 400, 'two Content-Lengths');
}

test('no session reaches another session\'s streams, whatever client ids it tries', async () => {
  const ann1 = await login(server, 'ann');
  const ann2 = await login(server, 'ann');  // the same user, another session (another tab's login)
  const mal = await login(server, 'mal');
  const victim = raw({ token: ann1, channels: ['room:v'] });
  const hello = await victim.connected;
  const id = hello.client;
  const bystander = raw({ channels: ['room:v'] });
  await bystander.connected;
  const mine = raw({ token: mal });
  const malId = (await mine.connected).client;

  // Another session of the same user is refused like a stranger: streams belong to sessions.
  for (const token of [ann2, mal]) {
    for (const [path, body] of [['/subscribe', { client: id, channel: 'room:spy' }],
                                ['/unsubscribe', { client: id, channel: 'room:v' }],
                                ['/disconnect', { client: id }]]) {
      const r = await api(server, path, body, { token });
      assert.equal(r.status, 404, `${path} with ${token === ann2 ? 'a second session of ann' : 'mal'}`);
    }
  }
  // The Bearer token decides, not a cookie beside it; forged and malformed tokens are nobody.
  let r = await api(server, '/subscribe', { client: id, channel: 'room:spy' },
                    { token: mal, headers: { Cookie: `ssepp_session=${ann1}` } });
  assert.equal(r.status, 404);
  for (const auth of [`Bearer ${'0'.repeat(64)}`, `Bearer ${ann1.slice(0, 63)}`, `Bearer ${ann1}x`,
                      `Bearer ${'a'.repeat(4096)}`, 'Bearer ', `bearer ${ann1}`, ann1]) {
    r = await api(server, '/subscribe', { client: id, channel: 'room:spy' }, { headers: { Authorization: auth } });
    assert.equal(r.status, 401, `Authorization: ${auth.slice(0, 20)}…`);
  }

  // Guessing: every id up to well past the newest, and odd spellings of the victim's. Each
  // answer is the same 404 as for an id that never existed: nothing tells them apart.
  const never = await api(server, '/subscribe', { client: '999999999', channel: 'room:spy' }, { token: mal });
  assert.equal(never.status, 404);
  const newest = Number(malId);
  const guesses = [...range(1, newest + 20).map(String), `0${id}`, `+${id}`, ` ${id}`, `${id}.0`, `${id}\u0000`,
                   '18446744073709551616', '-1', '0x1'];
  for (const guess of guesses) {
    if (guess === malId) continue;
    r = await api(server, '/subscribe', { client: guess, channel: 'room:spy' }, { token: mal });
    assert.ok(r.status === 404 || r.status === 400, `guess ${JSON.stringify(guess)}: ${r.status}`);
    if (r.status === 404) assert.equal(r.text, never.text, `guess ${JSON.stringify(guess)}`);
  }
  // Nothing changed: the victim is still on its channels only, and gets nothing from room:spy.
  r = await api(server, '/subscribe', { client: id, channel: 'room:v' }, { token: ann1 });
  assert.equal(r.status, 200);
  assert.deepEqual(r.json.channels, ['room:v']);
  r = await publish(server, { channel: 'room:spy', event: 'note', data: 'spied' });
  assert.equal(r.delivered, 0);
  await publish(server, { channel: 'room:v', event: 'note', data: 'marker' });
  await victim.waitFor((e) => e.type === 'note' && e.data === 'marker');
  assert.deepEqual(victim.of('note').map((e) => e.data), ['marker']);
  assert.ok(!victim.ended && victim.of('connected').length === 1, 'the victim\'s stream is untouched');
});

test('private events reach their user only: not by joining, not by subscribing, not by replay', async () => {
  const zoe = await login(server, 'zoe');
  const mal = await login(server, 'mal');
  const first = await publish(server, { channel: 'room:open', event: 'note', data: 'public 1' });
  const z = raw({ token: zoe, channels: ['user:zoe', 'room:open'] });
  await z.connected;
  await publish(server, { channel: 'user:zoe', event: 'note', data: 'zoe channel' });
  await publish(server, { user: 'zoe', event: 'note', data: 'zoe user' });
  await publish(server, { channel: 'room:open', event: 'note', data: 'public 2' });
  await z.waitFor((e) => e.data === 'public 2');

  // Joining zoe's channel: at connect, at run time, with any spelling that means the same.
  for (const channels of [['user:zoe'], ['room:open', 'user:zoe'], ['user:zoe', 'user:zoe']]) {
    for (const token of [mal, undefined]) {
      const c = raw({ token, channels, lastEventId: first.id });
      await assert.rejects(c.connected, /403/, `${channels} ${token ? 'as mal' : 'anonymous'}`);
    }
  }
  const m = raw({ token: mal, channels: ['room:open'], lastEventId: first.id });
  const hello = await m.connected;
  for (const channel of ['user:zoe', 'user:zoe ', 'user%3Azoe', 'user:zoe\n']) {
    const r = await api(server, '/subscribe', { client: hello.client, channel }, { token: mal });
    assert.ok(r.status === 403 || r.status === 400, `${JSON.stringify(channel)}: ${r.status}`);
  }
  // Resuming from before zoe's events: mal's replay holds the public ones only.
  assert.equal(hello.replay, 'found');
  await m.waitFor((e) => e.data === 'public 2');
  await publish(server, { channel: 'user:zoe', event: 'note', data: 'zoe later' });
  await publish(server, { channel: 'room:open', event: 'note', data: 'public 3' });
  await m.waitFor((e) => e.data === 'public 3');
  await z.waitFor((e) => e.data === 'public 3');
  assert.deepEqual(m.of('note').map((e) => e.data), ['public 2', 'public 3']);
  assert.deepEqual(z.of('note').map((e) => e.data), ['zoe channel', 'zoe user', 'public 2', 'zoe later', 'public 3']);
  // zoe herself resumes with her private events.
  const again = raw({ token: zoe, channels: ['user:zoe', 'room:open'], lastEventId: first.id });
  await again.connected;
  await again.waitFor((e) => e.data === 'public 3');
  assert.deepEqual(again.of('note').map((e) => e.data), ['zoe channel', 'zoe user', 'public 2', 'zoe later', 'public 3']);
});

test('an event id longer than a Last-Event-ID may be is refused: clients must be able to resume from it', async () => {
  const c = raw({ channels: ['room:ids'] });
  await c.connected;
  let r = await api(server, '/publish', { channel: 'room:ids', event: 'seq', id: 'i'.repeat(1025), data: '0' });
  assert.equal(r.status, 400, r.text);
  assert.match(r.json.error, /id/);
  await publish(server, { channel: 'room:ids', event: 'seq', id: 'i'.repeat(1024), data: '1' });
  await publish(server, { channel: 'room:ids', event: 'seq', data: '2' });
  await c.waitCount('seq', 2);
  assert.deepEqual(seqs(c), [1, 2]);
  // The client that got the longest id allowed sends it back and resumes.
  const again = raw({ channels: ['room:ids'], lastEventId: c.of('seq')[0].id });
  const hello = await again.connected;
  assert.equal(hello.replay, 'found');
  await again.waitCount('seq', 1);
  assert.deepEqual(seqs(again), [2]);
  r = await publish(server, { channel: 'room:ids', event: 'seq', data: '3' });
  await again.waitCount('seq', 2);
  assert.deepEqual(seqs(again), [2, 3]);
});
