/** A promise and the function that settles it (Node 20 has no Promise.withResolvers): for "once the load is halfway, …". */
export function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((settle) => (resolve = settle));
  return { promise, resolve };
}
