import { connect, type Socket } from 'node:net';

export interface RawResponse {
  /** 0 when the server closed the connection without answering. */
  status: number;
  headers: Record<string, string>;
  body: string;
  /** Milliseconds from connecting to the server closing the connection. */
  closedAfterMs: number;
}

/**
 * Sends bytes exactly as given (no client normalises them, unlike fetch) and collects everything
 * the server writes until it closes the connection. Rejects if it has not closed within `waitMs`.
 */
export function rawExchange(url: string, request: string | Buffer, waitMs = 10_000): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const socket = open(url);
    const started = performance.now();
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`the server did not close the connection within ${waitMs} ms`));
    }, waitMs);
    socket.on('data', (chunk) => chunks.push(chunk));
    // A reset after the answer (the server closing while data is still unread) is not a failure.
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ ...parseResponse(Buffer.concat(chunks)), closedAfterMs: performance.now() - started });
    });
    socket.write(request);
  });
}

/** A connection left open for the caller to write to slowly; `closed` resolves when the server closes it. */
export function rawConnection(url: string): { socket: Socket; closed: Promise<RawResponse> } {
  const socket = open(url);
  const started = performance.now();
  const chunks: Buffer[] = [];
  socket.on('data', (chunk) => chunks.push(chunk));
  socket.on('error', () => {});
  const closed = new Promise<RawResponse>((resolve) =>
    socket.on('close', () => resolve({ ...parseResponse(Buffer.concat(chunks)), closedAfterMs: performance.now() - started })),
  );
  return { socket, closed };
}

function open(url: string): Socket {
  const { hostname, port } = new URL(url);
  return connect(Number(port), hostname);
}

/** The first response in `raw` (status 0 when there is none). */
export function parseResponse(raw: Buffer): Omit<RawResponse, 'closedAfterMs'> {
  const text = raw.toString('latin1');
  const headEnd = text.indexOf('\r\n\r\n');
  if (!text.startsWith('HTTP/1.1 ') || headEnd === -1) return { status: 0, headers: {}, body: text };
  const [statusLine, ...lines] = text.slice(0, headEnd).split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const length = Number(headers['content-length'] ?? 0);
  // latin1 keeps one character per byte, so string offsets are byte offsets.
  const body = raw.subarray(headEnd + 4, headEnd + 4 + length).toString('utf8');
  return { status: Number(statusLine!.split(' ')[1]), headers, body };
}
