import { domainToASCII } from 'node:url';
import { ValidationError } from './errors.js';

const MAX_NAME_LENGTH = 253;
const MAX_LABEL_LENGTH = 63;

/**
 * Returns the canonical form of a domain name: lowercase ASCII (punycode for internationalised
 * names) without a trailing dot. Throws ValidationError with the reason when the name is not a
 * valid host name. `Example.COM.` and `example.com` give the same result.
 */
export function normalizeDomain(input: string): string {
  if (typeof input !== 'string') throw new ValidationError('domain must be a string');
  let name = input.toLowerCase();
  if (name.endsWith('.')) name = name.slice(0, -1);
  if (name.length === 0) throw new ValidationError('domain is empty');
  if (!isAscii(name)) name = toAscii(name);
  checkHostName(name);
  return name;
}

function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return false;
  return true;
}

function toAscii(name: string): string {
  checkNoControlCharacters(name);
  // domainToASCII applies UTS #46 mapping and punycode; it answers '' for names it cannot convert.
  const ascii = domainToASCII(name);
  if (ascii === '') throw new ValidationError('domain is not a valid internationalised name');
  return ascii.endsWith('.') ? ascii.slice(0, -1) : ascii;
}

function checkNoControlCharacters(s: string): void {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || (c >= 0x7f && c < 0xa0)) throw new ValidationError('domain contains control characters');
  }
}

// One pass over the characters: cheaper than a regular expression plus split() on the hot path.
function checkHostName(name: string): void {
  if (name.length > MAX_NAME_LENGTH) throw new ValidationError(`domain is longer than ${MAX_NAME_LENGTH} characters`);
  let labelStart = 0;
  for (let i = 0; i <= name.length; i++) {
    const c = i < name.length ? name.charCodeAt(i) : 0x2e;
    if (c === 0x2e /* . */) {
      const length = i - labelStart;
      if (length === 0) throw new ValidationError('domain has an empty label');
      if (length > MAX_LABEL_LENGTH) throw new ValidationError(`domain has a label longer than ${MAX_LABEL_LENGTH} characters`);
      if (name.charCodeAt(labelStart) === 0x2d || name.charCodeAt(i - 1) === 0x2d) {
        throw new ValidationError('domain has a label that starts or ends with "-"');
      }
      labelStart = i + 1;
    } else if (!((c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2d)) {
      if (c < 0x20 || c === 0x7f) throw new ValidationError('domain contains control characters');
      throw new ValidationError(`domain contains an invalid character ${JSON.stringify(String.fromCharCode(c))}`);
    }
  }
}
