import type { TestProject } from 'vitest/node';
import { ferretDbBinary, hasGo, startFerretDb, type FerretDb } from '../helpers/ferretdb.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** A MongoDB server for the MongoDB suite, '' when none could be had. */
    mongodbUri: string;
    /** The FerretDB binary for tests that stop and restart their own server, '' when none. */
    ferretdbBinary: string;
  }
}

let server: FerretDb | undefined;

/**
 * Gives the MongoDB suite a server: MONGODB_URI when set (a real MongoDB), otherwise FerretDB
 * built from scripts/ferretdb and started for this run. Without either the suite is skipped
 * loudly, except under CI, where that is a failure.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  let binary = '';
  try {
    if (await hasGo()) binary = await ferretDbBinary();
  } catch (error) {
    if (process.env.CI) throw error;
    console.warn(`\n*** could not build FerretDB: ${(error as Error).message}\n`);
  }
  let uri = process.env.MONGODB_URI ?? '';
  if (!uri && binary) {
    server = await startFerretDb(binary);
    uri = server.uri;
  }
  if (!uri) {
    const message = 'no MongoDB for the MongoDB suite: set MONGODB_URI or install Go so that FerretDB can be built';
    if (process.env.CI) throw new Error(message);
    console.warn(`\n${'*'.repeat(100)}\n*** SKIPPING THE MONGODB SUITE: ${message}\n${'*'.repeat(100)}\n`);
  }
  project.provide('mongodbUri', uri);
  project.provide('ferretdbBinary', binary);
  return async () => {
    await server?.destroy();
  };
}
