import { ClientClosedError, ClientOfflineError, ErrorReply } from '@redis/client';
import type { Script } from './scripts.js';

/**
 * What the store needs of a connection, one server or a cluster: a command, routed by `key` on a
 * cluster, failed after the store's timeout. Throws node-redis's errors (see isUnsent, isAnswer).
 */
export interface RedisCommands {
  send<T>(args: string[], key?: string): Promise<T>;
}

/** Runs a script by its SHA1, loading it with EVAL where the server does not have it yet. */
export async function runScript<T>(commands: RedisCommands, script: Script, keys: string[], args: string[]): Promise<T> {
  const tail = [String(keys.length), ...keys, ...args];
  try {
    return await commands.send<T>(['EVALSHA', script.sha, ...tail], keys[0]);
  } catch (error) {
    if (!(error instanceof ErrorReply && error.message.startsWith('NOSCRIPT'))) throw error;
    return commands.send<T>(['EVAL', script.source, ...tail], keys[0]);
  }
}

/** The command never left this process: the client was offline or closed. */
export function isUnsent(error: unknown): boolean {
  return error instanceof ClientOfflineError || error instanceof ClientClosedError;
}

/**
 * The server answered with an error: the command ran and failed, or did not run (a script of
 * this store writes nothing before it can fail), but it will not run later.
 */
export function isAnswer(error: unknown): error is ErrorReply {
  return error instanceof ErrorReply;
}

/** A write that reached fewer replicas than --redis-wait asks for: it is counted, but not acknowledged. */
export class NotReplicatedError extends Error {}

/**
 * After a write sent through this connection (on a cluster: to the node of `key`), waits until
 * `replicas` replicas have every write sent before it (WAIT), for at most `timeoutMs`.
 */
export async function replicated(commands: RedisCommands, replicas: number, timeoutMs: number, key?: string): Promise<void> {
  if (replicas === 0) return;
  const reached = await commands.send<number>(['WAIT', String(replicas), String(timeoutMs)], key);
  if (reached < replicas) throw new NotReplicatedError(`the write reached ${reached} of the ${replicas} replicas --redis-wait asks for`);
}
