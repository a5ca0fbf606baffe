import { execFile as nodeExecFile } from 'node:child_process';

/** The part of child_process.execFile that {@link notifyReady} uses (tests pass a fake). */
export type ExecFile = (
  file: string,
  args: string[],
  callback: (err: Error | null, stdout: string, stderr: string) => void,
) => unknown;

/**
 * Tells systemd that the daemon is ready (`Type=notify`), when it runs under systemd: Node cannot send
 * the sd_notify datagram itself, so it runs `systemd-notify --ready --pid=<our pid>`. The unit needs
 * `NotifyAccess=all`, since the message comes from a child. systemd-notify (≥ 246) waits until the
 * manager has processed the message (sd_notify_barrier), so it is not lost when the child exits first.
 * Without NOTIFY_SOCKET (not under systemd, or not Type=notify) it does nothing. Failures are only
 * reported through `warn`: systemd then fails the start after TimeoutStartSec, which says enough.
 * Resolves to whether systemd-notify was run and succeeded.
 */
export function notifyReady(
  warn: (message: string) => void,
  env: NodeJS.ProcessEnv = process.env,
  execFile: ExecFile = nodeExecFile,
  pid: number = process.pid,
): Promise<boolean> {
  if (!env['NOTIFY_SOCKET']) return Promise.resolve(false);
  return new Promise((resolve) => {
    try {
      execFile('systemd-notify', ['--ready', `--pid=${pid}`], (err, _stdout, stderr) => {
        if (err) {
          warn(`systemd-notify --ready failed: ${(stderr || err.message).trim()}`);
          resolve(false);
        } else resolve(true);
      });
    } catch (err) {
      warn(`systemd-notify --ready failed: ${(err as Error).message}`);
      resolve(false);
    }
  });
}
