// The example client (examples/client/sse-client, on ssepp::Client) against real servers: the
// demo server, and a peer implementation (the npm better-sse package). It must receive every
// event, and when the server is killed and restarted, reconnect after the advertised retry and
// resume from its Last-Event-ID with nothing lost and nothing twice.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { appendFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { api, publish, startServer, waitFor } from './lib/harness.mjs';

const CLIENT = process.env.SSEPP_CLIENT;
const here = path.dirname(fileURLToPath(import.meta.url));
const work = mkdtempSync(path.join(tmpdir(), 'ssepp-e2e-client-'));
const cleanup = [];
after(async () => {
  for (const f of cleanup.reverse()) await f();
  rmSync(work, { recursive: true, force: true });
});

/** Runs sse-client; `events` collects its JSON lines (events only), `stderr` its status lines. */
function runClient(url, args = []) {
  if (!CLIENT) throw new Error('set SSEPP_CLIENT to the sse-client executable');
  const child = spawn(CLIENT, [url, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const c = { events: [], retries: [], stderr: '', child };
  let buf = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (d) => {
    buf += d;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const obj = JSON.parse(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
      if ('retry' in obj) c.retries.push(obj.retry);
      else c.events.push(obj);
    }
  });
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d) => { c.stderr += d; });
  c.exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  c.stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await c.exited;
  };
  cleanup.push(c.stop);
  return c;
}

async function killHard(server) {
  process.kill(server.pid, 'SIGKILL');
  await server.exited;
}

test('against the demo server: every event of the subscribed channel, in order, once', async () => {
  const server = await startServer(['--ticker', '0', '--retry', '300']);
  cleanup.push(() => server.stop());
  const client = runClient(`${server.url}/events?channel=news`);
  await waitFor(() => client.events.some((e) => e.event === 'connected'), { what: 'the connected event' });
  assert.deepEqual(client.retries, [300]);

  const sent = [];
  for (let i = 0; i < 50; ++i) {
    const r = await publish(server, { channel: 'news', event: 'headline', data: `line ${i}\nsecond "${i}"` });
    sent.push({ event: 'headline', data: `line ${i}\nsecond "${i}"`, id: r.id });
    if (i % 10 === 0) await publish(server, { channel: 'other', data: 'not for this client' });
  }
  await waitFor(() => client.events.filter((e) => e.event === 'headline').length >= sent.length,
                { what: 'every published event' });
  const got = client.events.filter((e) => e.event !== 'connected');
  assert.deepEqual(got, sent);
});

test('against better-sse: killed and restarted, the client resumes from Last-Event-ID', async () => {
  const log = path.join(work, 'events.jsonl');
  const script = path.join(here, 'servers', 'better-sse-log.mjs');
  const start = (port) => startServer([], {
    bin: process.execPath,
    prefix: [script, '--log', log, '--retry', '400', '--host', '127.0.0.1', '--port', String(port)],
  });
  let server = await start(0);
  const { port } = server;
  const client = runClient(`${server.url}/events`);
  await waitFor(() => client.retries.length === 1, { what: 'the retry field' });
  assert.deepEqual(client.retries, [400]);

  for (let i = 1; i <= 5; ++i) await api(server, '/publish', { event: 'tick', data: `e${i}` });
  await waitFor(() => client.events.length === 5, { what: 'the first five events' });

  // The server dies; while it is away, other processes append to its log.
  await killHard(server);
  const killedAt = Date.now();
  for (let i = 6; i <= 8; ++i) appendFileSync(log, `${JSON.stringify({ id: String(i), event: 'tick', data: `e${i}` })}\n`);
  await waitFor(() => /reconnecting in \d+ ms \(Last-Event-ID: 5\)/.test(client.stderr),
                { what: 'the client to plan a reconnection' });
  server = await start(port);
  cleanup.push(() => server.stop());
  await waitFor(() => client.events.length === 8, { timeout: 15000, what: 'the replayed events' });
  const resumedAfter = Date.now() - killedAt;
  for (let i = 9; i <= 10; ++i) await api(server, '/publish', { event: 'tick', data: `e${i}` });
  await waitFor(() => client.events.length === 10, { what: 'the live events after the restart' });

  const want = Array.from({ length: 10 }, (_, k) => ({ event: 'tick', data: `e${k + 1}`, id: String(k + 1) }));
  assert.deepEqual(client.events, want, 'nothing lost, nothing twice, in order');
  // Every planned delay honours the advertised retry (jitter only ever adds to it).
  const delays = [...client.stderr.matchAll(/reconnecting in (\d+) ms/g)].map((m) => Number(m[1]));
  assert.ok(delays.length >= 1);
  for (const d of delays) assert.ok(d >= 400, `reconnection delay ${d} ms is below the retry of 400 ms`);
  assert.ok(resumedAfter >= 400, `resumed ${resumedAfter} ms after the kill`);
});

test('a non-stream response fails the client for good, as a browser does', async () => {
  const server = await startServer(['--ticker', '0']);
  cleanup.push(() => server.stop());
  const client = runClient(`${server.url}/health`);
  const { code } = await client.exited;
  assert.equal(code, 1);
  assert.match(client.stderr, /not text\/event-stream/);
});
