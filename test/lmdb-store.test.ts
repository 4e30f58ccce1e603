import { LmdbStore } from '../src/store/lmdb-store.js';
import { counterStoreContract } from './helpers/store-contract.js';
import { tempDir } from './helpers/svc.js';

counterStoreContract('LmdbStore', async () => {
  const dir = tempDir();
  return {
    open: async () => new LmdbStore(dir.path),
    destroy: async () => dir.remove(),
  };
});
