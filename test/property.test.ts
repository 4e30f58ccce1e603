import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { normalizeDomain } from '../src/core/domain.js';
import { TooManyLinesError, ValidationError } from '../src/core/errors.js';
import { parseEventLine, parseRawEventLine } from '../src/core/event.js';
import { parseNdjsonBatch } from '../src/core/ndjson.js';

// Characters on the edges of normalisation: the four dots UTS #46 maps to '.', case pairs that do
// not round-trip (ß, İ, ı, the Kelvin sign), joiners, C0 and C1 controls, lone surrogates, and the
// ASCII a URL parser treats specially.
const EDGE_CHARS = [
  'a', 'Z', 'x', 'n', '0', '9', '-', '.', '。', '．', '｡', 'ß', 'ẞ', 'İ', 'ı', 'K', 'ſ', 'ﬀ', 'ü', 'Ü', 'Ⅻ', 'ǅ',
  '\u0301', '\u00ad', '\u200c', '\u200d', '\ufeff', '\ufffd', '\u2028', '🎉', '中',
  '\u0000', '\t', '\n', '\u001f', '\u007f', '\u0085', '\u009f', '\u00a0', '\ud800', '\udc00',
  '/', '\\', '?', '#', '%', '%41', '@', ':', '_', ' ', '"', 'xn--',
];
const DOTS = ['.', '。', '．', '｡'];

/** Any UTF-16 string, lone surrogates included, biased towards the edge characters. */
const anyString = fc.oneof(
  fc.string({ unit: fc.constantFrom(...EDGE_CHARS), maxLength: 16 }),
  fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)) }),
  fc.string({ unit: 'binary', maxLength: 300 }),
);

const REJECTED = Symbol('rejected');

/** The normalised name, or REJECTED for a ValidationError; any other error fails the property. */
function outcome(input: string): string | typeof REJECTED {
  try {
    return normalizeDomain(input);
  } catch (error) {
    if (error instanceof ValidationError) return REJECTED;
    throw error;
  }
}

const HOST_NAME = /^(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))*$/;

describe('normalizeDomain, for arbitrary strings', () => {
  const runs = { numRuns: 10_000 };

  it('throws nothing but ValidationError, and what it returns is a valid ASCII host name', () => {
    fc.assert(
      fc.property(anyString, (input) => {
        const name = outcome(input);
        if (name !== REJECTED) expect(name.length <= 253 && HOST_NAME.test(name), `${JSON.stringify(input)} → ${name}`).toBe(true);
      }),
      runs,
    );
  });

  it('is idempotent', () => {
    fc.assert(
      fc.property(anyString, (input) => {
        const name = outcome(input);
        if (name !== REJECTED) expect(outcome(name)).toBe(name);
      }),
      runs,
    );
  });

  it('ignores ASCII case, and Unicode case where upper and lower case map back to each other', () => {
    fc.assert(
      fc.property(fc.mixedCase(anyString), anyString, (mixed, input) => {
        expect(outcome(mixed)).toBe(outcome(mixed.toLowerCase()));
        const upper = input.toUpperCase();
        if (upper.toLowerCase() === input.toLowerCase()) expect(outcome(upper)).toBe(outcome(input));
      }),
      runs,
    );
  });

  // Found a bug: names with a non-ASCII character went through node:url's domainToASCII, which
  // reads a URL host and so turned `evil.com/x.ü` into `evil.com` and `ü%41.com` into `üa.com`.
  it('accepts a name only when each of its ASCII characters belongs in a host name: nothing is cut off or decoded', () => {
    fc.assert(
      fc.property(anyString, (input) => {
        if (outcome(input) === REJECTED) return;
        for (const char of input) if (char < '\u0080') expect(char, JSON.stringify(input)).toMatch(/[A-Za-z0-9.-]/);
      }),
      runs,
    );
  });

  // Found a bug: an internationalised name lost two trailing dots (`ü..` was accepted as `xn--tda`).
  it('rejects an empty label, whichever dot makes it, and drops at most one trailing dot', () => {
    const dot = fc.constantFrom(...DOTS);
    fc.assert(
      fc.property(anyString, dot, dot, (input, first, second) => {
        expect(outcome(`${input}${first}${second}`)).toBe(REJECTED);
        expect(outcome(`${first}${input}`)).toBe(REJECTED);
        // (A name may end in a character UTS #46 maps to nothing, such as U+FEFF: then the dot before it is the last.)
        if (/[A-Za-z0-9]$/.test(input)) expect(outcome(`${input}${first}`)).toBe(outcome(input));
      }),
      runs,
    );
  });
});

/** A valid domain as a producer may write it: mixed case, internationalised labels, a trailing dot. */
const writtenDomain = fc
  .tuple(
    fc.array(fc.oneof(fc.domain(), fc.string({ unit: fc.constantFrom('ü', 'é', 'ß', '中', 'ж', 'a', '1'), minLength: 1, maxLength: 8 })), {
      minLength: 1,
      maxLength: 3,
    }),
    fc.boolean(),
  )
  .chain(([parts, trailingDot]) => fc.mixedCase(fc.constant(parts.join('.') + (trailingDot ? '.' : ''))))
  .filter((domain) => outcome(domain) !== REJECTED);

const eventType = fc.constantFrom('delivered' as const, 'bounced' as const);
const extraFields = fc.dictionary(
  fc.string().filter((key) => key !== 'domain' && key !== 'type' && key !== '__proto__'),
  fc.jsonValue(),
  { maxKeys: 3 },
);

/** A valid event line: fields in any order, extra fields, and (sometimes) every character \u-escaped. */
const validLine = fc.record({ domain: writtenDomain, type: eventType, extra: extraFields, typeFirst: fc.boolean(), escape: fc.boolean() }).map(
  ({ domain, type, extra, typeFirst, escape }) => {
    const fields = typeFirst ? { type, ...extra, domain } : { domain, type, ...extra };
    let line = JSON.stringify(fields);
    if (escape) line = line.replace(JSON.stringify(domain), `"${[...domain].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`).join('')}"`);
    return { line, domain, type };
  },
);

function lineOutcome(parse: (line: string) => unknown, line: string): unknown {
  try {
    return parse(line);
  } catch (error) {
    if (error instanceof ValidationError) return REJECTED;
    throw error;
  }
}

describe('the NDJSON event line parser', () => {
  const runs = { numRuns: 3_000 };
  /** Strings close to event lines: real lines cut short, with a character put in, or made of JSON of any shape. */
  const nearLines = fc.oneof(
    anyString,
    fc.json(),
    fc
      .tuple(validLine, fc.nat(), fc.constantFrom(...EDGE_CHARS))
      .map(([{ line }, at, char]) => line.slice(0, at % (line.length + 1)) + char + line.slice(at % (line.length + 1))),
    fc.tuple(validLine, fc.nat()).map(([{ line }, at]) => line.slice(0, at % line.length)),
    fc.record({ domain: fc.oneof(anyString, fc.jsonValue()), type: fc.oneof(eventType, anyString, fc.jsonValue()) }).map((v) => JSON.stringify(v)),
  );

  it('throws nothing but ValidationError for arbitrary lines', () => {
    fc.assert(
      fc.property(nearLines, (line) => {
        lineOutcome(parseRawEventLine, line);
        lineOutcome(parseEventLine, line);
      }),
      runs,
    );
  });

  it('reads a line as JSON.parse does', () => {
    fc.assert(
      fc.property(nearLines, (line) => {
        let expected: unknown = REJECTED;
        try {
          const value = JSON.parse(line) as { domain?: unknown; type?: unknown };
          if (typeof value === 'object' && value !== null && !Array.isArray(value) && typeof value.domain === 'string') {
            if ((value.type === 'delivered' || value.type === 'bounced') && line.length <= 4096) expected = { domain: value.domain, type: value.type };
          }
        } catch {
          // not JSON: rejected
        }
        expect(lineOutcome(parseRawEventLine, line), line).toEqual(expected);
      }),
      runs,
    );
  });

  it('round-trips a valid event to its normalised domain and type', () => {
    fc.assert(
      fc.property(validLine, ({ line, domain, type }) => {
        expect(parseEventLine(line)).toEqual({ domain: normalizeDomain(domain), type });
      }),
      runs,
    );
  });
});

describe('parseNdjsonBatch', () => {
  const runs = { numRuns: 1_000 };

  it('never throws for an arbitrary body, and accounts for every line', () => {
    const body = fc.array(fc.oneof(anyString, validLine.map((v) => v.line)), { maxLength: 20 }).map((lines) => lines.join('\n'));
    fc.assert(
      fc.property(body, (text) => {
        const { events, rejected, errors } = parseNdjsonBatch(text);
        const lines = text === '' ? [] : text.replace(/\n$/, '').split('\n');
        const blank = lines.filter((l) => l.replace(/\r$/, '').trim() === '').length;
        expect(events.length + rejected + blank).toBe(lines.length);
        expect(errors.length).toBe(Math.min(rejected, 10));
        for (const { domain, type } of events) {
          expect(normalizeDomain(domain)).toBe(domain);
          expect(['delivered', 'bounced']).toContain(type);
        }
      }),
      runs,
    );
  });

  it('keeps every event of valid lines, in order, whatever the line endings and blank lines', () => {
    const body = fc.array(fc.tuple(validLine, fc.constantFrom('\n', '\r\n', '\n\n', '\n  \r\n')), { minLength: 1, maxLength: 20 });
    fc.assert(
      fc.property(body, (lines) => {
        const text = lines.map(([{ line }, end]) => line + end).join('');
        const { events, rejected } = parseNdjsonBatch(text);
        expect(rejected).toBe(0);
        expect(events).toEqual(lines.map(([{ domain, type }]) => ({ domain: normalizeDomain(domain), type })));
      }),
      runs,
    );
  });

  it('refuses a body of more than maxLines lines, blank ones included, and takes one of exactly maxLines', () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(validLine.map((v) => v.line), fc.constant('')), { minLength: 1, maxLength: 30 }), fc.nat(30), (lines, maxLines) => {
        const text = lines.join('\n') + '\n';
        const parse = () => parseNdjsonBatch(text, 10, undefined, maxLines);
        if (lines.length > maxLines) expect(parse).toThrow(TooManyLinesError);
        else expect(parse().events.length).toBe(lines.filter((l) => l !== '').length);
      }),
      runs,
    );
  });
});
