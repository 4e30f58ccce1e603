import type { TestProject } from 'vitest/node';
import { hasGo } from '../helpers/ferretdb.js';
import { kafkaBrokerBinary } from '../helpers/kafka.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** The kfake test broker binary (scripts/kafka), '' when it could not be built. */
    kafkaBrokerBinary: string;
  }
}

/**
 * Builds the kfake test broker once per run (cached under .cache/kafka); each Kafka test starts
 * its own broker on free ports. Without Go the Kafka suite is skipped loudly, except under CI,
 * where that is a failure.
 */
export default async function setup(project: TestProject): Promise<void> {
  let binary = '';
  try {
    if (await hasGo()) binary = await kafkaBrokerBinary();
  } catch (error) {
    if (process.env.CI) throw error;
    console.warn(`\n*** could not build the kfake test broker: ${(error as Error).message}\n`);
  }
  if (!binary) {
    const message = 'no Kafka test broker: install Go so that scripts/kafka can be built';
    if (process.env.CI) throw new Error(message);
    console.warn(`\n${'*'.repeat(100)}\n*** SKIPPING THE KAFKA SUITE: ${message}\n${'*'.repeat(100)}\n`);
  }
  project.provide('kafkaBrokerBinary', binary);
}
