/** A piece of a log cut by chunkLog: whole lines, or one line too long to hold. */
export type LogPiece = { kind: 'lines'; data: Buffer } | { kind: 'overlong'; bytes: number };

/**
 * Cuts a byte stream into pieces of whole lines. A piece ends at the first line end at or after
 * `chunkBytes` bytes from its start; the last piece may lack its newline. Should the line across
 * that mark be longer than `maxLineBytes`, the piece ends before it and the line becomes a piece of
 * its own, counted but never held in memory. Either way the cut depends only on the content from
 * the piece's start on, never on how the stream delivers it: a resumed replay cuts the rest of a
 * file exactly as the interrupted run did.
 *
 * Each `lines` piece owns its memory (no pool, no shared ArrayBuffer), so it can be transferred to
 * a worker thread.
 */
export async function* chunkLog(stream: AsyncIterable<Buffer>, chunkBytes: number, maxLineBytes: number): AsyncGenerator<LogPiece> {
  const mark = chunkBytes - 1;
  const pending = new PendingBytes();
  /** Bytes of an overlong line skipped so far; 0 when none is being skipped. */
  let skipping = 0;
  for await (const input of stream) {
    let data: Buffer = input;
    if (skipping > 0) {
      const newline = data.indexOf(10);
      if (newline === -1) {
        skipping += data.length;
        continue;
      }
      yield { kind: 'overlong', bytes: skipping + newline + 1 };
      skipping = 0;
      data = data.subarray(newline + 1);
    }
    pending.push(data);
    while (pending.size > mark) {
      // The line across the mark: where it starts, and its newline if it has arrived.
      const lineStart = pending.lastIndexOfNewline(mark - 1) + 1;
      const newline = pending.indexOfNewline(mark);
      const overlong = (newline === -1 ? pending.size : newline) - lineStart > maxLineBytes;
      if (!overlong) {
        if (newline === -1) break;
        yield { kind: 'lines', data: pending.take(newline + 1) };
        continue;
      }
      if (lineStart > 0) yield { kind: 'lines', data: pending.take(lineStart) };
      if (newline === -1) {
        skipping = pending.size;
        pending.clear();
        break;
      }
      pending.drop(newline + 1 - lineStart);
      yield { kind: 'overlong', bytes: newline + 1 - lineStart };
    }
  }
  if (skipping > 0) yield { kind: 'overlong', bytes: skipping };
  else if (pending.size > 0) yield { kind: 'lines', data: pending.take(pending.size) };
}

/** Buffers received but not yet cut, searched where they lie and copied once, when cut. */
class PendingBytes {
  #parts: Buffer[] = [];
  size = 0;

  push(data: Buffer): void {
    if (data.length === 0) return;
    this.#parts.push(data);
    this.size += data.length;
  }

  clear(): void {
    this.#parts = [];
    this.size = 0;
  }

  /** Position of the first newline at or after `from`, or -1. */
  indexOfNewline(from: number): number {
    let base = 0;
    for (const part of this.#parts) {
      if (from < base + part.length) {
        const found = part.indexOf(10, Math.max(0, from - base));
        if (found !== -1) return base + found;
      }
      base += part.length;
    }
    return -1;
  }

  /** Position of the last newline at or before `from`, or -1. */
  lastIndexOfNewline(from: number): number {
    if (from < 0) return -1;
    let base = this.size;
    for (let i = this.#parts.length - 1; i >= 0; i--) {
      const part = this.#parts[i]!;
      base -= part.length;
      if (from >= base) {
        const found = part.lastIndexOf(10, Math.min(part.length - 1, from - base));
        if (found !== -1) return base + found;
      }
    }
    return -1;
  }

  /** Removes the first `count` bytes and returns them in a buffer of their own. */
  take(count: number): Buffer {
    const out = Buffer.allocUnsafeSlow(count);
    this.#remove(count, (part, at) => part.copy(out, at));
    return out;
  }

  drop(count: number): void {
    this.#remove(count, () => {});
  }

  #remove(count: number, use: (part: Buffer, at: number) => void): void {
    let removed = 0;
    while (removed < count) {
      const part = this.#parts[0]!;
      const n = Math.min(part.length, count - removed);
      use(part.subarray(0, n), removed);
      removed += n;
      if (n === part.length) this.#parts.shift();
      else this.#parts[0] = part.subarray(n);
    }
    this.size -= count;
  }
}
