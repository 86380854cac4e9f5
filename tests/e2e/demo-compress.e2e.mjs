// The demo with --compress: its streams are gzip and nothing is held back. Chat messages carrying
// their publish time are published to the demo (POST /publish) one every 250 ms, while its price
// feed sends the subscribed symbols' prices every second, a few events at once. A stream that
// held an event back until its next write (the next message, or the next prices) would deliver
// most of them far past the limit. Headless Chromium on the demo page (its own EventSource,
// instrumented from an init script) must receive each within 100 ms of its publish and show it in
// the page's chat; the npm `eventsource` client (Node's fetch, which asks for and inflates gzip)
// likewise. Both must have been answered `Content-Encoding: gzip`, and /metrics must count
// compressed streams with fewer bytes after compression than before. A client that does not ask
// for gzip gets the same events plain.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';
import { EventSource } from 'eventsource';
import { metrics, openRaw, publish, startServer, waitFor } from './lib/harness.mjs';

const CHROMIUM = process.env.SSEPP_CHROMIUM || '/usr/bin/chromium';
const ROOM = 'room:lobby';   // every demo page joins it
const PROBES = 20;           // 5 s of messages per client
const PERIOD_MS = 250;       // well apart: an event held back until the next write shows
const LIMIT_MS = 100;        // publish to arrival
const WAIT = { timeout: 15000 };

let server;
let run = 0;                 // tells the probes of one test from another's

before(async () => {
  // The price feed every second: the subscribed symbols' prices, a few events at once.
  server = await startServer(['--compress', '--ticker', '1000']);
});

after(async () => {
  const { code, signal, stderr } = await server.stop();
  assert.equal(signal, null, stderr);
  assert.equal(code, 0, `ssepp-demo exited with ${code}:\n${stderr}`);
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Publishes PROBES chat messages to the room, one every PERIOD_MS, each carrying its sequence
 * number and its publish time (taken before the POST); resolves to the run's tag.
 */
async function publishProbes() {
  const tag = `run-${++run}`;
  const start = Date.now();
  for (let i = 0; i < PROBES; ++i) {
    const t = Date.now();
    const sent = await publish(server, {
      channel: ROOM, event: 'chat',
      data: { from: 'probe', text: `${tag} probe ${i}`, tag, seq: i, t },
    });
    assert.ok(sent.delivered >= 1, `probe ${i} reached nobody`);
    await sleep(Math.max(0, start + (i + 1) * PERIOD_MS - Date.now()));
  }
  return tag;
}

/** The probes' delays: every one, in order, none later than LIMIT_MS. */
function checkDelays(received, who) {
  assert.equal(received.length, PROBES, `${who}: ${received.length} of ${PROBES} probes`);
  received.forEach((r, i) => assert.equal(r.seq, i, `${who}: probes in order, none missing`));
  const delays = received.map((r) => r.at - r.t).sort((a, b) => a - b);
  const worst = delays.at(-1);
  console.log(`${who}: ${received.length} probes, delay median ${delays[delays.length >> 1]} ms, worst ${worst} ms`);
  const late = received.filter((r) => r.at - r.t > LIMIT_MS).map((r) => `#${r.seq} ${r.at - r.t} ms`);
  assert.ok(worst <= LIMIT_MS, `${who}: probes later than ${LIMIT_MS} ms after their publish: ${late.join(', ')}`);
}

/** The compression counters of /metrics. */
async function compression() {
  const m = await metrics(server);
  return { streams: m.ssepp_demo_streams_compressed_total,
           plain: m.ssepp_demo_uncompressed_bytes_total,
           wire: m.ssepp_demo_compressed_bytes_total };
}

function checkCompressed(before, after, who) {
  assert.ok(after.streams - before.streams >= 1, `${who}: no compressed stream counted`);
  const plain = after.plain - before.plain;
  const wire = after.wire - before.wire;
  console.log(`${who}: ${plain} bytes of events sent as ${wire} (${(plain / wire).toFixed(1)}x smaller)`);
  assert.ok(wire > 0 && wire < plain, `${who}: ${wire} compressed bytes for ${plain} plain`);
}

test('Chromium on the demo page: gzip, every message within 100 ms, and the page shows them', async () => {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 60000,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync',
           '--no-proxy-server', '--disable-renderer-backgrounding',
           '--disable-background-timer-throttling', '--disable-backgrounding-occluded-windows'],
  });
  const pageErrors = [];
  try {
    const countersBefore = await compression();
    const page = await browser.newPage();
    page.on('pageerror', (err) => pageErrors.push(String(err)));
    const encodings = [];
    page.on('response', (res) => {
      if (new URL(res.url()).pathname === '/events')
        encodings.push(res.headers()['content-encoding'] ?? null);
    });
    // Every EventSource the page opens records the arrival time of each probe, in the listener
    // the browser calls as soon as the event is parsed.
    await page.addInitScript(() => {
      window.probes = [];
      const Native = window.EventSource;
      window.EventSource = class extends Native {
        constructor(...args) {
          super(...args);
          this.addEventListener('chat', (e) => {
            const at = Date.now();
            try {
              const d = JSON.parse(e.data);
              if (d.from === 'probe') window.probes.push({ tag: d.tag, seq: d.seq, t: d.t, at });
            } catch { /* not a probe */ }
          });
        }
      };
    });
    await page.goto(server.url + '/', { waitUntil: 'domcontentloaded' });
    await page.locator('#state', { hasText: 'open' }).waitFor(WAIT);
    await page.waitForFunction(() => /^[0-9]+$/.test(document.getElementById('client').textContent), null, WAIT);
    // The price feed reaches the page's ticker table over the compressed stream.
    await page.waitForFunction(() => {
      const cell = document.querySelector('#ticker tr[data-symbol="AAPL"] td.px');
      return cell && /^\d+\.\d\d$/.test(cell.textContent);
    }, null, WAIT);

    const tag = await publishProbes();
    await page.waitForFunction(([t, n]) => window.probes.filter((p) => p.tag === t).length >= n,
                               [tag, PROBES], WAIT);
    const received = await page.evaluate((t) => window.probes.filter((p) => p.tag === t), tag);
    checkDelays(received, 'chromium');

    // The page's own chat list shows every one of them, in order.
    const shown = await page.locator('#chat li', { hasText: `${tag} probe ` }).allInnerTexts();
    assert.equal(shown.length, PROBES);
    shown.forEach((text, i) => assert.ok(text.trim().endsWith(`${tag} probe ${i}`), text));
    assert.match(await page.locator('#log').innerText(), new RegExp(`${tag} probe ${PROBES - 1}`));

    assert.ok(encodings.length >= 1, 'the page opened no stream');
    assert.deepEqual(encodings, encodings.map(() => 'gzip'), `stream encodings: ${JSON.stringify(encodings)}`);
    checkCompressed(countersBefore, await compression(), 'chromium');
  } finally {
    await browser.close();
  }
  assert.deepEqual(pageErrors, []);
});

test('npm eventsource (fetch inflates gzip) on the demo: every message within 100 ms', async () => {
  const countersBefore = await compression();
  let encoding;
  const es = new EventSource(`${server.url}/events?channel=${ROOM}&channel=ticker:AAPL&channel=ticker:MSFT`, {
    fetch: async (url, init) => {
      const res = await fetch(url, init);
      encoding = res.headers.get('content-encoding');
      return res;
    },
  });
  const received = [];
  const prices = [];
  let connected;
  es.addEventListener('connected', (e) => { connected = JSON.parse(e.data); });
  es.addEventListener('price', (e) => prices.push(JSON.parse(e.data)));
  es.addEventListener('chat', (e) => {
    const at = Date.now();
    const d = JSON.parse(e.data);
    if (d.from === 'probe') received.push({ tag: d.tag, seq: d.seq, t: d.t, at });
  });
  try {
    await waitFor(() => connected, { what: 'the connected event' });
    const tag = await publishProbes();
    await waitFor(() => received.filter((r) => r.tag === tag).length >= PROBES,
                  { ...WAIT, what: `${PROBES} probes` });
    checkDelays(received.filter((r) => r.tag === tag), 'eventsource');
  } finally {
    es.close();
  }
  assert.equal(encoding, 'gzip');
  assert.ok(prices.length > 0 && prices.every((p) => ['AAPL', 'MSFT'].includes(p.symbol)),
            `prices: ${JSON.stringify(prices.slice(0, 3))}`);
  checkCompressed(countersBefore, await compression(), 'eventsource');
});

test('a client that does not ask for gzip gets the same events plain', async () => {
  const countersBefore = await compression();
  const raw = openRaw(server, { channels: [ROOM] });  // node:http: no Accept-Encoding
  try {
    await raw.connected;
    assert.equal(raw.status, 200);
    assert.equal(raw.headers['content-encoding'], undefined);
    assert.match(raw.headers.vary ?? '', /accept-encoding/i);
    const tag = await publishProbes();
    const probes = () => raw.of('chat').map((e) => JSON.parse(e.data)).filter((d) => d.tag === tag);
    await waitFor(() => probes().length >= PROBES, { ...WAIT, what: `${PROBES} probes, plain` });
    assert.deepEqual(probes().map((d) => d.seq), [...Array(PROBES).keys()]);
  } finally {
    raw.close();
  }
  const after = await compression();
  assert.equal(after.streams, countersBefore.streams, 'a plain stream counted as compressed');
});
