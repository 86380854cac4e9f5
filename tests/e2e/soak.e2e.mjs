// Soak against ssepp-demo, bounded for the test suite (scripts/soak runs it for minutes): slow
// consumers are cut by their queue bound and resume from their Last-Event-ID with exactly what
// they missed, without slowing the others down.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  metrics, openRaw, openStalled, publish, startServer, waitFor,
} from './lib/harness.mjs';

const servers = [];
const clients = [];

async function start(args) {
  const s = await startServer(args);
  servers.push(s);
  return s;
}

function track(c) {
  clients.push(c);
  return c;
}

after(async () => {
  for (const c of clients) c.close();
  for (const s of servers) {
    const { code, signal, stderr } = await s.stop();
    assert.equal(signal, null, stderr);
    assert.equal(code, 0, `ssepp-demo exited with ${code}:\n${stderr}`);
  }
});

const seqs = (c, type = 'seq') => c.of(type).map((e) => JSON.parse(e.data).n);
const range = (from, to) => Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i);

test('a stream cut by its queue bound resumes from its Last-Event-ID with exactly what it missed', async () => {
  const server = await start(['--ticker', '0', '--threads', '2', '--history', '4096',
                              '--queue-bytes', String(64 << 10), '--queue-frames', '64']);
  const reader = track(openRaw(server, { channels: ['room:cut'] }));
  await reader.connected;
  const stuck = track(openStalled(server, { channels: ['room:cut'] }));
  await waitFor(async () => (await metrics(server)).ssepp_clients === 2, { what: 'both streams' });

  // 8 KiB events until the stuck stream is cut: first the kernel's socket buffers fill (a few
  // MiB on loopback), then its 64 KiB queue.
  const pad = 'p'.repeat(8 << 10);
  let n = 0;
  for (;;) {
    ++n;
    await publish(server, { channel: 'room:cut', event: 'seq', data: JSON.stringify({ n, pad }) });
    if (n % 20 === 0 && (await metrics(server)).ssepp_demo_streams_cut_total >= 1) break;
    assert.ok(n < 5000, `the stuck stream was not cut after ${n} events of 8 KiB`);
  }
  const cutAt = n;
  for (let i = 0; i < 10; ++i) {  // missed too, while it is away
    ++n;
    await publish(server, { channel: 'room:cut', event: 'seq', data: JSON.stringify({ n, pad }) });
  }
  const m = await metrics(server);
  assert.equal(m.ssepp_clients, 1, 'only the reader remains registered');
  await reader.waitCount('seq', n, { timeout: 20000 });
  assert.deepEqual(seqs(reader), range(1, n));

  // The stuck client reads what reached it before the cut, then reconnects from there.
  stuck.resume();
  await waitFor(() => stuck.ended, { timeout: 20000, what: 'the cut stream to end' });
  const before = seqs(stuck);
  assert.deepEqual(before, range(1, before.length), 'what arrived before the cut is a prefix');
  assert.ok(before.length < cutAt, `it got ${before.length} of ${cutAt} before the cut`);
  const again = track(openRaw(server, { channels: ['room:cut'], lastEventId: stuck.lastId() }));
  const hello = await again.connected;
  assert.equal(hello.replay, 'found');
  assert.equal(hello.replayed, n - before.length);
  await again.waitCount('seq', n - before.length, { timeout: 20000 });
  assert.deepEqual([...before, ...seqs(again)], range(1, n), 'nothing lost, nothing twice');
  console.log(`cut after ${cutAt} events of 8 KiB; ${before.length} had reached it, ` +
              `${hello.replayed} replayed on reconnect`);
});
