import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { chunkLog } from '../src/replay/chunks.js';
import { eachLine } from '../src/replay/lines.js';

/** A seeded generator (mulberry32), so a failure can be reproduced. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The bytes cut into pieces at random boundaries, as a file or socket stream may deliver them. */
function pieces(bytes: Buffer, next: () => number, maxPiece: number): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at < bytes.length; ) {
    const size = 1 + Math.floor(next() * maxPiece);
    out.push(bytes.subarray(at, at + size));
    at += size;
  }
  return out;
}

/** Cuts the stream with chunkLog and splits each piece with eachLine, as replay does. */
async function collect(chunks: Buffer[], maxLineBytes: number, chunkBytes: number) {
  const lines: Array<string | undefined> = [];
  const pieces: number[] = [];
  let bytes = 0;
  for await (const piece of chunkLog(Readable.from(chunks), chunkBytes, maxLineBytes)) {
    if (piece.kind === 'overlong') {
      lines.push(undefined);
      pieces.push(-piece.bytes);
      bytes += piece.bytes;
      continue;
    }
    // Pieces own their memory, so that they can be transferred to a worker thread.
    expect(piece.data.byteOffset === 0 && piece.data.buffer.byteLength === piece.data.length).toBe(true);
    pieces.push(piece.data.length);
    const consumed = eachLine(piece.data, maxLineBytes, (text, length) => {
      lines.push(text);
      bytes += length;
    });
    expect(consumed).toBe(piece.data.length);
  }
  return { lines, bytes, pieces };
}

/** What replay must see: split on LF, drop one CR before it, no line after a final LF. */
function expectedLines(text: string, maxLineBytes: number): Array<string | undefined> {
  const parts = text.split('\n');
  if (parts.at(-1) === '') parts.pop();
  // The limit applies to a line's bytes before its newline, a CR included.
  return parts.map((line) => (Buffer.byteLength(line) > maxLineBytes ? undefined : line.replace(/\r$/, '')));
}

describe('chunkLog and eachLine', () => {
  const MAX = 100_000;
  const shapes: Record<string, (next: () => number) => string> = {
    'short ASCII lines': (next) => Array.from({ length: 2000 }, (_, i) => `{"domain":"d${i}.example","type":"${next() < 0.5 ? 'bounced' : 'delivered'}"}`).join('\n') + '\n',
    'CRLF and blank lines, no final newline': (next) =>
      Array.from({ length: 500 }, (_, i) => (next() < 0.2 ? '' : `line ${i}`) + (next() < 0.5 ? '\r\n' : '\n')).join('') + 'last',
    'multi-byte UTF-8 (a character may be cut between two buffers)': () =>
      Array.from({ length: 800 }, (_, i) => `bücher-${i}.example ✉ 例え.テスト 😀`).join('\n') + '\n',
    'lines longer than the decoding window, and over the limit': (next) =>
      Array.from({ length: 12 }, (_, i) => 'x'.repeat(Math.floor(next() * 3 * MAX)) + (i % 2 ? 'é' : '')).join('\n') + '\n',
  };

  for (const [name, make] of Object.entries(shapes)) {
    it(`splits ${name} exactly, whatever the buffer boundaries`, async () => {
      for (const seed of [1, 2, 3]) {
        const next = random(seed);
        const text = make(next);
        const bytes = Buffer.from(text);
        for (const chunkBytes of [200, 5000, 70_000]) {
          let cuts: number[] | undefined;
          for (const maxPiece of [1 + Math.floor(next() * 7), 1000, 70_000]) {
            if (maxPiece < 8 && bytes.length > 200_000) continue; // byte-sized pieces of a huge text take too long
            const { lines, bytes: counted, pieces: sizes } = await collect(pieces(bytes, next, maxPiece), MAX, chunkBytes);
            expect(counted).toBe(bytes.length);
            expect(lines).toEqual(expectedLines(text, MAX));
            // Where the log is cut depends on the content only, never on how it arrives.
            cuts ??= sizes;
            expect(sizes).toEqual(cuts);
          }
        }
      }
    });
  }

  it('cuts each piece at the first line end past the chunk size, and never holds an overlong line', async () => {
    const line = (n: number) => 'x'.repeat(n - 1) + '\n';
    const text = line(60) + line(60) + line(10) + line(300) + line(50) + line(50);
    const cut = [];
    for await (const piece of chunkLog(Readable.from([Buffer.from(text)]), 100, 100)) cut.push(piece.kind === 'lines' ? piece.data.length : -piece.bytes);
    // 60+60 passes the 100-byte mark; the 300-byte line across the next mark is cut out alone.
    expect(cut).toEqual([120, 10, -300, 100]);
  });

  it('stops when the handler returns false and says how far it got', () => {
    const seen: string[] = [];
    const consumed = eachLine(Buffer.from('a\nbb\nc\nd\n'), 100, (text) => {
      seen.push(text!);
      if (text === 'bb') return false;
    });
    expect({ consumed, seen }).toEqual({ consumed: 5, seen: ['a', 'bb'] });
  });

  it('counts the bytes of invalid UTF-8 as they are in the file', () => {
    const bytes = Buffer.concat([Buffer.from('ok\n'), Buffer.from([0xff, 0xfe, 0x0a]), Buffer.from('end\n')]);
    const sizes: number[] = [];
    const lines: Array<string | undefined> = [];
    eachLine(bytes, 100, (text, length) => {
      lines.push(text);
      sizes.push(length);
    });
    expect(sizes).toEqual([3, 3, 4]);
    expect(lines).toEqual(['ok', '\ufffd\ufffd', 'end']);
  });
});
