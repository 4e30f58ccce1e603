import { normalizeDomain } from '../core/domain.js';
import { SvcError } from '../core/errors.js';
import { CANONICAL_DOMAIN_START, MAX_LINE_LENGTH, parseRawEventLine, scanCanonical, type CanonicalScan, type EventType } from '../core/event.js';
import { fnv1a } from '../core/hash.js';
import { eachLine } from './lines.js';
import { byCodeUnit } from '../store/sorted-deltas.js';
import { NameTable } from './name-table.js';

/** Longest line parsed; a longer one is rejected (and chunkLog never holds one much longer). */
export const MAX_LINE_BYTES = 64 * 1024;

/** A bad line of a piece; `line` counts from 1 at the piece's first line. */
export interface PieceRejection {
  line: number;
  reason: string;
  text: string;
}

/** What a piece of a log adds up to. Plain data: it crosses from a worker thread by copy. */
export interface ParsedPiece {
  /** Bytes and lines parsed: the whole piece, or the lines before `stopBeforeLine`. */
  bytes: number;
  lines: number;
  events: number;
  /** Per normalised domain, sorted: its delivered and bounced counts, at the same index. */
  domains: string[];
  delivered: number[];
  bounced: number[];
  rejections: PieceRejection[];
}

/** Counts of one domain name as written; `Example.com` and `example.com` are separate entries until the end. */
interface NameEntry {
  /** The normalised name, or undefined when the name is invalid. */
  domain: string | undefined;
  invalid: string | undefined;
  delivered: number;
  bounced: number;
}

const scan: CanonicalScan = { type: 'delivered', domainEnd: 0, hash: 0 };

/**
 * Parses and adds up the events of a piece of whole lines, normalising each distinct name once.
 * With `stopBeforeLine`, only the lines before it count (a replay that stops at a bad line).
 */
export function parsePiece(data: Buffer, stopBeforeLine = Infinity): ParsedPiece {
  const names = new NameTable<NameEntry>();
  const rejections: PieceRejection[] = [];
  let lines = 0;
  let events = 0;
  let bytes = 0;
  eachLine(data, MAX_LINE_BYTES, (text, lineBytes) => {
    if (lines + 1 >= stopBeforeLine) return false;
    lines++;
    bytes += lineBytes;
    if (text === undefined) {
      rejections.push({ line: lines, reason: `line is longer than ${MAX_LINE_BYTES} bytes`, text: '' });
      return;
    }
    if (text.length === 0 || (text.charCodeAt(0) <= 0x20 && text.trim().length === 0)) return;
    const reason = addLine(names, text);
    if (reason === undefined) events++;
    else rejections.push({ line: lines, reason, text });
  });
  return { bytes, lines, events, ...merged(names), rejections };
}

/** Adds one line's event to the table; returns why the line is bad, if it is. */
function addLine(names: NameTable<NameEntry>, text: string): string | undefined {
  // The name is looked up where it sits in the line: no string is cut out of a canonical line
  // unless its name is new to the piece.
  let source = text;
  let start = CANONICAL_DOMAIN_START;
  let end: number;
  let hash: number;
  let type: EventType;
  if (text.length <= MAX_LINE_LENGTH && scanCanonical(text, scan)) {
    ({ domainEnd: end, hash, type } = scan);
  } else {
    try {
      ({ domain: source, type } = parseRawEventLine(text));
    } catch (error) {
      if (!(error instanceof SvcError)) throw error;
      return error.message;
    }
    start = 0;
    end = source.length;
    hash = fnv1a(source);
  }
  let entry = names.get(source, start, end, hash);
  if (entry === undefined) {
    entry = newEntry(source.slice(start, end));
    names.add(source, start, end, hash, entry);
  }
  if (entry.invalid !== undefined) return entry.invalid;
  entry[type]++;
  return undefined;
}

function newEntry(written: string): NameEntry {
  try {
    return { domain: normalizeDomain(written), invalid: undefined, delivered: 0, bounced: 0 };
  } catch (error) {
    if (!(error instanceof SvcError)) throw error;
    return { domain: undefined, invalid: error.message, delivered: 0, bounced: 0 };
  }
}

/**
 * One entry per normalised domain (names written differently that mean the same domain add up),
 * sorted: the store applies domains in order, and sorted pieces merge into a sorted group at
 * little cost (SortedDeltas.merge), so that the sorting happens here, on the parsing threads.
 */
function merged(names: NameTable<NameEntry>): Pick<ParsedPiece, 'domains' | 'delivered' | 'bounced'> {
  const entries: NameEntry[] = [];
  for (const entry of names.values()) if (entry.domain !== undefined && entry.delivered + entry.bounced > 0) entries.push(entry);
  entries.sort((a, b) => byCodeUnit(a.domain!, b.domain!));
  const domains: string[] = [];
  const delivered: number[] = [];
  const bounced: number[] = [];
  for (const entry of entries) {
    const last = domains.length - 1;
    if (last >= 0 && domains[last] === entry.domain) {
      delivered[last]! += entry.delivered;
      bounced[last]! += entry.bounced;
    } else {
      domains.push(entry.domain!);
      delivered.push(entry.delivered);
      bounced.push(entry.bounced);
    }
  }
  return { domains, delivered, bounced };
}
