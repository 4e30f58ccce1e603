import * as grpc from '@grpc/grpc-js';
import { StoreUnavailableError } from '../core/errors.js';
import type { DomainReport } from '../core/status.js';
import { mapConcurrently } from './concurrency.js';
import { grpcClients } from './grpc-clients.js';

const CONCURRENCY = 32;

/** Asks a running serve-grpc (Status/Get) for many domains at once over one connection. */
export async function fetchReportsGrpc(target: string, domains: readonly string[], token?: string, timeoutMs = 10_000): Promise<DomainReport[]> {
  const clients = grpcClients(target);
  const metadata = clients.metadata(token ?? '');
  const get = (domain: string) =>
    new Promise<DomainReport>((resolve, reject) =>
      clients.status.Get!({ domain }, metadata, { deadline: Date.now() + timeoutMs }, (error: grpc.ServiceError | null, reply: DomainReport) =>
        error ? reject(new StoreUnavailableError(`serve-grpc at ${target} answered ${grpc.status[error.code]} for ${domain}: ${error.details}`)) : resolve(reply),
      ),
    );
  try {
    return await mapConcurrently(domains, CONCURRENCY, get);
  } finally {
    clients.close();
  }
}
