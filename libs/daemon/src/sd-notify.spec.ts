import { notifyReady, type ExecFile } from './sd-notify';

describe('notifyReady', () => {
  it('does nothing without NOTIFY_SOCKET', async () => {
    const calls: string[][] = [];
    const exec: ExecFile = (file, args, cb) => {
      calls.push([file, ...args]);
      cb(null, '', '');
    };
    await expect(notifyReady(() => undefined, {}, exec, 42)).resolves.toBe(false);
    expect(calls).toEqual([]);
  });

  it('runs systemd-notify --ready with the main pid under systemd', async () => {
    const calls: string[][] = [];
    const exec: ExecFile = (file, args, cb) => {
      calls.push([file, ...args]);
      cb(null, '', '');
    };
    await expect(
      notifyReady(() => undefined, { NOTIFY_SOCKET: '/run/systemd/notify' }, exec, 42),
    ).resolves.toBe(true);
    expect(calls).toEqual([['systemd-notify', '--ready', '--pid=42']]);
  });

  it('reports a failure as a warning and does not throw', async () => {
    const warnings: string[] = [];
    const exec: ExecFile = (_file, _args, cb) => {
      cb(new Error('spawn systemd-notify ENOENT'), '', '');
    };
    await expect(notifyReady((m) => warnings.push(m), { NOTIFY_SOCKET: '@x' }, exec, 42)).resolves.toBe(
      false,
    );
    expect(warnings).toEqual(['systemd-notify --ready failed: spawn systemd-notify ENOENT']);
  });

  it('works with the real execFile (systemd-notify missing or refusing is only a warning)', async () => {
    const warnings: string[] = [];
    const ok = await notifyReady((m) => warnings.push(m), {
      ...process.env,
      NOTIFY_SOCKET: '/nonexistent/notify',
    });
    expect(ok || warnings.length === 1).toBe(true);
  });
});
