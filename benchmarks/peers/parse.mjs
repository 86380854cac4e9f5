// The parser peer: npm eventsource-parser fed a stream file in chunks, the way a Node client
// receives it, in two modes:
//   string  the chunks already decoded to strings (decoding not timed): the parser alone
//   bytes   Buffer chunks through one streaming TextDecoder, then the parser (both timed)
// The file is read and split before timing. Prints one JSON line per mode, with the fields
// `ssepp-bench parse` prints: {"parser","mode","bytes","events","data_bytes","seconds","mb_per_s"}
// (seconds: median of --runs runs).
//   node parse.mjs FILE [--chunk 16384] [--runs 5] [--mode string|bytes|both]
import { readFileSync } from 'node:fs';
import { createParser } from 'eventsource-parser';
import { option, positional } from './args.mjs';

const [file] = positional();
if (!file) {
  console.error('usage: node parse.mjs FILE [--chunk 16384] [--runs 5] [--mode string|bytes|both]');
  process.exit(2);
}
const chunkSize = Number(option('--chunk', '16384'));
const runs = Number(option('--runs', '5'));
const mode = option('--mode', 'both');

const bytes = readFileSync(file);
const chunks = [];
for (let off = 0; off < bytes.length; off += chunkSize) chunks.push(bytes.subarray(off, off + chunkSize));
const decoder = new TextDecoder();
const strings = chunks.map((c) => decoder.decode(c, { stream: true }));
const tail = decoder.decode();
if (tail) strings.push(tail);

function parseStrings() {
  let events = 0;
  let dataBytes = 0;
  const parser = createParser({
    onEvent(ev) {
      events++;
      dataBytes += ev.data.length;
    },
  });
  for (const s of strings) parser.feed(s);
  return { events, dataBytes };
}

function parseBytes() {
  let events = 0;
  let dataBytes = 0;
  const parser = createParser({
    onEvent(ev) {
      events++;
      dataBytes += ev.data.length;
    },
  });
  const dec = new TextDecoder();
  for (const c of chunks) parser.feed(dec.decode(c, { stream: true }));
  const rest = dec.decode();
  if (rest) parser.feed(rest);
  return { events, dataBytes };
}

function measure(name, fn) {
  for (let i = 0; i < 2; ++i) fn(); // warm-up: lets the JIT compile the hot paths first
  const times = [];
  let out;
  for (let i = 0; i < runs; ++i) {
    const t0 = process.hrtime.bigint();
    out = fn();
    times.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  times.sort((a, b) => a - b);
  const seconds = times[Math.floor(times.length / 2)];
  console.log(
    JSON.stringify({
      parser: 'eventsource-parser',
      mode: name,
      chunk: chunkSize,
      bytes: bytes.length,
      events: out.events,
      data_bytes: out.dataBytes,
      seconds,
      mb_per_s: bytes.length / seconds / 1e6,
    }),
  );
}

if (mode === 'string' || mode === 'both') measure('string', parseStrings);
if (mode === 'bytes' || mode === 'both') measure('bytes', parseBytes);
