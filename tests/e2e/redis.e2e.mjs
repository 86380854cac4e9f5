// Two ssepp-demo nodes started with --redis on one real redis-server (free loopback port): a
// publish on either node reaches the clients of both with the same cluster-wide id, a user's
// tabs on another node get what is sent to that user, and a client that moves to the other node
// resumes with its Last-Event-ID (from Redis).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  login, metrics, openRaw, publish, startServer, waitFor,
} from './lib/harness.mjs';

let redis;
let redisDir;
let a;
let b;
const open = [];

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function ping(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.on('error', () => resolve(false));
    s.on('connect', () => s.write('PING\r\n'));
    s.on('data', (d) => { resolve(d.toString().startsWith('+PONG')); s.destroy(); });
  });
}

before(async () => {
  const port = await freePort();
  redisDir = mkdtempSync(path.join(tmpdir(), 'ssepp-e2e-redis-'));
  redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '',
                                 '--appendonly', 'no', '--dir', redisDir],
                { stdio: 'ignore' });
  await waitFor(() => ping(port), { timeout: 15000, what: 'redis-server to answer PING' });
  const common = ['--ticker', '0', '--retry', '300', '--redis', `127.0.0.1:${port}`];
  a = await startServer(common);
  b = await startServer([...common, '--history', '3']);  // small: older gaps come from Redis
  for (const node of [a, b]) {
    await waitFor(async () => (await metrics(node)).ssepp_redis_connected === 1,
                  { timeout: 15000, what: 'the node to reach Redis' });
  }
});

after(async () => {
  for (const c of open) c.close();
  for (const node of [a, b]) {
    if (!node) continue;
    const { code, signal, stderr } = await node.stop();
    assert.equal(signal, null, stderr);
    assert.equal(code, 0, `ssepp-demo exited with ${code}:\n${stderr}`);
  }
  redis?.kill('SIGTERM');
  if (redisDir) rmSync(redisDir, { recursive: true, force: true });
});

function raw(node, options) {
  const c = openRaw(node, options);
  open.push(c);
  return c;
}

const seqs = (c) => c.of('seq').map((e) => Number(e.data));

test('a publish on either node reaches both, with one cluster-wide id', async () => {
  const onA = raw(a, { channels: ['room:r'] });
  const onB = raw(b, { channels: ['room:r'] });
  await onA.connected;
  await onB.connected;
  const first = await publish(a, { channel: 'room:r', event: 'seq', data: '1' });
  const second = await publish(b, { channel: 'room:r', event: 'seq', data: '2' });
  assert.match(first.id, /^\d+$/);  // one shard: the shard's counter
  assert.match(second.id, /^\d+$/);
  await onA.waitCount('seq', 2);
  await onB.waitCount('seq', 2);
  assert.deepEqual(seqs(onA), [1, 2]);
  assert.deepEqual(seqs(onB), [1, 2]);
  assert.deepEqual(onA.of('seq').map((e) => e.id), [first.id, second.id]);
  assert.deepEqual(onB.of('seq').map((e) => e.id), [first.id, second.id]);
});

test('a send to a user reaches that user\'s streams on every node', async () => {
  const onA = raw(a, { token: await login(a, 'alice') });
  const onB = raw(b, { token: await login(b, 'alice') });
  const bob = raw(b, { token: await login(b, 'bob') });
  await Promise.all([onA.connected, onB.connected, bob.connected]);
  await publish(b, { user: 'alice', event: 'seq', data: '7' });
  await publish(a, { event: 'seq', data: '8' });  // everyone: a marker for bob
  await onA.waitCount('seq', 2);
  await onB.waitCount('seq', 2);
  await bob.waitCount('seq', 1);
  assert.deepEqual(seqs(onA), [7, 8]);
  assert.deepEqual(seqs(onB), [7, 8]);
  assert.deepEqual(seqs(bob), [8]);
});

test('a client moving to the other node resumes exactly where it was, even past that node\'s history', async () => {
  const first = raw(a, { channels: ['room:m'] });
  const watcher = raw(b, { channels: ['room:m'] });
  await first.connected;
  await watcher.connected;
  for (let i = 1; i <= 3; ++i) await publish(a, { channel: 'room:m', event: 'seq', data: String(i) });
  await first.waitCount('seq', 3);
  const last = first.lastId();
  first.kill();
  for (let i = 4; i <= 9; ++i) await publish(a, { channel: 'room:m', event: 'seq', data: String(i) });
  await watcher.waitCount('seq', 9);  // node B has read them all

  // Node B keeps 3 events: 4..6 are only in Redis.
  const moved = raw(b, { channels: ['room:m'], lastEventId: last });
  const hello = await moved.connected;
  assert.equal(hello.replay, 'found');
  await moved.waitCount('seq', 6);
  await publish(b, { channel: 'room:m', event: 'seq', data: '10' });
  await moved.waitCount('seq', 7);
  assert.deepEqual(seqs(moved), [4, 5, 6, 7, 8, 9, 10]);
  assert.ok((await metrics(b)).ssepp_redis_replays_total >= 1);

  // Resuming from a recent id (every resume reads Redis).
  const recent = raw(b, { channels: ['room:m'], lastEventId: moved.of('seq')[4].id });
  assert.equal((await recent.connected).replay, 'found');
  await recent.waitCount('seq', 2);
  assert.deepEqual(seqs(recent), [9, 10]);
});
