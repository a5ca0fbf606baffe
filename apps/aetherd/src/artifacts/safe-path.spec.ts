import { execFileSync } from 'node:child_process';
import {
  linkSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import type { RpcError } from '@aether/rpc';
import { mapSourcePath, openSource, type SourceFile } from './safe-path';

const refusal = async (p: Promise<unknown>): Promise<RpcError> =>
  p.then(
    () => {
      throw new Error('expected a refusal');
    },
    (err: RpcError) => err,
  );
const thrown = (fn: () => unknown): RpcError => {
  try {
    fn();
  } catch (err) {
    return err as RpcError;
  }
  throw new Error('expected a refusal');
};

describe('mapSourcePath', () => {
  const roots = { importRoots: ['/srv/datasets', '/data/in/'] };
  const job = { jobWorkDir: '/var/lib/aether/jobs/j1/work', importRoots: ['/srv/datasets'] };

  it('maps a path the job saw, absolute under /work or relative to it, into its work directory', () => {
    expect(mapSourcePath('/work/outputs/model.onnx', job)).toEqual({
      path: '/var/lib/aether/jobs/j1/work/outputs/model.onnx',
      root: '/var/lib/aether/jobs/j1/work',
    });
    expect(mapSourcePath('outputs//model.onnx', job).path).toBe(
      '/var/lib/aether/jobs/j1/work/outputs/model.onnx',
    );
    expect(mapSourcePath('/srv/datasets/a.csv', job)).toEqual({
      path: '/srv/datasets/a.csv',
      root: '/srv/datasets',
    });
  });

  it('accepts an absolute path inside an import root, normalizing a trailing slash on the root', () => {
    expect(mapSourcePath('/data/in/x/y.bin', roots)).toEqual({ path: '/data/in/x/y.bin', root: '/data/in' });
  });

  it('refuses "..", NUL and relative paths without a job as INVALID_PATH', () => {
    for (const p of ['/srv/datasets/../etc/passwd', 'outputs/../../x', '/srv/datasets/a\0b', 'a.csv', '']) {
      const err = thrown(() => mapSourcePath(p, p.startsWith('outputs') ? job : roots));
      expect(err.code).toBe(status.INVALID_ARGUMENT);
      expect(err.reason).toBe('INVALID_PATH');
    }
  });

  it('refuses a path outside every root as PATH_OUTSIDE_ROOT, including a root name used as a prefix', () => {
    for (const p of ['/etc/passwd', '/srv/datasets-other/a', '/work/outputs/x']) {
      const err = thrown(() => mapSourcePath(p, roots));
      expect(err.code).toBe(status.PERMISSION_DENIED);
      expect(err.reason).toBe('PATH_OUTSIDE_ROOT');
    }
    expect(thrown(() => mapSourcePath('/etc/passwd', job)).reason).toBe('PATH_OUTSIDE_ROOT');
  });
});

describe('openSource', () => {
  let dir: string;
  let root: string;
  let outside: string;
  const src = (path: string): SourceFile => ({ path: join(root, path), root });

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'safe-path-'));
    root = join(dir, 'root');
    outside = join(dir, 'outside');
    mkdirSync(join(root, 'sub'), { recursive: true });
    mkdirSync(outside);
    writeFileSync(join(root, 'sub', 'file.txt'), 'inside');
    writeFileSync(join(outside, 'secret.txt'), 'secret');
    writeFileSync(join(outside, 'file.txt'), 'outside');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('opens a regular file inside the root, also through a symlink that stays inside', async () => {
    symlinkSync('sub/file.txt', join(root, 'alias.txt'));
    for (const p of ['sub/file.txt', 'alias.txt']) {
      const o = await openSource(src(p));
      expect((await o.handle.readFile()).toString()).toBe('inside');
      expect(o.realPath).toBe(join(root, 'sub', 'file.txt'));
      await o.handle.close();
    }
  });

  it('refuses a symlink to a file outside the root', async () => {
    symlinkSync(join(outside, 'secret.txt'), join(root, 'link.txt'));
    const err = await refusal(openSource(src('link.txt')));
    expect(err.code).toBe(status.PERMISSION_DENIED);
    expect(err.reason).toBe('PATH_OUTSIDE_ROOT');
  });

  it('refuses a file reached through a symlinked parent directory that leads outside', async () => {
    symlinkSync(outside, join(root, 'escape'));
    expect((await refusal(openSource(src('escape/secret.txt')))).reason).toBe('PATH_OUTSIDE_ROOT');
  });

  it('refuses a file with a second hard link (it may be a file from outside, linked in)', async () => {
    linkSync(join(outside, 'secret.txt'), join(root, 'hard.txt'));
    const err = await refusal(openSource(src('hard.txt')));
    expect(err.code).toBe(status.PERMISSION_DENIED);
    expect(err.reason).toBe('PATH_OUTSIDE_ROOT');
    expect(err.message).toContain('2 hard links');
  });

  it('refuses directories, FIFOs and sockets as NOT_A_REGULAR_FILE, without blocking on a FIFO', async () => {
    execFileSync('mkfifo', [join(root, 'fifo')]);
    const server: Server = createServer();
    await new Promise<void>((r) => server.listen(join(root, 'sock'), r));
    try {
      for (const p of ['sub', 'fifo', 'sock']) {
        const err = await refusal(openSource(src(p)));
        expect(err.code).toBe(status.FAILED_PRECONDITION);
        expect(err.reason).toBe('NOT_A_REGULAR_FILE');
      }
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  it('answers SOURCE_NOT_FOUND for a missing file or a missing directory on the way', async () => {
    for (const p of ['nope.txt', 'nope/file.txt', 'sub/file.txt/x']) {
      const err = await refusal(openSource(src(p)));
      expect(err.code).toBe(status.NOT_FOUND);
      expect(err.reason).toBe('SOURCE_NOT_FOUND');
    }
  });

  it('refuses a file renamed over the checked one between the check and the open', async () => {
    writeFileSync(join(root, 'other.txt'), 'other');
    const err = await refusal(
      openSource(src('sub/file.txt'), {
        beforeOpen: () => renameSync(join(root, 'other.txt'), join(root, 'sub', 'file.txt')),
      }),
    );
    expect(err.reason).toBe('PATH_OUTSIDE_ROOT');
    expect(err.message).toContain('replaced');
  });

  it('refuses a parent directory swapped for a symlink to outside between the check and the open', async () => {
    const err = await refusal(
      openSource(src('sub/file.txt'), {
        beforeOpen: () => {
          renameSync(join(root, 'sub'), join(root, 'sub.old'));
          symlinkSync(outside, join(root, 'sub'));
        },
      }),
    );
    expect(err.reason).toBe('PATH_OUTSIDE_ROOT');
    // What the swap pointed at was never read.
    expect(readFileSync(join(outside, 'file.txt'), 'utf8')).toBe('outside');
  });

  it('refuses the file itself swapped for a symlink between the check and the open (O_NOFOLLOW)', async () => {
    const err = await refusal(
      openSource(src('sub/file.txt'), {
        beforeOpen: () => {
          rmSync(join(root, 'sub', 'file.txt'));
          symlinkSync(join(outside, 'secret.txt'), join(root, 'sub', 'file.txt'));
        },
      }),
    );
    expect(err.reason).toBe('PATH_OUTSIDE_ROOT');
  });

  it('refuses a root that is itself missing as SOURCE_NOT_FOUND', async () => {
    const err = await refusal(openSource({ path: join(dir, 'gone', 'x'), root: join(dir, 'gone') }));
    expect(err.reason).toBe('SOURCE_NOT_FOUND');
  });
});
