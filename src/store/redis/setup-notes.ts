import type { RedisCommands } from './commands.js';
import { APPLY, COMPARE_AND_SET, DELETE_IF_PREFIX, READ } from './scripts.js';

/** One setting's value (node-redis answers CONFIG GET with an object, or a list in some versions). */
async function config(commands: RedisCommands, name: string): Promise<string | undefined> {
  try {
    const reply = await commands.send<Record<string, string> | string[]>(['CONFIG', 'GET', name]);
    return Array.isArray(reply) ? reply[1] : reply[name];
  } catch {
    return undefined; // CONFIG may be renamed or refused on managed servers.
  }
}

/** `field:value` lines of an INFO section. */
function info(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const at = line.indexOf(':');
    if (at > 0 && !line.startsWith('#')) fields.set(line.slice(0, at), line.slice(at + 1).trim());
  }
  return fields;
}

/**
 * What `svc setup` checks on a server (every master of a cluster is set up alike by its operator;
 * this asks the one the seed names): that acknowledged writes survive a crash of the server (AOF),
 * that nothing is evicted, and that the server is what the URL says (a cluster or not). Loads the
 * scripts too. Returns notes for the operator; a `WARNING:` one names a risk to the counts.
 */
export async function serverNotes(commands: RedisCommands, cluster: boolean): Promise<string[]> {
  const notes: string[] = [];
  const server = info(await commands.send<string>(['INFO', 'server']));
  notes.push(`Redis ${server.get('redis_version') ?? '?'} (${server.get('redis_mode') ?? '?'} mode)`);
  const persistence = info(await commands.send<string>(['INFO', 'persistence']));
  if (persistence.get('aof_enabled') === '1') {
    const fsync = await config(commands, 'appendfsync');
    // everysec: while a background fsync runs, Redis holds its AOF write back for up to 2 s and
    // answers meanwhile, so even a crash of Redis (kill -9) can lose what it acknowledged then.
    const crash = fsync === 'everysec' ? 'up to ~2 s of acknowledged writes when the disk is slow (Redis answers while it holds its AOF write back behind a running fsync)' : 'nothing acknowledged';
    const power = fsync === 'always' ? 'nothing acknowledged' : fsync === 'no' ? 'up to ~30 s (the kernel flushes)' : 'up to ~2 s';
    const advice = fsync === 'always' ? '' : '; appendfsync always loses nothing acknowledged';
    notes.push(`AOF on (appendfsync ${fsync ?? 'unknown'}): a crash of Redis loses ${crash}; a power loss ${power}${advice}`);
  } else {
    notes.push(
      'WARNING: AOF is off (appendonly no): a crash or restart of Redis loses every count since its last RDB snapshot. Turn it on: CONFIG SET appendonly yes, and appendonly yes in redis.conf',
    );
  }
  const policy = await config(commands, 'maxmemory-policy');
  if (policy !== undefined && policy !== 'noeviction') {
    notes.push(`WARNING: maxmemory-policy is ${policy}: Redis may evict counters when full. Set it to noeviction (writes then fail with 503 instead)`);
  }
  const clusterInfo = info(await commands.send<string>(['INFO', 'cluster']));
  const enabled = clusterInfo.get('cluster_enabled') === '1';
  if (enabled && !cluster) notes.push('WARNING: this server is a cluster node: use --store redis-cluster://HOST:PORT');
  if (!enabled && cluster) notes.push('WARNING: this server is not a cluster node: use --store redis://HOST:PORT');
  if (enabled) {
    const state = info(await commands.send<string>(['CLUSTER', 'INFO']));
    notes.push(
      `cluster state ${state.get('cluster_state') ?? '?'}: ${state.get('cluster_size') ?? '?'} masters serving slots, ${state.get('cluster_known_nodes') ?? '?'} nodes, ${state.get('cluster_slots_ok') ?? '?'} of 16384 slots ok`,
    );
    if (state.get('cluster_state') !== 'ok') notes.push('WARNING: the cluster is not ok: batches get 503 until it is');
  }
  for (const script of [APPLY, READ, COMPARE_AND_SET, DELETE_IF_PREFIX]) await commands.send(['SCRIPT', 'LOAD', script.source]);
  notes.push('scripts loaded');
  return notes;
}
