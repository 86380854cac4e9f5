// Real EventSource clients (npm `eventsource`, WHATWG-compliant) against ssepp-demo: the connected
// event, broadcasts, channel / user / pool / client targeting, subscriptions and who may change
// them, invalid events, the simulated feeds, heartbeats, metrics and CORS.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import {
  api, login, metrics, openEventSource, openRaw, publish, startServer, waitFor,
} from './lib/harness.mjs';

const TYPES = ['news', 'marker', 'note', 'price', 'progress', 'chat'];
let server;
const open = [];
let markers = 0;

async function es(options) {
  const c = await openEventSource(server, { types: TYPES, ...options });
  open.push(c);
  await c.ready();
  return c;
}

/** Broadcasts a marker and waits until each client has it. Every client receives events in
 *  order, so anything sent before the marker that a client was going to get, it now has. */
async function settle(...clients) {
  const data = `marker-${++markers}`;
  await publish(server, { event: 'marker', data });
  for (const c of clients) await c.waitFor((e) => e.type === 'marker' && e.data === data, { what: `${data}` });
}

before(async () => {
  server = await startServer(['--ticker', '500', '--cors', 'http://app.example']);
});

after(async () => {
  for (const c of open) c.close();
  const { code, signal, stderr } = await server.stop();
  assert.equal(signal, null, stderr);
  assert.equal(code, 0, `ssepp-demo exited with ${code}:\n${stderr}`);
});

test('the first event is connected, with the client id and the user (or null)', async () => {
  const anon = await es({ channels: ['room:a'] });
  assert.equal(anon.events[0].type, 'connected');
  assert.match(anon.connections[0].client, /^[1-9][0-9]*$/);
  assert.equal(anon.connections[0].user, null);

  const token = await login(server, 'carol');
  const carol = await es({ token });
  assert.equal(carol.events[0].type, 'connected');
  assert.equal(carol.connections[0].user, 'carol');
  assert.notEqual(carol.connections[0].client, anon.connections[0].client);

  // The raw bytes: the SSE headers and a retry hint before anything else.
  const raw = openRaw(server, {});
  const hello = await raw.connected;
  raw.close();
  assert.equal(raw.status, 200);
  assert.equal(raw.headers['content-type'], 'text/event-stream; charset=utf-8');
  assert.equal(raw.headers['cache-control'], 'no-cache');
  assert.equal(raw.headers['x-accel-buffering'], 'no');
  assert.equal(raw.retry, 2000);
  assert.equal(hello.user, null);
});

test('a broadcast reaches every connected client, once, with an id', async () => {
  await es({ channels: ['room:a'] });
  await es({ token: await login(server, 'dave') });
  // Every EventSource of this file is still open: these two and the earlier test's.
  const everyone = [...open];
  const sent = await publish(server, { event: 'news', data: 'hello everyone' });
  assert.match(sent.id, /^[0-9]+$/);
  assert.ok(sent.delivered >= everyone.length, `delivered to ${sent.delivered}`);
  await settle(...everyone);
  for (const c of everyone) {
    const news = c.of('news');
    assert.deepEqual(news.map((e) => e.data), ['hello everyone'], `news at client ${c.id()}`);
    assert.equal(news[0].lastEventId, sent.id);
  }
});

test('channel, user, pool and client targets reach exactly their audience', async () => {
  const aliceToken = await login(server, 'alice');
  const bobToken = await login(server, 'bob');
  const alice1 = await es({ token: aliceToken, channels: ['room:x'] });
  const alice2 = await es({ token: aliceToken });
  const bob = await es({ token: bobToken, channels: ['room:y'] });
  const guest = await es({ channels: ['room:x', 'room:y'] });
  const all = [alice1, alice2, bob, guest];

  // Sent in this order; each client must get exactly its share of it, once, in this order.
  let r = await publish(server, { channel: 'room:x', event: 'note', data: 'to room:x' });
  assert.equal(r.delivered, 2);
  r = await publish(server, { user: 'alice', event: 'note', data: 'to alice' });
  assert.equal(r.delivered, 2);
  r = await publish(server, { pool: 'guests', event: 'note', data: 'to guests' });
  assert.ok(r.delivered >= 1);
  r = await publish(server, { client: bob.id(), event: 'note', data: 'to bob only' });
  assert.equal(r.delivered, 1);
  r = await publish(server, { channel: 'room:nobody', event: 'note', data: 'to nobody' });
  assert.equal(r.delivered, 0);
  await settle(...all);

  const expect = {
    'to room:x': [alice1, guest],
    'to alice': [alice1, alice2],
    'to guests': [guest],
    'to bob only': [bob],
    'to nobody': [],
  };
  for (const c of all) {
    const mine = Object.keys(expect).filter((data) => expect[data].includes(c));
    assert.deepEqual(c.of('note').map((e) => e.data), mine, `notes at client ${c.id()} (${c.connections[0].user})`);
  }
  assert.deepEqual(alice1.of('note').map((e) => e.data), ['to room:x', 'to alice']);  // the table, spelled out
});

test('subscribe and unsubscribe at run time, by the stream\'s own session only', async () => {
  const eveToken = await login(server, 'eve');
  const malloryToken = await login(server, 'mallory');
  const eve = await es({ token: eveToken });
  const mallory = await es({ token: malloryToken });
  const guest = await es({});

  let r = await api(server, '/subscribe', { client: eve.id(), channel: 'room:z' }, { token: eveToken });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json.channels, ['room:z']);
  await publish(server, { channel: 'room:z', event: 'note', data: 'z1' });

  // Someone else's session, no session, or a guessed id: refused, and nothing changes.
  r = await api(server, '/subscribe', { client: eve.id(), channel: 'room:spy' }, { token: malloryToken });
  assert.equal(r.status, 404);
  assert.ok(r.json.error);
  r = await api(server, '/unsubscribe', { client: eve.id(), channel: 'room:z' }, { token: malloryToken });
  assert.equal(r.status, 404);
  r = await api(server, '/subscribe', { client: eve.id(), channel: 'room:spy' });
  assert.equal(r.status, 401);
  r = await api(server, '/subscribe', { client: guest.id(), channel: 'room:spy' }, { token: malloryToken });
  assert.equal(r.status, 404);
  for (const guess of ['1', '2', '99999999', String(Number(mallory.id()) + 1000)]) {
    r = await api(server, '/subscribe', { client: guess, channel: 'room:spy' }, { token: malloryToken });
    if (guess !== mallory.id()) assert.equal(r.status, 404, `guess ${guess}`);
  }
  r = await api(server, '/disconnect', { client: eve.id() }, { token: malloryToken });
  assert.equal(r.status, 404);

  // user:<name> channels belong to <name>.
  r = await api(server, '/subscribe', { client: mallory.id(), channel: 'user:eve' }, { token: malloryToken });
  assert.equal(r.status, 403);
  r = await api(server, '/subscribe', { client: eve.id(), channel: 'user:eve' }, { token: eveToken });
  assert.equal(r.status, 200);
  const spy = openRaw(server, { channels: ['user:eve'], token: malloryToken });
  await assert.rejects(spy.connected, /403/);
  const anonSpy = openRaw(server, { channels: ['user:eve'] });
  await assert.rejects(anonSpy.connected, /403/);

  await publish(server, { channel: 'room:spy', event: 'note', data: 'spied' });
  r = await publish(server, { channel: 'user:eve', event: 'note', data: 'for eve' });
  assert.equal(r.delivered, 1);

  r = await api(server, '/unsubscribe', { client: eve.id(), channel: 'room:z' }, { token: eveToken });
  assert.equal(r.status, 200);
  assert.deepEqual(r.json.channels, ['user:eve']);
  r = await publish(server, { channel: 'room:z', event: 'note', data: 'z2' });
  assert.equal(r.delivered, 0);
  await settle(eve, mallory, guest);

  assert.deepEqual(eve.of('note').map((e) => e.data), ['z1', 'for eve']);
  assert.deepEqual(mallory.of('note'), []);
  assert.deepEqual(guest.of('note'), []);
});

test('an invalid event is refused with a JSON 400 and nothing is sent', async () => {
  const c = await es({ channels: ['room:q'] });  // gets every broadcast and room:q
  const bad = [
    { event: 'bad\nname', data: 'x' },
    { event: 'bad\rname', data: 'x' },
    { event: 'note', id: '1\n2', data: 'x' },
    { event: 'note', id: 'a\u0000b', data: 'x' },
    { channel: 'room:q', user: 'alice', event: 'note', data: 'x' },
    { channel: 'room q', event: 'note', data: 'x' },
    { client: 'abc', event: 'note', data: 'x' },
    { event: 'note' },
    { event: 7, data: 'x' },
  ];
  for (const body of bad) {
    const r = await api(server, '/publish', body);
    assert.equal(r.status, 400, JSON.stringify(body));
    assert.equal(typeof r.json.error, 'string', JSON.stringify(body));
  }
  // Data with line breaks is fine: every line becomes its own data: line.
  await publish(server, { channel: 'room:q', event: 'note', data: 'line 1\nline 2\r\nid: 666\rretry: 1' });
  await settle(c);
  assert.deepEqual(c.of('note').map((e) => e.data), ['line 1\nline 2\nid: 666\nretry: 1']);
  assert.ok(!c.events.some((e) => e.lastEventId === '666'));
  assert.ok(!c.events.some((e) => e.data === 'x'), 'no refused event was delivered');
});

test('prices tick on ticker channels; job progress reaches its user only', async () => {
  const fredToken = await login(server, 'fred');
  const fred = await es({ token: fredToken, channels: ['ticker:AAPL'] });
  const other = await es({ token: await login(server, 'gina'), channels: ['ticker:MSFT'] });
  const prices = await waitFor(() => fred.of('price').length >= 2 && fred.of('price'), { what: 'two prices' });
  for (const p of prices) {
    const q = JSON.parse(p.data);
    assert.equal(q.symbol, 'AAPL');
    assert.equal(typeof q.price, 'number');
  }
  // gina's stream ticks too, with her symbol only (wait for a tick: no price at all proves nothing).
  await waitFor(() => other.of('price').length >= 1, { what: 'a price on ticker:MSFT' });
  for (const p of other.of('price')) assert.equal(JSON.parse(p.data).symbol, 'MSFT');

  let r = await api(server, '/jobs', {});
  assert.equal(r.status, 401);
  r = await api(server, '/jobs', {}, { token: fredToken });
  assert.equal(r.status, 202);
  const job = r.json.job;
  const done = await fred.waitFor((e) => e.type === 'progress' && JSON.parse(e.data).done, { timeout: 15000 });
  assert.equal(JSON.parse(done.data).job, job);
  const percents = fred.of('progress').map((e) => JSON.parse(e.data).percent);
  assert.deepEqual(percents, [...percents].sort((a, b) => a - b));
  assert.equal(percents.at(-1), 100);
  await settle(other);
  assert.deepEqual(other.of('progress'), []);
});

test('heartbeats keep idle streams alive', async () => {
  const quiet = await startServer(['--heartbeat', '1', '--ticker', '0']);
  try {
    const raw = openRaw(quiet, {});
    await raw.connected;
    await waitFor(() => raw.comments.length >= 2, { timeout: 6000, what: 'two heartbeats' });
    raw.close();
  } finally {
    const { code, stderr } = await quiet.stop();
    assert.equal(code, 0, stderr);
  }
});

test('/health, /metrics and /me', async () => {
  let r = await api(server, '/health');
  assert.equal(r.status, 200);
  r = await api(server, '/metrics');
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
  assert.match(r.text, /^# HELP ssepp_clients /m);
  assert.match(r.text, /^# TYPE ssepp_clients gauge$/m);
  assert.match(r.text, /^ssepp_clients \d+$/m);
  assert.match(r.text, /^ssepp_sends_total \d+$/m);
  const token = await login(server, 'hank');
  r = await api(server, '/me', undefined, { token });
  assert.deepEqual(r.json, { user: 'hank' });
  r = await api(server, '/me');
  assert.deepEqual(r.json, { user: null });
  r = await api(server, '/login', { user: 'hank' });
  assert.match(r.headers.get('set-cookie'), /^ssepp_session=[0-9a-f]{64}; Path=\/; HttpOnly; SameSite=Strict/);
  // The cookie works like the Bearer token.
  const cookie = r.headers.get('set-cookie').split(';')[0];
  r = await api(server, '/me', undefined, { headers: { Cookie: `other=1; ${cookie}` } });
  assert.deepEqual(r.json, { user: 'hank' });
});

function rawRequest(method, path, headers) {
  return new Promise((resolve, reject) => {
    const req = http.request(server.url + path, { method, headers, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res));
    });
    req.on('error', reject);
    req.end();
  });
}

test('CORS: the listed origin is echoed with credentials, others get nothing', async () => {
  let res = await rawRequest('GET', '/health', { Origin: 'http://app.example' });
  assert.equal(res.headers['access-control-allow-origin'], 'http://app.example');
  assert.equal(res.headers['access-control-allow-credentials'], 'true');
  assert.equal(res.headers.vary, 'Origin');
  res = await rawRequest('GET', '/health', { Origin: 'http://evil.example' });
  assert.equal(res.headers['access-control-allow-origin'], undefined);
  assert.equal(res.headers['access-control-allow-credentials'], undefined);
  res = await rawRequest('OPTIONS', '/events', {
    Origin: 'http://app.example', 'Access-Control-Request-Method': 'GET',
    'Access-Control-Request-Headers': 'last-event-id',
  });
  assert.equal(res.statusCode, 204);
  assert.equal(res.headers['access-control-allow-origin'], 'http://app.example');
  assert.match(res.headers['access-control-allow-headers'], /Last-Event-ID/);
  const stream = openRaw(server, { headers: { Origin: 'http://app.example' } });
  await stream.connected;
  stream.close();
  assert.equal(stream.headers['access-control-allow-origin'], 'http://app.example');
  assert.equal(stream.headers['access-control-allow-credentials'], 'true');
});

test('an HTTP/1.0 client gets the stream unchunked, without keep-alive, until the connection ends', async () => {
  const sock = net.connect(server.port, '127.0.0.1');
  let raw = '';
  sock.on('data', (d) => { raw += d.toString('latin1'); });
  sock.on('connect', () => sock.write('GET /events?channel=room:old HTTP/1.0\r\n\r\n'));
  await waitFor(() => raw.includes('event: connected') && raw, { what: 'the HTTP/1.0 stream' });
  await publish(server, { channel: 'room:old', event: 'note', data: 'to 1.0' });
  await waitFor(() => raw.includes('data: to 1.0'), { what: 'the event' });
  sock.destroy();
  const [head, body] = raw.split('\r\n\r\n');
  assert.match(head, /^HTTP\/1\.1 200 OK\r\n/);
  assert.match(head, /\r\nContent-Type: text\/event-stream; charset=utf-8(\r\n|$)/);
  assert.doesNotMatch(head, /Transfer-Encoding|Connection: keep-alive/i);
  assert.match(body, /^retry: 2000\n\nevent: connected\ndata: \{/);
  assert.match(body, /event: note\nid: \d+\ndata: to 1\.0\n\n/);
});

test('POST /disconnect ends the stream gracefully: what was sent, then the final chunk', async () => {
  const token = await login(server, 'ivy');
  const raw = openRaw(server, { token, channels: ['room:bye'] });
  const hello = await raw.connected;
  await publish(server, { channel: 'room:bye', event: 'note', data: 'before the end' });
  const r = await api(server, '/disconnect', { client: hello.client }, { token });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, { client: hello.client, disconnected: true });
  await waitFor(() => raw.ended, { what: 'the stream to end' });
  // A cut connection would leave the chunked body incomplete (curl: "transfer closed with
  // outstanding read data remaining"; node: 'aborted').
  assert.equal(raw.complete, true, 'the body ended with the final chunk');
  assert.equal(raw.error, undefined);
  assert.deepEqual(raw.of('note').map((e) => e.data), ['before the end']);
  // The stream is gone: a second disconnect finds nothing.
  const again = await api(server, '/disconnect', { client: hello.client }, { token });
  assert.equal(again.status, 404);
});

test('/subscribe, /unsubscribe and /disconnect take the client id as a JSON number too', async () => {
  const token = await login(server, 'june');
  const raw = openRaw(server, { token });
  const id = Number((await raw.connected).client);
  let r = await api(server, '/subscribe', { client: id, channel: 'room:num' }, { token });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json.channels, ['room:num']);
  assert.equal(r.json.client, String(id));
  r = await publish(server, { channel: 'room:num', event: 'note', data: 'by number' });
  assert.equal(r.delivered, 1);
  r = await api(server, '/unsubscribe', { client: id, channel: 'room:num' }, { token });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json.channels, []);
  // Not an id: negative, fractional, zero, past 2^64.
  for (const bad of [-id, id + 0.5, 0, 1e30]) {
    r = await api(server, '/subscribe', { client: bad, channel: 'room:num' }, { token });
    assert.equal(r.status, 400, `client ${bad}: ${r.text}`);
  }
  r = await api(server, '/disconnect', { client: id }, { token });
  assert.equal(r.status, 200, r.text);
  await waitFor(() => raw.ended, { what: 'the stream to end' });
  assert.equal(raw.complete, true);
});

test('ssepp_refused_joins_total counts every 403 for someone else\'s user: channel', async () => {
  const kimToken = await login(server, 'kim');
  const kim = openRaw(server, { token: kimToken });
  const hello = await kim.connected;
  const before = (await metrics(server)).ssepp_refused_joins_total;
  let r = await api(server, '/subscribe', { client: hello.client, channel: 'user:lee' }, { token: kimToken });
  assert.equal(r.status, 403);
  const spy = openRaw(server, { token: kimToken, channels: ['user:lee'] });
  await assert.rejects(spy.connected, /403/);
  const anon = openRaw(server, { channels: ['room:a', 'user:lee'] });
  await assert.rejects(anon.connected, /403/);
  assert.equal((await metrics(server)).ssepp_refused_joins_total, before + 3);
  // Her own is no refusal.
  r = await api(server, '/subscribe', { client: hello.client, channel: 'user:kim' }, { token: kimToken });
  assert.equal(r.status, 200);
  assert.equal((await metrics(server)).ssepp_refused_joins_total, before + 3);
  kim.close();
});

test('POST /logout ends the session and its streams, and clears the cookie', async () => {
  const token = await login(server, 'liz');
  const s1 = openRaw(server, { token });
  const s2 = openRaw(server, { token, channels: ['room:liz'] });
  const other = openRaw(server, { token: await login(server, 'liz') });  // another session of liz
  const [h1] = await Promise.all([s1.connected, s2.connected, other.connected]);
  let r = await api(server, '/logout', {}, { token });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, { user: null, streams_ended: 2 });
  assert.match(r.headers.get('set-cookie'), /^ssepp_session=; Path=\/; .*Max-Age=0/);
  await waitFor(() => s1.ended && s2.ended, { what: 'both streams of the session to end' });
  assert.equal(s1.complete && s2.complete, true, 'ended with the final chunk');
  r = await api(server, '/me', undefined, { token });
  assert.deepEqual(r.json, { user: null });
  r = await api(server, '/subscribe', { client: h1.client, channel: 'room:x' }, { token });
  assert.equal(r.status, 401);
  // The other session and its stream are untouched.
  r = await publish(server, { user: 'liz', event: 'note', data: 'still here' });
  assert.equal(r.delivered, 1);
  await other.waitFor((e) => e.data === 'still here');
  assert.equal(other.ended, false);
  other.close();
  // Without a session: nothing to end, the cookie still cleared.
  r = await api(server, '/logout', {});
  assert.equal(r.status, 200);
  assert.deepEqual(r.json, { user: null, streams_ended: 0 });
});
