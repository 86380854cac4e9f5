// A better-sse channel server, as its documentation sets one up: every stream is a session
// registered on one channel; a publish is channel.broadcast(data, event).
//   node server-better-sse.mjs [--host 127.0.0.1] [--port 0]
// GET /events?channel=… opens a stream; POST /publish {"channel","event","data"} -> 202.
// Prints "better-sse listening on http://HOST:PORT/".
import http from 'node:http';
import { createChannel, createSession } from 'better-sse';
import { option } from './args.mjs';

const host = option('--host', '127.0.0.1');
const port = Number(option('--port', '0'));

const channel = createChannel();

const server = http.createServer(async (req, res) => {
  if (req.method === 'GET' && req.url.startsWith('/events')) {
    const session = await createSession(req, res);
    channel.register(session);
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
      channel.broadcast(msg.data, msg.event);
      res.writeHead(202, { 'Content-Length': '0' }).end();
    });
    return;
  }
  res.writeHead(404, { 'Content-Length': '0' }).end();
});

server.listen(port, host, 4096, () => {
  console.log(`better-sse listening on http://${host}:${server.address().port}/`);
});
