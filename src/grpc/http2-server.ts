import { EventEmitter } from 'node:events';
import http2, { type Http2Server, type IncomingHttpHeaders, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2';
import type { AddressInfo } from 'node:net';
import * as grpc from '@grpc/grpc-js';

/**
 * The gRPC protocol (https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md) on node:http2,
 * serving services written for @grpc/grpc-js (the same `addService(definition, implementation)`,
 * so the standard health and reflection services plug in unchanged).
 *
 * Why not grpc-js's own server: it hands a stream's messages to the application one at a time,
 * each through a promise, a pause and a resume of the HTTP/2 stream, and writes each response
 * message on its own. Measured on the 2-core VM with a Go client, one Publish stream of one-event
 * batches acked at once: grpc-js 44,500 messages/s; this framing on node:http2 325,000. Here every
 * message of a DATA chunk is decoded in one pass, and the responses written in one turn of the
 * event loop go out as one write.
 *
 * Left out, as the daemon does not need them: compression (a compressed message is refused with
 * UNIMPLEMENTED; responses are never compressed), TLS (a proxy terminates it), server-side
 * deadlines (clients enforce their own).
 */

export interface Http2GrpcServerOptions {
  /** Largest message a client may send, in bytes (RESOURCE_EXHAUSTED beyond). */
  maxMessageBytes: number;
  /** A connection without any traffic for this long is closed. */
  idleTimeoutMs: number;
}

type Handler = (...args: any[]) => void;

interface Method {
  definition: grpc.MethodDefinition<unknown, unknown>;
  handler: Handler;
}

/** A status to end a call with; grpc-js's ServiceError has this shape. */
export interface CallStatus {
  code: grpc.status;
  details: string;
}

const RESPONSE_HEADERS = { ':status': 200, 'content-type': 'application/grpc+proto', 'grpc-accept-encoding': 'identity' };
const FRAME_HEADER_BYTES = 5;

export class Http2GrpcServer {
  readonly #options: Http2GrpcServerOptions;
  readonly #methods = new Map<string, Method>();
  readonly #sessions = new Set<ServerHttp2Session>();
  /** Calls that only the server ends (health Watch): ended when the server shuts down. */
  readonly #serverStreams = new Set<ServerCall>();
  readonly #server: Http2Server;
  #closing = false;

  constructor(options: Http2GrpcServerOptions) {
    this.#options = options;
    this.#server = http2.createServer();
    this.#server.on('session', (session) => {
      this.#sessions.add(session);
      session.on('close', () => this.#sessions.delete(session));
      session.on('error', () => {});
      session.setTimeout(options.idleTimeoutMs, () => session.close());
      // A connection accepted while shutting down gets its GOAWAY too.
      if (this.#closing) session.close();
    });
    this.#server.on('stream', (stream, headers) => this.#dispatch(stream, headers));
  }

  /** As grpc-js's Server.addService: the methods of `service`, each served by the function of its name. */
  addService(service: grpc.ServiceDefinition, implementation: Record<string, Handler | undefined>): void {
    for (const [name, definition] of Object.entries(service)) {
      const handler = implementation[name] ?? implementation[(definition as { originalName?: string }).originalName ?? ''];
      if (handler) this.#methods.set(definition.path, { definition, handler });
    }
  }

  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(port, host, () => {
        this.#server.off('error', reject);
        // An accept error (too many open files) fails that connection, not the daemon.
        this.#server.on('error', () => {});
        resolve((this.#server.address() as AddressInfo).port);
      });
    });
  }

  /** Takes no new connection, asks clients to open no new call (GOAWAY), and resolves once every call has ended. */
  shutdown(): Promise<void> {
    this.#closing = true;
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const call of this.#serverStreams) call.sendStatus({ code: grpc.status.UNAVAILABLE, details: 'server is shutting down' });
    for (const session of this.#sessions) session.close();
    return closed;
  }

  /** Cuts every connection at once. */
  forceShutdown(): void {
    for (const session of this.#sessions) session.destroy();
    this.#server.close();
  }

  #dispatch(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void {
    stream.on('error', () => {});
    if (headers[':method'] !== 'POST' || !GRPC_CONTENT_TYPE.test(String(headers['content-type'] ?? ''))) {
      if (isOpen(stream)) stream.respond({ ':status': 415 }, { endStream: true });
      return;
    }
    const call = new ServerCall(stream, headers, this.#options.maxMessageBytes);
    const method = this.#methods.get(headers[':path'] ?? '');
    if (!method) return call.sendStatus({ code: grpc.status.UNIMPLEMENTED, details: `unknown method ${headers[':path']}` });
    const encoding = headers['grpc-encoding'];
    if (encoding !== undefined && encoding !== 'identity') {
      return call.sendStatus({ code: grpc.status.UNIMPLEMENTED, details: `compression ${encoding} is not supported; send identity` });
    }
    if (method.definition.responseStream && !method.definition.requestStream) {
      this.#serverStreams.add(call);
      call.once('close', () => this.#serverStreams.delete(call));
    }
    call.start(method.definition, method.handler);
  }
}

/** application/grpc, or application/grpc+proto (not gRPC-Web's application/grpc-web…). */
const GRPC_CONTENT_TYPE = /^application\/grpc(\+proto)?(;|$)/;

/** A stream the client has not reset or closed: respond() and write() would throw on another. */
function isOpen(stream: ServerHttp2Stream): boolean {
  return !stream.destroyed && !stream.closed;
}

/**
 * grpc-message as the protocol wants it: UTF-8, with `%` and every byte outside printable ASCII
 * percent-encoded (encodeURIComponent would also encode `:` or `,`, which clients leave as they are).
 */
function encodeStatusMessage(details: string): string {
  let encoded = '';
  for (const byte of Buffer.from(details, 'utf8')) {
    encoded += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return encoded;
}

/**
 * One call, with the interface of grpc-js's server calls that handlers use: `request` and
 * `metadata`; `data`, `end` and `cancelled` events; `write`, `end`, `pause`, `resume`; and
 * `sendStatus` to end it with an error.
 */
export class ServerCall<Request = unknown, Response = unknown> extends EventEmitter {
  readonly metadata: grpc.Metadata;
  request: Request | undefined;
  readonly #stream: ServerHttp2Stream;
  readonly #maxMessageBytes: number;
  #deserialize: (bytes: Buffer) => Request = () => undefined as Request;
  #serialize: (message: Response) => Buffer = () => Buffer.alloc(0);
  /** DATA chunks holding the start of a message not yet whole, and their total length. */
  #partial: Buffer[] = [];
  #partialBytes = 0;
  /** Response frames not written yet: those of one event-loop turn go out in one write. */
  #outgoing: Buffer[] = [];
  #flushScheduled = false;
  #headersSent = false;
  #ended = false;
  #halfClosed = false;

  constructor(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, maxMessageBytes: number) {
    super();
    this.#stream = stream;
    this.#maxMessageBytes = maxMessageBytes;
    this.metadata = grpc.Metadata.fromHttp2Headers(headers);
    const cancel = () => {
      if (this.#ended) return;
      this.#ended = true;
      this.emit('cancelled');
    };
    // Reset by the client: 'aborted' comes before 'close', and before 'end' when it reset with NO_ERROR.
    stream.on('aborted', cancel);
    stream.on('close', () => {
      cancel();
      this.emit('close');
    });
    stream.on('drain', () => this.emit('drain'));
  }

  start(definition: grpc.MethodDefinition<Request, Response>, handler: Handler): void {
    this.#deserialize = definition.requestDeserialize;
    this.#serialize = definition.responseSerialize;
    if (definition.requestStream) {
      this.#stream.on('data', (chunk: Buffer) => this.#receive(chunk, (message) => this.emit('data', message)));
      this.#stream.on('end', () => this.#endOfRequests(() => this.emit('end')));
      this.#guarded(() => handler(this));
      return;
    }
    // A single request: the handler is called once it has arrived whole.
    this.#stream.on('data', (chunk: Buffer) =>
      this.#receive(chunk, (message) => {
        if (this.request !== undefined) return this.sendStatus({ code: grpc.status.UNIMPLEMENTED, details: 'more than one request message for a unary method' });
        this.request = message;
      }),
    );
    this.#stream.on('end', () =>
      this.#endOfRequests(() => {
        if (this.request === undefined) return this.sendStatus({ code: grpc.status.UNIMPLEMENTED, details: 'no request message' });
        if (definition.responseStream) return this.#guarded(() => handler(this));
        this.#guarded(() =>
          handler(this, (error: CallStatus | null, response?: Response) => {
            if (error) return this.sendStatus(error);
            this.write(response as Response);
            this.end();
          }),
        );
      }),
    );
  }

  pause(): this {
    this.#stream.pause();
    return this;
  }

  resume(): this {
    this.#stream.resume();
    return this;
  }

  /** Queues a response message; false once the transport's buffer is full (wait for 'drain'). */
  write(message: Response): boolean {
    if (this.#ended) return false;
    let body: Buffer;
    try {
      body = this.#serialize(message);
    } catch {
      this.sendStatus({ code: grpc.status.INTERNAL, details: 'Error serializing response' });
      return false;
    }
    const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + body.length);
    frame[0] = 0;
    frame.writeUInt32BE(body.length, 1);
    body.copy(frame, FRAME_HEADER_BYTES);
    this.#outgoing.push(frame);
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      // After the promise callbacks of this turn: acks resolved by one commit share a write.
      process.nextTick(() => this.#flush());
    }
    return !this.#stream.writableNeedDrain;
  }

  /** Ends the call with OK once every message written is sent. */
  end(): void {
    this.sendStatus({ code: grpc.status.OK, details: '' });
  }

  /** Ends the call with this status: after the messages written, or alone (trailers-only) when there were none. */
  sendStatus(status: CallStatus): void {
    if (this.#ended) return;
    this.#ended = true;
    const trailers = { 'grpc-status': String(status.code), ...(status.details ? { 'grpc-message': encodeStatusMessage(status.details) } : {}) };
    // What a client sends after the status is read and dropped, so that it is not held by flow control.
    if (!this.#halfClosed) this.#stream.resume();
    if (!this.#headersSent && this.#outgoing.length === 0) {
      this.#headersSent = true;
      if (isOpen(this.#stream)) this.#stream.respond({ ...RESPONSE_HEADERS, ...trailers }, { endStream: true });
      return;
    }
    this.#flush();
    if (!isOpen(this.#stream)) return;
    this.#stream.once('wantTrailers', () => this.#stream.sendTrailers(trailers));
    this.#stream.end();
  }

  #flush(): void {
    this.#flushScheduled = false;
    if (this.#outgoing.length === 0 || !isOpen(this.#stream)) return;
    if (!this.#headersSent) {
      this.#headersSent = true;
      this.#stream.respond(RESPONSE_HEADERS, { waitForTrailers: true });
    }
    const frames = this.#outgoing;
    this.#outgoing = [];
    this.#stream.write(frames.length === 1 ? frames[0] : Buffer.concat(frames));
  }

  /** Ends the call with INTERNAL when a handler throws, as grpc-js does, rather than the process. */
  #guarded(run: () => void): void {
    try {
      run();
    } catch {
      this.sendStatus({ code: grpc.status.INTERNAL, details: 'internal error' });
    }
  }

  /** Splits DATA chunks into length-prefixed messages and hands each, decoded, to `deliver`. */
  #receive(chunk: Buffer, deliver: (message: Request) => void): void {
    if (this.#ended) return;
    if (this.#partial.length > 0) {
      // A large message arrives in many chunks: they are joined once it is whole, not chunk by chunk.
      this.#partial.push(chunk);
      this.#partialBytes += chunk.length;
      if (this.#partialBytes < FRAME_HEADER_BYTES) return;
      const head = this.#partial[0]!.length >= FRAME_HEADER_BYTES ? this.#partial[0]! : Buffer.concat(this.#partial);
      const length = head.readUInt32BE(1);
      // One over the limit goes on to be refused below.
      if (this.#partialBytes < FRAME_HEADER_BYTES + length && length <= this.#maxMessageBytes) return;
      chunk = Buffer.concat(this.#partial, this.#partialBytes);
      this.#partial = [];
      this.#partialBytes = 0;
    }
    const bytes = chunk;
    let offset = 0;
    while (bytes.length - offset >= FRAME_HEADER_BYTES) {
      const compressed = bytes[offset];
      const length = bytes.readUInt32BE(offset + 1);
      if (length > this.#maxMessageBytes) {
        return this.sendStatus({ code: grpc.status.RESOURCE_EXHAUSTED, details: `message of ${length} bytes is over the limit of ${this.#maxMessageBytes}` });
      }
      if (bytes.length - offset - FRAME_HEADER_BYTES < length) break;
      // The call's grpc-encoding is identity (others are refused at its start): a compressed message is a protocol error.
      if (compressed !== 0) return this.sendStatus({ code: grpc.status.INTERNAL, details: 'a compressed message without grpc-encoding' });
      const start = offset + FRAME_HEADER_BYTES;
      offset = start + length;
      let message: Request;
      try {
        message = this.#deserialize(bytes.subarray(start, offset));
      } catch {
        return this.sendStatus({ code: grpc.status.INTERNAL, details: 'Error deserializing request' });
      }
      deliver(message);
      if (this.#ended) return;
    }
    if (offset < bytes.length) {
      const rest = bytes.subarray(offset);
      this.#partial = [rest];
      this.#partialBytes = rest.length;
    }
  }

  #endOfRequests(then: () => void): void {
    this.#halfClosed = true;
    if (this.#ended) return;
    if (this.#partialBytes > 0) return this.sendStatus({ code: grpc.status.INTERNAL, details: 'the request ended in the middle of a message' });
    then();
  }
}
