// Reconnection with Last-Event-ID against ssepp-demo: after the server cuts a stream (a WHATWG
// EventSource reconnects by itself) or the client dies (a raw client reconnects with the header or
// the lastEventId query parameter), the client gets exactly the events it missed, in order, none
// twice, then the live ones.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  api, login, openEventSource, openRaw, publish, startServer, waitFor,
} from './lib/harness.mjs';

let server;
const open = [];

before(async () => {
  server = await startServer(['--ticker', '0', '--retry', '400', '--history', '4096', '--threads', '2']);
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

const seqs = (events, type = 'seq') => events.filter((e) => e.type === type).map((e) => Number(e.data));
const range = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

async function send(channel, from, to, type = 'seq') {
  const ids = {};
  for (let i = from; i <= to; ++i) ids[i] = (await publish(server, { channel, event: type, data: String(i) })).id;
  return ids;
}

test('the server cuts the stream: EventSource reconnects with Last-Event-ID and gets exactly what it missed', async () => {
  const token = await login(server, 'ivy');
  const c = await openEventSource(server, { token, channels: ['room:r'], types: ['seq'] });
  open.push(c);
  await c.ready();
  await send('room:r', 1, 5);
  await waitFor(() => seqs(c.events).length === 5, { what: 'events 1..5' });

  const r = await api(server, '/disconnect', { client: c.id() }, { token });
  assert.equal(r.status, 200, r.text);
  await send('room:r', 6, 15);  // the client is away (it waits the 400 ms retry hint)
  const second = await c.ready(2);
  assert.equal(second.replay, 'found');
  assert.ok(second.replayed >= 1, `replayed ${second.replayed}`);
  await send('room:r', 16, 20);
  await waitFor(() => seqs(c.events).length >= 20, { what: 'events 1..20' });
  assert.deepEqual(seqs(c.events), range(1, 20));
  assert.ok(c.errors >= 1);  // the EventSource saw the cut
});

test('repeated cuts while publishing: the sequence arrives whole, in order, none twice', async () => {
  const token = await login(server, 'jack');
  const c = await openEventSource(server, { token, channels: ['room:s'], types: ['seq'] });
  open.push(c);
  await c.ready();
  let n = 0;
  let stop = false;
  const publisher = (async () => {
    while (!stop) {
      ++n;
      await publish(server, { channel: 'room:s', event: 'seq', data: String(n) });
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  for (let cut = 1; cut <= 3; ++cut) {
    await waitFor(() => seqs(c.events).length >= cut * 10, { what: `${cut * 10} events` });
    const r = await api(server, '/disconnect', { client: c.id() }, { token });
    assert.equal(r.status, 200, r.text);
    await c.ready(cut + 1);
  }
  await waitFor(() => seqs(c.events).length >= 40, { what: '40 events' });
  stop = true;
  await publisher;
  await waitFor(() => seqs(c.events).length >= n, { what: `all ${n} events` });
  assert.deepEqual(seqs(c.events), range(1, n));
  assert.equal(c.connections.length, 4);
  assert.ok(c.connections.slice(1).every((x) => x.replay === 'found'));
});

test('the client dies: a new connection with the Last-Event-ID header replays what it missed', async () => {
  const first = raw({ channels: ['room:k'] });
  await first.connected;
  const ids = await send('room:k', 1, 5);
  await first.waitCount('seq', 5);
  const last = first.lastId();
  assert.equal(last, ids[5]);
  first.kill();

  Object.assign(ids, await send('room:k', 6, 12));
  await send('room:other', 100, 101);  // not for this client: never replayed to it
  await publish(server, { user: 'ivy', event: 'seq', data: '102' });

  const again = raw({ channels: ['room:k'], lastEventId: last });
  const hello = await again.connected;
  assert.equal(hello.replay, 'found');
  assert.equal(hello.replayed, 7);
  await again.waitCount('seq', 7);
  Object.assign(ids, await send('room:k', 13, 13));
  await again.waitCount('seq', 8);
  assert.deepEqual(seqs(again.events), range(6, 13));
  assert.deepEqual(again.of('seq').map((e) => e.id), range(6, 13).map((i) => ids[i]));

  // Clients that cannot set headers pass the id in the query.
  const byQuery = raw({ channels: ['room:k'], query: `lastEventId=${encodeURIComponent(ids[10])}` });
  assert.equal((await byQuery.connected).replayed, 3);
  await byQuery.waitCount('seq', 3);
  // The header wins over the query parameter.
  const both = raw({ channels: ['room:k'], lastEventId: ids[12], query: `lastEventId=${ids[6]}` });
  assert.equal((await both.connected).replayed, 1);
  await send('room:k', 14, 14);
  await byQuery.waitCount('seq', 4);
  await both.waitCount('seq', 2);
  assert.deepEqual(seqs(byQuery.events), [11, 12, 13, 14]);
  assert.deepEqual(seqs(both.events), [13, 14]);
});

test('an unknown or too old Last-Event-ID is reported in the connected event', async () => {
  const unknown = raw({ channels: ['room:k'], lastEventId: 'no-such-id' });
  const hello = await unknown.connected;
  // Not in the history, and not a decimal id that decimal_id_order could place before it: unknown.
  assert.equal(hello.replay, 'unknown');
  assert.equal(hello.replayed, 0);
  await send('room:k', 50, 50);
  await unknown.waitCount('seq', 1);

  const small = await startServer(['--ticker', '0', '--history', '5']);
  try {
    const ids = [];
    for (let i = 1; i <= 20; ++i) ids.push((await publish(small, { event: 'seq', data: String(i) })).id);
    const old = openRaw(small, { lastEventId: ids[1] });
    const h = await old.connected;
    assert.equal(h.replay, 'too_old');
    assert.equal(h.replayed, 0);
    old.close();
    const recent = openRaw(small, { lastEventId: ids[16] });
    const h2 = await recent.connected;
    assert.equal(h2.replay, 'found');
    await recent.waitCount('seq', 3);
    assert.deepEqual(seqs(recent.events), [18, 19, 20]);
    recent.close();
  } finally {
    const { code, stderr } = await small.stop();
    assert.equal(code, 0, stderr);
  }
});

test('an invalid Last-Event-ID is refused with 400 before any stream starts', async () => {
  const long = raw({ lastEventId: 'x'.repeat(2000) });
  await assert.rejects(long.connected, /400/);
  assert.equal(JSON.parse(long.body).error, 'invalid Last-Event-ID');
  for (const q of ['lastEventId=1%0A2', 'lastEventId=1%0D2', 'lastEventId=1%002']) {
    const c = raw({ query: q });
    await assert.rejects(c.connected, /400/, q);
  }
});
