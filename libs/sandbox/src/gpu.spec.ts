import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { discoverNvidiaDriverPaths, listNvidiaGpus, nvidiaGpuNodes, visibleThroughSystemBinds } from './gpu';
import { DeviceUnavailableError } from './oci-config';

// Real character devices made with mknod (root only, like CI): the numbers the NVIDIA driver uses.
const mknod = (path: string, major: number, minor: number): void => {
  execFileSync('mknod', [path, 'c', String(major), String(minor)]);
};

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'aether-sandbox-gpu-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function deviceDir(name: string, nodes: Record<string, [number, number]>): string {
  const d = join(dir, name);
  mkdirSync(d);
  for (const [n, [major, minor]] of Object.entries(nodes)) mknod(join(d, n), major, minor);
  return d;
}

describe('listNvidiaGpus', () => {
  it('lists the nvidia<N> character devices in numeric order, ignoring the control nodes and plain files', () => {
    const d = deviceDir('list', {
      nvidia10: [195, 10],
      nvidia1: [195, 1],
      nvidia0: [195, 0],
      nvidiactl: [195, 255],
      'nvidia-uvm': [511, 0],
    });
    writeFileSync(join(d, 'nvidia2'), 'not a device');
    writeFileSync(join(d, 'nvidia01'), 'not a GPU name');
    expect(listNvidiaGpus(d)).toEqual([0, 1, 10]);
  });

  it('finds none in a directory without GPUs, or one that does not exist', () => {
    expect(listNvidiaGpus(deviceDir('empty', {}))).toEqual([]);
    expect(listNvidiaGpus(join(dir, 'no-such-dir'))).toEqual([]);
  });
});

describe('nvidiaGpuNodes', () => {
  it('maps each GPU and the control nodes to /dev/<name>, adding the optional nodes only when present', () => {
    const minimal = deviceDir('minimal', {
      nvidia0: [195, 0],
      nvidia1: [195, 1],
      nvidiactl: [195, 255],
      'nvidia-uvm': [511, 0],
    });
    expect(nvidiaGpuNodes(minimal, [1, 0, 1])).toEqual([
      { hostPath: join(minimal, 'nvidia1'), containerPath: '/dev/nvidia1' },
      { hostPath: join(minimal, 'nvidia0'), containerPath: '/dev/nvidia0' },
      { hostPath: join(minimal, 'nvidiactl'), containerPath: '/dev/nvidiactl' },
      { hostPath: join(minimal, 'nvidia-uvm'), containerPath: '/dev/nvidia-uvm' },
    ]);
    const full = deviceDir('full', {
      nvidia0: [195, 0],
      nvidiactl: [195, 255],
      'nvidia-uvm': [511, 0],
      'nvidia-uvm-tools': [511, 1],
      'nvidia-modeset': [195, 254],
    });
    expect(nvidiaGpuNodes(full, [0]).map((n) => n.containerPath)).toEqual([
      '/dev/nvidia0',
      '/dev/nvidiactl',
      '/dev/nvidia-uvm',
      '/dev/nvidia-uvm-tools',
      '/dev/nvidia-modeset',
    ]);
  });

  it('throws DeviceUnavailableError naming the first missing required node', () => {
    const noUvm = deviceDir('no-uvm', { nvidia0: [195, 0], nvidiactl: [195, 255] });
    const attempt = (d: string, gpus: number[]): unknown => {
      try {
        nvidiaGpuNodes(d, gpus);
      } catch (err) {
        return err;
      }
      return undefined;
    };
    expect(attempt(noUvm, [0])).toBeInstanceOf(DeviceUnavailableError);
    expect(attempt(noUvm, [0])).toMatchObject({ path: join(noUvm, 'nvidia-uvm'), reason: 'missing' });
    expect(attempt(noUvm, [3])).toMatchObject({ path: join(noUvm, 'nvidia3'), reason: 'missing' });
    writeFileSync(join(noUvm, 'nvidia-uvm'), '');
    expect(attempt(noUvm, [0])).toMatchObject({
      path: join(noUvm, 'nvidia-uvm'),
      reason: 'not a character device',
    });
  });
});

describe('discoverNvidiaDriverPaths', () => {
  // A fake host: a bound /usr-like tree holding one copy of the driver, and an unbound vendor tree.
  let root: string;
  beforeAll(() => {
    root = join(dir, 'host');
    for (const d of ['usr/lib', 'usr/bin', 'vendor/lib64', 'vendor/bin'])
      mkdirSync(join(root, d), { recursive: true });
    for (const f of [
      'usr/lib/libcuda.so.1',
      'usr/bin/nvidia-smi',
      'vendor/lib64/libcuda.so.535.104',
      'vendor/lib64/libnvidia-ml.so.1',
      'vendor/lib64/libnvidia-ptxjitcompiler.so.1',
      'vendor/lib64/libnvidia-encode.so.1',
      'vendor/lib64/libcudart.so.12',
      'vendor/bin/nvidia-debugdump',
      'vendor/bin/nvidia-smi',
    ])
      writeFileSync(join(root, f), '');
    symlinkSync('libcuda.so.535.104', join(root, 'vendor/lib64/libcuda.so.1'));
    // A merged-/usr style link among the binds: what it points into counts as visible.
    symlinkSync('usr/lib', join(root, 'lib'));
  });

  it('finds the driver programs and libraries that the system binds do not already show', () => {
    const found = discoverNvidiaDriverPaths([join(root, 'usr'), join(root, 'lib')], {
      programDirs: [join(root, 'usr/bin'), join(root, 'vendor/bin')],
      libraryDirs: [join(root, 'lib'), join(root, 'vendor/lib64')],
    });
    expect(found).toEqual([
      join(root, 'vendor/bin/nvidia-debugdump'),
      join(root, 'vendor/lib64/libcuda.so.1'),
      join(root, 'vendor/lib64/libcuda.so.535.104'),
      join(root, 'vendor/lib64/libnvidia-ml.so.1'),
      join(root, 'vendor/lib64/libnvidia-ptxjitcompiler.so.1'),
    ]);
  });

  it('binds everything it finds when nothing is bound, and nothing on a host without the driver', () => {
    const all = discoverNvidiaDriverPaths([], {
      programDirs: [join(root, 'usr/bin'), join(root, 'vendor/bin')],
      libraryDirs: [join(root, 'usr/lib')],
    });
    expect(all).toEqual([
      join(root, 'usr/bin/nvidia-smi'),
      join(root, 'usr/lib/libcuda.so.1'),
      join(root, 'vendor/bin/nvidia-debugdump'),
    ]);
    expect(
      discoverNvidiaDriverPaths([], { programDirs: [join(dir, 'none')], libraryDirs: [join(dir, 'none')] }),
    ).toEqual([]);
  });

  it('counts a path as visible only through a bound directory, not a recreated link or a missing bind', () => {
    const lib = join(root, 'usr/lib/libcuda.so.1');
    expect(visibleThroughSystemBinds(lib, [join(root, 'usr')])).toBe(true);
    // The link alone is recreated in the rootfs; without /usr bound it points at nothing.
    expect(visibleThroughSystemBinds(lib, [join(root, 'lib')])).toBe(false);
    expect(visibleThroughSystemBinds(lib, [join(root, 'missing')])).toBe(false);
    expect(visibleThroughSystemBinds(join(root, 'usr-other'), [join(root, 'usr')])).toBe(false);
  });
});
