// The encoder peers: npm eventsource-encoder's encode() and better-sse's EventBuffer, on the same
// three event shapes as `ssepp-bench encode` (the same events: the same mt19937 seed and
// generator), each event's text appended to a batch that is written out as UTF-8 bytes every
// 512 KiB, as a server hands text to its socket. The two are timed in turn (interleaved), median
// of the trials. Throughput is in MB/s of the event-stream bytes ssepp writes for the same events
// ("event: t\nid: n\ndata: …\n\n"), so every encoder is credited with the same work.
// Prints one JSON line per encoder and shape:
//   {"encoder","shape","events","bytes_per_round","mb_per_s","seconds","correct"}
// where correct says whether eventsource-parser reads back every event's data from its output.
//   node encode.mjs [--quick]
import { encode } from 'eventsource-encoder';
import { EventBuffer } from 'better-sse';
import { createParser } from 'eventsource-parser';
import { flag } from './args.mjs';

const quick = flag('--quick');

/** std::mt19937, so the events are the ones bench_encode.cpp builds. */
function mt19937(seed) {
  const mt = new Uint32Array(624);
  let index = 624;
  mt[0] = seed >>> 0;
  for (let i = 1; i < 624; ++i) {
    const prev = mt[i - 1] ^ (mt[i - 1] >>> 30);
    mt[i] = (Math.imul(1812433253, prev) + i) >>> 0;
  }
  return () => {
    if (index >= 624) {
      for (let i = 0; i < 624; ++i) {
        const y = (mt[i] & 0x80000000) | (mt[(i + 1) % 624] & 0x7fffffff);
        let v = mt[(i + 397) % 624] ^ (y >>> 1);
        if (y & 1) v ^= 0x9908b0df;
        mt[i] = v >>> 0;
      }
      index = 0;
    }
    let y = mt[index++];
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  };
}

const chars = 'abcdefghijklmnopqrstuvwxyz0123456789';
function randomJson(rng, size) {
  let s = '{"symbol":"';
  while (s.length + 2 < size) {
    s += chars[rng() % chars.length];
    if (s.length % 23 === 0) s += '","k":"';
  }
  return s + '"}';
}

function shapes() {
  const rng = mt19937(7);
  const json = [];
  const multi = [];
  const tiny = [];
  for (let i = 0; i < 512; ++i) {
    json.push({ event: 'price', id: String(100000 + i), data: randomJson(rng, 150) });
    let m = '';
    while (m.length < 2048) {
      const size = 60 + (rng() % 40);
      m += randomJson(rng, size) + '\n';
    }
    multi.push({ event: 'log', id: String(i), data: m });
    tiny.push({ data: randomJson(rng, 20) });
  }
  return [
    { name: 'json150', events: json },
    { name: 'multiline2k', events: multi },
    { name: 'tiny20', events: tiny },
  ];
}

// What ssepp writes for an event: each data line its own "data: " line; an empty line (as after
// a trailing line break) is "data:" alone.
function ssppBytes(ev) {
  let n = 0;
  if (ev.event) n += 7 + ev.event.length + 1;
  if (ev.id !== undefined) n += 4 + ev.id.length + 1;
  for (const line of ev.data.split(/\r\n|\r|\n/)) n += (line.length ? 6 + line.length : 5) + 1;
  return n + 1;
}

const out = Buffer.alloc(4 << 20);
const flushAt = 512 * 1024;

function withEncoder(ev) {
  return encode(ev);
}

const betterSse = new EventBuffer({ serializer: (d) => d });
function withBetterSse(ev) {
  if (ev.event) betterSse.event(ev.event);
  if (ev.id !== undefined) betterSse.id(ev.id);
  betterSse.data(ev.data).dispatch();
  const s = betterSse.read();
  betterSse.clear();
  return s;
}

const contenders = [
  { name: 'eventsource-encoder', fn: withEncoder },
  { name: 'better-sse EventBuffer', fn: withBetterSse },
];

/** Encodes every event `rounds` times, batching text and writing it out as bytes. */
function run(fn, events, rounds) {
  let batch = '';
  let written = 0;
  for (let r = 0; r < rounds; ++r) {
    for (const ev of events) {
      batch += fn(ev);
      if (batch.length > flushAt) {
        written += out.write(batch, 0);
        batch = '';
      }
    }
  }
  written += out.write(batch, 0);
  return written;
}

function correct(fn, events) {
  const got = [];
  const parser = createParser({ onEvent: (ev) => got.push(ev.data) });
  for (const ev of events) parser.feed(fn(ev));
  if (got.length !== events.length) return false;
  // Line breaks in data arrive as LF; a trailing one is kept by the spec's algorithm.
  return events.every((ev, i) => got[i] === ev.data.replace(/\r\n|\r/g, '\n'));
}

for (const shape of shapes()) {
  const perRound = shape.events.reduce((n, ev) => n + ssppBytes(ev), 0);
  const rounds = Math.max(1, Math.floor((quick ? 4e6 : 40e6) / perRound));
  const trials = quick ? 7 : 15;
  for (const c of contenders) run(c.fn, shape.events, Math.max(1, rounds >> 2)); // JIT warm-up
  const times = contenders.map(() => []);
  for (let t = 0; t < trials; ++t) {
    contenders.forEach((c, k) => {
      const t0 = process.hrtime.bigint();
      run(c.fn, shape.events, rounds);
      times[k].push(Number(process.hrtime.bigint() - t0) / 1e9);
    });
  }
  contenders.forEach((c, k) => {
    const sorted = times[k].sort((a, b) => a - b);
    const seconds = sorted[Math.floor(sorted.length / 2)];
    console.log(
      JSON.stringify({
        encoder: c.name,
        shape: shape.name,
        events: shape.events.length * rounds,
        bytes_per_round: perRound,
        mb_per_s: (perRound * rounds) / seconds / 1e6,
        seconds,
        correct: correct(c.fn, shape.events),
      }),
    );
  });
}
