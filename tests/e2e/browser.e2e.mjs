// The demo page in a real browser: headless Chromium (Debian's, driven by playwright-core)
// receives live events through its own EventSource, a broadcast typed in one page reaches a second
// one, subscriptions and jobs work from the page, a server-side cut is resumed with the browser's
// Last-Event-ID, and a screenshot is saved as a test artifact.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { api, publish, startServer, waitFor } from './lib/harness.mjs';

const CHROMIUM = process.env.SSEPP_CHROMIUM || '/usr/bin/chromium';
const ARTIFACTS = process.env.SSEPP_E2E_ARTIFACTS || path.join(tmpdir(), 'ssepp-e2e-artifacts');
const WAIT = { timeout: 15000 };

let server;
let browser;
const pageErrors = [];

before(async () => {
  server = await startServer(['--ticker', '300', '--retry', '500']);
  // launch() gives every run a fresh temporary profile (its own --user-data-dir).
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 60000,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync',
           '--no-proxy-server'],
  });
});

after(async () => {
  await browser?.close();
  const { code, signal, stderr } = await server.stop();
  assert.equal(signal, null, stderr);
  assert.equal(code, 0, `ssepp-demo exited with ${code}:\n${stderr}`);
  assert.deepEqual(pageErrors, []);
});

async function openPage() {
  // One context per page: separate cookie jars, so two different signed-in users.
  const context = await browser.newContext({ viewport: { width: 1280, height: 780 } });
  const page = await context.newPage();
  page.on('pageerror', (err) => pageErrors.push(String(err)));
  await page.goto(server.url + '/', { waitUntil: 'domcontentloaded' });
  await page.locator('#state', { hasText: 'open' }).waitFor(WAIT);
  await page.waitForFunction(() => /^[0-9]+$/.test(document.getElementById('client').textContent), null, WAIT);
  return page;
}

const text = (page, selector) => page.locator(selector).innerText();

test('the page streams live events, a broadcast reaches a second page, and cuts are resumed', async () => {
  const a = await openPage();
  const b = await openPage();
  const userA = await text(a, '#user');
  const userB = await text(b, '#user');
  assert.match(userA, /^guest-\d{4}$/);
  assert.notEqual(await text(a, '#client'), await text(b, '#client'));

  // Live prices through the browser's own EventSource.
  await a.waitForFunction(() => {
    const cell = document.querySelector('#ticker tr[data-symbol="AAPL"] td.px');
    return cell && /^\d+\.\d\d$/.test(cell.textContent);
  }, null, WAIT);
  assert.match(await text(a, '#log'), /event:price/);

  // Broadcast typed in page A shows up in page B.
  const hello = `Hello everyone, this is ${userA}`;
  await a.fill('#chat-input', hello);
  await a.click('#chat-broadcast');
  await b.locator('#chat li', { hasText: hello }).waitFor(WAIT);
  assert.match(await b.locator('#chat li', { hasText: hello }).innerText(), /to everyone/);
  await a.locator('#chat li', { hasText: hello }).waitFor(WAIT);

  // A room message from B reaches A.
  await b.fill('#chat-input', 'room message from B');
  await b.click('#chat-send');
  await a.locator('#chat li', { hasText: 'room message from B' }).waitFor(WAIT);

  // Subscribing from the page (POST /subscribe with the session cookie) starts a new symbol.
  await b.locator('#ticker tr[data-symbol="TSLA"] button', { hasText: 'Subscribe' }).click();
  await b.waitForFunction(() => /^\d+\.\d\d$/.test(
    document.querySelector('#ticker tr[data-symbol="TSLA"] td.px').textContent), null, WAIT);

  // A job's progress arrives to its user only; a notification too.
  await a.click('#job-start');
  await a.locator('#jobs .job.done').waitFor({ timeout: 20000 });
  assert.match(await text(a, '#jobs'), /100%|done/);
  await a.click('#notify-btn');
  await a.locator('#notifications li', { hasText: `Hello ${userA}` }).waitFor(WAIT);
  // A broadcast after them as a marker: once page B shows it, B's stream has carried everything
  // sent to it before (streams deliver in order), so anything of A's that was misrouted would be
  // on page B by now.
  const marker = 'marker after the job and the notification';
  await publish(server, { event: 'chat', data: JSON.stringify({ from: 'server', text: marker, everyone: true }) });
  await b.locator('#chat li', { hasText: marker }).waitFor(WAIT);
  assert.equal(await b.locator('#jobs .job').count(), 0);
  assert.equal(await b.locator('#notifications li:not(.empty)').count(), 0);

  // The server cuts page B's stream; the browser reconnects with Last-Event-ID and replays what
  // was published meanwhile.
  const clientB = await text(b, '#client');
  const status = await b.evaluate(async (client) => {
    const r = await fetch('/disconnect', { method: 'POST', headers: { 'Content-Type': 'application/json' },
                                           body: JSON.stringify({ client }) });
    return r.status;
  }, clientB);
  assert.equal(status, 200);
  await publish(server, { channel: 'room:lobby', event: 'chat',
                          data: JSON.stringify({ from: 'server', text: 'sent while you were away' }) });
  await b.waitForFunction((old) => {
    const now = document.getElementById('client').textContent;
    return now !== old && /^[0-9]+$/.test(now);
  }, clientB, WAIT);
  await b.locator('#chat li', { hasText: 'sent while you were away' }).waitFor(WAIT);
  assert.equal(await b.locator('#chat li', { hasText: 'sent while you were away' }).count(), 1);
  assert.match(await text(b, '#log'), /"replay":"found"/);
  await b.locator('#state', { hasText: 'open' }).waitFor(WAIT);

  // A screenshot of page A, as a test artifact.
  await a.fill('#chat-input', '');
  await a.waitForTimeout(700);  // let a couple of price ticks flash
  mkdirSync(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, 'demo.png');
  await a.screenshot({ path: file, fullPage: true });
  console.log(`screenshot: ${file}`);
});

test('the page signs out: its session and stream end; signing in again starts anew', async () => {
  const page = await openPage();
  const client = await text(page, '#client');
  assert.match(await text(page, '#user'), /^guest-\d{4}$/);
  await page.click('#logout-btn');
  await page.locator('#state', { hasText: 'signed out' }).waitFor(WAIT);
  assert.equal(await text(page, '#user'), '—');
  assert.deepEqual(await page.evaluate(async () => (await fetch('/me')).json()), { user: null });
  // The server no longer has that stream: a send to it reaches nobody.
  const r = await waitFor(async () => {
    const sent = await api(server, '/publish', { client, event: 'note', data: 'anyone there?' });
    return sent.status === 400 && sent;
  }, { what: 'the signed-out stream to be closed on the server' });
  assert.match(r.json.error, /no connected client/);

  await page.fill('#login-name', 'back-again');
  await page.click('#login-btn');
  await page.locator('#user', { hasText: 'back-again' }).waitFor(WAIT);
  await page.locator('#state', { hasText: 'open' }).waitFor(WAIT);
  assert.notEqual(await text(page, '#client'), client);
});
