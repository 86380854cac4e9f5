// Two ssepp-demo nodes started with --redis on one real redis-server (free loopback port): a
// publish on either node reaches the clients of both with the same cluster-wide id, a user's
// tabs on another node get what is sent to that user, and a client that moves to the other node
// resumes with its Last-Event-ID (from Redis). Then two redis-servers as two shards, two more
// nodes each given both (`--redis` twice, same order): a publish on one reaches a client of the
// other, and /metrics shows each shard connected and the bus counters moving.
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

// A redis-server on a free loopback port, without persistence, in `dir`; resolves to
// {port, child} once it answers PING.
async function startRedis(dir) {
  const port = await freePort();
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '',
                                       '--appendonly', 'no', '--dir', dir],
                      { stdio: 'ignore' });
  await waitFor(() => ping(port), { timeout: 15000, what: 'redis-server to answer PING' });
  return { port, child };
}

before(async () => {
  redisDir = mkdtempSync(path.join(tmpdir(), 'ssepp-e2e-redis-'));
  const started = await startRedis(redisDir);
  redis = started.child;
  const { port } = started;
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

test('two shards: --redis twice on two nodes; a publish on A reaches B, per-shard metrics move', async () => {
  const dirs = [];
  const servers = [];
  const nodes = [];
  try {
    for (let i = 0; i < 2; ++i) {
      dirs.push(mkdtempSync(path.join(tmpdir(), `ssepp-e2e-shard${i}-`)));
      servers.push(await startRedis(dirs[i]));
    }
    const shardArgs = servers.flatMap((r) => ['--redis', `127.0.0.1:${r.port}`]);
    for (let i = 0; i < 2; ++i) nodes.push(await startServer(['--ticker', '0', '--retry', '300', ...shardArgs]));
    const [na, nb] = nodes;
    const connected = (m, i) => m[`ssepp_redis_shard_connected{shard="${i}",endpoint="127.0.0.1:${servers[i].port}"}`];
    for (const node of nodes) {
      await waitFor(async () => {
        const m = await metrics(node);
        return m.ssepp_redis_connected === 1 && connected(m, 0) === 1 && connected(m, 1) === 1;
      }, { timeout: 15000, what: 'the node to reach both shards' });
      const m = await metrics(node);
      assert.equal(m.ssepp_redis_shards, 2);
      assert.equal(m.ssepp_redis_shards_connected, 2);
    }

    // Channels spread over both shards (these names hash to both: the per-shard counts say so).
    const channels = ['s:a', 's:b', 's:c', 's:d', 's:e', 's:f', 's:g', 's:h'];
    const onB = raw(nb, { channels });
    const idle = raw(na, { channels: ['s:quiet'] });  // node A's only client: none of these
    await onB.connected;
    await idle.connected;
    const before = { a: await metrics(na), b: await metrics(nb) };
    const ids = [];
    for (let i = 0; i < channels.length; ++i) {
      const sent = await publish(na, { channel: channels[i], event: 'seq', data: String(i) });
      assert.match(sent.id, /^\d+\.\d+$/);  // two shards: a position per shard
      ids.push(sent.id);
    }
    await onB.waitCount('seq', channels.length);
    assert.deepEqual(seqs(onB).sort((x, y) => x - y), [0, 1, 2, 3, 4, 5, 6, 7]);
    for (const e of onB.of('seq')) assert.match(e.id, /^\d+\.\d+$/);
    assert.equal(idle.of('seq').length, 0);

    const after = { a: await metrics(na), b: await metrics(nb) };
    const delta = (node, name) => after[node][name] - (before[node][name] ?? 0);
    const shardDelta = (node, name, i) => {
      const key = `${name}{shard="${i}",endpoint="127.0.0.1:${servers[i].port}"}`;
      return after[node][key] - (before[node][key] ?? 0);
    };
    assert.equal(delta('a', 'ssepp_bus_published_total'), channels.length);
    assert.equal(delta('b', 'ssepp_bus_published_total'), 0);
    assert.equal(delta('b', 'ssepp_bus_received_total'), channels.length);
    assert.equal(delta('a', 'ssepp_bus_received_total'), 0);  // its client wants none of them
    const appended = [0, 1].map((i) => shardDelta('a', 'ssepp_redis_shard_appended_total', i));
    const received = [0, 1].map((i) => shardDelta('b', 'ssepp_redis_shard_received_total', i));
    assert.equal(appended[0] + appended[1], channels.length);
    assert.ok(appended[0] > 0 && appended[1] > 0, `both shards take appends: ${appended}`);
    assert.deepEqual(received, appended);  // node B read each entry once, from its shard
  } finally {
    for (const node of nodes) {
      const { code, signal, stderr } = await node.stop();
      assert.equal(signal, null, stderr);
      assert.equal(code, 0, `ssepp-demo exited with ${code}:\n${stderr}`);
    }
    for (const r of servers) r.child.kill('SIGTERM');
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }
});
