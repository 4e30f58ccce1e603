import { isAscii } from 'node:buffer';

/**
 * V8 decodes a buffer into a string at several GB/s up to some tens of KiB, but two orders of
 * magnitude slower once the string is large enough to need its own large-object allocation.
 */
const DECODE_WINDOW = 32 * 1024;

/**
 * Receives each line without its newline (and without a CR before it) and the bytes the line took,
 * newline included. `text` is undefined for a line longer than the limit. Returning false stops.
 */
export type LineHandler = (text: string | undefined, bytes: number) => void | false;

/**
 * Calls `handle` for every line of `data`, which holds whole lines (the last one may lack its
 * newline). Runs of pure ASCII, the usual case, are decoded once per window and cut as a string.
 * Returns the bytes consumed: all of them, or up to the end of the line that returned false.
 */
export function eachLine(data: Buffer, maxLineBytes: number, handle: LineHandler): number {
  let start = 0;
  while (start < data.length) {
    let last = data.lastIndexOf(10, Math.min(data.length, start + DECODE_WINDOW) - 1);
    // A line longer than the window: take it alone.
    if (last < start) last = data.indexOf(10, start);
    // No newline left: the last line of the file.
    const end = last === -1 ? data.length : last + 1;
    const window = data.subarray(start, end);
    const consumed = isAscii(window) ? asciiLines(window.toString('latin1'), maxLineBytes, handle) : bufferLines(window, maxLineBytes, handle);
    start += consumed;
    if (consumed < window.length) return start;
  }
  return start;
}

function asciiLines(text: string, maxLineBytes: number, handle: LineHandler): number {
  let start = 0;
  while (start < text.length) {
    let newline = text.indexOf('\n', start);
    if (newline === -1) newline = text.length;
    const bytes = Math.min(newline + 1, text.length) - start;
    let end = newline;
    if (end > start && text.charCodeAt(end - 1) === 13) end--;
    const result = handle(newline - start > maxLineBytes ? undefined : text.slice(start, end), bytes);
    start += bytes;
    if (result === false) break;
  }
  return start;
}

function bufferLines(data: Buffer, maxLineBytes: number, handle: LineHandler): number {
  let start = 0;
  while (start < data.length) {
    let newline = data.indexOf(10, start);
    if (newline === -1) newline = data.length;
    const bytes = Math.min(newline + 1, data.length) - start;
    let end = newline;
    if (end > start && data[end - 1] === 13) end--;
    const result = handle(newline - start > maxLineBytes ? undefined : data.toString('utf8', start, end), bytes);
    start += bytes;
    if (result === false) break;
  }
  return start;
}
