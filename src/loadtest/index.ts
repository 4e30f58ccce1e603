/** `svc loadtest` as a library: the CLI is one user of it, tests and benchmarks are others. */
export { runLoadtest, type LoadtestHooks, type LoadtestProgress } from './run.js';
export { DEFAULT_LOADTEST_OPTIONS, MODES, resolveLoadtestOptions, type LoadtestOptions, type Mode } from './options.js';
export type { LoadtestReport } from './report.js';
export type { Percentiles } from './histogram.js';
export type { VerifyReport, VerifyTotals, Mismatch } from './verify.js';
export { checkGates, type GateResult, type Gates } from './gates.js';
export { formatProgress, formatReport } from './format.js';
export { TargetUnreachableError } from './errors.js';
export { findMaxRate, type SearchOptions, type SearchResult, type Step } from './find-max.js';
