#!/usr/bin/env node
// Long soak against ssepp-demo ($SSEPP_DEMO), for manual runs: `scripts/soak MINUTES` builds the
// server and runs this. For MINUTES at once: readers whose latency is measured on a fixed publish
// schedule, thousands of streams opened, subscribed and dropped abruptly, and slow consumers that
// stop reading until their queue bound cuts them, then resume from their Last-Event-ID. A line of
// figures every 10 s. Fails (exit status 1) when a reader or a resumed slow consumer misses an
// event or gets one twice, when stale clients remain at the end, or when RSS grew past a margin
// of its value after the warm-up.
//
//   node tests/e2e/soak-driver.mjs --minutes 10 [--readers 40] [--churn 200] [--stuck 4]
//                                  [--rss-margin 10] [--rss-floor-mib 4]
import net from 'node:net';
import { parseArgs } from 'node:util';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import {
  api, login, metrics, openRaw, openStalled, rssKiB, startServer, streamPath, waitFor,
} from './lib/harness.mjs';
import { bufferBody, lightPublisher, now, startTimedReaders } from './lib/latency.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const mib = (kib) => (kib / 1024).toFixed(1);
const seqOf = (e) => JSON.parse(e.data).n;

if (!isMainThread) {
  // The churn and the slow consumers run in a worker thread, so that what they cost the driver
  // (thousands of sockets, megabytes of drained events) does not show as readers' latency.
  await load(workerData);
} else {
  await main();
}

async function main() {

const { values: opt } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    readers: { type: 'string', default: '40' },          // steady streams whose latency is measured
    churn: { type: 'string', default: '200' },           // streams opened and dropped per second
    stuck: { type: 'string', default: '4' },             // slow consumers at a time
    'rss-margin': { type: 'string', default: '10' },     // % of the warmed-up RSS
    'rss-floor-mib': { type: 'string', default: '4' },   // ...or this many MiB, whichever is more
  },
});
const MINUTES = Number(opt.minutes);
const READERS = Number(opt.readers);
const CHURN = Number(opt.churn);
const STUCK = Number(opt.stuck);
const USERS = 50;
const BULK_EVERY = 4;
if (!(MINUTES > 0) || !(READERS > 0) || !(CHURN >= 0) || !(STUCK >= 0)) {
  console.error('usage: soak-driver.mjs --minutes N [--readers N] [--churn N] [--stuck N]');
  process.exit(2);
}

const failures = [];
function fail(message) {
  failures.push(message);
  console.error(`FAIL: ${message}`);
}

const HISTORY = 4096;
const server = await startServer(['--ticker', '1000', '--threads', '2', '--history', String(HISTORY),
                                  '--queue-bytes', String(64 << 10), '--queue-frames', '64']);
console.log(`ssepp-demo pid ${server.pid} on ${server.url}, ${MINUTES} min: ${READERS} readers, ` +
            `${CHURN} streams/s churned, ${STUCK} slow consumers at a time`);
const tokens = [];
for (let u = 0; u < USERS; ++u) tokens.push(await login(server, `soak${u}`));
let running = true;
const deadline = Date.now() + MINUTES * 60000;

// --- Readers: in a worker thread that keeps numbers only (lib/latency.mjs), so that their stamps
// do not wait on this thread's garbage collections. Half of them log in and get their user's
// traffic too. Their figures are taken and checked every 10 s. --------------------------------
const readers = await startTimedReaders(Array.from({ length: READERS }, (_, i) => {
  const user = i % 2 ? `soak${i % USERS}` : undefined;
  return {
    url: server.url + streamPath({ channels: ['room:lat', ...(user ? [`user:${user}`] : [])] }),
    headers: user ? { Authorization: `Bearer ${tokens[i % USERS]}` } : {},
  };
}));
const steady = await metrics(server);  // what the readers alone hold

/** Checks the readers (every number once, in order; none cut) and returns the latencies (sorted)
 *  of the events that arrived since the last call. */
async function harvest() {
  const groups = await readers.drain();
  checkReaders(groups);
  return groups.flatMap((g) => g.latency).sort((a, b) => a - b);
}
let readersFailed = false;
function checkReaders(groups) {
  if (readersFailed) return;  // once is enough
  for (const { readers: [r] } of groups) {
    if (!r.inOrder) fail('a reader got an event twice, or missed one');
    if (r.ended) fail('a reader\'s stream ended');
    readersFailed ||= !r.inOrder || r.ended;
  }
}

// --- Publisher: room:lat on a fixed schedule (40% of what the machine sustains), room:bulk for
// the slow consumers, and traffic to the churning clients' channels and users. --------------------
// Over one kept-alive connection, the 48 KiB bodies built from Buffers: this thread allocates
// little, so its collections rarely make an event late.
let n = 0;
let bulk = 0;
const pub = lightPublisher(server);
const bulkBody = bufferBody('room:bulk', 'bulk', 'b'.repeat(48 << 10));
const churnBodies = Array.from({ length: 50 }, (_, k) =>
  JSON.stringify({ channel: `room:churn-${k}`, event: 'x', data: 'y'.repeat(200) }));
const userBodies = Array.from({ length: USERS }, (_, u) =>
  JSON.stringify({ user: `soak${u}`, event: 'x', data: 'z'.repeat(200) }));
async function send(due) {
  ++n;
  await pub.post(JSON.stringify({ channel: 'room:lat', event: 'seq', data: JSON.stringify({ n, t: due ?? now() }) }));
  if (n % BULK_EVERY === 0) await pub.post(bulkBody(++bulk));
  if (n % 2 === 0) {
    await pub.post(churnBodies[n % 50]);
    await pub.post(userBodies[n % USERS]);
  }
}
const t0 = now();
for (let i = 0; i < 200; ++i) await send();
const interval = Math.max(1, (2.5 * (now() - t0)) / 200);
await harvest();
console.log(`publishing every ${interval.toFixed(2)} ms`);
const publisher = (async () => {
  const start = now();
  for (let i = 0; running; ++i) {
    const due = start + i * interval;
    if (due > now()) await sleep(due - now());
    await send(due);
  }
})();

// --- Churn and slow consumers, in a worker thread (see load() below). ------------------------
const shared = new Int32Array(new SharedArrayBuffer(8));  // [0]: running, [1]: n
Atomics.store(shared, 0, 1);
const worker = new Worker(new URL(import.meta.url), {
  workerData: { url: server.url, port: server.port, tokens, churn: CHURN, stuck: STUCK, users: USERS, shared },
});
const loadStats = { churned: 0, slow: { cycles: 0, cut: 0, recut: 0, replayed: [], reached: [] } };
worker.on('message', (m) => {
  if (m.fail) fail(m.fail);
  if (m.stats) Object.assign(loadStats, m.stats);
});
worker.on('error', (err) => fail(`load worker: ${err.stack}`));
const workerDone = new Promise((resolve) => worker.on('exit', resolve));
const publishing = setInterval(() => Atomics.store(shared, 1, n), 50);

// --- Report every 10 s. The warm-up ends once the history is full and a fifth of the run (at
// most a minute) has passed: RSS is compared with its value then. ---------------------------------
const warmAt = Date.now() + Math.min(60000, MINUTES * 60000 * 0.2);
let warmRss;
let last = await metrics(server);
let lastAt = Date.now();
const startedAt = Date.now();
const p = (sorted, q) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))] : NaN);
let worstP99 = 0;
while (Date.now() < deadline) {
  await sleep(Math.min(10000, Math.max(0, deadline - Date.now())));
  const m = await metrics(server);
  const now = Date.now();
  const secs = (now - lastAt) / 1000;
  const lat = await harvest();
  const rss = rssKiB(server.pid);
  if (!warmRss && now >= warmAt && m.ssepp_history_events >= HISTORY) {
    warmRss = rss;
    console.log(`warmed up: RSS ${mib(rss)} MiB`);
  }
  worstP99 = Math.max(worstP99, p(lat, 0.99));
  console.log(`[${String(Math.round((now - startedAt) / 1000)).padStart(5)} s] RSS ${mib(rss)} MiB | ` +
              `clients ${m.ssepp_clients} | streams ${m.ssepp_demo_streams_open} | ` +
              `deliveries ${Math.round((m.ssepp_frames_total - last.ssepp_frames_total) / secs)}/s | ` +
              `sends ${Math.round((m.ssepp_sends_total - last.ssepp_sends_total) / secs)}/s | ` +
              `p50 ${p(lat, 0.5).toFixed(1)} ms p99 ${p(lat, 0.99).toFixed(1)} ms | ` +
              `churned ${loadStats.churned} | cut ${m.ssepp_demo_streams_cut_total} | replays ${m.ssepp_replays_total}`);
  last = m;
  lastAt = now;
}

// --- Wind down: everything but the readers goes; the server must be back to them alone. -------
running = false;
Atomics.store(shared, 0, 0);
await publisher;
Atomics.store(shared, 1, n);
clearInterval(publishing);
await workerDone;
try {
  const groups = await readers.collect(n, n, { timeout: 30000 });
  checkReaders(groups);
  if (groups.some(({ readers: [r] }) => r.count !== n)) fail(`a reader did not get all ${n} events`);
} catch (err) {
  fail(err.message);
}
const steadyNow = (m) => m.ssepp_clients === READERS && m.ssepp_demo_streams_open === READERS &&
  m.ssepp_channels === steady.ssepp_channels && m.ssepp_pools === steady.ssepp_pools;
let end = await waitFor(async () => { const m = await metrics(server); return steadyNow(m) && m; },
                        { timeout: 30000, what: 'only the readers to remain' }).catch(() => undefined);
if (!end) {
  end = await metrics(server);
  fail(`stale: ${end.ssepp_clients} clients, ${end.ssepp_demo_streams_open} streams, ` +
       `${end.ssepp_channels} channels, ${end.ssepp_pools} pools; the ${READERS} readers alone hold ` +
       `${steady.ssepp_clients}, ${steady.ssepp_demo_streams_open}, ${steady.ssepp_channels}, ${steady.ssepp_pools}`);
}
const endRss = rssKiB(server.pid);
if (!warmRss) {
  fail('the run was too short to warm up (the history never filled)');
  warmRss = endRss;
}
const margin = Math.max((warmRss * Number(opt['rss-margin'])) / 100, Number(opt['rss-floor-mib']) * 1024);
const { churned, slow } = loadStats;
const range = (xs, unit = '') => (xs.length ? `${Math.min(...xs)}-${Math.max(...xs)}${unit}` : 'none');
console.log(`\n${MINUTES} min: ${churned} streams churned; ${slow.cycles} slow-consumer rounds, ${slow.cut} cut ` +
            `with ${range(slow.reached.map((b) => (b / 1048576).toFixed(1)), ' MiB')} in their socket buffers, ` +
            `replayed ${range(slow.replayed)} events each on reconnect (${slow.recut} cut again while ` +
            `reading their replay); ${n} events to ${READERS} readers, ` +
            `worst 10 s p99 ${worstP99.toFixed(1)} ms`);
console.log(`stale clients ${end.ssepp_clients - steady.ssepp_clients}; RSS after warm-up ${mib(warmRss)} MiB, ` +
            `at the end ${mib(endRss)} MiB (margin ${mib(margin)} MiB)`);
if (endRss - warmRss > margin) fail(`RSS grew by ${mib(endRss - warmRss)} MiB`);
await readers.close();
pub.close();
const { code, signal, stderr } = await server.stop();
if (code !== 0) fail(`ssepp-demo exited with ${code ?? signal}:\n${stderr.slice(-2000)}`);
console.log(failures.length ? `soak: FAILED (${failures.length})` : 'soak: passed');
process.exit(failures.length ? 1 : 0);
}

/** The worker thread: churn and slow consumers until shared[0] drops to 0. */
async function load({ url, port, tokens, churn: CHURN, stuck: STUCK, users: USERS, shared }) {
  const server = { url, port };
  const running = () => Atomics.load(shared, 0) === 1;
  const fail = (message) => parentPort.postMessage({ fail: message });
  let churned = 0;
  const slow = { cycles: 0, cut: 0, recut: 0, replayed: [], reached: [] };
  const report = () => parentPort.postMessage({ stats: { churned, slow } });
  const reporting = setInterval(report, 1000);

  // Churn: batches of streams opened (channels at connect, or POST /subscribe), then dropped.
  function rawStream(target, token) {
    return new Promise((resolve) => {
      const sock = net.connect(port, '127.0.0.1');
      let seen = '';
      sock.on('error', () => {});
      sock.on('data', (d) => {
        if (seen === null) return;
        seen += d.toString('latin1');
        const m = /event: connected\r?\ndata: \{"client":"(\d+)"/.exec(seen);
        if (m) { seen = null; resolve({ sock, id: m[1] }); }
      });
      sock.on('close', () => resolve({ sock, id: null }));
      sock.on('connect', () => sock.write(`GET ${target} HTTP/1.1\r\nHost: x\r\n` +
        (token ? `Authorization: Bearer ${token}\r\n` : '') + '\r\n'));
    });
  }
  function vanish(sock, i) {
    if (i % 3 === 0) sock.resetAndDestroy();
    else if (i % 3 === 1) sock.destroy();
    else sock.end();
  }
  const churner = (async () => {
    if (CHURN <= 0) return;
    const BATCH = 100;
    for (let b = 0; running(); ++b) {
      const started = Date.now();
      const opening = [];
      for (let k = 0; k < BATCH; ++k) {
        const i = b * BATCH + k;
        const u = i % USERS;
        if (i % 4 === 0) opening.push(rawStream(`/events?channel=room:lat&channel=room:churn-${i % 50}`));
        else if (i % 4 === 1) opening.push(rawStream(`/events?channel=user:soak${u}`, tokens[u]));
        else {
          opening.push(rawStream('/events', tokens[u]).then(async (s) => {
            if (!s.id) return s;
            for (const channel of [`room:churn-${i % 50}`, `user:soak${u}`]) {
              const r = await api(server, '/subscribe', { client: s.id, channel }, { token: tokens[u] });
              if (r.status !== 200) fail(`POST /subscribe: ${r.status} ${r.text}`);
            }
            return s;
          }));
        }
      }
      const opened = await Promise.all(opening);
      if (opened.some((s) => !s.id)) fail('a churned stream did not start');
      await sleep(200);
      opened.forEach((s, i) => vanish(s.sock, i));
      for (let k = 0; k < 10; ++k) {  // and some that never finish their request
        const s = net.connect(port, '127.0.0.1');
        s.on('error', () => {});
        s.on('connect', () => { s.write('GET /events?channel=room:lat HTTP/1.1\r\nHo'); vanish(s, k); });
      }
      churned += BATCH;
      const pause = (BATCH / CHURN) * 1000 - (Date.now() - started);
      if (pause > 0) await sleep(pause);
    }
  })().catch((err) => fail(`churn: ${err.stack}`));

  // Slow consumers: stall until cut, read what reached them, resume from their Last-Event-ID,
  // read on for a while, check that nothing was lost or doubled, close; again.
  const slowLoop = (async () => {
    if (STUCK <= 0) return;
    while (running()) {
      const cutBase = (await metrics(server)).ssepp_demo_streams_cut_total;
      const conns = Array.from({ length: STUCK }, () => [openStalled(server, { channels: ['room:lat', 'room:bulk'] })]);
      const cut = await waitFor(async () => !running() ||
                                  (await metrics(server)).ssepp_demo_streams_cut_total >= cutBase + STUCK,
                                { timeout: 180000, what: 'the slow consumers to be cut' })
        .then(() => running(), (err) => fail(err.message));
      if (!cut) {
        for (const c of conns) c[0].close();
        break;
      }
      slow.cut += STUCK;
      for (const c of conns) c[0].resume();
      for (const c of conns) {
        const first = c[0];
        await waitFor(() => first.ended, { timeout: 30000, what: 'a cut stream to end' });
        slow.reached.push(first.bytes);
        c.push(openRaw(server, { channels: ['room:lat', 'room:bulk'], lastEventId: first.lastId() }));
      }
      for (const c of conns) {
        const hello = await c[1].connected;
        if (hello.replay !== 'found') fail(`a slow consumer resumed with replay ${hello.replay}`);
        slow.replayed.push(hello.replayed);
      }
      // Read on for a while, then check: across its connections, every number once, in order.
      // Like an EventSource, a consumer cut again reconnects from its last id: a replay of
      // megabytes can outlast a 64-frame queue while events keep coming.
      await sleep(3000);
      const upTo = Atomics.load(shared, 1) - 1;
      for (const c of conns) {
        const got = () => c.flatMap((x) => x.of('seq')).map(seqOf);
        await waitFor(() => {
          const last = c.at(-1);
          if (last.ended) {
            slow.recut += 1;
            c.push(openRaw(server, { channels: ['room:lat', 'room:bulk'], lastEventId: last.lastId() }));
          }
          return got().at(-1) >= upTo;
        }, { timeout: 30000, what: 'a resumed slow consumer to catch up' }).catch((err) => fail(err.message));
        const seqs = got();
        const k = seqs.findIndex((x, i) => x !== seqs[0] + i);
        if (k >= 0) fail(`a slow consumer got event ${seqs[k]} where ${seqs[0] + k} was due`);
        for (const x of c) x.close();
      }
      slow.cycles += 1;
    }
  })().catch((err) => fail(`slow consumers: ${err.stack}`));

  await Promise.all([churner, slowLoop]);
  clearInterval(reporting);
  report();
}
