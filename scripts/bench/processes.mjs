// Starting a daemon for the bench and watching what it costs: CPU seconds and resident memory of
// the process and its children (the workers of a cluster), read from /proc.
import { execFileSync, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

const TICKS_PER_SECOND = 100;
const PAGE_BYTES = 4096;

/**
 * Spawns `node <args>` and resolves once it prints its {"msg":"listening","url":…} line.
 * The returned handle samples CPU and RSS of the whole process tree every 200 ms.
 */
export async function startDaemon(args, { env = {} } = {}) {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...env } });
  const url = await new Promise((resolve, reject) => {
    let output = '';
    const onData = (chunk) => {
      output += chunk;
      const lines = output.split('\n');
      output = lines.pop();
      const url = lines.map(listeningUrl).find(Boolean);
      if (url) {
        child.stdout.off('data', onData);
        child.stdout.resume();
        resolve(url);
      }
    };
    child.stdout.on('data', onData);
    child.once('exit', (code) => reject(new Error(`${args.join(' ')} exited with ${code} before listening`)));
  });
  let peakRss = 0;
  let peakRssAnon = 0;
  const sampler = setInterval(() => {
    const usage = treeUsage(child.pid);
    peakRss = Math.max(peakRss, usage.rss);
    peakRssAnon = Math.max(peakRssAnon, usage.rssAnon);
  }, 200);
  return {
    url,
    pid: child.pid,
    /** CPU seconds used so far by the tree (workers that have exited are not counted). */
    cpuSeconds: () => treeUsage(child.pid).cpuSeconds,
    /** The highest resident memory of the tree seen since the last reset, in bytes. */
    peakRss: () => Math.max(peakRss, treeUsage(child.pid).rss),
    /** The same for anonymous memory only (heap and stacks, not the mapped store files). */
    peakRssAnon: () => Math.max(peakRssAnon, treeUsage(child.pid).rssAnon),
    resetPeakRss: () => {
      peakRss = 0;
      peakRssAnon = 0;
    },
    async stop(signal = 'SIGTERM') {
      clearInterval(sampler);
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      await new Promise((resolve) => child.once('exit', resolve));
    },
  };
}

function listeningUrl(line) {
  try {
    const entry = JSON.parse(line);
    return entry.msg === 'listening' ? entry.url : undefined;
  } catch {
    return undefined;
  }
}

/** CPU seconds and RSS bytes of `pid` and its descendants. */
export function treeUsage(pid) {
  const stats = new Map();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readStat(entry);
    if (stat) stats.set(Number(entry), stat);
  }
  let cpuTicks = 0;
  let rssPages = 0;
  let rssAnon = 0;
  for (const [candidate, stat] of stats) {
    if (!descendsFrom(candidate, pid, stats)) continue;
    cpuTicks += stat.utime + stat.stime;
    rssPages += stat.rss;
    rssAnon += rssAnonOf(candidate);
  }
  return { cpuSeconds: cpuTicks / TICKS_PER_SECOND, rss: rssPages * PAGE_BYTES, rssAnon };
}

function descendsFrom(candidate, ancestor, stats) {
  for (let current = candidate; current > 1; current = stats.get(current)?.ppid ?? 0) {
    if (current === ancestor) return true;
  }
  return false;
}

/** Anonymous resident bytes (RssAnon in /proc/<pid>/status): memory of the process's own, not files mapped. */
function rssAnonOf(pid) {
  try {
    const match = /RssAnon:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

function readStat(pid) {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name may hold spaces and parentheses: the fields start after the last ')'.
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return { ppid: Number(fields[1]), utime: Number(fields[11]), stime: Number(fields[12]), rss: Number(fields[21]) };
  } catch {
    return undefined; // it exited while we looked
  }
}

/** Moves a running process, every thread of it, onto `cores` (threads it starts later inherit them). */
export function pin(pid, cores) {
  execFileSync('taskset', ['-a', '-p', '-c', cores, String(pid)], { stdio: 'ignore' });
}
