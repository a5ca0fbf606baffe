import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  fakeTool,
  RUNC_FEATURES,
  v1Facts,
  v1HybridTree,
  v2Facts,
  v2Tree,
  writeTree,
} from '../test/fixtures/hosts';
import { cgroupLayout, describeHost, findExecutable, probeHost, type ProbeOptions } from './host-probe';

const dirs: string[] = [];
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'aether-sandbox-spec-'));
  dirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** probeHost against a fixture tree with fake tools and no test container. */
function options(hostRoot: string, over: Partial<ProbeOptions> = {}): ProbeOptions {
  dirs.push(hostRoot);
  const bin = tmp();
  return {
    runtime: 'runc',
    runtimePath: fakeTool(bin, 'runc', 'runc version 1.1.5+ds1\ncommit: x\nspec: 1.0.2-dev', RUNC_FEATURES),
    conmonPath: fakeTool(bin, 'conmon', 'conmon version 2.1.6\ncommit: unknown'),
    runtimeRoot: join(bin, 'root'),
    scratchDir: join(bin, 'scratch'),
    runTestContainer: false,
    hostRoot,
    ...over,
  };
}

describe('probeHost on a cgroup v1 hybrid host', () => {
  it('reports v1 hybrid with the mounted controllers, memsw and blkio throttling', async () => {
    const f = await probeHost(options(v1HybridTree()));
    expect(f.cgroup).toEqual({
      version: 1,
      hybrid: true,
      controllers: ['cpu', 'cpuacct', 'memory', 'pids', 'blkio', 'cpuset', 'devices', 'freezer'],
      memorySwap: true,
      ioLimits: true,
      root: '/sys/fs/cgroup',
    });
    expect(f.runtime).toEqual({ name: 'runc', path: f.runtime.path, version: '1.1.5+ds1', working: true });
    expect(f.runtime.path).toMatch(/\/runc$/);
    expect(f.monitor).toMatchObject({ name: 'conmon', version: '2.1.6', working: true });
    expect(f.blockDevices).toEqual([{ name: 'vda', major: 254, minor: 0 }]);
    expect(f.swapBytes).toBe(2097148 * 1024);
    expect(f.seccomp.available).toBe(true);
    expect(f.seccomp.detail).toBe(
      'kernel supports seccomp filters; runc features: seccomp enabled, libseccomp 2.5.4',
    );
    expect(f.noNewPrivileges.available).toBe(true);
    expect(f.userNamespaces).toEqual({
      name: 'user namespaces',
      available: true,
      detail: 'user.max_user_namespaces=96365',
    });
    expect(f.landlock.available).toBe(false);
    expect(f.landlock.detail).toMatch(/^unknown: /);
  });

  it('drops a controller that is enabled but not mounted, and memsw/throttling when their files are missing', async () => {
    const root = v1HybridTree();
    rmSync(join(root, 'sys/fs/cgroup/memory/memory.memsw.limit_in_bytes'));
    rmSync(join(root, 'sys/fs/cgroup/blkio/blkio.throttle.read_bps_device'));
    const mountinfo = join(root, 'proc/self/mountinfo');
    const { readFileSync } = await import('node:fs');
    writeFileSync(
      mountinfo,
      readFileSync(mountinfo, 'utf8')
        .split('\n')
        .filter((l) => !l.includes('rw,pids'))
        .join('\n'),
    );
    const f = await probeHost(options(root));
    expect(f.cgroup.controllers).not.toContain('pids');
    expect(f.cgroup.memorySwap).toBe(false);
    expect(f.cgroup.ioLimits).toBe(false);
  });

  it('refuses crun there with the exact reason, without starting a container', async () => {
    const root = v1HybridTree();
    const bin = tmp();
    const crun = fakeTool(
      bin,
      'crun',
      'crun version 1.8\ncommit: 0356bf4aff9a133d655dc13b1d9ac9424706cac4\nspec: 1.0.0',
    );
    const f = await probeHost(options(root, { runtime: 'crun', runtimePath: crun, runTestContainer: true }));
    expect(f.runtime).toEqual({
      name: 'crun',
      path: crun,
      version: '1.8',
      working: false,
      error:
        'crun 1.8 refuses cgroup v1 hybrid hosts (controllers on v1, empty cgroup2 at /sys/fs/cgroup/unified); ' +
        'use runc or boot with systemd.unified_cgroup_hierarchy=1',
    });
    // Without `features`, seccomp support rests on the kernel alone.
    expect(f.seccomp.available).toBe(true);
    expect(f.seccomp.detail).toContain('crun features unavailable');
  });

  it('reports a runtime that cannot run, and a missing conmon, without throwing', async () => {
    const bin = tmp();
    const broken = join(bin, 'runc');
    writeFileSync(broken, '#!/bin/sh\necho "runc: exec format error" >&2\nexit 3\n');
    chmodSync(broken, 0o755);
    const f = await probeHost(
      options(v1HybridTree(), { runtimePath: broken, conmonPath: join(bin, 'no-such-conmon') }),
    );
    expect(f.runtime.working).toBe(false);
    expect(f.runtime.error).toBe(`${broken} --version: exit 3: runc: exec format error`);
    expect(f.monitor.working).toBe(false);
    expect(f.monitor.error).toContain('no-such-conmon --version');
    // runc features failed too: seccomp is judged by the kernel alone.
    expect(f.seccomp.available).toBe(true);
  });

  it('reports runc`s seccomp support as missing when its features say so', async () => {
    const bin = tmp();
    const runc = fakeTool(bin, 'runc', 'runc version 1.1.0', '{"linux":{"seccomp":{"enabled":false}}}');
    const f = await probeHost(options(v1HybridTree(), { runtimePath: runc }));
    expect(f.seccomp.available).toBe(false);
    expect(f.seccomp.detail).toBe('runc was built without seccomp support (runc features)');
  });
});

describe('probeHost on a cgroup v2 host', () => {
  it('reads controllers from cgroup.controllers and adds the eBPF devices and cgroup.freeze freezer', async () => {
    const f = await probeHost(options(v2Tree()));
    expect(f.cgroup).toEqual({
      version: 2,
      hybrid: false,
      controllers: ['cpu', 'memory', 'pids', 'io', 'cpuset', 'devices', 'freezer'],
      memorySwap: true,
      ioLimits: true,
      root: '/sys/fs/cgroup',
    });
    expect(f.blockDevices).toEqual([
      { name: 'nvme0n1', major: 259, minor: 0 },
      { name: 'sda', major: 8, minor: 0 },
    ]);
    expect(f.landlock).toEqual({
      name: 'landlock',
      available: true,
      detail: 'active LSMs: lockdown,capability,landlock,yama,apparmor',
    });
    expect(f.userNamespaces.detail).toBe(
      'user.max_user_namespaces=63459, kernel.unprivileged_userns_clone=1',
    );
  });

  it('sees missing swap accounting on a child cgroup and no io controller', async () => {
    const root = v2Tree();
    rmSync(join(root, 'sys/fs/cgroup/system.slice/memory.swap.max'));
    writeFileSync(join(root, 'sys/fs/cgroup/cgroup.controllers'), 'cpu memory pids\n');
    const f = await probeHost(options(root));
    expect(f.cgroup.memorySwap).toBe(false);
    expect(f.cgroup.ioLimits).toBe(false);
    expect(f.cgroup.controllers).toEqual(['cpu', 'memory', 'pids', 'devices', 'freezer']);
  });

  it('assumes swap accounting with no child cgroup to look at, and crun may run on v2', async () => {
    const root = v2Tree();
    rmSync(join(root, 'sys/fs/cgroup/system.slice'), { recursive: true });
    const bin = tmp();
    const crun = fakeTool(bin, 'crun', 'crun version 1.14.4');
    const f = await probeHost(options(root, { runtime: 'crun', runtimePath: crun }));
    expect(f.cgroup.memorySwap).toBe(true);
    expect(f.runtime).toMatchObject({ name: 'crun', version: '1.14.4', working: true });
  });

  it('reports a kernel without user namespaces, seccomp or no_new_privs', async () => {
    const root = v2Tree();
    rmSync(join(root, 'proc/self/ns/user'));
    writeFileSync(join(root, 'proc/self/status'), 'Name:\tcat\n');
    const f = await probeHost(options(root));
    expect(f.userNamespaces.available).toBe(false);
    expect(f.seccomp.available).toBe(false);
    expect(f.noNewPrivileges.available).toBe(false);
  });
});

describe('cgroupLayout', () => {
  it('tells v2, hybrid and plain v1 hosts apart', () => {
    const v2 = v2Tree();
    const hybrid = v1HybridTree();
    const legacy = writeTree({
      'proc/self/mountinfo':
        '31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755\n' +
        '32 31 0:29 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n',
    });
    dirs.push(v2, hybrid, legacy);
    expect([cgroupLayout(v2), cgroupLayout(hybrid), cgroupLayout(legacy)]).toEqual(['v2', 'hybrid', 'v1']);
  });
});

describe('findExecutable', () => {
  it('searches PATH, then the sbin and bin directories a service PATH may lack', () => {
    const dir = tmp();
    writeFileSync(join(dir, 'tool'), '#!/bin/sh\n');
    chmodSync(join(dir, 'tool'), 0o755);
    writeFileSync(join(dir, 'data'), '');
    expect(findExecutable('tool', [], `/nonexistent:${dir}`)).toBe(join(dir, 'tool'));
    expect(findExecutable('data', [], dir)).toBeUndefined();
    expect(findExecutable('tool', [dir], '')).toBe(join(dir, 'tool'));
    // An empty PATH still finds sh in /usr/bin or /bin.
    expect(findExecutable('sh', [], '')).toMatch(/^\/(usr\/)?(s)?bin\/sh$/);
    expect(findExecutable('no-such-tool-anywhere', [], '')).toBeUndefined();
  });
});

describe('describeHost', () => {
  it('says what jobs get on a complete v2 host', () => {
    const lines = describeHost(v2Facts());
    const byName = Object.fromEntries(lines.map((l) => [l.name, l]));
    expect(Object.keys(byName)).toEqual([
      'runtime',
      'monitor',
      'cgroups',
      'cpu limits',
      'memory limits',
      'memory swap accounting',
      'pids limit',
      'io bandwidth limits',
      'freezer',
      'seccomp',
      'no_new_privs',
      'user namespaces',
      'landlock',
      'capacity',
    ]);
    expect(lines.every((l) => l.available)).toBe(true);
    expect(byName['runtime']?.detail).toBe('runc 1.1.5 at /usr/sbin/runc');
    expect(byName['cgroups']?.detail).toBe(
      'cgroup v2 (unified) at /sys/fs/cgroup; controllers: cpu, memory, pids, io, cpuset, devices, freezer',
    );
    expect(byName['io bandwidth limits']?.detail).toBe('read/write bandwidth throttled on nvme0n1 (259:0)');
    expect(byName['capacity']?.detail).toBe('2 CPUs, 24 GiB memory, no swap');
  });

  it('says what is missing on a v1 host without swap accounting, throttling or a working runtime', () => {
    const f = v1Facts({ memorySwap: false, ioLimits: false, controllers: ['cpu', 'memory'] });
    f.runtime = { ...f.runtime, working: false, error: 'test container failed: exit 1' };
    const byName = Object.fromEntries(describeHost(f).map((l) => [l.name, l]));
    expect(byName['runtime']).toEqual({
      name: 'runtime',
      available: false,
      detail: 'runc at /usr/sbin/runc is not usable, jobs cannot run: test container failed: exit 1',
    });
    expect(byName['cgroups']?.detail).toMatch(/^cgroup v1 \(hybrid\)/);
    expect(byName['memory swap accounting']?.available).toBe(false);
    expect(byName['io bandwidth limits']?.available).toBe(false);
    expect(byName['pids limit']?.available).toBe(false);
    expect(byName['freezer']?.available).toBe(false);
    expect(byName['landlock']?.available).toBe(false);
  });
});
