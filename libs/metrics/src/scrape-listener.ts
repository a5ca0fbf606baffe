import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { MetricsListen } from '@aether/config';
import { applySocketPermissions, prepareSocketPath, removeSocket } from '@aether/rpc';
import { PROMETHEUS_CONTENT_TYPE } from './metrics-registry';

export interface ScrapeListenerOptions {
  listen: Exclude<MetricsListen, { kind: 'off' }>;
  /** The exposition text (the same as GetPrometheusMetrics). */
  text: () => Promise<string>;
  /** Group owning a Unix socket ('' keeps the daemon's). */
  socketGroup?: string;
  /** Told of a scrape that failed (the scraper gets a 500). */
  onError?: (err: unknown) => void;
}

/** A running scrape listener. */
export interface ScrapeListener {
  /** `unix:/path` or `HOST:PORT` with the port actually bound (useful with port 0). */
  readonly address: string;
  /** Stops accepting, ends open connections and removes the socket file. */
  close(): Promise<void>;
}

/**
 * Serves `GET /metrics` (and HEAD) over HTTP/1.1 for Prometheus-style scrapers: on a Unix socket (mode
 * 0660; a stale socket file left by a previous run is replaced, a live one refused) or on loopback TCP.
 * Other paths are 404, other methods 405. No TLS and no authentication: the socket's permissions or
 * loopback are the boundary, which is why nothing else may be configured.
 */
export async function startScrapeListener(options: ScrapeListenerOptions): Promise<ScrapeListener> {
  const { listen } = options;
  const server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found: try /metrics\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res
        .writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' })
        .end('method not allowed\n');
      return;
    }
    options.text().then(
      (text) => {
        res.writeHead(200, {
          'content-type': PROMETHEUS_CONTENT_TYPE,
          'content-length': Buffer.byteLength(text),
        });
        res.end(req.method === 'HEAD' ? undefined : text);
      },
      (err: unknown) => {
        options.onError?.(err);
        res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end('metrics unavailable\n');
      },
    );
  });
  // A scraper holds keep-alive connections; they must not keep a stopping daemon alive.
  server.keepAliveTimeout = 5_000;
  if (listen.kind === 'unix') {
    await prepareSocketPath(listen.path);
    const previous = process.umask(0o177);
    try {
      await bind(server, (s, cb) => s.listen(listen.path, cb));
    } finally {
      process.umask(previous);
    }
    try {
      await applySocketPermissions(listen.path, '0660', options.socketGroup ?? '');
    } catch (err) {
      await closeServer(server);
      await removeSocket(listen.path);
      throw err;
    }
    return {
      address: `unix:${listen.path}`,
      close: async () => {
        await closeServer(server);
        await removeSocket(listen.path);
      },
    };
  }
  await bind(server, (s, cb) => s.listen(listen.port, listen.host, cb));
  const port = (server.address() as AddressInfo).port;
  return {
    address: `${listen.host === '::1' ? '[::1]' : listen.host}:${port}`,
    close: () => closeServer(server),
  };
}

function bind(server: Server, listen: (s: Server, cb: () => void) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    listen(server, () => {
      server.removeListener('error', reject);
      resolve();
    });
  });
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
