import { Command, CommanderError } from 'commander';
import { SvcError } from '../core/errors.js';
import { ExitCode } from './exit.js';
import { loadtestCommand } from './loadtest.js';
import { materializeCommand } from './materialize.js';
import { replayCommand } from './replay.js';
import { serveHttpCommand } from './serve-http.js';
import { serveReadCommand } from './serve-read.js';
import { serveGrpcCommand } from './serve-grpc.js';
import { setupCommand } from './setup.js';
import { statusCommand } from './status.js';

const VERSION = '0.1.0';

export function buildProgram(): Command {
  const program = new Command('svc')
    .description('Counts email delivery events per domain and tells whether a domain is a catch-all.')
    .version(VERSION)
    .showHelpAfterError()
    .addHelpText('after', '\nEvery option can also be set by the SVC_* environment variable shown beside it.');
  for (const command of [serveHttpCommand(), serveReadCommand(), serveGrpcCommand(), statusCommand(), replayCommand(), setupCommand(), materializeCommand(), loadtestCommand()]) {
    program.addCommand(command);
  }
  // Usage errors exit 2 (commander's own default is 1, which we keep for store and I/O errors).
  program.exitOverride();
  for (const command of program.commands) command.exitOverride();
  return program;
}

export async function main(argv: string[]): Promise<void> {
  stopQuietlyWhenOutputCloses();
  try {
    await buildProgram().parseAsync(argv);
  } catch (error) {
    process.exitCode = exitCodeFor(error);
  }
}

function exitCodeFor(error: unknown): number {
  if (error instanceof CommanderError) {
    return error.exitCode === 0 ? ExitCode.Ok : ExitCode.Usage;
  }
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`svc: ${message}\n`);
  if (error instanceof SvcError && error.code === 'SVC_INVALID_INPUT') return ExitCode.Usage;
  return ExitCode.Failure;
}

/**
 * A reader that went away (`svc status … | head -1`) ends the command quietly, as it ends cat or
 * git, with the exit code it had so far, instead of an unhandled EPIPE and its stack trace.
 */
function stopQuietlyWhenOutputCloses(): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== 'EPIPE') throw error;
      process.exit();
    });
  }
}
