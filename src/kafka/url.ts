import { ValidationError } from '../core/errors.js';

/** Where a `kafka://HOST:PORT[,HOST:PORT…]/PREFIX` store lives. */
export interface KafkaLocation {
  brokers: string[];
  prefix: string;
  /** PREFIX.events: the events, one partition per domain (see partitionOf). */
  eventsTopic: string;
  /** PREFIX.counts: each domain's totals, compacted, partitioned like the events. */
  countsTopic: string;
  /** PREFIX.replays: svc replay's checkpoints, keyed by file fingerprint, compacted. */
  replaysTopic: string;
}

export const KAFKA_SCHEME = 'kafka://';

export function isKafkaUrl(store: string): boolean {
  return store.startsWith(KAFKA_SCHEME);
}

// Kafka's own rule for topic names (legal characters, at most 249), less the room for `.events`.
const PREFIX = /^[A-Za-z0-9._-]{1,200}$/;
const HOST = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)$/;

/** Parses and checks a kafka:// store URL; throws ValidationError naming what is wrong. */
export function parseKafkaUrl(url: string): KafkaLocation {
  const usage = `expected kafka://HOST:PORT[,HOST:PORT…]/PREFIX, got ${JSON.stringify(url)}`;
  if (!isKafkaUrl(url)) throw new ValidationError(usage);
  const rest = url.slice(KAFKA_SCHEME.length);
  const slash = rest.indexOf('/');
  if (slash < 0) throw new ValidationError(`${usage}: the topic PREFIX is missing`);
  const hosts = rest.slice(0, slash);
  const prefix = rest.slice(slash + 1);
  if (!PREFIX.test(prefix)) {
    throw new ValidationError(`${usage}: PREFIX must be 1 to 200 letters, digits, dots, underscores or dashes`);
  }
  if (hosts === '') throw new ValidationError(`${usage}: no broker given`);
  const brokers = hosts.split(',').map((broker) => {
    const colon = broker.lastIndexOf(':');
    const host = broker.slice(0, colon);
    const port = Number(broker.slice(colon + 1));
    if (colon <= 0 || !HOST.test(host) || !Number.isInteger(port) || port < 1 || port > 65535 || !/^\d+$/.test(broker.slice(colon + 1))) {
      throw new ValidationError(`${usage}: ${JSON.stringify(broker)} is not HOST:PORT`);
    }
    return broker;
  });
  return { brokers, prefix, eventsTopic: `${prefix}.events`, countsTopic: `${prefix}.counts`, replaysTopic: `${prefix}.replays` };
}
