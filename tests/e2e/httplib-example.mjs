// Smoke test of examples/httplib (ssepp on cpp-httplib, thread per connection): a broadcast and a
// channel event reach real clients, an invalid event is refused, and a reconnection with
// Last-Event-ID replays what was missed. Registered by examples/httplib/CMakeLists.txt.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { api, openEventSource, openRaw, publish, startServer, waitFor } from './lib/harness.mjs';

let server;
let held;  // a stream still open when the server is told to stop
before(async () => {
  server = await startServer([], { bin: process.env.SSEPP_HTTPLIB_EXAMPLE, prefix: ['--port', '0'] });
});
after(async () => {
  // SIGTERM: it ends its streams and exits 0 (and, under ASan, finds no leak on the way out).
  const { code, signal, stderr } = await server.stop();
  assert.equal(signal, null, stderr);
  assert.equal(code, 0, `ssepp-httplib-example exited with ${code}:\n${stderr}`);
  assert.ok(held.ended, 'the open stream was ended by the shutdown');
});

test('events, targeting, refusal and replay on cpp-httplib', async () => {
  const es = await openEventSource(server, { channels: ['news'], types: ['note'] });
  const other = openRaw(server, { channels: ['sport'] });
  await waitFor(() => other.status === 200, { what: 'the raw stream' });
  await waitFor(async () => (await publish(server, { event: 'note', data: 'probe' })).delivered >= 2,
                { what: 'both streams registered' });
  await es.waitFor((e) => e.type === 'note' && e.data === 'probe');

  const r = await publish(server, { channel: 'news', event: 'note', data: 'hello news' });
  assert.equal(r.delivered, 1);
  await es.waitFor((e) => e.data === 'hello news');
  const bad = await api(server, '/publish', { event: 'bad\nname', data: 'x' });
  assert.equal(bad.status, 400);
  assert.equal(typeof bad.json.error, 'string');

  await other.waitCount('note', 1);
  const last = other.lastId();
  other.kill();
  for (const d of ['s1', 's2', 's3']) await publish(server, { channel: 'sport', event: 'note', data: d });
  const again = openRaw(server, { channels: ['sport'], lastEventId: last });
  await again.waitCount('note', 3);
  assert.deepEqual(again.of('note').map((e) => e.data), ['s1', 's2', 's3']);
  assert.equal(again.retry, 2000);
  again.close();
  // A news marker after the sport events: once the news stream has it, it has everything sent
  // to it before (in order), so a misrouted sport event would be here by now.
  await publish(server, { channel: 'news', event: 'note', data: 'news marker' });
  await es.waitFor((e) => e.type === 'note' && e.data === 'news marker');
  es.close();
  // (The probe above may have been published more than once: it is polled for.)
  assert.deepEqual(es.of('note').map((e) => e.data).filter((d) => d !== 'probe'), ['hello news', 'news marker']);

  held = openRaw(server, { channels: ['news'] });
  await waitFor(() => held.status === 200, { what: 'a stream to hold open until shutdown' });
});
