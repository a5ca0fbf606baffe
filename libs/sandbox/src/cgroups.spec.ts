import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { V1_MOUNTINFO, V2_MOUNTINFO } from '../test/fixtures/hosts';
import { assertCgroupsPath, cgroupDirectories, removeCgroup } from './cgroups';

const roots: string[] = [];
function fixture(mountinfo: string): string {
  const root = mkdtempSync(join(tmpdir(), 'aether-sandbox-cgroups-'));
  roots.push(root);
  mkdirSync(join(root, 'proc/self'), { recursive: true });
  writeFileSync(join(root, 'proc/self/mountinfo'), mountinfo);
  return root;
}
afterAll(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

describe('cgroupDirectories', () => {
  it('places the cgroup in every v1 hierarchy, name=systemd and the hybrid unified mount', () => {
    const dirs = cgroupDirectories('/aether/job-1', { hostRoot: fixture(V1_MOUNTINFO) });
    expect(dirs.map((d) => d.path)).toEqual([
      '/sys/fs/cgroup/cpu/aether/job-1',
      '/sys/fs/cgroup/cpuacct/aether/job-1',
      '/sys/fs/cgroup/cpuset/aether/job-1',
      '/sys/fs/cgroup/memory/aether/job-1',
      '/sys/fs/cgroup/devices/aether/job-1',
      '/sys/fs/cgroup/freezer/aether/job-1',
      '/sys/fs/cgroup/blkio/aether/job-1',
      '/sys/fs/cgroup/pids/aether/job-1',
      '/sys/fs/cgroup/systemd/aether/job-1',
      '/sys/fs/cgroup/unified/aether/job-1',
    ]);
    expect(dirs[3]).toEqual({
      fsType: 'cgroup',
      controllers: ['memory'],
      mountPoint: '/sys/fs/cgroup/memory',
      path: '/sys/fs/cgroup/memory/aether/job-1',
    });
    expect(dirs[8]?.controllers).toEqual(['name=systemd']);
  });

  it('places it once on v2', () => {
    expect(cgroupDirectories('/aether/job-1', { hostRoot: fixture(V2_MOUNTINFO) })).toEqual([
      {
        fsType: 'cgroup2',
        controllers: [],
        mountPoint: '/sys/fs/cgroup',
        path: '/sys/fs/cgroup/aether/job-1',
      },
    ]);
  });
});

describe('assertCgroupsPath', () => {
  it('accepts absolute clean paths only', () => {
    expect(() => assertCgroupsPath('/aether/job-1')).not.toThrow();
    for (const bad of ['aether/job-1', '/', '/aether/../x', '/aether//x', '/aether/./x', '/aether/'])
      expect(() => assertCgroupsPath(bad)).toThrow(TypeError);
  });
});

describe('removeCgroup', () => {
  it('removes the cgroup with its children and the parents that are now empty', async () => {
    const root = fixture(V2_MOUNTINFO);
    const base = join(root, 'sys/fs/cgroup');
    mkdirSync(join(base, 'aether/job-1/sub'), { recursive: true });
    mkdirSync(join(base, 'aether/job-2'), { recursive: true });
    const first = await removeCgroup('/aether/job-1', { hostRoot: root, removeEmptyParents: true });
    expect(first).toEqual({ removed: ['/sys/fs/cgroup/aether/job-1'], failed: [] });
    // job-2 still holds /aether.
    expect(existsSync(join(base, 'aether/job-2'))).toBe(true);
    const second = await removeCgroup('/aether/job-2', { hostRoot: root, removeEmptyParents: true });
    expect(second.removed).toEqual(['/sys/fs/cgroup/aether/job-2', '/sys/fs/cgroup/aether']);
    expect(existsSync(join(base, 'aether'))).toBe(false);
    // The hierarchy root itself is never removed.
    expect(existsSync(base)).toBe(true);
  });

  it('keeps the parent without removeEmptyParents, and counts a missing cgroup as removed', async () => {
    const root = fixture(V2_MOUNTINFO);
    const base = join(root, 'sys/fs/cgroup');
    mkdirSync(join(base, 'aether/job-1'), { recursive: true });
    expect((await removeCgroup('/aether/job-1', { hostRoot: root })).failed).toEqual([]);
    expect(existsSync(join(base, 'aether'))).toBe(true);
    expect(await removeCgroup('/aether/gone', { hostRoot: root })).toEqual({
      removed: ['/sys/fs/cgroup/aether/gone'],
      failed: [],
    });
  });

  it('reports a cgroup it cannot remove', async () => {
    const root = fixture(V2_MOUNTINFO);
    const dir = join(root, 'sys/fs/cgroup/aether/job-1');
    mkdirSync(dir, { recursive: true });
    // A regular file stands in for a cgroup that is still busy (rmdir fails with ENOTEMPTY).
    writeFileSync(join(dir, 'cgroup.procs'), '123\n');
    const res = await removeCgroup('/aether/job-1', { hostRoot: root, removeEmptyParents: true });
    expect(res.removed).toEqual([]);
    expect(res.failed.map((f) => f.path)).toEqual(['/sys/fs/cgroup/aether/job-1']);
    expect(res.failed[0]?.error).toContain('ENOTEMPTY');
  });
});
