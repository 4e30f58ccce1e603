import { describe, expect, it } from 'vitest';
import { normalizeDomain } from '../src/core/domain.js';
import { ValidationError } from '../src/core/errors.js';

describe('normalizeDomain', () => {
  it.each([
    ['example.com', 'example.com'],
    ['Example.COM.', 'example.com'],
    ['EXAMPLE.com', 'example.com'],
    ['a-b.c0.io', 'a-b.c0.io'],
    ['localhost', 'localhost'],
    ['bücher.de', 'xn--bcher-kva.de'],
    ['BÜCHER.DE.', 'xn--bcher-kva.de'],
    ['例え.jp', 'xn--r8jz45g.jp'],
    ['xn--bcher-kva.de', 'xn--bcher-kva.de'],
    [`${'a'.repeat(63)}.com`, `${'a'.repeat(63)}.com`],
    [`${'a.'.repeat(126)}b`, `${'a.'.repeat(126)}b`], // exactly 253 characters
  ])('%s → %s', (input, expected) => {
    expect(normalizeDomain(input)).toBe(expected);
  });

  it.each([
    ['', 'empty'],
    ['.', 'empty'],
    ['a..b', 'empty label'],
    ['.a.com', 'empty label'],
    ['a.com..', 'empty label'],
    [`${'a'.repeat(64)}.com`, 'label longer than 63'],
    [`${'a.'.repeat(126)}bc`, 'longer than 253'],
    ['-a.com', 'starts or ends with "-"'],
    ['a-.com', 'starts or ends with "-"'],
    ['a_b.com', 'invalid character'],
    ['a b.com', 'invalid character'],
    ['a/b.com', 'invalid character'],
    ['a\u0000b.com', 'control characters'],
    ['a\nb.com', 'control characters'],
    ['a\u007fb.com', 'control characters'],
    ['bü\u0001cher.de', 'control characters'],
    ['a\ufffd.com', 'internationalised'],
    // Found by test/property.test.ts: node:url's domainToASCII reads a URL host, so it cut these at
    // the `/`, `?` or `\\`, decoded `%41`, dropped a second trailing dot or made an IP address of them.
    ['evil.com/x.ü', 'invalid character "/"'],
    ['evil.com?.ü', 'invalid character "?"'],
    ['evil.com\\.ü', 'invalid character'],
    ['ü%41.com', 'invalid character "%"'],
    ['ü..', 'empty label'],
    ['a。.', 'empty label'],
    ['９｡', 'ends in a number'],
    ['1.2.3.4', 'ends in a number'],
    ['a.0x7f', 'ends in a number'],
    // fast-check found `0x` accepted while `0x｡` (converted, so read as a URL host) was not.
    ['0x', 'ends in a number'],
    ['a.0X', 'ends in a number'],
    ['xn--a.com', 'internationalised'],
    ['ü.xn--zz.com', 'internationalised'],
    ['xn--bcher-kva.xn--zz.de', 'internationalised'],
  ])('rejects %j (%s)', (input, reason) => {
    expect(() => normalizeDomain(input)).toThrow(ValidationError);
    expect(() => normalizeDomain(input)).toThrow(reason);
  });

  it('makes Example.COM. and example.com the same domain', () => {
    expect(normalizeDomain('Example.COM.')).toBe(normalizeDomain('example.com'));
  });
});
