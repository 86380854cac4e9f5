// The plain Node broadcaster, written like the classic blog post: a Map of open responses, and
// on every publish one res.write() of the formatted event to each. No library.
//   node server-http.mjs [--host 127.0.0.1] [--port 0]
// GET /events?channel=… opens a stream; POST /publish {"channel","event","data"} -> 202.
// Prints "node-http listening on http://HOST:PORT/".
import http from 'node:http';
import { option } from './args.mjs';

const host = option('--host', '127.0.0.1');
const port = Number(option('--port', '0'));

const clients = new Map();
let nextClient = 0;
let nextId = 0;

const server = http.createServer((req, res) => {
  if (req.method === 'GET' && req.url.startsWith('/events')) {
    res.writeHead(200, {
      'Content-Type': 'text/event-stream',
      'Cache-Control': 'no-cache',
      Connection: 'keep-alive',
    });
    res.write(': connected\n\n');
    const id = ++nextClient;
    clients.set(id, res);
    req.on('close', () => clients.delete(id));
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
        res.writeHead(400, { 'Content-Length': '0' }).end();
        return;
      }
      const event = `id: ${++nextId}\nevent: ${msg.event}\ndata: ${msg.data}\n\n`;
      for (const client of clients.values()) client.write(event);
      res.writeHead(202, { 'Content-Length': '0' }).end();
    });
    return;
  }
  res.writeHead(404, { 'Content-Length': '0' }).end();
});

server.listen(port, host, 4096, () => {
  console.log(`node-http listening on http://${host}:${server.address().port}/`);
});
