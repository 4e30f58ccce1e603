import { describe, expect, it } from 'vitest';
import { ValidationError } from '../src/core/errors.js';
import { parseRawEventLine } from '../src/core/event.js';
import { parseNdjsonBatch } from '../src/core/ndjson.js';

describe('parseNdjsonBatch', () => {
  it('keeps valid lines, counts and explains invalid ones with their line numbers', () => {
    const body = [
      '{"domain":"A.com","type":"delivered","extra":1}',
      '',
      '{"domain":"b.com","type":"bounced"}\r',
      'not json',
      '[1,2]',
      '{"type":"delivered"}',
      '{"domain":"x..y","type":"delivered"}',
      '{"domain":"c.com","type":"opened"}',
      '   ',
      '{"domain":"d.com","type":"delivered"}',
    ].join('\n');
    const parsed = parseNdjsonBatch(body);
    expect(parsed.events).toEqual([
      { domain: 'a.com', type: 'delivered' },
      { domain: 'b.com', type: 'bounced' },
      { domain: 'd.com', type: 'delivered' },
    ]);
    expect(parsed.rejected).toBe(5);
    expect(parsed.errors).toEqual([
      { line: 4, reason: 'line is not valid JSON' },
      { line: 5, reason: 'line is not a JSON object' },
      { line: 6, reason: 'domain is missing or not a string' },
      { line: 7, reason: 'domain has an empty label' },
      { line: 8, reason: 'unknown event type "opened"' },
    ]);
  });

  it('reports only the first few errors but counts them all', () => {
    const parsed = parseNdjsonBatch('x\n'.repeat(50), 3);
    expect(parsed.rejected).toBe(50);
    expect(parsed.errors.map((e) => e.line)).toEqual([1, 2, 3]);
  });

  it('rejects overlong lines without parsing them', () => {
    const line = JSON.stringify({ domain: 'a.com', type: 'delivered', pad: 'x'.repeat(5000) });
    expect(parseNdjsonBatch(line).errors[0]!.reason).toMatch(/longer than/);
  });
});

describe('parseRawEventLine', () => {
  /** What a line means by the letter of the format: JSON.parse and the same checks, no shortcut. */
  function reference(line: string): { domain: string; type: string } | string {
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      return 'line is not valid JSON';
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'line is not a JSON object';
    const { domain, type } = value as { domain?: unknown; type?: unknown };
    if (typeof domain !== 'string') return 'domain is missing or not a string';
    if (type !== 'delivered' && type !== 'bounced') return 'bad type';
    return { domain, type };
  }

  function actual(line: string): { domain: string; type: string } | string {
    try {
      const { domain, type } = parseRawEventLine(line);
      return { domain, type };
    } catch (error) {
      if (!(error instanceof ValidationError)) throw error;
      return error.message.startsWith('unknown event type') || error.message.startsWith('type must') ? 'bad type' : error.message;
    }
  }

  // Lines built to sit on the edges of the fast paths: spacing, key order, escapes, quotes,
  // duplicate and extra keys, other types, truncation.
  const domains = ['example.com', 'Ex\\u0041mple.com', 'a\\"b.com', 'tab\\tin.com', 'é.com', '', 'x\\\\y'];
  const types = ['delivered', 'bounced', 'opened', 'Delivered', 'deliv\\u0065red'];
  const gaps = ['', ' ', '\t', '\r\n ', '\u00a0'];
  const lines: string[] = [];
  for (const domain of domains) {
    for (const type of types) {
      for (const gap of gaps) {
        const d = `"domain"${gap}:${gap}"${domain}"`;
        const t = `"type"${gap}:${gap}"${type}"`;
        for (const body of [`${d},${gap}${t}`, `${t},${gap}${d}`, `${d},${t},"extra":1`, `${d},${t},"type":"bounced"`, `${d},${t},"domain":"other.org"`]) {
          const line = `${gap}{${gap}${body}${gap}}${gap}`;
          lines.push(line, line.slice(0, -3), `[${line}]`);
        }
      }
    }
  }

  it(`means what JSON.parse says, on ${domains.length * types.length * gaps.length * 15} edge-case lines`, () => {
    for (const line of lines) expect(actual(line), line).toEqual(reference(line));
  });
});
