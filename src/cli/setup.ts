import { Command } from 'commander';
import { openStore } from '../store/open-store.js';
import { addStoreOptions, storeOptionsFrom } from './options.js';

export function setupCommand(): Command {
  const command = new Command('setup').description(
    'prepare a store: create the MongoDB collection and, behind mongos, shard it on { _id: "hashed" } (idempotent)',
  );
  return addStoreOptions(command).action(async (options) => {
    const store = await openStore({ ...storeOptionsFrom(options), use: 'bulk' });
    try {
      for (const note of await store.setup()) process.stdout.write(`${note}\n`);
    } finally {
      await store.close();
    }
  });
}
