// A small SSE server on the npm better-sse package (a peer implementation), with its events kept
// in a JSON Lines file so it can be killed and restarted without losing them:
//   node better-sse-log.mjs --log FILE [--host 127.0.0.1] [--port 0] [--retry MS]
// GET /events: a better-sse session (advertising `retry`) that first replays the events in FILE
//   after the request's Last-Event-ID, then receives new ones.
// POST /publish {"event"?, "data"} appends {"id","event","data"} to FILE (ids 1, 2, …) and pushes
//   it to every session -> 202 {"id"}.
// Prints "better-sse listening on http://HOST:PORT/" when ready.
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import http from 'node:http';
import { createSession } from 'better-sse';

function option(name, fallback) {
  const i = process.argv.indexOf(name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const host = option('--host', '127.0.0.1');
const port = Number(option('--port', '0'));
const retry = Number(option('--retry', '500'));
const log = option('--log');
if (!log) throw new Error('--log FILE is required');

const readLog = () =>
  existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)) : [];
const sessions = new Set();
const raw = { serializer: (d) => String(d) };  // data as given, not JSON-quoted

const server = http.createServer(async (req, res) => {
  if (req.method === 'GET' && req.url.startsWith('/events')) {
    const session = await createSession(req, res, { retry, ...raw });
    const after = Number(session.lastId || 0);
    for (const ev of readLog()) if (Number(ev.id) > after) session.push(ev.data, ev.event, ev.id);
    sessions.add(session);
    session.on('disconnected', () => sessions.delete(session));
    return;
  }
  if (req.method === 'POST' && req.url === '/publish') {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => {
      let msg;
      try {
        msg = JSON.parse(body);
      } catch {
        res.writeHead(400).end();
        return;
      }
      const events = readLog();
      const ev = { id: String(events.length + 1), event: msg.event || 'message', data: String(msg.data) };
      appendFileSync(log, `${JSON.stringify(ev)}\n`);
      for (const s of sessions) if (s.isConnected) s.push(ev.data, ev.event, ev.id);
      res.writeHead(202, { 'Content-Type': 'application/json' }).end(JSON.stringify({ id: ev.id }));
    });
    return;
  }
  res.writeHead(404).end();
});

server.listen(port, host, () => {
  console.log(`better-sse listening on http://${host}:${server.address().port}/`);
});
