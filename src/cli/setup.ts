import { Command } from 'commander';
import { openStore } from '../store/open-store.js';
import { addStoreOptions, option, parseInteger, storeOptionsFrom } from './options.js';

export function setupCommand(): Command {
  const command = new Command('setup').description(
    'prepare a store: create the MongoDB collection and, behind mongos, shard it on { _id: "hashed" }; on Kafka, create PREFIX.events and PREFIX.counts (idempotent)',
  );
  return addStoreOptions(command)
    .addOption(option('--partitions <n>', 'kafka:// store: partitions of the topics to create', 'SVC_PARTITIONS').argParser(parseInteger(1)))
    .action(async (options) => {
      const store = await openStore({ ...storeOptionsFrom(options), use: 'bulk' });
      try {
        for (const note of await store.setup()) process.stdout.write(`${note}\n`);
      } finally {
        await store.close();
      }
    });
}
