import { Command } from 'commander';
import { DomainReader } from '../core/domain-reader.js';
import { normalizeDomain } from '../core/domain.js';
import { ValidationError } from '../core/errors.js';
import type { DomainReport } from '../core/status.js';
import { openStore } from '../store/open-store.js';
import { addStoreOptions, jsonOption, option, readTokenOption, storeOptionsFrom, thresholdOption } from './options.js';
import { ExitCode } from './exit.js';

export function statusCommand(): Command {
  const command = new Command('status')
    .description('print the status and counts of one or more domains')
    .argument('<domain...>', 'domain names (any case, internationalised names allowed)');
  return addStoreOptions(command, { reads: true })
    .addOption(option('--url <url>', 'ask a running serve-http or serve-read instead of reading the store', 'SVC_URL'))
    .addOption(option('--grpc <host:port>', 'ask a running serve-grpc (Status/Get) instead of reading the store', 'SVC_GRPC'))
    .addOption(readTokenOption('with --url or --grpc: send Authorization: Bearer <token>'))
    .addOption(thresholdOption())
    .addOption(jsonOption())
    .addHelpText('after', '\nExit codes: 0 all answered, 1 store or network error, 2 an invalid domain (the valid ones are still printed).')
    .action(async (names: string[], options) => {
      const domains: string[] = [];
      let invalid = false;
      for (const name of names) {
        try {
          domains.push(normalizeDomain(name));
        } catch (error) {
          if (!(error instanceof ValidationError)) throw error;
          process.stderr.write(`svc status: ${JSON.stringify(name)}: ${error.message}\n`);
          invalid = true;
        }
      }
      const unique = [...new Set(domains)];
      const reports = options.grpc
        ? await fetchGrpc(options.grpc, unique, options.readToken)
        : options.url
          ? await fetchRemote(options.url, unique, options.readToken)
          : await readStore(unique, options);
      process.stdout.write(options.json ? reports.map((r) => JSON.stringify(r) + '\n').join('') : formatTable(reports));
      if (invalid) process.exitCode = ExitCode.Usage;
    });
}

async function fetchRemote(url: string, domains: string[], token: string | undefined): Promise<DomainReport[]> {
  // undici is loaded only for --url.
  const { fetchReports } = await import('../client/remote-reader.js');
  return fetchReports(url, domains, token);
}

async function fetchGrpc(target: string, domains: string[], token: string | undefined): Promise<DomainReport[]> {
  // gRPC is loaded only for --grpc.
  const { fetchReportsGrpc } = await import('../client/grpc-reader.js');
  return fetchReportsGrpc(target, domains, token);
}

async function readStore(domains: string[], options: Record<string, unknown>): Promise<DomainReport[]> {
  if (domains.length === 0) return [];
  const store = await openStore({ ...storeOptionsFrom(options), use: 'read' });
  try {
    return await new DomainReader(store, options.threshold as number).reportMany(domains);
  } finally {
    await store.close();
  }
}

function formatTable(reports: DomainReport[]): string {
  const width = Math.max(0, ...reports.map((r) => r.domain.length));
  return reports
    .map((r) => `${r.domain.padEnd(width)}  ${r.status.padEnd(13)}  delivered=${r.delivered} bounced=${r.bounced}\n`)
    .join('');
}
