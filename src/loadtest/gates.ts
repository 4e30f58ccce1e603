import type { LoadtestReport } from './report.js';

/** Thresholds a run must meet, like k6 thresholds: any violation fails the command. */
export interface Gates {
  /** Corrected p95 latency, in ms. */
  maxP95Ms?: number;
  /** (errors + dropped) / (sent + dropped). */
  maxErrorRate?: number;
}

export interface GateResult {
  gate: string;
  limit: number;
  actual: number;
  passed: boolean;
}

/**
 * The gates asked for, plus the verification's own: nothing lost, nothing counted beyond what was
 * sent (a service that counts twice fails), every domain read back.
 */
export function checkGates(report: LoadtestReport, gates: Gates): GateResult[] {
  const results: GateResult[] = [];
  const atMost = (gate: string, actual: number, limit: number) => results.push({ gate, limit, actual, passed: actual <= limit });
  if (gates.maxP95Ms !== undefined) atMost('max-p95', report.latencyMs.p95, gates.maxP95Ms);
  if (gates.maxErrorRate !== undefined) atMost('max-error-rate', report.errorRate, gates.maxErrorRate);
  if (report.verify) {
    atMost('verify-lost', report.verify.lost, 0);
    atMost('verify-extra', report.verify.extra, 0);
    atMost('verify-unreadable', report.verify.unreadable, 0);
  }
  return results;
}
