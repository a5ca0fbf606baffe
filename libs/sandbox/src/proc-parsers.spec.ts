import {
  MEMINFO,
  PROC_STATUS,
  RUNC_FEATURES,
  V1_MOUNTINFO,
  V1_PROC_CGROUPS,
  V2_MOUNTINFO,
  V2_PROC_CGROUPS,
} from '../test/fixtures/hosts';
import {
  parseKernelRelease,
  parseMeminfo,
  parseMountinfo,
  parseProcCgroups,
  parseProcStatus,
  parseRuntimeFeatures,
  parseVersionOutput,
} from './proc-parsers';

describe('parseProcCgroups', () => {
  it('reads name, hierarchy, count and enabled of each controller (v1 hybrid)', () => {
    const subs = parseProcCgroups(V1_PROC_CGROUPS);
    expect(subs).toHaveLength(12);
    expect(subs[0]).toEqual({ name: 'cpuset', hierarchy: 3, numCgroups: 3, enabled: true });
    expect(subs.find((s) => s.name === 'memory')).toEqual({
      name: 'memory',
      hierarchy: 4,
      numCgroups: 34,
      enabled: true,
    });
    // Enabled but on no v1 hierarchy.
    expect(subs.find((s) => s.name === 'hugetlb')?.hierarchy).toBe(0);
  });

  it('reads a v2 host, where every hierarchy id is 0, and a disabled controller', () => {
    const subs = parseProcCgroups(V2_PROC_CGROUPS.replace('rdma\t0\t112\t1', 'rdma\t0\t112\t0'));
    expect(subs.every((s) => s.hierarchy === 0)).toBe(true);
    expect(subs.find((s) => s.name === 'rdma')?.enabled).toBe(false);
    expect(subs.find((s) => s.name === 'misc')?.enabled).toBe(true);
  });
});

describe('parseMountinfo', () => {
  it('splits the fields around the optional ones and names v1 controllers in the super options', () => {
    const mounts = parseMountinfo(V1_MOUNTINFO);
    const memory = mounts.find((m) => m.mountPoint === '/sys/fs/cgroup/memory');
    expect(memory).toEqual({
      mountId: 35,
      parentId: 31,
      device: '0:32',
      root: '/',
      mountPoint: '/sys/fs/cgroup/memory',
      mountOptions: ['rw', 'relatime'],
      fsType: 'cgroup',
      source: 'cgroup',
      superOptions: ['rw', 'memory'],
    });
    expect(mounts.find((m) => m.fsType === 'cgroup2')?.mountPoint).toBe('/sys/fs/cgroup/unified');
  });

  it('handles optional fields and octal escapes in paths', () => {
    const disk = parseMountinfo(V1_MOUNTINFO).find((m) => m.source === '/dev/sdb1');
    expect(disk?.mountPoint).toBe('/mnt/my disk');
    expect(disk?.fsType).toBe('ext4');
  });

  it('reads the v2 unified mount and skips malformed lines', () => {
    const mounts = parseMountinfo(V2_MOUNTINFO + 'garbage line\n\n');
    expect(mounts).toHaveLength(4);
    expect(mounts[3]).toMatchObject({ mountPoint: '/sys/fs/cgroup', fsType: 'cgroup2' });
    expect(mounts[3]?.superOptions).toEqual(['rw', 'nsdelegate', 'memory_recursiveprot']);
  });
});

describe('parseMeminfo', () => {
  it('turns kB into bytes and keeps unitless counts', () => {
    const m = parseMeminfo(MEMINFO);
    expect(m['SwapTotal']).toBe(2097148 * 1024);
    expect(m['MemTotal']).toBe(24684092 * 1024);
    expect(m['HugePages_Total']).toBe(0);
  });
});

describe('parseProcStatus', () => {
  it('maps keys to trimmed values', () => {
    const s = parseProcStatus(PROC_STATUS);
    expect(s['Seccomp']).toBe('0');
    expect(s['NoNewPrivs']).toBe('0');
    expect(s['CapEff']).toBe('000001fffeffffff');
    expect(s['Uid']).toBe('0\t0\t0\t0');
    expect(s['Landlock']).toBeUndefined();
  });
});

describe('parseKernelRelease', () => {
  it('reads major and minor', () => {
    expect(parseKernelRelease('6.1.0-18-amd64')).toEqual({ major: 6, minor: 1 });
    expect(parseKernelRelease('3.10.0-1160.el7.x86_64\n')).toEqual({ major: 3, minor: 10 });
    expect(parseKernelRelease('')).toBeUndefined();
  });
});

describe('parseVersionOutput', () => {
  it('reads runc, crun and conmon versions', () => {
    expect(
      parseVersionOutput(
        'runc version 1.1.5+ds1\ncommit: 1.1.5+ds1-1+deb12u1\nspec: 1.0.2-dev\ngo: go1.19.8\nlibseccomp: 2.5.4\n',
        'runc',
      ),
    ).toBe('1.1.5+ds1');
    expect(
      parseVersionOutput('crun version 1.8.1\ncommit: f8a0\nspec: 1.0.0\n+SYSTEMD +SECCOMP\n', 'crun'),
    ).toBe('1.8.1');
    expect(parseVersionOutput('conmon version 2.1.6\ncommit: unknown\n', 'conmon')).toBe('2.1.6');
    expect(parseVersionOutput('something 0.9.1 else', 'runc')).toBe('0.9.1');
    expect(parseVersionOutput('', 'runc')).toBe('');
  });
});

describe('parseRuntimeFeatures', () => {
  it('reads seccomp support and the libseccomp version', () => {
    expect(parseRuntimeFeatures(RUNC_FEATURES)).toEqual({ seccompEnabled: true, libseccompVersion: '2.5.4' });
    expect(parseRuntimeFeatures('{"linux":{"seccomp":{"enabled":false}}}')).toEqual({
      seccompEnabled: false,
    });
    expect(parseRuntimeFeatures('Incorrect Usage: flag provided but not defined')).toBeUndefined();
  });
});
