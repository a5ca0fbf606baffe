import { existsSync, mkdtempSync, renameSync, rmSync, statSync } from 'node:fs';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import parsePrometheusText from 'parse-prometheus-text-format';
import { MetricsRegistry, PROMETHEUS_CONTENT_TYPE } from './metrics-registry';
import { startScrapeListener } from './scrape-listener';

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function get(
  target: { socketPath: string } | { host: string; port: number },
  path: string,
  method = 'GET',
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ ...target, path, method }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('the HTTP scrape listener', () => {
  let dir: string;
  const metrics = new MetricsRegistry('cfcd', '9.9.9');
  metrics.section('events', () => ({
    headSequence: 7n,
    oldestSequence: 1n,
    storedEvents: 7n,
    subscribers: 0n,
    emittedTotal: 7n,
    deliveredTotal: 0n,
    gapsTotal: 0n,
    slowDisconnectsTotal: 0n,
    bufferedEvents: 0n,
    subscriberBufferLimit: 16n,
  }));
  const text = (): Promise<string> => metrics.prometheusText();

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'aether-scrape-spec-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('serves GET /metrics on a Unix socket of mode 0660, 404 elsewhere, 405 for other methods', async () => {
    const path = join(dir, 'metrics.sock');
    const listener = await startScrapeListener({ listen: { kind: 'unix', path }, text });
    try {
      expect(listener.address).toBe(`unix:${path}`);
      expect(statSync(path).mode & 0o777).toBe(0o660);
      const ok = await get({ socketPath: path }, '/metrics');
      expect(ok.status).toBe(200);
      expect(ok.headers['content-type']).toBe(PROMETHEUS_CONTENT_TYPE);
      const families = parsePrometheusText(ok.body);
      expect(families.find((f) => f.name === 'aether_events_head_sequence')?.metrics[0]?.value).toBe('7');
      expect((await get({ socketPath: path }, '/metrics?format=text')).status).toBe(200);
      expect((await get({ socketPath: path }, '/')).status).toBe(404);
      expect((await get({ socketPath: path }, '/metricsx')).status).toBe(404);
      const post = await get({ socketPath: path }, '/metrics', 'POST');
      expect([post.status, post.headers['allow']]).toEqual([405, 'GET, HEAD']);
      const head = await get({ socketPath: path }, '/metrics', 'HEAD');
      expect([head.status, head.body]).toEqual([200, '']);
    } finally {
      await listener.close();
    }
    expect(existsSync(path)).toBe(false);
  });

  it('replaces a stale socket file and refuses one a live process serves', async () => {
    const path = join(dir, 'stale.sock');
    const other = createServer();
    await new Promise<void>((r) => other.listen(path, r));
    await expect(startScrapeListener({ listen: { kind: 'unix', path }, text })).rejects.toThrow(
      /already serving/,
    );
    // Closing a net server unlinks its socket; leave a stale one behind the way a killed process does.
    other.close();
    const stale = createServer();
    await new Promise<void>((r) => stale.listen(join(dir, 'tmp.sock'), r));
    renameSync(join(dir, 'tmp.sock'), path);
    stale.close();
    const listener = await startScrapeListener({ listen: { kind: 'unix', path }, text });
    expect((await get({ socketPath: path }, '/metrics')).status).toBe(200);
    await listener.close();
  });

  it('serves loopback TCP, telling the port it bound', async () => {
    const listener = await startScrapeListener({ listen: { kind: 'tcp', host: '127.0.0.1', port: 0 }, text });
    try {
      const port = Number(/^127\.0\.0\.1:(\d+)$/.exec(listener.address)?.[1]);
      expect(port).toBeGreaterThan(0);
      const ok = await get({ host: '127.0.0.1', port }, '/metrics');
      expect(ok.status).toBe(200);
      expect(ok.body).toContain('aether_build_info{daemon="cfcd",version="9.9.9"} 1');
    } finally {
      await listener.close();
    }
  });

  it('answers 500 when the metrics cannot be read, and says why to the daemon', async () => {
    const errors: unknown[] = [];
    const listener = await startScrapeListener({
      listen: { kind: 'tcp', host: '127.0.0.1', port: 0 },
      text: () => Promise.reject(new Error('database closed')),
      onError: (err) => errors.push(err),
    });
    const port = Number(listener.address.split(':')[1]);
    expect((await get({ host: '127.0.0.1', port }, '/metrics')).status).toBe(500);
    await listener.close();
    expect(errors).toEqual([new Error('database closed')]);
  });
});
