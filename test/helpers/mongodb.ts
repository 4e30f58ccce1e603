import { randomBytes } from 'node:crypto';
import { MongoClient } from 'mongodb';
import { ConnectionString } from 'mongodb-connection-string-url';

/** The server's URI with a fresh database name in its path, so that tests never share data. */
export function uniqueDatabaseUri(serverUri: string, prefix = 'svc_test'): string {
  const uri = new ConnectionString(serverUri);
  uri.pathname = `/${prefix}_${randomBytes(4).toString('hex')}`;
  return uri.toString();
}

export async function dropDatabase(uri: string): Promise<void> {
  const client = new MongoClient(uri, { serverSelectionTimeoutMS: 5000 });
  try {
    await client.db().dropDatabase();
  } finally {
    await client.close();
  }
}

export async function isFerretDb(uri: string): Promise<boolean> {
  const client = new MongoClient(uri, { serverSelectionTimeoutMS: 5000 });
  try {
    const info = await client.db().admin().command({ buildInfo: 1 });
    return info.ferretdbVersion !== undefined;
  } finally {
    await client.close();
  }
}
