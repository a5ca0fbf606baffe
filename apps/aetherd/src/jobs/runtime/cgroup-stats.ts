import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cgroupDirectories } from '@aether/sandbox';

/** What a job's cgroup says about its resource use. */
export interface CgroupStats {
  cpuUserMs: number;
  cpuSystemMs: number;
  peakMemoryBytes: number;
  currentMemoryBytes: number;
  currentPids: number;
  ioReadBytes: number;
  ioWriteBytes: number;
  /** Processes the kernel's OOM killer killed in this cgroup. */
  oomKills: number;
}

const USER_HZ_MS = 10; // cpuacct.stat counts USER_HZ (100 per second) ticks.

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

function num(text: string | undefined): number {
  const n = Number((text ?? '').trim());
  return Number.isFinite(n) ? n : 0;
}

function keyed(text: string | undefined, key: string): number {
  const m = new RegExp(`^${key}\\s+(\\d+)`, 'm').exec(text ?? '');
  return m ? Number(m[1]) : 0;
}

/**
 * Reads a job's cgroup directly (cgroup v1 controllers or the v2 unified tree). The runtime removes the
 * cgroup on `delete`, so aetherd reads the final figures after the job exits and before it deletes.
 */
export function readCgroupStats(version: 1 | 2, cgroupsPath: string, root = '/sys/fs/cgroup'): CgroupStats {
  if (version === 2) {
    const dir = join(root, cgroupsPath);
    const cpu = read(join(dir, 'cpu.stat'));
    let ioRead = 0;
    let ioWrite = 0;
    for (const line of (read(join(dir, 'io.stat')) ?? '').split('\n')) {
      ioRead += Number(/rbytes=(\d+)/.exec(line)?.[1] ?? 0);
      ioWrite += Number(/wbytes=(\d+)/.exec(line)?.[1] ?? 0);
    }
    return {
      cpuUserMs: keyed(cpu, 'user_usec') / 1000,
      cpuSystemMs: keyed(cpu, 'system_usec') / 1000,
      peakMemoryBytes: num(read(join(dir, 'memory.peak'))),
      currentMemoryBytes: num(read(join(dir, 'memory.current'))),
      currentPids: num(read(join(dir, 'pids.current'))),
      ioReadBytes: ioRead,
      ioWriteBytes: ioWrite,
      oomKills: keyed(read(join(dir, 'memory.events')), 'oom_kill'),
    };
  }
  const cpuacct = read(join(root, 'cpuacct', cgroupsPath, 'cpuacct.stat'));
  let ioRead = 0;
  let ioWrite = 0;
  for (const line of (read(join(root, 'blkio', cgroupsPath, 'blkio.throttle.io_service_bytes')) ?? '').split(
    '\n',
  )) {
    const m = /^\d+:\d+ (Read|Write) (\d+)/.exec(line);
    if (m?.[1] === 'Read') ioRead += Number(m[2]);
    if (m?.[1] === 'Write') ioWrite += Number(m[2]);
  }
  return {
    cpuUserMs: keyed(cpuacct, 'user') * USER_HZ_MS,
    cpuSystemMs: keyed(cpuacct, 'system') * USER_HZ_MS,
    peakMemoryBytes: num(read(join(root, 'memory', cgroupsPath, 'memory.max_usage_in_bytes'))),
    currentMemoryBytes: num(read(join(root, 'memory', cgroupsPath, 'memory.usage_in_bytes'))),
    currentPids: num(read(join(root, 'pids', cgroupsPath, 'pids.current'))),
    ioReadBytes: ioRead,
    ioWriteBytes: ioWrite,
    oomKills: keyed(read(join(root, 'memory', cgroupsPath, 'memory.oom_control')), 'oom_kill'),
  };
}

/** Names of the job cgroups under `parent` (e.g. /aether), across every hierarchy. */
export function listJobCgroups(parent: string): Set<string> {
  const names = new Set<string>();
  for (const dir of cgroupDirectories(parent)) {
    try {
      for (const d of readdirSync(dir.path, { withFileTypes: true })) if (d.isDirectory()) names.add(d.name);
    } catch {
      // This hierarchy has no such parent yet.
    }
  }
  return names;
}
