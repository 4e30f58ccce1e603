#!/usr/bin/env node
// The ceiling of every HTTP figure in `npm run bench`: a bare node:http server that reads the
// whole request and answers at once, with no routing, parsing, store or metrics. Writes and
// batches get 202 and no body; reads get 200 and a status document of the size svc sends.
// With --parse, a POST body is also parsed as svc parses it (NDJSON lines, domains normalised)
// and answered as svc answers: the parse ceiling of batch ingestion.
// Prints {"msg":"listening","url":…} like svc's daemons, so the bench starts both alike.
//
//   node scripts/bench/ceiling-server.mjs [--port 0] [--workers 1] [--parse]
import cluster from 'node:cluster';
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';

import { parseNdjsonBatch } from '../../dist/core/ndjson.js';

const { values } = parseArgs({
  options: { port: { type: 'string', default: '0' }, workers: { type: 'string', default: '1' }, parse: { type: 'boolean', default: false } },
});
const workers = Number(values.workers);
const STATUS = JSON.stringify({ domain: 'xxxxxxxxxxxxxx.com', status: 'unknown', delivered: 1, bounced: 0 });

if (workers > 1 && cluster.isPrimary) {
  // Workers share the primary's listening socket; the first to listen announces the port.
  let announced = false;
  for (let i = 0; i < workers; i++) {
    cluster.fork().on('message', (message) => {
      if (!announced) console.log(JSON.stringify({ msg: 'listening', url: message }));
      announced = true;
    });
  }
  process.on('SIGTERM', () => {
    for (const worker of Object.values(cluster.workers)) worker.kill('SIGTERM');
    process.exit(0);
  });
} else {
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (chunk) => values.parse && chunks.push(chunk));
    req.on('end', () => {
      if (req.method === 'GET') res.writeHead(200, { 'content-type': 'application/json' }).end(STATUS);
      else if (values.parse && req.method === 'POST') {
        const { events, rejected, errors } = parseNdjsonBatch(Buffer.concat(chunks).toString('utf8'));
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ accepted: events.length, rejected, errors }));
      } else res.writeHead(202).end();
    });
  });
  // Workers that all listen on port 0 share one port, picked by the primary.
  server.listen(Number(values.port), '127.0.0.1', () => {
    const url = `http://127.0.0.1:${server.address().port}`;
    if (cluster.isWorker) process.send(url);
    else console.log(JSON.stringify({ msg: 'listening', url }));
  });
  process.on('SIGTERM', () => process.exit(0));
}
