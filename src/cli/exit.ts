/** Exit codes every command uses. */
export const ExitCode = {
  Ok: 0,
  /** A store, network or I/O error. */
  Failure: 1,
  /** A usage error or invalid input. */
  Usage: 2,
} as const;
