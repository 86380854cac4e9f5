// Latency measurement against the demo that measures the server, not Node's garbage collector.
// With the readers in the test's main thread, their stamps waited on its collections (the
// publisher's 48 KiB bodies, every other client's events kept whole): a 10-15 ms pause there
// showed as a 20-50 ms latency, and the p99 of a run was set by a dozen such pauses. So the readers
// run in a worker thread whose heap holds numbers only, and the publisher builds its bodies from
// Buffers over one kept-alive connection: both threads allocate little, and pause rarely.
//
// Events carry `data: {"n":…,"t":…}`, t being `now()` (ms on the monotonic clock, which all
// threads and processes of the machine share) when the event was due.
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import http from 'node:http';
import { createParser } from 'eventsource-parser';
import { waitFor } from './harness.mjs';

/** Milliseconds on the monotonic clock: comparable across threads. */
export const now = () => Number(process.hrtime.bigint()) / 1e6;

/**
 * POSTs to the demo's /publish over one kept-alive connection; `post` takes the body as a string
 * or a Buffer (see `bufferBody`) and resolves once the server has answered 202.
 */
export function lightPublisher(server) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const post = (body) => new Promise((resolve, reject) => {
    const req = http.request(server.url + '/publish', {
      method: 'POST', agent,
      headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => { text += chunk; });
      res.on('end', () => {
        if (res.statusCode === 202) resolve();
        else reject(new Error(`publish: ${res.statusCode} ${text}`));
      });
    });
    req.on('error', reject);
    req.end(body);
  });
  return { post, close: () => agent.destroy() };
}

/**
 * A /publish body {channel, event, data: '{"n":N,"pad":"…"}'} built as a Buffer from parts made
 * once: `bufferBody(channel, event, pad)(n)`. The pad must need no JSON escaping.
 */
export function bufferBody(channel, event, pad) {
  const head = Buffer.from(JSON.stringify({ channel, event, data: '{"n":' }).slice(0, -2));
  const tail = Buffer.from(JSON.stringify(`,"pad":"${pad}"}`).slice(1) + '}');
  return (n) => Buffer.concat([head, Buffer.from(String(n)), tail]);
}

/**
 * Opens `count` streams on each of `streams` (the demo's /events?channel=…, one server or
 * several; an entry is a URL or {url, headers}) in one worker thread, so that a pause there delays
 * every group alike; resolves once every stream has its connected event.
 *
 * `collect(first, last)` waits until every reader has received `last` events of type `type` (or
 * has ended) and resolves, per entry of `streams`, to the latencies (ms, sorted) of the events
 * numbered first..last it still holds, the worst latency of each (`worst[n - first]`), and per
 * reader: how many events it received, whether they were 1, 2, 3… in order, how many connected
 * events it got and whether its stream ended. `drain()` resolves to the same for every event held
 * and drops them (the counts stay): a long run takes its figures a window at a time.
 * `closeGroup(i)` closes the readers of `streams[i]` (before their server goes away).
 */
export async function startTimedReaders(streams, { count = 1, type = 'seq' } = {}) {
  const specs = streams.map((s) => (typeof s === 'string' ? { url: s } : s));
  const worker = new Worker(new URL(import.meta.url), { workerData: { timedReaders: { specs, count, type } } });
  const pending = new Map();
  let nextId = 0;
  let failure;
  const fail = (err) => {
    failure = err;
    for (const { reject } of pending.values()) reject(err);
    pending.clear();
  };
  worker.on('error', fail);
  worker.on('exit', (code) => fail(new Error(`the timed readers' worker exited (${code})`)));
  worker.on('message', (m) => {
    const p = pending.get(m.id);
    if (!p) return;
    pending.delete(m.id);
    if (m.error) p.reject(new Error(m.error));
    else p.resolve(m.result);
  });
  const call = (cmd, args = {}) => new Promise((resolve, reject) => {
    if (failure) return reject(failure);
    const id = nextId++;
    pending.set(id, { resolve, reject });
    worker.postMessage({ id, cmd, ...args });
  });
  await call('connect');
  return {
    collect: (first, last, { timeout = 30000 } = {}) => call('collect', { first, last, timeout }),
    drain: () => call('drain'),
    closeGroup: (group) => call('close', { group }),
    close: async () => {
      worker.removeAllListeners('exit');
      await worker.terminate();
    },
  };
}

function openTimedReader({ url, headers }, type) {
  const r = {
    seq: [], latency: [],  // the events held: their numbers and latencies
    count: 0, inOrder: true, connected: 0, ended: false, closed: false, error: undefined, at: 0,
  };
  const parser = createParser({
    onEvent(ev) {
      if (ev.event === 'connected') {
        ++r.connected;
      } else if (ev.event === type) {
        const { n, t } = JSON.parse(ev.data);
        if (n !== ++r.count) r.inOrder = false;
        r.seq.push(n);
        r.latency.push(r.at - t);
      }
    },
  });
  const req = http.request(url, { headers: { Accept: 'text/event-stream', ...headers }, agent: false });
  req.on('response', (res) => {
    if (res.statusCode !== 200) r.error = `stream answered ${res.statusCode}`;
    res.setEncoding('utf8');
    res.on('data', (chunk) => {
      r.at = now();  // before parsing: the stamp is the chunk's arrival
      parser.feed(chunk);
    });
    res.on('close', () => { r.ended = true; });
    res.on('error', (err) => { if (!r.closed) r.error = err.message; r.ended = true; });
  });
  req.on('error', (err) => { if (!r.closed) r.error = err.message; r.ended = true; });
  req.end();
  r.close = () => {
    r.closed = r.ended = true;
    req.destroy();
  };
  return r;
}

/** What collect() reports of one group of readers. */
function harvest(readers, first, last) {
  const latency = [];
  const worst = new Array(last - first + 1).fill(0);
  for (const r of readers) {
    for (let k = 0; k < r.seq.length; ++k) {
      const n = r.seq[k];
      if (n >= first && n <= last) {
        latency.push(r.latency[k]);
        worst[n - first] = Math.max(worst[n - first], r.latency[k]);
      }
    }
  }
  latency.sort((a, b) => a - b);
  return {
    latency,
    worst,
    readers: readers.map(({ count, inOrder, connected, ended }) => ({ count, inOrder, connected, ended })),
  };
}

function runWorker({ specs, count, type }) {
  const groups = specs.map((spec) => Array.from({ length: count }, () => openTimedReader(spec, type)));
  const all = groups.flat();

  // Until `pred` holds or a stream fails (its error, at once), or `timeout` passes.
  const until = async (pred, timeout, what) => {
    await waitFor(() => all.some((r) => r.error) || pred(), { timeout, what });
    const bad = all.find((r) => r.error);
    if (bad) throw new Error(bad.error);
  };

  const commands = {
    connect: async () => {
      await until(() => all.every((r) => r.connected > 0), 10000, `${all.length} streams to connect`);
    },
    collect: async ({ first, last, timeout }) => {
      await until(() => all.every((r) => r.count >= last || r.ended), timeout,
                  `${all.length} readers to get ${type} event ${last}`);
      return groups.map((readers) => harvest(readers, first, last));
    },
    drain: async () => {
      let first = Infinity, last = 0;
      for (const r of all) {
        for (const n of r.seq) {
          first = Math.min(first, n);
          last = Math.max(last, n);
        }
      }
      if (last === 0) first = 1;  // nothing held
      const result = groups.map((readers) => harvest(readers, first, last));
      for (const r of all) r.seq.length = r.latency.length = 0;
      return result;
    },
    close: async ({ group }) => {
      for (const r of groups[group]) r.close();
    },
  };
  parentPort.on('message', async ({ id, cmd, ...args }) => {
    try {
      parentPort.postMessage({ id, result: await commands[cmd](args) });
    } catch (err) {
      parentPort.postMessage({ id, error: err.message });
    }
  });
}

if (!isMainThread && workerData?.timedReaders) runWorker(workerData.timedReaders);
