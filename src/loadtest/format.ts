import type { GateResult } from './gates.js';
import type { Percentiles } from './histogram.js';
import type { LoadtestReport } from './report.js';
import type { LoadtestProgress } from './run.js';

const n = (value: number) => value.toLocaleString('en-US', { maximumFractionDigits: 2 });
const percent = (value: number) => `${n(value * 100)}%`;

/** One line of live progress. */
export function formatProgress(p: LoadtestProgress): string {
  const time = `[${p.elapsedSeconds.toFixed(1).padStart(6)}s]`;
  if (p.phase === 'verify') return `${time} verify  reading every touched domain back`;
  return (
    `${time} ${p.phase.padEnd(7)} sent ${n(p.sent)}  ok ${n(p.ok)}  errors ${n(p.errors)}  ` +
    `rate ${n(p.rate)}/s  p95 ${n(p.p95Ms)} ms` +
    (p.queued > 0 ? `  waiting ${n(p.queued)}` : '')
  );
}

/** The final table. */
export function formatReport(r: LoadtestReport, gates: GateResult[]): string {
  const lines = [
    `target       ${r.target}  ${r.mode === 'batch' ? `batch mode, ${r.batchSize} events per request` : 'event mode'}` +
      `${r.readRatio > 0 ? `, ${percent(r.readRatio)} reads` : ''}`,
    `workload     ${r.distribution} over ${n(r.domains)} domains, seed ${r.seed}`,
    `connections  ${r.connections} × pipelining ${r.pipelining}`,
    `duration     ${n(r.durationSeconds)} s measured after ${n(r.warmupSeconds)} s of warm-up${r.aborted ? ' (aborted)' : ''}`,
    `rate         requested ${n(r.requestedRps)}/s, achieved ${n(r.achievedRps)}/s` +
      (r.mode === 'batch' ? ` (${n(r.events.perSecond)} events/s)` : ''),
    `requests     scheduled ${n(r.scheduled)}, sent ${n(r.sent)}, ok ${n(r.ok)}, errors ${n(r.errors)}, dropped ${n(r.dropped)}` +
      ` (error rate ${percent(r.errorRate)})${r.retries > 0 ? `, ${n(r.retries)} retries` : ''}`,
    `status       ${Object.entries(r.statusCodes).map(([code, count]) => `${code}: ${n(count)}`).join(', ') || 'none'}`,
  ];
  const failures = Object.entries(r.errorsByKind).filter(([, count]) => count > 0);
  if (failures.length > 0) lines.push(`errors       ${failures.map(([kind, count]) => `${kind}: ${n(count)}`).join(', ')}`);
  lines.push(
    `sending      ${n(r.late)} late (> ${r.lateToleranceMs} ms after due; ${n(r.generatorLate)} of them with a slot free), ` +
      `${n(r.queued)} waited for a connection slot`,
    '',
    `latency ms   ${['p50', 'p90', 'p95', 'p99', 'p99.9', 'max'].map((h) => h.padStart(9)).join('')}`,
    `corrected    ${row(r.latencyMs)}`,
    `uncorrected  ${row(r.uncorrectedLatencyMs)}`,
  );
  if (r.verify) {
    const v = r.verify;
    lines.push(
      '',
      `verify       ${n(v.domains)} domains read back from ${v.url}: acknowledged ${n(v.acknowledged)}, ` +
        `indefinite ${n(v.indefinite)}, counted ${n(v.counted)}`,
      `             lost ${n(v.lost)}, extra ${n(v.extra)}${v.unreadable > 0 ? `, unreadable ${n(v.unreadable)} (${v.unreadableReason})` : ''}`,
    );
    for (const m of v.mismatches) {
      lines.push(
        `             ${m.domain}: acknowledged ${m.acknowledged.delivered}/${m.acknowledged.bounced}, ` +
          `indefinite ${m.indefinite.delivered}/${m.indefinite.bounced}, counted ${m.counted.delivered}/${m.counted.bounced} (delivered/bounced)`,
      );
    }
  }
  if (gates.length > 0) {
    lines.push('');
    for (const g of gates) lines.push(`gate         ${g.gate} ${n(g.limit)}: ${n(g.actual)} ${g.passed ? 'ok' : 'FAILED'}`);
  }
  for (const warning of r.warnings) lines.push(`warning      ${warning}`);
  return lines.join('\n') + '\n';
}

function row(p: Percentiles): string {
  return [p.p50, p.p90, p.p95, p.p99, p.p999, p.max].map((v) => v.toFixed(3).padStart(9)).join('');
}
