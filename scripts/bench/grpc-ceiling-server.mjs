#!/usr/bin/env node
// The ceiling of the gRPC figures in `npm run bench`: Ingest/Publish on a bare node:http2 server,
// each batch decoded (protobufjs, from the proto file, as serve-grpc does) and acked at once, with
// no validation, store, ordering queue or metrics; the acks of one socket read go out in one write.
// Prints {"msg":"listening","url":…} like svc's daemons, so the bench starts both alike.
//
//   node scripts/bench/grpc-ceiling-server.mjs [--port 0]
import http2 from 'node:http2';
import { parseArgs } from 'node:util';
import { ingestCodec } from '../../dist/grpc/ingest-codec.js';

const { values } = parseArgs({ options: { port: { type: 'string', default: '0' } } });
const codec = ingestCodec(new URL('../../proto/svc/v1/ingest.proto', import.meta.url).pathname);

const server = http2.createServer();
server.on('stream', (stream) => {
  stream.respond({ ':status': 200, 'content-type': 'application/grpc+proto' }, { waitForTrailers: true });
  stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
  let pending = Buffer.alloc(0);
  let batch = 0;
  stream.on('data', (chunk) => {
    const bytes = pending.length > 0 ? Buffer.concat([pending, chunk]) : chunk;
    const acks = [];
    let offset = 0;
    while (bytes.length - offset >= 5) {
      const length = bytes.readUInt32BE(offset + 1);
      if (bytes.length - offset - 5 < length) break;
      const { events } = codec.decodeBatch(bytes.subarray(offset + 5, offset + 5 + length));
      offset += 5 + length;
      const ack = codec.encodeAck({ batch: ++batch, accepted: events.length, rejected: 0, rejections: [], replayed: false });
      const header = Buffer.alloc(5);
      header.writeUInt32BE(ack.length, 1);
      acks.push(header, ack);
    }
    pending = bytes.subarray(offset);
    if (acks.length > 0) stream.write(Buffer.concat(acks));
  });
  stream.on('end', () => stream.end());
  stream.on('error', () => {});
});
server.listen(Number(values.port), '127.0.0.1', () => console.log(JSON.stringify({ msg: 'listening', url: `127.0.0.1:${server.address().port}` })));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
