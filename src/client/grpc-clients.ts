import * as grpc from '@grpc/grpc-js';
import { loadProto } from '../grpc/grpc-app.js';

/** A client of proto/svc/v1/ingest.proto's services, its methods by name. */
type ServiceClient = grpc.Client & Record<string, (...args: any[]) => any>;

/** Ingest and Status clients of a serve-grpc at `target`, for svc status --grpc and svc loadtest. */
export interface GrpcClients {
  ingest: ServiceClient;
  status: ServiceClient;
  metadata(token: string): grpc.Metadata;
  close(): void;
}

export function grpcClients(target: string): GrpcClients {
  const proto = grpc.loadPackageDefinition(loadProto()) as unknown as { svc: { v1: Record<string, grpc.ServiceClientConstructor> } };
  const ingest = new proto.svc.v1.Ingest!(target, grpc.credentials.createInsecure()) as unknown as ServiceClient;
  const status = new proto.svc.v1.Status!(target, grpc.credentials.createInsecure()) as unknown as ServiceClient;
  return {
    ingest,
    status,
    metadata(token) {
      const metadata = new grpc.Metadata();
      if (token) metadata.set('authorization', `Bearer ${token}`);
      return metadata;
    },
    close() {
      ingest.close();
      status.close();
    },
  };
}
