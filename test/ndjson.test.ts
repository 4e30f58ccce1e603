import { describe, expect, it } from 'vitest';
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
