// Compressed streams are never held back: a small ssepp::asio server with compression
// (tests/e2e/servers/compressed.cpp, path in $SSEPP_COMPRESSED_SERVER) publishes a tick every
// 100 ms carrying its publish time; the npm `eventsource` package (Node's fetch, which asks for
// and inflates gzip) and Chromium's own EventSource (headless, through playwright-core) must
// each receive every tick within 100 ms of its publish, over a stream that really is gzip.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';
import { EventSource } from 'eventsource';
import { startServer, waitFor } from './lib/harness.mjs';

const CHROMIUM = process.env.SSEPP_CHROMIUM || '/usr/bin/chromium';
const TICKS = 30;         // 3 s of ticks per client
const LIMIT_MS = 100;     // publish to arrival

let server;

before(async () => {
  server = await startServer(['--interval', '100'], { bin: process.env.SSEPP_COMPRESSED_SERVER });
});

after(async () => {
  const { code, signal, stderr } = await server.stop();
  assert.equal(signal, null, stderr);
  assert.equal(code, 0, `the compressed test server exited with ${code}:\n${stderr}`);
});

async function stats() {
  const res = await fetch(server.url + '/stats');
  return res.json();
}

/** The ticks' delays: every one in order, none later than LIMIT_MS. */
function checkDelays(received, who) {
  assert.ok(received.length >= TICKS, `${who}: ${received.length} ticks`);
  for (let i = 1; i < received.length; ++i)
    assert.equal(received[i].seq, received[0].seq + i, `${who}: ticks in order, none missing`);
  const delays = received.map((r) => r.at - r.t);
  const worst = Math.max(...delays);
  console.log(`${who}: ${received.length} ticks, delay median ${delays.sort((a, b) => a - b)[delays.length >> 1]} ms, worst ${worst} ms`);
  assert.ok(worst <= LIMIT_MS, `${who}: a tick arrived ${worst} ms after its publish (limit ${LIMIT_MS})`);
}

test('npm eventsource (fetch inflates gzip): every tick within 100 ms of its publish', async () => {
  const before = await stats();
  let encoding = null;
  const es = new EventSource(server.url + '/events', {
    fetch: async (url, init) => {
      const res = await fetch(url, init);
      encoding = res.headers.get('content-encoding');
      return res;
    },
  });
  const received = [];
  es.addEventListener('tick', (e) => {
    const d = JSON.parse(e.data);
    received.push({ seq: d.seq, t: d.t, at: Date.now() });
  });
  try {
    await waitFor(() => received.length >= TICKS, { timeout: 20000, what: `${TICKS} ticks` });
  } finally {
    es.close();
  }
  assert.equal(encoding, 'gzip');
  checkDelays(received, 'eventsource');
  const after = await stats();
  assert.equal(after.compressed - before.compressed, 1);
  assert.ok(after.compressed_bytes > 0 && after.compressed_bytes < after.uncompressed_bytes,
            JSON.stringify(after));
});

test('Chromium EventSource (gzip): every tick within 100 ms of its publish', async () => {
  const before = await stats();
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 60000,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync',
           '--no-proxy-server'],
  });
  try {
    const page = await browser.newPage();
    let encoding = null;
    page.on('response', (res) => {
      if (res.url().endsWith('/events')) encoding = res.headers()['content-encoding'] ?? null;
    });
    await page.goto(server.url + '/', { waitUntil: 'domcontentloaded' });
    await page.waitForFunction((n) => window.received.length >= n, TICKS, { timeout: 20000 });
    const received = await page.evaluate(() => window.received);
    assert.equal(encoding, 'gzip');
    checkDelays(received, 'chromium');
  } finally {
    await browser.close();
  }
  const after = await stats();
  assert.equal(after.compressed - before.compressed, 1);
});
