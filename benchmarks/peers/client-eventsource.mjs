// The npm `eventsource` client (EventSource for Node) reading one stream, as ssepp-client-bench
// measures ssepp::asio::EventClient: wall clock from the open (the response head) to the last
// event, every event counted by a listener ("message" and the corpora's "update").
//   node client-eventsource.mjs URL --bytes B --events N [--runs R]
// Prints one JSON line: {"who":"eventsource","mb_per_s","events_per_s","runs"} (medians).
import { EventSource } from 'eventsource';
import { option, positional } from './args.mjs';

const [url] = positional();
const bytes = Number(option('--bytes', '0'));
const events = Number(option('--events', '0'));
const runs = Number(option('--runs', '5'));
if (!url || !bytes || !events) {
  console.error('usage: node client-eventsource.mjs URL --bytes B --events N [--runs R]');
  process.exit(2);
}

function once() {
  return new Promise((resolve, reject) => {
    const es = new EventSource(url);
    let seen = 0;
    let opened = 0;
    const timer = setTimeout(() => {
      es.close();
      reject(new Error(`timed out after ${seen} of ${events} events`));
    }, 120000);
    const count = () => {
      if (++seen === events) {
        const seconds = (performance.now() - opened) / 1000;
        clearTimeout(timer);
        es.close();
        resolve(seconds);
      }
    };
    es.onopen = () => {
      opened = performance.now();
    };
    es.addEventListener('message', count);
    es.addEventListener('update', count);
    es.onerror = () => {
      if (seen < events) {
        clearTimeout(timer);
        es.close();
        reject(new Error(`the stream ended after ${seen} of ${events} events`));
      }
    };
  });
}

const seconds = [];
for (let i = 0; i < runs; ++i) seconds.push(await once());
seconds.sort((a, b) => a - b);
const s = seconds[Math.floor(seconds.length / 2)];
console.log(JSON.stringify({ who: 'eventsource', mb_per_s: bytes / s / 1e6, events_per_s: events / s, runs }));
