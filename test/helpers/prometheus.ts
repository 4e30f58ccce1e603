/**
 * A strict reader of the Prometheus text exposition format (version 0.0.4): it throws on any line
 * that is not a comment, a blank line or a well-formed sample of a declared metric family.
 */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Exposition {
  samples: Sample[];
  /** Family name → counter, gauge, histogram, summary or untyped. */
  types: Map<string, string>;
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const HELP = new RegExp(`^# HELP (${NAME}) (.*)$`);
const TYPE = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`);
const SAMPLE = new RegExp(`^(${NAME})(?:\\{(.*)\\})? (\\S+)(?: (-?\\d+))?$`);
const LABEL = /^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\["\\n])*)"(,|$)/;
const SUFFIXES: Record<string, string[]> = { histogram: ['_bucket', '_sum', '_count'], summary: ['', '_sum', '_count'] };

export function parsePrometheus(text: string): Exposition {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    let match: RegExpExecArray | null;
    if ((match = TYPE.exec(line))) {
      if (types.has(match[1]!)) throw new Error(`metric family declared twice: ${line}`);
      types.set(match[1]!, match[2]!);
    } else if (HELP.test(line) || line.startsWith('#')) {
      continue;
    } else if ((match = SAMPLE.exec(line))) {
      const [, name, labelText, valueText] = match;
      const value = parseValue(valueText!, line);
      if (familyOf(name!, types) === undefined) throw new Error(`sample of an undeclared family: ${line}`);
      samples.push({ name: name!, labels: parseLabels(labelText ?? '', line), value });
    } else {
      throw new Error(`not Prometheus text format: ${JSON.stringify(line)}`);
    }
  }
  return { samples, types };
}

function familyOf(name: string, types: Map<string, string>): string | undefined {
  if (types.has(name)) return name;
  for (const [family, type] of types) {
    if ((SUFFIXES[type] ?? []).some((suffix) => name === family + suffix)) return family;
  }
  return undefined;
}

/** As Prometheus reads a value (Go's ParseFloat): NaN and Inf in any case; prom-client writes `Nan`. */
function parseValue(text: string, line: string): number {
  if (/^\+?inf$/i.test(text)) return Infinity;
  if (/^-inf$/i.test(text)) return -Infinity;
  if (/^nan$/i.test(text)) return NaN;
  const value = Number(text);
  if (Number.isNaN(value)) throw new Error(`bad sample value: ${line}`);
  return value;
}

function parseLabels(text: string, line: string): Record<string, string> {
  const labels: Record<string, string> = {};
  let rest = text;
  while (rest.length > 0) {
    const match = LABEL.exec(rest);
    if (!match) throw new Error(`bad labels: ${line}`);
    labels[match[1]!] = match[2]!.replace(/\\(["\\n])/g, (_, c: string) => (c === 'n' ? '\n' : c));
    rest = rest.slice(match[0].length);
  }
  return labels;
}

/** The value of the one sample with exactly these labels (le excepted unless given), or undefined. */
export function sampleValue(exposition: Exposition, name: string, labels: Record<string, string> = {}): number | undefined {
  const wanted = Object.entries(labels);
  const found = exposition.samples.filter(
    (sample) =>
      sample.name === name &&
      Object.keys(sample.labels).length === wanted.length &&
      wanted.every(([key, value]) => sample.labels[key] === value),
  );
  if (found.length > 1) throw new Error(`${name} ${JSON.stringify(labels)} matches ${found.length} samples`);
  return found[0]?.value;
}

/** Checks a histogram series: buckets cumulative, +Inf equal to _count; returns its count and sum. */
export function histogram(exposition: Exposition, name: string, labels: Record<string, string> = {}): { count: number; sum: number } {
  const buckets = exposition.samples
    .filter((s) => s.name === `${name}_bucket` && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .filter((s) => Object.keys(s.labels).length === Object.keys(labels).length + 1);
  const count = sampleValue(exposition, `${name}_count`, labels);
  const sum = sampleValue(exposition, `${name}_sum`, labels);
  if (buckets.length === 0 || count === undefined || sum === undefined) throw new Error(`no histogram ${name} ${JSON.stringify(labels)}`);
  for (let i = 1; i < buckets.length; i++) {
    if (Number(buckets[i]!.labels.le) <= Number(buckets[i - 1]!.labels.le) && buckets[i]!.labels.le !== '+Inf') {
      throw new Error(`${name}: buckets out of order`);
    }
    if (buckets[i]!.value < buckets[i - 1]!.value) throw new Error(`${name}: buckets not cumulative`);
  }
  const last = buckets[buckets.length - 1]!;
  if (last.labels.le !== '+Inf' || last.value !== count) throw new Error(`${name}: +Inf bucket is not _count`);
  return { count, sum };
}
