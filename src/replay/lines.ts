import { isAscii } from 'node:buffer';

/**
 * V8 decodes a buffer into a string at several GB/s up to some tens of KiB, but two orders of
 * magnitude slower once the string is large enough to need its own large-object allocation.
 */
const DECODE_WINDOW = 32 * 1024;

/**
 * Receives each line without its newline (and without a CR before it) and the bytes the line took
 * in the stream, newline included. `text` is undefined for a line longer than the limit, which is
 * skipped without being held in memory. Returning a promise pauses reading until it settles;
 * returning false stops reading.
 */
export type LineHandler = (text: string | undefined, bytes: number) => void | false | Promise<void | false>;

/**
 * Splits a byte stream into lines, keeping exact byte counts (a resumable replay records byte
 * offsets, which a text splitter such as split2 cannot give once invalid UTF-8 has been replaced).
 * Runs of pure ASCII, the usual case, are decoded once per buffer and cut as a string.
 */
export async function forEachLine(stream: AsyncIterable<Buffer>, maxLineBytes: number, handle: LineHandler): Promise<boolean> {
  let carry: Buffer | undefined;
  let partialBytes = 0;
  for await (const data of stream) {
    let start = 0;
    if (partialBytes > 0) {
      // Finish the line begun in the previous buffer.
      const newline = data.indexOf(10);
      if (newline === -1) {
        partialBytes += data.length;
        carry = partialBytes > maxLineBytes ? undefined : Buffer.concat([carry!, data]);
        continue;
      }
      const bytes = partialBytes + newline + 1;
      const line = bytes - 1 > maxLineBytes ? undefined : decode(Buffer.concat([carry!, data.subarray(0, newline)]), 0, partialBytes + newline);
      carry = undefined;
      partialBytes = 0;
      start = newline + 1;
      if (!(await proceed(handle(line, bytes)))) return false;
    }
    // Whole lines, decoded at most DECODE_WINDOW bytes at a time.
    for (;;) {
      let last = data.lastIndexOf(10, Math.min(data.length, start + DECODE_WINDOW) - 1);
      // A line longer than the window: take it alone.
      if (last < start) last = data.indexOf(10, start);
      if (last === -1) break;
      const whole = data.subarray(start, last + 1);
      const keepGoing = isAscii(whole) ? await asciiLines(whole.toString('latin1'), maxLineBytes, handle) : await bufferLines(whole, maxLineBytes, handle);
      if (!keepGoing) return false;
      start = last + 1;
    }
    if (start < data.length) {
      partialBytes = data.length - start;
      carry = partialBytes > maxLineBytes ? undefined : Buffer.from(data.subarray(start));
    }
  }
  if (partialBytes > 0) {
    const line = carry ? decode(carry, 0, carry.length) : undefined;
    return proceed(handle(line, partialBytes));
  }
  return true;
}

async function asciiLines(text: string, maxLineBytes: number, handle: LineHandler): Promise<boolean> {
  let start = 0;
  while (start < text.length) {
    const newline = text.indexOf('\n', start);
    const bytes = newline - start + 1;
    let end = newline;
    if (end > start && text.charCodeAt(end - 1) === 13) end--;
    const result = handle(bytes - 1 > maxLineBytes ? undefined : text.slice(start, end), bytes);
    start = newline + 1;
    if (result === false || (result !== undefined && !(await proceed(result)))) return false;
  }
  return true;
}

async function bufferLines(data: Buffer, maxLineBytes: number, handle: LineHandler): Promise<boolean> {
  let start = 0;
  while (start < data.length) {
    const newline = data.indexOf(10, start);
    const bytes = newline - start + 1;
    const result = handle(bytes - 1 > maxLineBytes ? undefined : decode(data, start, newline), bytes);
    start = newline + 1;
    if (result === false || (result !== undefined && !(await proceed(result)))) return false;
  }
  return true;
}

function decode(data: Buffer, start: number, end: number): string {
  if (end > start && data[end - 1] === 13) end--;
  return data.toString('utf8', start, end);
}

async function proceed(result: void | false | Promise<void | false>): Promise<boolean> {
  return (await result) !== false;
}
