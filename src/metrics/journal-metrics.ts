import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { log } from '../log.js';
import type { JournalObserver } from '../store/lmdb/lmdb-store.js';

const LAG_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const APPLY_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** The embedded store's journal: how fresh this process's reads are, and how far behind LMDB is. */
export function journalMetrics(registry: Registry): JournalObserver {
  const registers = [registry];
  const lag = new Histogram({
    name: 'svc_journal_read_lag_seconds',
    help: 'Time from an event batch appended by another process to its being visible to reads here',
    buckets: LAG_BUCKETS,
    registers,
  });
  const applySeconds = new Histogram({
    name: 'svc_journal_apply_duration_seconds',
    help: 'Time to apply a job of sealed journal segments to LMDB',
    buckets: APPLY_BUCKETS,
    registers,
  });
  const appliedEvents = new Counter({ name: 'svc_journal_applied_events_total', help: 'Events applied from the journal to LMDB', registers });
  const appliedDomains = new Counter({ name: 'svc_journal_applied_domains_total', help: 'Domain updates written to LMDB by apply jobs', registers });
  const unapplied = new Gauge({ name: 'svc_journal_unapplied_bytes', help: 'Journal written (or taken over) by this process and not applied to LMDB yet', registers });
  const segments = new Gauge({ name: 'svc_journal_segments', help: 'Journal segments whose unapplied events this process holds for its reads', registers });
  const entries = new Gauge({ name: 'svc_journal_entries', help: 'Per-segment domain entries this process holds for its reads', registers });
  return {
    visible(seconds) {
      lag.observe(seconds);
    },
    applied(domains, events, seconds) {
      appliedDomains.inc(domains);
      appliedEvents.inc(events);
      applySeconds.observe(seconds);
    },
    warning(message, fields) {
      log('warn', message, fields);
    },
    state(state) {
      unapplied.set(state.unappliedBytes);
      segments.set(state.segments);
      entries.set(state.entries);
    },
  };
}
