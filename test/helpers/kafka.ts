import { spawn, type ChildProcess } from 'node:child_process';
import { goToolBinary } from './go-tool.js';

/** Builds (once; cached under .cache/) the kfake test broker and returns the binary's path. */
export function kafkaBrokerBinary(): Promise<string> {
  return goToolBinary('kafka', 'the kfake test broker');
}

export interface KafkaBroker {
  /** Bootstrap addresses, comma-separated: `127.0.0.1:p1,127.0.0.1:p2`. */
  brokers: string;
  /** A `--store` URL on this broker with the given topic prefix. */
  storeUrl(prefix: string): string;
  stop(): Promise<void>;
}

export interface BrokerOptions {
  brokers?: number;
  /** How often compacted topics are cleaned. */
  compactionBackoffMs?: number;
}

/** Starts the broker on free ports (it picks them) and waits for the addresses it prints. */
export async function startKafkaBroker(binary: string, options: BrokerOptions = {}): Promise<KafkaBroker> {
  const args = [`-brokers=${options.brokers ?? 1}`, `-compaction-backoff=${options.compactionBackoffMs ?? 1000}ms`];
  const child: ChildProcess = spawn(binary, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const brokers = await new Promise<string>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error('the kfake broker printed no address within 15 s')), 15_000);
    child.stdout!.on('data', (chunk) => {
      out += chunk;
      const newline = out.indexOf('\n');
      if (newline >= 0) {
        clearTimeout(timer);
        resolve(out.slice(0, newline).trim());
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the kfake broker exited (${code}) before it listened`));
    });
  });
  child.stdout!.resume();
  return {
    brokers,
    storeUrl: (prefix) => `kafka://${brokers}/${prefix}`,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

export interface Materializer {
  process: ChildProcess;
  output(): string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Starts `svc materialize --store STORE --state STATE …` and resolves once it has joined its group. */
export function startMaterializer(svcBin: string, store: string, state: string, args: string[] = []): Promise<Materializer> {
  const child = spawn(process.execPath, [svcBin, 'materialize', '--store', store, '--state', state, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  child.stderr!.on('data', (chunk) => (output += chunk));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`materialize did not start:\n${output}`)), 20_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`materialize exited with ${code}:\n${output}`));
    });
    child.stdout!.on('data', (chunk) => {
      output += chunk;
      if (!output.includes('"msg":"materializing"')) return;
      clearTimeout(timer);
      resolve({
        process: child,
        output: () => output,
        stop: (signal = 'SIGTERM') => {
          if (child.exitCode === null && child.signalCode === null) child.kill(signal);
          return exited;
        },
      });
    });
  });
}
