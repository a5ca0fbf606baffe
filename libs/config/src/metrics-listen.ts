/** Where the HTTP scrape listener binds: nowhere, a Unix socket, or a loopback TCP port. */
export type MetricsListen =
  { kind: 'off' } | { kind: 'unix'; path: string } | { kind: 'tcp'; host: '127.0.0.1' | '::1'; port: number };

/** The loopback host names accepted in `HOST:PORT`, and the address each binds. */
const LOOPBACK: Record<string, '127.0.0.1' | '::1'> = {
  '127.0.0.1': '127.0.0.1',
  localhost: '127.0.0.1',
  '[::1]': '::1',
};

const EXPECTED =
  'must be "" (off), "unix:/absolute/path", or a loopback "HOST:PORT" with HOST 127.0.0.1, localhost or [::1]';

/**
 * Parses `metrics.listen`. Metrics describe the machine and its workload, so the listener never binds
 * anything but a Unix socket or loopback: any other address is an error, never a fallback.
 */
export function parseMetricsListen(value: string): MetricsListen | { error: string } {
  if (value === '') return { kind: 'off' };
  if (value.startsWith('unix:')) {
    const path = value.slice('unix:'.length);
    if (!path.startsWith('/')) return { error: `${EXPECTED}: the socket path must be absolute` };
    if (path.includes('\0')) return { error: `${EXPECTED}: the socket path contains NUL` };
    return { kind: 'unix', path };
  }
  const m = /^(.*):(\d{1,5})$/.exec(value);
  if (!m) return { error: EXPECTED };
  const host = LOOPBACK[m[1]!];
  const port = Number(m[2]);
  if (!host)
    return {
      error: `${EXPECTED}; "${m[1]}" is not loopback, and metrics are never served beyond this machine (use a Unix socket or a local proxy)`,
    };
  if (port > 65535) return { error: `${EXPECTED}: port ${port} is out of range` };
  return { kind: 'tcp', host, port };
}
