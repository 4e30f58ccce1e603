import * as grpc from '@grpc/grpc-js';
import { StoreUnavailableError } from '../core/errors.js';
import type { DomainReport } from '../core/status.js';
import { loadProto } from '../grpc/grpc-app.js';

const CONCURRENCY = 32;

/** Asks a running serve-grpc (Status/Get) for many domains at once over one connection. */
export async function fetchReportsGrpc(target: string, domains: readonly string[], token?: string, timeoutMs = 10_000): Promise<DomainReport[]> {
  const proto = grpc.loadPackageDefinition(loadProto()) as unknown as { svc: { v1: { Status: grpc.ServiceClientConstructor } } };
  const client = new proto.svc.v1.Status(target, grpc.credentials.createInsecure());
  const metadata = new grpc.Metadata();
  if (token) metadata.set('authorization', `Bearer ${token}`);
  const get = (domain: string) =>
    new Promise<DomainReport>((resolve, reject) =>
      client.Get({ domain }, metadata, { deadline: Date.now() + timeoutMs }, (error: grpc.ServiceError | null, reply: DomainReport) =>
        error ? reject(new StoreUnavailableError(`serve-grpc at ${target} answered ${grpc.status[error.code]} for ${domain}: ${error.details}`)) : resolve(reply),
      ),
    );
  try {
    const reports = new Array<DomainReport>(domains.length);
    let next = 0;
    const worker = async () => {
      while (next < domains.length) {
        const index = next++;
        reports[index] = await get(domains[index]!);
      }
    };
    await Promise.all(Array.from({ length: Math.min(CONCURRENCY, domains.length) }, worker));
    return reports;
  } finally {
    client.close();
  }
}
