// ssepp-demo over HTTPS (--tls-cert, --tls-key) with a self-signed certificate made here by the
// openssl command: Node EventSource and raw clients, the API, a graceful /disconnect (the final
// chunk arrives inside TLS), a plain-HTTP client on the TLS port, headless Chromium on the page,
// and a stop that ends every stream gracefully.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import {
  api, login, openEventSource, openRaw, publish, startServer, waitFor,
} from './lib/harness.mjs';

// The certificate is made for this run and trusted by no one: Node's fetch (the API calls and
// the eventsource package) accepts it with this; openRaw and Chromium are told separately.
process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';

const CHROMIUM = process.env.SSEPP_CHROMIUM || '/usr/bin/chromium';
const WAIT = { timeout: 15000 };
let dir;
let server;
const open = [];

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'ssepp-e2e-tls-'));
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert,
                           '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'],
               { stdio: 'ignore' });
  // Two event-loop threads: the ThreadSanitizer build runs this file too.
  server = await startServer(['--tls-cert', cert, '--tls-key', key, '--ticker', '300', '--retry', '500',
                              '--threads', '2']);
});

after(async () => {
  for (const c of open) c.close();
  const { code, signal, stderr } = await server.stop();
  rmSync(dir, { recursive: true, force: true });
  assert.equal(signal, null, stderr);
  assert.equal(code, 0, `ssepp-demo exited with ${code}:\n${stderr}`);
});

test('the server says https, and a bad certificate pair is refused at start', async () => {
  assert.match(server.url, /^https:\/\/127\.0\.0\.1:\d+$/);
  const bogus = path.join(dir, 'bogus.pem');
  execFileSync('sh', ['-c', `echo nonsense > ${bogus}`]);
  await assert.rejects(startServer(['--tls-cert', bogus, '--tls-key', bogus]), /cannot use/);
});

test('EventSource over TLS: connected, a broadcast, a channel joined at run time', async () => {
  const token = await login(server, 'tess');
  const es = await openEventSource(server, { token, types: ['note'] });
  open.push(es);
  const hello = await es.ready();
  assert.equal(hello.user, 'tess');
  let r = await api(server, '/subscribe', { client: hello.client, channel: 'room:tls' }, { token });
  assert.equal(r.status, 200, r.text);
  await publish(server, { event: 'note', data: 'to everyone' });
  r = await publish(server, { channel: 'room:tls', event: 'note', data: 'to room:tls' });
  assert.equal(r.delivered, 1);
  await es.waitFor((e) => e.data === 'to room:tls', WAIT);
  assert.deepEqual(es.of('note').map((e) => e.data), ['to everyone', 'to room:tls']);
});

test('raw stream over TLS: SSE headers, retry hint, and /disconnect ends it with the final chunk', async () => {
  const token = await login(server, 'uma');
  const raw = openRaw(server, { token, channels: ['room:raw'] });
  const hello = await raw.connected;
  assert.equal(raw.status, 200);
  assert.equal(raw.headers['content-type'], 'text/event-stream; charset=utf-8');
  assert.equal(raw.headers['transfer-encoding'], 'chunked');
  assert.equal(raw.retry, 500);
  // A burst: many events, in order, none lost, through TLS records.
  for (let i = 0; i < 50; ++i) await publish(server, { channel: 'room:raw', event: 'n', data: String(i) });
  await raw.waitCount('n', 50, WAIT);
  assert.deepEqual(raw.of('n').map((e) => e.data), Array.from({ length: 50 }, (_, i) => String(i)));
  const r = await api(server, '/disconnect', { client: hello.client }, { token });
  assert.equal(r.status, 200, r.text);
  await waitFor(() => raw.ended, { what: 'the stream to end' });
  assert.equal(raw.complete, true, 'the body ended with the final chunk');
});

test('plain HTTP on the TLS port gets no answer and the connection closes', async () => {
  const sock = net.connect(server.port, '127.0.0.1');
  let got = '';
  let closed = false;
  sock.on('data', (d) => { got += d.toString('latin1'); });
  sock.on('error', () => {});
  sock.on('close', () => { closed = true; });
  sock.on('connect', () => sock.write('GET /events HTTP/1.1\r\nHost: x\r\n\r\n'));
  await waitFor(() => closed, { what: 'the server to close the connection' });
  assert.doesNotMatch(got, /HTTP\/1\.1 200/);
  const r = await api(server, '/health');  // and the server still serves
  assert.equal(r.status, 200);
});

test('Chromium over HTTPS: the page streams prices, a broadcast from the page comes back', async () => {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 60000,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync',
           '--no-proxy-server'],
  });
  try {
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    const page = await context.newPage();
    const errors = [];
    page.on('pageerror', (err) => errors.push(String(err)));
    await page.goto(server.url + '/', { waitUntil: 'domcontentloaded' });
    await page.locator('#state', { hasText: 'open' }).waitFor(WAIT);
    await page.waitForFunction(() => /^guest-\d{4}$/.test(document.getElementById('user').textContent), null, WAIT);
    await page.waitForFunction(() => {
      const cell = document.querySelector('#ticker tr[data-symbol="AAPL"] td.px');
      return cell && /^\d+\.\d\d$/.test(cell.textContent);
    }, null, WAIT);
    await page.fill('#chat-input', 'hello over TLS');
    await page.click('#chat-broadcast');
    await page.locator('#chat li', { hasText: 'hello over TLS' }).waitFor(WAIT);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

test('stopping the server ends open TLS streams gracefully', async () => {
  const other = await startServer(['--tls-cert', path.join(dir, 'cert.pem'), '--tls-key', path.join(dir, 'key.pem'),
                                   '--ticker', '0']);
  const raw = openRaw(other, {});
  await raw.connected;
  const { code, stderr } = await other.stop();
  assert.equal(code, 0, stderr);
  await waitFor(() => raw.ended, { what: 'the stream to end' });
  assert.equal(raw.complete, true, 'the body ended with the final chunk');
});
