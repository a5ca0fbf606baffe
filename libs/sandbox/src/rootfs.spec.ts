import {
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readlinkSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { classifySystemPath, prepareRootfs } from './rootfs';

describe('prepareRootfs', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'aether-sandbox-rootfs-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('creates an empty root and recreates merged-/usr symlinks with their relative text', () => {
    const host = join(dir, 'host');
    mkdirSync(join(host, 'usr/bin'), { recursive: true });
    symlinkSync('usr/bin', join(host, 'bin'));
    const rootfs = join(dir, 'bundle/rootfs');
    const binds = [join(host, 'usr'), join(host, 'bin'), join(host, 'missing')];
    prepareRootfs(rootfs, binds);
    expect(statSync(rootfs).mode & 0o777).toBe(0o755);
    const link = join(rootfs, host, 'bin');
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(readlinkSync(link)).toBe('usr/bin');
    // Directories are left to the runtime (mount points); nothing for the missing path.
    expect(readdirSync(join(rootfs, host))).toEqual(['bin']);
    // Idempotent.
    expect(() => prepareRootfs(rootfs, binds)).not.toThrow();
  });

  it('classifies system paths', () => {
    symlinkSync('usr/lib', join(dir, 'lib'));
    expect(classifySystemPath(dir)).toEqual({ kind: 'bind' });
    expect(classifySystemPath(join(dir, 'lib'))).toEqual({ kind: 'symlink', target: 'usr/lib' });
    expect(classifySystemPath(join(dir, 'nope'))).toEqual({ kind: 'missing' });
  });
});
