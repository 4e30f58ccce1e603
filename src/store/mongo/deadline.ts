/**
 * The driver's command, failed if it has not settled within `ms`. When the server was killed in
 * the middle of a test's writes, a bulkWrite was seen to never settle despite every timeout the
 * driver offers, holding its batch, and every batch after it, for ever. A write failed this way
 * may still have been applied: like a socket timeout, it is in doubt, and its requests get 503.
 */
export function answeredWithin<T>(command: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([command, deadline]).finally(() => clearTimeout(timer));
}

/** A command given a deadline (see answeredWithin). */
export type Answered = <T>(command: Promise<T>) => Promise<T>;
