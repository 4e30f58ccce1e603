// How the test drivers (journal-driver.mjs, key-driver.mjs) end, as their `end` argument says:
//   close  closes the store (applies everything, like SIGTERM);
//   kill   kills the process with SIGKILL;
//   drain  waits until every other writer's journal is taken over and applied, then closes.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

export async function endDriver(store, directory, end) {
  if (end === 'kill') process.kill(process.pid, 'SIGKILL');
  if (end === 'drain') {
    const own = `-${process.pid.toString(36)}-`;
    const others = () => readdirSync(join(directory, 'journal')).filter((file) => !file.includes(own));
    while (others().length > 0) await new Promise((resolve) => setTimeout(resolve, 20));
  }
  await store.close();
  process.stdout.write('closed\n');
}
