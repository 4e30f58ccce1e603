import { LmdbStore } from '../src/store/lmdb/lmdb-store.js';
import { counterStoreContract } from './helpers/store-contract.js';
import { tempDir } from './helpers/svc.js';

counterStoreContract('LmdbStore', async () => {
  const dir = tempDir();
  return {
    open: () => LmdbStore.open(dir.path, { use: 'ingest' }),
    destroy: async () => dir.remove(),
  };
});
