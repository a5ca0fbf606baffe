import { chmod, chown, lstat, mkdir, readFile, unlink } from 'node:fs/promises';
import { connect } from 'node:net';
import { dirname } from 'node:path';

/** Thrown when a socket path cannot be used; `message` says why and what to do. */
export class SocketPathError extends Error {
  override readonly name = 'SocketPathError';
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(message);
  }
}

/** Resolves whether something accepts connections on the Unix socket at `path`. */
function answers(path: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    const done = (ok: boolean): void => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(true));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

/**
 * Makes `path` ready to bind: creates its directory (0750), refuses when a live process answers there
 * (a second daemon must not steal the socket), removes a stale socket file, and refuses anything that is
 * not a socket rather than deleting it.
 */
export async function prepareSocketPath(path: string): Promise<{ removedStale: boolean }> {
  await mkdir(dirname(path), { recursive: true, mode: 0o750 });
  let st;
  try {
    st = await lstat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { removedStale: false };
    throw err;
  }
  if (!st.isSocket()) {
    throw new SocketPathError(path, `${path} exists and is not a socket; refusing to replace it`);
  }
  if (await answers(path)) {
    throw new SocketPathError(path, `another process is already serving on ${path}; is the daemon running?`);
  }
  await unlink(path);
  return { removedStale: true };
}

/** Looks a group up by name (or numeric id) in /etc/group; Node has no getgrnam. */
export async function resolveGroupId(group: string, groupFile = '/etc/group'): Promise<number> {
  if (/^\d+$/.test(group)) return Number(group);
  const text = await readFile(groupFile, 'utf8');
  for (const line of text.split('\n')) {
    const [name, , gid] = line.split(':');
    if (name === group && gid !== undefined) return Number(gid);
  }
  throw new SocketPathError(
    '',
    `socket group "${group}" does not exist; create it (groupadd --system ${group}) or set socket.group`,
  );
}

/** Applies the configured group and mode to a bound socket. */
export async function applySocketPermissions(path: string, mode: string, group: string): Promise<void> {
  if (group) await chown(path, -1, await resolveGroupId(group));
  await chmod(path, parseInt(mode, 8));
}

/** Removes the socket file if it is still a socket (never anything else). */
export async function removeSocket(path: string): Promise<void> {
  try {
    if ((await lstat(path)).isSocket()) await unlink(path);
  } catch {
    // Already gone.
  }
}
