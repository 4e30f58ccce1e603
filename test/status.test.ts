import { describe, expect, it } from 'vitest';
import { reportOf, statusOf } from '../src/core/status.js';

describe('statusOf', () => {
  it.each([
    [{ delivered: 0, bounced: 0 }, 'unknown'],
    [{ delivered: 1000, bounced: 0 }, 'unknown'],
    [{ delivered: 1001, bounced: 0 }, 'catch-all'],
    [{ delivered: 5000, bounced: 1 }, 'not catch-all'],
    [{ delivered: 0, bounced: 1 }, 'not catch-all'],
  ])('%j at threshold 1000 is %s', (counts, status) => {
    expect(statusOf(counts, 1000)).toBe(status);
  });

  it('follows a custom threshold', () => {
    expect(statusOf({ delivered: 3, bounced: 0 }, 2)).toBe('catch-all');
    expect(statusOf({ delivered: 2, bounced: 0 }, 2)).toBe('unknown');
  });

  it('reports a domain never seen as unknown with zero counts', () => {
    expect(reportOf('new.example', undefined, 1000)).toEqual({
      domain: 'new.example',
      status: 'unknown',
      delivered: 0,
      bounced: 0,
    });
  });
});
