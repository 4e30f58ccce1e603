#!/usr/bin/env node
// Writes a seeded NDJSON event log shaped like the challenge's own generator (see
// src/workload/challenge.ts: a random count of events below 2,500 per domain, a bounce whenever
// i % floor(0.35 * count) == 0, no bounce for every 25th domain, mixed-case 14-letter names under
// net/com/org/io/gov, events of different domains interleaved) and, beside it, the counts every
// domain must end with: <out>.expected.json, keyed by normalised domain.
//
//   node scripts/generate-log.mjs --events 10000000 --out /tmp/events.ndjson [--seed 1] [--gzip]
import { createWriteStream } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { once } from 'node:events';
import { parseArgs } from 'node:util';
import { createGzip } from 'node:zlib';
import { createWorkload } from '../dist/workload/workload.js';

const { values } = parseArgs({
  options: {
    events: { type: 'string', default: '1000000' },
    out: { type: 'string' },
    seed: { type: 'string', default: '1' },
    domains: { type: 'string' },
  },
});
if (!values.out) {
  console.error('usage: generate-log.mjs --events N --out FILE[.gz] [--seed S] [--domains D]');
  process.exit(2);
}
const events = Number(values.events);
// The challenge averages 1,250 events per domain; a few more domains than that make sure the
// log reaches the requested size before the generator runs dry.
const domains = Number(values.domains ?? Math.max(1, Math.ceil((events / 1250) * 1.2)));
const workload = createWorkload({ distribution: 'challenge', domains, seed: Number(values.seed), repeat: false });

const file = createWriteStream(values.out);
const out = values.out.endsWith('.gz') ? createGzip() : file;
if (out !== file) out.pipe(file);
const expected = new Map();
let written = 0;
let lines = [];
while (written < events) {
  const event = workload.next();
  if (!event) break;
  const name = workload.name(event.index);
  lines.push(`{"domain":"${name}","type":"${event.type}"}`);
  const key = name.toLowerCase();
  const counts = expected.get(key) ?? { delivered: 0, bounced: 0 };
  counts[event.type]++;
  expected.set(key, counts);
  written++;
  if (lines.length === 10_000) {
    if (!out.write(lines.join('\n') + '\n')) await once(out, 'drain');
    lines = [];
  }
}
if (lines.length > 0) out.write(lines.join('\n') + '\n');
out.end();
await once(file, 'finish');
await writeFile(`${values.out}.expected.json`, JSON.stringify(Object.fromEntries(expected)));
console.error(`wrote ${written} events over ${expected.size} domains to ${values.out} (expected counts in ${values.out}.expected.json)`);
