// Turns one scripts/bench run's raw output into the figures: benchmarks/results.jsonl (one JSON
// object per figure: name, value, unit, baseline, baseline_value, ratio, plus target and met),
// a markdown table on stdout, and an SVG chart of every ratio.
//   node benchmarks/report.mjs RAW_DIR RESULTS_JSONL CHART_SVG
// RAW_DIR holds what scripts/bench collected:
//   figures.jsonl   figure lines printed by ssepp-bench (encode, parse-compare, fanout, redis,
//                   redis scale, compress)
//   parse.jsonl     {"corpus","who":"ssepp"|"node","r":{…parse line…}} per process run
//   encode.jsonl    lines of peers/encode.mjs
//   loopback.jsonl  {"server","r":{…ssepp-load line…}} (server "ssepp-demo-gzip": ssepp-load --gzip)
//   scale.jsonl     {"server","r":{…ssepp-load --scale line…}}
//   asio-compress.jsonl  ssepp-asio-compress lines: CPU per delivery through ssepp::asio, plain/gzip
//   client.jsonl    figure lines of ssepp-client-bench (EventClient beside the parser alone, a bare
//                   socket and the npm eventsource client)
//   meta.json       machine and command
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const [raw, resultsPath, chartPath] = process.argv.slice(2);
if (!raw || !resultsPath || !chartPath) {
  console.error('usage: node report.mjs RAW_DIR RESULTS_JSONL CHART_SVG');
  process.exit(2);
}

function lines(file) {
  const path = join(raw, file);
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l.trim().startsWith('{'))
    .map((l) => JSON.parse(l));
}
const median = (xs) => {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};
const meta = existsSync(join(raw, 'meta.json')) ? JSON.parse(readFileSync(join(raw, 'meta.json'), 'utf8')) : {};

function num(x, unit = '') {
  if (x === null || x === undefined || Number.isNaN(x)) return '–';
  const a = Math.abs(x);
  let s;
  if (x === 0) s = '0';
  else if (unit === 'deliveries/s' && a >= 1e6) s = `${(x / 1e6).toFixed(2)}M`;
  else if (unit === 'deliveries/s' && a >= 1e3) s = `${(x / 1e3).toFixed(0)}k`;
  else if (a >= 100) s = x.toFixed(0);
  else if (a >= 10) s = x.toFixed(1);
  else s = x.toFixed(2);
  return s;
}
const figures = [];
function figure(section, name, value, unit, baseline = null, baselineValue = null, extra = {}) {
  const ratio = baseline !== null && baselineValue ? value / baselineValue : null;
  figures.push({ section, name, value, unit, baseline, baseline_value: baselineValue, ratio, ...extra });
}

// ---- parser ------------------------------------------------------------------------------------
const parseRuns = lines('parse.jsonl');
const corpora = [...new Set(parseRuns.map((p) => p.corpus))];
const compare = lines('figures.jsonl').filter((f) => f.name.startsWith('parse/'));
for (const c of corpora) {
  const ours = median(parseRuns.filter((p) => p.corpus === c && p.who === 'ssepp').map((p) => p.r.mb_per_s));
  const mode = (m) =>
    median(parseRuns.filter((p) => p.corpus === c && p.who === 'node' && p.r.mode === m).map((p) => p.r.mb_per_s));
  const name = `parse/${c}/ssepp`;
  if (ours === null) continue;
  figure('parser', name, ours, 'MB/s', 'eventsource-parser, string chunks', mode('string'));
  figure('parser', name, ours, 'MB/s', 'eventsource-parser, bytes via TextDecoder', mode('bytes'));
  // The same runs timed by the parsing thread's CPU clock: what a preempted run would have done.
  const cpu = median(
    parseRuns.filter((p) => p.corpus === c && p.who === 'ssepp' && p.r.cpu_seconds).map((p) => p.r.bytes / p.r.cpu_seconds / 1e6),
  );
  if (cpu !== null) figure('parser', `${name} (thread CPU time)`, cpu, 'MB/s');
  for (const f of compare.filter((x) => x.name === name))
    figure('parser', f.name, f.value, f.unit, f.baseline, f.baseline_value, { same_process: true });
}

// ---- encoder -----------------------------------------------------------------------------------
const encodeFigures = lines('figures.jsonl').filter((f) => f.name.startsWith('encode/'));
const encodePeers = lines('encode.jsonl');
const shapes = [...new Set(encodeFigures.map((f) => f.name.split('/')[1]))];
// scripts/bench runs ssepp-bench encode and the Node peers in turns, a few rounds, so that a slow
// moment of the machine does not fall on one side only: each figure is the median over rounds
// (for ssepp's own comparisons, the round with the median ratio, so value and baseline match).
const middle = (xs, key) => [...xs].sort((a, b) => key(a) - key(b))[Math.floor(xs.length / 2)];
for (const s of shapes) {
  const own = encodeFigures.filter((f) => f.name.split('/')[1] === s);
  const encodeTo = median(own.filter((f) => f.name.endsWith('/encode_to')).map((f) => f.value));
  const peersOf = encodePeers.filter((x) => x.shape === s);
  for (const encoder of [...new Set(peersOf.map((p) => p.encoder))]) {
    const runs = peersOf.filter((p) => p.encoder === encoder);
    const label = runs.every((p) => p.correct) ? encoder : `${encoder} (output loses data lines)`;
    if (encodeTo !== null) figure('encoder', `encode/${s}/encode_to`, encodeTo, 'MB/s', label, median(runs.map((p) => p.mb_per_s)));
  }
  const seen = new Set();
  for (const f of own) {
    const key = `${f.name}\u0000${f.baseline}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const m = middle(own.filter((x) => x.name === f.name && x.baseline === f.baseline), (x) => x.value / x.baseline_value);
    figure('encoder', m.name, m.value, m.unit, m.baseline, m.baseline_value, { same_process: true });
  }
}

// ---- in-memory fan-out -------------------------------------------------------------------------
for (const f of lines('figures.jsonl').filter((x) => x.name.startsWith('fanout/')))
  figure('fan-out in memory', f.name, f.value, f.unit, f.baseline, f.baseline_value, { same_process: true });

// ---- Redis -------------------------------------------------------------------------------------
for (const f of lines('figures.jsonl').filter((x) => x.name.startsWith('redis/')))
  figure('redis', f.name, f.value, f.unit, f.baseline ?? null, f.baseline_value ?? null, { same_process: true });

// ---- compression -------------------------------------------------------------------------------
for (const f of lines('figures.jsonl').filter((x) => x.name.startsWith('compress/')))
  figure('compression', f.name, f.value, f.unit, f.baseline ?? null, f.baseline_value ?? null, { same_process: true });

// ---- loopback ----------------------------------------------------------------------------------
const servers = {
  'ssepp-demo': 'ssepp demo (Beast, 1 thread)',
  'ssepp-minimal': 'ssepp minimal server (examples/asio, 1 thread)',
  'ssepp-epoll': 'ssepp Broadcaster on bare epoll (1 thread)',
  'node-http': 'Node http (Map + res.write)',
  'better-sse': 'better-sse channel',
  nchan: 'nginx + nchan (1 worker)',
  ceiling: 'no-library epoll writer (ceiling)',
};
const loop = lines('loopback.jsonl');
const pick = (server, kind, n) => {
  const all = loop.filter((l) => l.server === server && l.r.kind === kind && (n === undefined || l.r.clients === n));
  if (!all.length) return null;
  // Several passes: the best sustainable rate, the median of the fixed-load runs.
  if (kind === 'sustainable') return all.reduce((a, b) => (b.r.deliveries_per_s > a.r.deliveries_per_s ? b : a)).r;
  if (kind === 'fixed') {
    const sorted = [...all].sort((a, b) => a.r.p99_ms - b.r.p99_ms);
    return sorted[Math.floor(sorted.length / 2)].r;
  }
  return all[all.length - 1].r;
};
const loopbackDetail = [];
const ns = [...new Set(loop.filter((l) => l.r.kind === 'sustainable').map((l) => l.r.clients))].sort((a, b) => a - b);
// Ours three times: the Beast demo server (the issue's subject), the minimal server of the README
// (examples/asio), and the Broadcaster on the same bare epoll loop as the ceiling (what the
// library costs apart from an HTTP stack).
const oursKeys = { 'ssepp-demo': 'demo', 'ssepp-minimal': 'minimal', 'ssepp-epoll': 'epoll' };
const peers = ['node-http', 'better-sse', 'nchan', 'ceiling'];
// Server CPU per delivered event at the fixed load: what each delivery costs the server, which
// (unlike a rate) does not depend on how much of its core a busy machine left it.
const perDelivery = (r) => (r && r.received_in_window ? (r.server_cpu * 1e6 * r.window_s) / r.received_in_window : null);
for (const n of ns) {
  for (const [key, label] of Object.entries(servers)) {
    loopbackDetail.push({ n, server: label, key, sustainable: pick(key, 'sustainable', n), fixed: pick(key, 'fixed', n) });
  }
  for (const [oursKey, short] of Object.entries(oursKeys)) {
    const ours = pick(oursKey, 'sustainable', n);
    if (!ours) continue;
    const base = `loopback/${n}/${short}`;
    for (const peer of peers) {
      const s = pick(peer, 'sustainable', n);
      if (!s) continue;
      const extra = {};
      if (!s.pass) {
        // The peer failed even at the lowest rate tried: its sustainable rate is below that, so
        // the ratio is at least ours / lowest.
        const tried = loop.filter((l) => l.server === peer && l.r.kind === 'step' && l.r.clients === n);
        const lowest = Math.min(...tried.map((l) => l.r.deliveries_per_s));
        if (Number.isFinite(lowest) && lowest > 0 && ours.deliveries_per_s > 0) {
          extra.ratio_at_least = ours.deliveries_per_s / lowest;
          extra.note = `${servers[peer]} missed p99 <= 100 ms / 99% delivered at every rate tried, down to ${num(lowest, 'deliveries/s')}/s`;
        }
      }
      figure('fan-out over loopback', `${base}/sustainable`, ours.deliveries_per_s, 'deliveries/s', servers[peer], s.deliveries_per_s, extra);
    }
    const oursCost = perDelivery(pick(oursKey, 'fixed', n));
    if (oursCost !== null)
      for (const peer of peers) {
        const c = perDelivery(pick(peer, 'fixed', n));
        if (c !== null) figure('fan-out over loopback', `${base}/server-cpu-per-delivery`, oursCost, 'µs', servers[peer], c);
      }
    const fixed = pick(oursKey, 'fixed', n);
    const nodeFixed = pick('node-http', 'fixed', n);
    if (fixed) {
      const k = `fixed-${Math.round(fixed.deliveries_per_s / 1000)}k`;
      figure('fan-out over loopback', `${base}/${k}/p99`, fixed.p99_ms, 'ms', nodeFixed ? servers['node-http'] : null, nodeFixed ? nodeFixed.p99_ms : null);
      figure('fan-out over loopback', `${base}/${k}/cpu`, fixed.server_cpu * 100, '% of a core', nodeFixed ? servers['node-http'] : null, nodeFixed ? nodeFixed.server_cpu * 100 : null);
      // nginx + nchan, the C server: p99 at the same fixed load side by side.
      const nchanFixed = pick('nchan', 'fixed', n);
      if (nchanFixed) figure('fan-out over loopback', `${base}/${k}/p99`, fixed.p99_ms, 'ms', servers.nchan, nchanFixed.p99_ms);
    }
  }
}
for (const [key, label] of Object.entries(servers)) {
  const idle = pick(key, 'idle');
  if (idle) loopbackDetail.push({ idle: true, key, server: label, r: idle });
}
const nodeIdle = pick('node-http', 'idle');
const nchanIdle = pick('nchan', 'idle');
for (const [oursKey, short] of Object.entries(oursKeys)) {
  const oursIdle = pick(oursKey, 'idle');
  if (!oursIdle) continue;
  const name = `loopback/${oursIdle.clients}/${short}/idle-rss-per-connection`;
  figure('fan-out over loopback', name, oursIdle.kb_per_connection, 'KB',
    nodeIdle ? servers['node-http'] : null, nodeIdle ? nodeIdle.kb_per_connection : null);
  if (nchanIdle) figure('fan-out over loopback', name, oursIdle.kb_per_connection, 'KB', servers.nchan, nchanIdle.kb_per_connection);
}

// ---- loopback: compression and scale -------------------------------------------------------------
const scaleDetail = [];
// The demo with --compress (server "ssepp-demo-gzip" in loopback.jsonl, driven by ssepp-load
// --gzip) beside nchan (uncompressed) and the plain demo of the same run; ssepp::asio's CPU per
// delivery plain vs gzip (asio-compress.jsonl); and the scale rows (scale.jsonl): RSS per idle
// stream and the time one broadcast takes to reach every stream.
{
  const gz = 'ssepp-demo-gzip';
  const gzLabel = 'ssepp demo with --compress (gzip, 1 thread)';
  const plainLabel = servers['ssepp-demo'];
  const perEvent = (r, key) => (r && r.received_in_window && r[key] !== undefined ? r[key] / r.received_in_window : null);
  for (const n of ns) {
    const s = pick(gz, 'sustainable', n);
    const f = pick(gz, 'fixed', n);
    if (s || f) loopbackDetail.push({ n, server: gzLabel, key: gz, sustainable: s, fixed: f });
    const base = `loopback/${n}/demo-gzip`;
    if (s) {
      const nchan = pick('nchan', 'sustainable', n);
      if (nchan) figure('compression over loopback', `${base}/sustainable`, s.deliveries_per_s, 'deliveries/s', `${servers.nchan}, uncompressed`, nchan.deliveries_per_s);
      const plain = pick('ssepp-demo', 'sustainable', n);
      if (plain) figure('compression over loopback', `${base}/sustainable`, s.deliveries_per_s, 'deliveries/s', plainLabel, plain.deliveries_per_s);
    }
    const cost = perDelivery(f);
    const plainFixed = pick('ssepp-demo', 'fixed', n);
    if (cost !== null) {
      const plainCost = perDelivery(plainFixed);
      if (plainCost !== null) figure('compression over loopback', `${base}/server-cpu-per-delivery`, cost, 'µs', plainLabel, plainCost);
      const nchanCost = perDelivery(pick('nchan', 'fixed', n));
      if (nchanCost !== null) figure('compression over loopback', `${base}/server-cpu-per-delivery`, cost, 'µs', `${servers.nchan}, uncompressed`, nchanCost);
    }
    // Bytes per event at the batches the demo forms at the fixed load: the compressed content
    // against the same events inflated, and the TCP payload (chunked framing included) against
    // the plain demo's at the same load.
    const body = perEvent(f, 'body_bytes');
    const inflated = perEvent(f, 'inflated_bytes');
    if (body !== null && inflated && f.coded_streams > 0)
      figure('compression over loopback', `${base}/fixed-${Math.round(f.deliveries_per_s / 1000)}k/content-bytes-per-event`, body, 'B', 'the same events inflated', inflated);
    const wire = perEvent(f, 'wire_bytes');
    const plainWire = perEvent(plainFixed, 'wire_bytes');
    if (wire !== null && plainWire)
      figure('compression over loopback', `${base}/fixed-${Math.round(f.deliveries_per_s / 1000)}k/wire-bytes-per-event`, wire, 'B', `${plainLabel}, same load`, plainWire);
  }
  // ssepp::asio on loopback sockets, plain against gzip (ssepp-asio-compress): CPU per delivery.
  const ac = lines('asio-compress.jsonl').filter((l) => l.bench === 'asio-compress');
  const acPlain = ac.filter((l) => l.mode === 'plain');
  const acGzip = ac.filter((l) => l.mode === 'gzip');
  if (acPlain.length && acGzip.length) {
    const p = acPlain[acPlain.length - 1];
    const g = acGzip[acGzip.length - 1];
    const at = `asio-compress/${g.clients}x${g.rate}`; // streams x events/s
    figure('compression over loopback', `${at}/gzip/cpu-per-delivery`, g.cpu_us_per_delivery, 'µs', 'ssepp::asio plain, same load', p.cpu_us_per_delivery, { same_process: true });
    figure('compression over loopback', `${at}/gzip/wire-bytes-per-delivery`, g.wire_bytes_per_delivery, 'B', 'ssepp::asio plain, same load', p.wire_bytes_per_delivery, { same_process: true });
  }
  // Scale: as many idle streams as the limits allow, per server.
  const scaleLabels = { 'ssepp-demo': 'demo', 'ssepp-minimal': 'minimal', [gz]: 'demo-gzip' };
  const scaleRuns = lines('scale.jsonl');
  const scaleOf = (server) => {
    const all = scaleRuns.filter((l) => l.server === server && l.r.kind === 'scale');
    return all.length ? all[all.length - 1].r : null;
  };
  const nchanScale = scaleOf('nchan');
  const plainScale = scaleOf('ssepp-demo');
  for (const [server, short] of Object.entries(scaleLabels)) {
    const r = scaleOf(server);
    if (!r) continue;
    const base = `scale/${r.streams}/${short}`;
    const baseline = server === gz ? plainScale : nchanScale;
    const bLabel = server === gz ? `${plainLabel}, uncompressed` : servers.nchan;
    const bOk = baseline && baseline.streams === r.streams;
    // A compressed stream holds its deflater from its first bytes until it has been idle for the
    // coding's idle_release (30 s by default): the streams just opened here all still hold one.
    const idleName = server === gz ? 'rss-per-stream-just-opened' : 'rss-per-idle-stream';
    figure('scale', `${base}/${idleName}`, r.kb_per_stream, 'KB', bOk ? bLabel : null, bOk ? baseline.kb_per_stream : null);
    if (server === gz) {
      // Active compressed streams: RSS after the broadcasts (every deflater in use), above the
      // uncompressed demo's at the same point.
      if (bOk) figure('scale', `${base}/extra-rss-per-active-stream`, r.kb_per_stream_after_broadcasts - baseline.kb_per_stream_after_broadcasts, 'KB');
    }
    figure('scale', `${base}/broadcast-to-all`, r.broadcast_ms, 'ms', bOk ? bLabel : null, bOk ? baseline.broadcast_ms : null);
  }
  for (const server of ['ssepp-demo', 'ssepp-minimal', 'nchan', gz]) {
    const r = scaleOf(server);
    if (r) scaleDetail.push({ server: server === gz ? gzLabel : servers[server], r });
  }
}
// ---- redis scale -------------------------------------------------------------------------------
// ssepp-bench redis's scale rows: the /publish path (the handler's work in-process, and POSTs to
// ssepp-demo --redis over keep-alive connections) against one send per round trip, the
// aggregate send rate over 1, 2 and 4 shards and 1-4 nodes, each node's read share against its
// clients' share of the traffic.
for (const f of lines('figures.jsonl').filter((x) => x.name.startsWith('redis_scale/')))
  figure('redis scale', f.name, f.value, f.unit, f.baseline ?? null, f.baseline_value ?? null, { same_process: true });
// ---- client ------------------------------------------------------------------------------------
for (const f of lines('client.jsonl').filter((x) => x.name && x.name.startsWith('client/')))
  figure('client', f.name, f.value, f.unit, f.baseline ?? null, f.baseline_value ?? null,
    { same_process: !/eventsource/.test(f.baseline ?? '') });

// ---- targets -----------------------------------------------------------------------------------
// Each target applies to the figures whose name and baseline match; `check` gets the figure.
const targets = [
  { name: /^parse\/[^/]+\/ssepp$/, baseline: /string chunks/, text: '≥ 2x', check: (f) => f.ratio >= 2 },
  { name: /^parse\/json\/ssepp$/, baseline: /string chunks/, text: '≥ 4000 MB/s', check: (f) => f.value >= 4000 },
  { name: /^parse\/[^/]+\/ssepp$/, baseline: /memchr/, text: '≥ 0.4x', check: (f) => f.ratio >= 0.4 },
  { name: /^encode\/[^/]+\/encode_to$/, baseline: /^eventsource-encoder/, text: '≥ 10x', check: (f) => f.ratio >= 10 },
  { name: /^encode\/json150\/encode_to$/, baseline: /plain append/, text: '≥ 0.7x', check: (f) => f.ratio >= 0.7 },
  { name: /^fanout\/noop\/[^/]+$/, baseline: /naive/, text: '≥ 20M/s', check: (f) => f.value >= 20e6 },
  { name: /^fanout\/(noop|mailbox)\/[^/]+$/, baseline: /naive/, text: '≥ 10x', check: (f) => f.ratio >= 10 },
  { name: /^fanout\/.*\/allocs-per-recipient$/, baseline: null, text: '0', check: (f) => f.value === 0 },
  { name: /^loopback\/\d+\/\w+\/sustainable$/, baseline: /^Node http/, text: '≥ 3x', check: (f) => f.ratio >= 3 },
  { name: /^loopback\/\d+\/\w+\/sustainable$/, baseline: /^better-sse/, text: '≥ 8x', check: (f) => f.ratio >= 8 },
  { name: /^loopback\/\d+\/epoll\/sustainable$/, baseline: /ceiling/, text: '≥ 0.7x', check: (f) => f.ratio >= 0.7 },
  { name: /^loopback\/\d+\/\w+\/sustainable$/, baseline: /nchan/, text: '≥ 10x', check: (f) => f.ratio >= 10 },
  { name: /^loopback\/\d+\/\w+\/fixed-\d+k\/p99$/, baseline: /nchan/, text: '≤ 1x nchan', check: (f) => f.ratio <= 1 },
  { name: /^loopback\/\d+\/\w+\/server-cpu-per-delivery$/, baseline: /nchan/, text: '≤ 1x nchan', check: (f) => f.ratio <= 1 },
  { name: /^loopback\/\d+\/\w+\/idle-rss-per-connection$/, baseline: /nchan/, text: '≤ 0.25x nchan', check: (f) => f.ratio <= 0.25 },
  { name: /^loopback\/\d+\/\w+\/fixed-\d+k\/p99$/, baseline: /./, text: '≤ 10 ms', check: (f) => f.value <= 10 },
  { name: /^loopback\/\d+\/\w+\/idle-rss-per-connection$/, baseline: /./, text: '≤ 8 KB', check: (f) => f.value <= 8 },
  // The demo and the minimal server, both on ssepp::asio: ≥ 0.8x the no-library ceiling.
  { name: /^loopback\/\d+\/(demo|minimal)\/sustainable$/, baseline: /ceiling/, text: '≥ 0.8x', check: (f) => f.ratio >= 0.8 },
  // Scale (issue 16): idle RSS per stream at most a quarter of nchan's.
  { name: /^scale\/\d+\/(demo|minimal)\/rss-per-idle-stream$/, baseline: /nchan/, text: '≤ 0.25x nchan', check: (f) => f.ratio <= 0.25 },
  // Compression (issue 18): per stream, at most 2 KB idle and 32 KB active above a plain one.
  { name: /^compress\/[^/]+\/idle stream memory$/, baseline: null, text: '≤ 2 KB', check: (f) => f.value <= 2048 },
  { name: /^compress\/[^/]+\/active stream memory$/, baseline: /./, text: '≤ 32 KB', check: (f) => f.value <= 32768 },
  { name: /^scale\/\d+\/demo-gzip\/extra-rss-per-active-stream$/, baseline: null, text: '≤ 32 KB', check: (f) => f.value <= 32 },
  { name: /^redis_scale\/publish_path_\d+_handlers_pipelined$/, baseline: /one_per_round_trip/, text: '≥ 5x', check: (f) => f.ratio >= 5 },
  { name: /^redis_scale\/http_publish_\d+_threads_(16|64)_connections$/, baseline: /one_per_round_trip/, text: '≥ 5x', check: (f) => f.ratio >= 5 },
  { name: /^redis_scale\/read_share_/, baseline: /interest_share/, text: '1x (its clients\' share)', check: (f) => Math.abs(f.ratio - 1) < 0.01 },
  { name: /^client\/[^/]+ plain \(MB\/s\)$/, baseline: /^ssepp::Parser alone/, text: '≥ 0.7x', check: (f) => f.ratio >= 0.7 },
  { name: /^client\/[^/]+ plain \(MB\/s\)$/, baseline: /^npm eventsource/, text: '≥ 5x', check: (f) => f.ratio >= 5 },
];
for (const f of figures) {
  f.checks = [];
  for (const t of targets) {
    if (!t.name.test(f.name)) continue;
    if (t.baseline === null ? f.baseline !== null : !(f.baseline && t.baseline.test(f.baseline))) continue;
    // Ratios compared at four significant digits, as printed: rates are printed rounded, so a
    // bisected 3x can come out as 2.99998.
    const ratio = f.ratio === null && f.ratio_at_least ? f.ratio_at_least : f.ratio;
    const ok = f.value === null || f.value === undefined ? false
      : t.check({ ...f, ratio: ratio === null ? null : Number(ratio.toPrecision(4)) });
    if (ok === null) continue;
    f.checks.push({ text: t.text, ok, ratio: t.text.endsWith('x') });
  }
  f.target = f.checks.length ? f.checks.map((c) => c.text).join(', ') : null;
  f.met = f.checks.length ? f.checks.every((c) => c.ok) : null;
}

// ---- results.jsonl -----------------------------------------------------------------------------
const round = (x, d = 4) => (x === null || x === undefined ? null : Number(x.toPrecision(d + 2)));
writeFileSync(
  resultsPath,
  figures
    .map((f) =>
      JSON.stringify({
        name: f.name,
        value: round(f.value),
        unit: f.unit,
        baseline: f.baseline,
        baseline_value: round(f.baseline_value),
        ratio: round(f.ratio, 3),
        ...(f.ratio_at_least ? { ratio_at_least: round(f.ratio_at_least, 3), note: f.note } : {}),
        target: f.target,
        met: f.met,
      }),
    )
    .join('\n') + '\n',
);

// ---- table -------------------------------------------------------------------------------------
const out = [];
out.push('| figure | ssepp | unit | baseline | baseline value | ratio | target | met |');
out.push('| --- | ---: | --- | --- | ---: | ---: | --- | --- |');
for (const f of figures) {
  out.push(
    `| ${f.name} | ${num(f.value, f.unit)} | ${f.unit} | ${f.baseline ?? '–'} | ${num(f.baseline_value, f.unit)} | ` +
      `${f.ratio !== null ? `${f.ratio.toFixed(2)}x` : f.ratio_at_least ? `> ${f.ratio_at_least.toFixed(1)}x` : '–'} | ${f.target ?? ''} | ${f.met === null ? '' : f.met ? 'yes' : `**MISSED** ${f.checks.filter((c) => !c.ok).map((c) => c.text).join(', ')}`} |`,
  );
}
if (loopbackDetail.length) {
  out.push('');
  out.push('Fan-out over loopback, every server (server pinned to one core, load client to the other):');
  out.push('');
  out.push('| N | server | sustainable deliveries/s | p99 there | server CPU there | RSS there | load client CPU there | p50 at fixed | p99 at fixed | server CPU at fixed | server CPU per delivery | RSS at fixed |');
  out.push('| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const d of loopbackDetail.filter((x) => !x.idle)) {
    const s = d.sustainable;
    const f = d.fixed;
    const pct = (x) => (x === undefined ? '–' : `${Math.round(x * 100)}%`);
    const mb = (x) => (x === undefined ? '–' : `${(x / 1024).toFixed(0)} MB`);
    out.push(
      `| ${d.n} | ${d.server} | ${s ? num(s.deliveries_per_s, 'deliveries/s') : '–'} | ${s && s.pass ? `${num(s.p99_ms)} ms` : '–'} | ` +
        `${s && s.pass ? pct(s.server_cpu) : '–'} | ${s && s.pass ? mb(s.rss_kb) : '–'} | ` +
        `${s && s.pass ? `${pct(s.client_cpu)}${s.client_cpu >= 0.9 ? ' (client-bound)' : ''}` : '–'} | ${f ? `${num(f.p50_ms)} ms` : '–'} | ` +
        `${f ? `${num(f.p99_ms)} ms${f.pass ? '' : ` (${(f.delivered_frac * 100).toFixed(0)}% delivered)`}` : '–'} | ` +
        `${f ? pct(f.server_cpu) : '–'} | ${f && f.received_in_window ? `${num((f.server_cpu * 1e6 * f.window_s) / f.received_in_window)} µs` : '–'} | ${f ? mb(f.rss_kb) : '–'} |`,
    );
  }
  out.push('');
  out.push('| server | RSS empty | RSS with N idle streams | N | KB per idle stream |');
  out.push('| --- | ---: | ---: | ---: | ---: |');
  for (const d of loopbackDetail.filter((x) => x.idle))
    out.push(
      `| ${d.server} | ${(d.r.rss_empty_kb / 1024).toFixed(1)} MB | ${(d.r.rss_idle_kb / 1024).toFixed(1)} MB | ${d.r.clients} | ${d.r.kb_per_connection.toFixed(2)} |`,
    );
}
if (scaleDetail.length) {
  out.push('');
  out.push('Scale: as many idle streams as the descriptor limits allow, then single broadcasts:');
  out.push('');
  out.push('| server | streams | RSS empty | RSS idle | KB per idle stream | KB per stream after broadcasts | one broadcast to every stream (median) | delivered |');
  out.push('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const { server, r } of scaleDetail)
    out.push(
      `| ${server} | ${r.streams} | ${(r.rss_empty_kb / 1024).toFixed(1)} MB | ${(r.rss_idle_kb / 1024).toFixed(1)} MB | ${r.kb_per_stream.toFixed(2)} | ` +
        `${r.kb_per_stream_after_broadcasts.toFixed(2)} | ${num(r.broadcast_ms)} ms | ${(r.delivered_frac * 100).toFixed(1)}% |`,
    );
}
console.log(out.join('\n'));

// ---- chart -------------------------------------------------------------------------------------
// One row per ratio figure, log scale, 1x in the middle; bars green where the target is met,
// red where it is missed, grey without a target; a tick marks the target ratio.
const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
// Rows without a drawable ratio (a sustainable rate of 0 on either side) are drawn as text.
const rows = figures.filter((f) => f.baseline !== null && (f.ratio !== null || f.section === 'fan-out over loopback'));
const drawable = (f) => f.ratio !== null && Number.isFinite(f.ratio) && f.ratio > 0;
const lowerIsBetter = (f) => ['ms', 'µs', 'KB'].includes(f.unit) || f.unit.startsWith('%');
const targetRatio = (f) => {
  const m = /([≥≤]) ([\d.]+)x/.exec(f.target ?? '');
  return m ? Number(m[2]) : null;
};
const W = 980;
const labelW = 430;
const plotX = labelW + 10;
const plotW = W - plotX - 70;
const minL = -1;
const maxL = 3; // 0.1x .. 1000x
const xOf = (r) => plotX + ((Math.min(Math.max(Math.log10(r), minL), maxL) - minL) / (maxL - minL)) * plotW;
const rowH = 19;
let y = 70;
const svg = [];
let section = null;
for (const f of rows) {
  if (f.section !== section) {
    section = f.section;
    y += 10;
    svg.push(`<text x="10" y="${y + 12}" class="h">${esc(section)}</text>`);
    y += rowH;
  }
  const ratioChecks = f.checks.filter((c) => c.ratio || f.ratio === null || lowerIsBetter(f));
  const colour = !ratioChecks.length ? '#9aa3ad' : ratioChecks.every((c) => c.ok) ? '#2e9e5b' : '#d0453c';
  if (!drawable(f)) {
    const label = `${f.name}  vs  ${f.baseline}`;
    svg.push(`<text x="${labelW}" y="${y + 13}" class="l" text-anchor="end">${esc(label.length > 70 ? label.slice(0, 69) + '…' : label)}</text>`);
    const what = f.ratio_at_least
      ? `more than ${f.ratio_at_least.toFixed(1)}x: the baseline passed no rate tried`
      : `ssepp ${num(f.value, f.unit)} vs ${num(f.baseline_value, f.unit)} ${f.unit}: ${
          f.value ? 'the baseline' : f.baseline_value ? 'ssepp' : 'neither'} passed any rate tried`;
    svg.push(`<text x="${(xOf(1) + 4).toFixed(1)}" y="${y + 13}" class="v" fill="${colour}">${esc(what)}</text>`);
    y += rowH;
    continue;
  }
  const x1 = xOf(1);
  const x2 = xOf(f.ratio);
  const label = `${f.name}  vs  ${f.baseline}`;
  svg.push(`<text x="${labelW}" y="${y + 13}" class="l" text-anchor="end">${esc(label.length > 70 ? label.slice(0, 69) + '…' : label)}</text>`);
  svg.push(`<rect x="${Math.min(x1, x2).toFixed(1)}" y="${y + 3}" width="${Math.max(1, Math.abs(x2 - x1)).toFixed(1)}" height="${rowH - 6}" fill="${colour}"/>`);
  const t = targetRatio(f);
  if (t) svg.push(`<line x1="${xOf(t).toFixed(1)}" x2="${xOf(t).toFixed(1)}" y1="${y + 1}" y2="${y + rowH - 1}" stroke="#222" stroke-width="2"/>`);
  const tag = `${f.ratio >= 10 ? f.ratio.toFixed(0) : f.ratio.toFixed(2)}x${lowerIsBetter(f) ? ' (lower is better)' : ''}`;
  svg.push(`<text x="${(Math.max(x1, x2) + 4).toFixed(1)}" y="${y + 13}" class="v">${esc(tag)}</text>`);
  y += rowH;
}
const H = y + 40;
const grid = [];
for (let l = minL; l <= maxL; ++l) {
  const x = xOf(10 ** l);
  grid.push(`<line x1="${x}" x2="${x}" y1="60" y2="${H - 30}" stroke="${l === 0 ? '#444' : '#ddd'}"/>`);
  grid.push(`<text x="${x}" y="${H - 14}" class="v" text-anchor="middle">${10 ** l}x</text>`);
}
const title = `ssepp beside its peers: ratio ssepp / baseline, same run, same machine${meta.quick ? ' (--quick)' : ''}`;
const sub = [meta.cpu, meta.cores ? `${meta.cores} cores` : null, meta.date].filter(Boolean).join(' · ');
writeFileSync(
  chartPath,
  `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif">
<style>.h{font-size:14px;font-weight:bold;fill:#222}.l{font-size:11px;fill:#333}.v{font-size:11px;fill:#333}.t{font-size:16px;font-weight:bold}.s{font-size:11px;fill:#666}</style>
<rect width="100%" height="100%" fill="#fff"/>
<text x="10" y="24" class="t">${esc(title)}</text>
<text x="10" y="42" class="s">${esc(sub)} · green: target met · red: missed · grey: no target · black tick: target</text>
${grid.join('\n')}
${svg.join('\n')}
</svg>
`,
);
