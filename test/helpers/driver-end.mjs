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
    // A journal never taken over fails the run with its names, rather than hanging the test.
    const deadline = Date.now() + 45_000;
    while (others().length > 0) {
      if (Date.now() > deadline) throw new Error(`journals still not taken over after 45 s: ${others().join(', ')}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
  await store.close();
  process.stdout.write('closed\n');
}
