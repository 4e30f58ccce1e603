import { domainToASCII, domainToUnicode } from 'node:url';
import { ValidationError } from './errors.js';

const MAX_NAME_LENGTH = 253;
const MAX_LABEL_LENGTH = 63;

const invalidDomain = (message: string) => new ValidationError(message, 'invalid_domain');
const invalidIdn = () => invalidDomain('domain is not a valid internationalised name');

/**
 * Returns the canonical form of a domain name: lowercase ASCII (punycode for internationalised
 * names) without a trailing dot. Throws ValidationError with the reason when the name is not a
 * valid host name. `Example.COM.` and `example.com` give the same result.
 */
export function normalizeDomain(input: string): string {
  if (typeof input !== 'string') throw invalidDomain('domain must be a string');
  let name = input.toLowerCase();
  const ascii = isAscii(name);
  // Converted before the trailing dot is dropped: UTS #46 maps `。` and `．` to dots, and only one
  // trailing dot may go (`ü..` has an empty label, as `a..` has).
  if (!ascii) name = toAscii(name);
  if (name.endsWith('.')) name = name.slice(0, -1);
  if (name.length === 0) throw invalidDomain('domain is empty');
  checkHostName(name);
  if (endsInNumber(name)) throw invalidDomain('domain ends in a number: an IP address is not a domain');
  if (name.includes('xn--') && !punycodeDecodes(name)) throw invalidIdn();
  return name;
}

/**
 * Every punycode label (`xn--…`) decodes to a valid internationalised label, and the name converts
 * back to itself. Node 20 and 22 answer '' for a name with a label that does not decode; Node 24
 * passes such a label through unchanged, which is why a label still `xn--` after decoding fails.
 */
function punycodeDecodes(name: string): boolean {
  const unicode = domainToUnicode(name);
  if (unicode === '' || unicode.startsWith('xn--') || unicode.includes('.xn--')) return false;
  return domainToASCII(unicode) === name;
}

function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return false;
  return true;
}

function toAscii(name: string): string {
  checkAsciiBeforeConversion(name);
  // domainToASCII applies UTS #46 mapping and punycode; it answers '' for names it cannot convert.
  const ascii = domainToASCII(name);
  if (ascii === '') throw invalidIdn();
  return ascii;
}

// domainToASCII reads its input as the host part of a URL: it cuts `evil.com/x.ü` at the `/` (to
// `evil.com`), and at `?`, `#` and `\`, percent-decodes `%41` and drops tabs. So every ASCII
// character must already be one a host name may hold; only the others are left to UTS #46.
function checkAsciiBeforeConversion(s: string): void {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xa0 || (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x2e) continue;
    if (c < 0x20 || c >= 0x7f) throw invalidDomain('domain contains control characters');
    throw invalidDomain(`domain contains an invalid character ${JSON.stringify(String.fromCharCode(c))}`);
  }
}

// One pass over the characters: cheaper than a regular expression plus split() on the hot path.
function checkHostName(name: string): void {
  if (name.length > MAX_NAME_LENGTH) throw invalidDomain(`domain is longer than ${MAX_NAME_LENGTH} characters`);
  let labelStart = 0;
  for (let i = 0; i <= name.length; i++) {
    const c = i < name.length ? name.charCodeAt(i) : 0x2e;
    if (c === 0x2e /* . */) {
      const length = i - labelStart;
      if (length === 0) throw invalidDomain('domain has an empty label');
      if (length > MAX_LABEL_LENGTH) throw invalidDomain(`domain has a label longer than ${MAX_LABEL_LENGTH} characters`);
      if (name.charCodeAt(labelStart) === 0x2d || name.charCodeAt(i - 1) === 0x2d) {
        throw invalidDomain('domain has a label that starts or ends with "-"');
      }
      labelStart = i + 1;
    } else if (!((c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2d)) {
      if (c < 0x20 || c === 0x7f) throw invalidDomain('domain contains control characters');
      throw invalidDomain(`domain contains an invalid character ${JSON.stringify(String.fromCharCode(c))}`);
    }
  }
}

// A last label such as `9` or `0x7f` makes a name an IPv4 address in URL hosts (which is how
// domainToASCII turns `９｡` into `0.0.0.9`); no top-level domain is numeric (RFC 3696 2).
function endsInNumber(name: string): boolean {
  const start = name.lastIndexOf('.') + 1;
  const hex = name.startsWith('0x', start);
  // Most names end in a letter after `f`, which no number (decimal or 0x hexadecimal) does, but
  // a bare `0x` is one too: the hexadecimal 0.
  if (name.charCodeAt(name.length - 1) > 0x66 /* f */ && !(hex && name.length === start + 2)) return false;
  for (let i = hex ? start + 2 : start; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (!((c >= 0x30 && c <= 0x39) || (hex && c >= 0x61 && c <= 0x66))) return false;
  }
  return true;
}
