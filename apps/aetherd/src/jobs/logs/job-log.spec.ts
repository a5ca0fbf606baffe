import {
  appendFileSync,
  mkdtempSync,
  readdirSync,
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { JobLog, type LogCheckpoint, type LogChunk, type LogSkipped, type LogStreamName } from './job-log';

// conmon's writer is simulated: records are appended to the file exactly as conmon formats them.

interface Rec {
  stream: LogStreamName;
  partial: boolean;
  content: Buffer;
  ms?: number;
}

const BASE_MS = Date.parse('2026-11-21T06:05:22.949Z');

function stamp(ms: number): string {
  return new Date(ms).toISOString().slice(0, 23) + '080358+00:00';
}

function encode(recs: readonly Rec[]): Buffer {
  return Buffer.concat(
    recs.flatMap((r) => [
      Buffer.from(`${stamp(r.ms ?? BASE_MS)} ${r.stream} ${r.partial ? 'P' : 'F'} `),
      r.content,
      Buffer.from('\n'),
    ]),
  );
}

/** The reconstructed combined content, and which stream each byte belongs to. */
class Model {
  combined = Buffer.alloc(0);
  streams: LogStreamName[] = [];
  add(recs: readonly Rec[]): void {
    const parts: Buffer[] = [this.combined];
    for (const r of recs) {
      const bytes = r.partial ? r.content : Buffer.concat([r.content, Buffer.from('\n')]);
      parts.push(bytes);
      for (let i = 0; i < bytes.length; i++) this.streams.push(r.stream);
    }
    this.combined = Buffer.concat(parts);
  }
  /** Bytes of `stream` (or all) at combined offsets ≥ from. */
  select(from: number, stream?: LogStreamName): Buffer {
    const out: number[] = [];
    for (let i = from; i < this.combined.length; i++) {
      if (stream === undefined || this.streams[i] === stream) out.push(this.combined[i]!);
    }
    return Buffer.from(out);
  }
  /** Reference for tailLines, as tail -n: a last line without "\n" counts. */
  tailStart(n: number, stream?: LogStreamName): number {
    const sel: number[] = [];
    for (let i = 0; i < this.combined.length; i++) {
      if (stream === undefined || this.streams[i] === stream) sel.push(i);
    }
    if (n === 0) return this.combined.length;
    const nls = sel.filter((i) => this.combined[i] === 0x0a);
    const last = sel[sel.length - 1];
    const trailing = last !== undefined && this.combined[last] !== 0x0a;
    const lines = nls.length + (trailing ? 1 : 0);
    if (lines <= n) return 0;
    return nls[lines - n - 1]! + 1;
  }
}

/** A deterministic generator (xorshift), so failures reproduce. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x100000000;
  };
}

/** Random records as conmon would write them: any byte but "\n" in content, \r and non-UTF-8 included. */
function randomRecords(count: number, seed: number, maxLen = 40): Rec[] {
  const r = rng(seed);
  const recs: Rec[] = [];
  for (let i = 0; i < count; i++) {
    const len = Math.floor(r() * maxLen) + (r() < 0.1 ? 0 : 1);
    const content = Buffer.alloc(len);
    for (let j = 0; j < len; j++) {
      const k = r();
      content[j] = k < 0.1 ? 0x0d : k < 0.2 ? 0xff : k < 0.25 ? 0x00 : Math.floor(r() * 256);
      if (content[j] === 0x0a) content[j] = 0xc3;
    }
    recs.push({
      stream: r() < 0.6 ? 'stdout' : 'stderr',
      partial: r() < 0.3 && len > 0,
      content,
      ms: BASE_MS + i,
    });
  }
  return recs;
}

type Item = LogChunk | LogSkipped;

function isSkip(i: Item): i is LogSkipped {
  return 'skipped' in i;
}

async function collect(it: AsyncIterable<Item>): Promise<Item[]> {
  const out: Item[] = [];
  for await (const i of it) out.push(i);
  return out;
}

/** Checks every chunk against the model: its bytes are at its offset, all of its stream. */
function checkChunks(m: Model, items: readonly Item[], maxChunk = 64 * 1024): void {
  for (const i of items) {
    if (isSkip(i)) continue;
    expect(i.data.length).toBeGreaterThan(0);
    expect(i.data.length).toBeLessThanOrEqual(maxChunk);
    expect(i.data.equals(m.combined.subarray(i.offset, i.offset + i.data.length))).toBe(true);
    for (let k = i.offset; k < i.offset + i.data.length; k++) {
      if (m.streams[k] !== i.stream) throw new Error(`byte ${k} is ${m.streams[k]}, chunk says ${i.stream}`);
    }
  }
}

function bytesOf(items: readonly Item[], stream?: LogStreamName): Buffer {
  return Buffer.concat(
    items.flatMap((i) => (isSkip(i) || (stream !== undefined && i.stream !== stream) ? [] : [i.data])),
  );
}

/** How many of this process' file descriptors are open on `path`. */
function openFds(path: string): number {
  return readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`) === path;
    } catch {
      return false;
    }
  }).length;
}

async function within<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`nothing within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function nextWithin<T>(it: AsyncIterator<T>, ms: number): Promise<IteratorResult<T>> {
  return within(it.next(), ms);
}

describe('JobLog', () => {
  let dir: string;
  let path: string;
  const logs: JobLog[] = [];
  const openLog = (opts: Parameters<typeof JobLog.open>[1] = { maxBytes: 64 * 1024 * 1024 }): JobLog => {
    const log = JobLog.open(path, opts);
    logs.push(log);
    return log;
  };

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'job-log-'));
    path = join(dir, 'ctr.log');
  });
  afterEach(() => {
    for (const l of logs.splice(0)) l.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('reconstructs the example conmon wrote', async () => {
    writeFileSync(
      path,
      '2026-11-21T06:05:22.949080358+00:00 stdout F hello\n' +
        '2026-11-21T06:05:22.949080358+00:00 stdout P partial\n' +
        '2026-11-21T06:05:22.949150112+00:00 stderr F err\n' +
        '2026-11-21T06:05:23.954987122+00:00 stdout F done\n',
    );
    const log = openLog();
    const items = await collect(log.read());
    expect(items).toEqual([
      {
        stream: 'stdout',
        data: Buffer.from('hello\npartial'),
        offset: 0,
        time: new Date('2026-11-21T06:05:22.949Z'),
      },
      {
        stream: 'stderr',
        data: Buffer.from('err\n'),
        offset: 13,
        time: new Date('2026-11-21T06:05:22.949Z'),
      },
      {
        stream: 'stdout',
        data: Buffer.from('done\n'),
        offset: 17,
        time: new Date('2026-11-21T06:05:23.954Z'),
      },
    ]);
    expect([log.stdoutBytes, log.stderrBytes, log.startOffset, log.endOffset]).toEqual([18, 4, 0, 22]);
    expect(bytesOf(await collect(log.read({ stream: 'stdout' }))).toString()).toBe('hello\npartialdone\n');
    expect(bytesOf(await collect(log.read({ stream: 'stderr' }))).toString()).toBe('err\n');
  });

  it('reconstructs binary content exactly, from any offset, with any chunk size', async () => {
    const recs = randomRecords(600, 7);
    const m = new Model();
    m.add(recs);
    writeFileSync(path, encode(recs));
    const log = openLog();
    await log.refresh();
    const out = m.streams.filter((s) => s === 'stdout').length;
    expect([log.stdoutBytes, log.stderrBytes, log.endOffset]).toEqual([
      out,
      m.combined.length - out,
      m.combined.length,
    ]);

    const all = await collect(log.read());
    checkChunks(m, all);
    expect(bytesOf(all).equals(m.combined)).toBe(true);
    expect(bytesOf(await collect(log.read({ stream: 'stdout' }))).equals(m.select(0, 'stdout'))).toBe(true);
    expect(bytesOf(await collect(log.read({ stream: 'stderr' }))).equals(m.select(0, 'stderr'))).toBe(true);

    const r = rng(99);
    for (let k = 0; k < 40; k++) {
      const from = Math.floor(r() * (m.combined.length + 5));
      const maxChunkBytes = 1 + Math.floor(r() * 50);
      const stream = k % 3 === 0 ? undefined : k % 3 === 1 ? 'stdout' : 'stderr';
      const items = await collect(log.read({ from, maxChunkBytes, ...(stream ? { stream } : {}) }));
      checkChunks(m, items, maxChunkBytes);
      expect(bytesOf(items).equals(m.select(from, stream))).toBe(true);
      // Resuming after any chunk at offset + length continues exactly.
      const mid = items[Math.floor(items.length / 2)];
      if (mid && !isSkip(mid)) {
        const again = await collect(
          log.read({ from: mid.offset + mid.data.length, ...(stream ? { stream } : {}) }),
        );
        expect(bytesOf(again).equals(m.select(mid.offset + mid.data.length, stream))).toBe(true);
      }
    }
  });

  it('coalesces P records of one stream into chunks of maxChunkBytes', async () => {
    const recs: Rec[] = [];
    for (let i = 0; i < 100; i++)
      recs.push({ stream: 'stdout', partial: true, content: Buffer.alloc(1000, 0x41 + (i % 26)) });
    writeFileSync(path, encode(recs));
    const items = await collect(openLog().read({ maxChunkBytes: 4096 }));
    expect(items.map((i) => (isSkip(i) ? -1 : i.data.length))).toEqual([
      ...Array<number>(24).fill(4096),
      1696,
    ]);
  });

  it('starts at a from inside a record with that record’s tail', async () => {
    writeFileSync(path, encode([{ stream: 'stdout', partial: false, content: Buffer.from('abcdef') }]));
    const log = openLog();
    expect(await collect(log.read({ from: 3 }))).toMatchObject([{ data: Buffer.from('def\n'), offset: 3 }]);
    expect(await collect(log.read({ from: 6 }))).toMatchObject([{ data: Buffer.from('\n'), offset: 6 }]);
    expect(await collect(log.read({ from: 7 }))).toEqual([]);
    expect(await collect(log.read({ from: 100 }))).toEqual([]);
  });

  it('tails lines of both streams and of one stream', async () => {
    const m = new Model();
    const recs = randomRecords(400, 3, 12);
    m.add(recs);
    writeFileSync(path, encode(recs));
    // A small cap makes the index fine-grained, so tails cross several index segments.
    const log = openLog({ maxBytes: 1024 * 1024 });
    for (const stream of [undefined, 'stdout', 'stderr'] as const) {
      for (const n of [0, 1, 2, 5, 17, 100, 1000, 100000]) {
        const items = await collect(log.read({ tailLines: n, ...(stream ? { stream } : {}) }));
        checkChunks(m, items);
        const want = m.select(m.tailStart(n, stream), stream);
        if (!bytesOf(items).equals(want)) throw new Error(`tail ${n} of ${stream ?? 'both'} differs`);
      }
    }
    // A trailing partial line counts as a line; an empty P record does not.
    writeFileSync(
      path,
      encode([
        { stream: 'stdout', partial: false, content: Buffer.from('a') },
        { stream: 'stderr', partial: false, content: Buffer.from('x') },
        { stream: 'stdout', partial: false, content: Buffer.from('b') },
        { stream: 'stdout', partial: true, content: Buffer.from('c') },
        { stream: 'stderr', partial: true, content: Buffer.from('') },
      ]),
    );
    const log2 = openLog();
    const tail = async (n: number, stream?: LogStreamName): Promise<string> =>
      bytesOf(await collect(log2.read({ tailLines: n, ...(stream ? { stream } : {}) }))).toString();
    expect(await tail(1)).toBe('c');
    expect(await tail(2)).toBe('b\nc');
    expect(await tail(1, 'stderr')).toBe('x\n');
    expect(await tail(2, 'stdout')).toBe('b\nc');
    expect(await tail(3)).toBe('x\nb\nc');
  });

  it('follows appended data, delivers a torn line only when complete, ends after finish()', async () => {
    appendFileSync(path, encode([{ stream: 'stdout', partial: false, content: Buffer.from('one') }]));
    const log = openLog();
    const it = log.read({ follow: true })[Symbol.asyncIterator]();
    expect((await nextWithin(it, 2000)).value).toMatchObject({ data: Buffer.from('one\n'), offset: 0 });

    const line = encode([{ stream: 'stderr', partial: false, content: Buffer.from('two') }]);
    appendFileSync(path, line.subarray(0, 45));
    const pending = it.next();
    await sleep(600); // several polls and the inotify event have passed
    await log.refresh();
    expect(log.endOffset).toBe(4);
    let done = false;
    void pending.then(() => (done = true));
    await sleep(10);
    expect(done).toBe(false);
    appendFileSync(path, line.subarray(45));
    expect((await pending).value).toMatchObject({ stream: 'stderr', data: Buffer.from('two\n'), offset: 4 });

    appendFileSync(path, encode([{ stream: 'stdout', partial: true, content: Buffer.from('three') }]));
    expect((await nextWithin(it, 2000)).value).toMatchObject({ data: Buffer.from('three'), offset: 8 });
    appendFileSync(path, encode([{ stream: 'stdout', partial: false, content: Buffer.from('!') }]));
    log.finish();
    expect((await nextWithin(it, 2000)).value).toMatchObject({ data: Buffer.from('!\n'), offset: 13 });
    expect((await nextWithin(it, 2000)).done).toBe(true);
    expect([log.stdoutBytes, log.stderrBytes]).toEqual([11, 4]);
    // Finished and unread: no descriptor is held, and reading opens the file again.
    await sleep(20);
    expect(openFds(path)).toBe(0);
    expect(bytesOf(await collect(log.read({ stream: 'stderr' }))).toString()).toBe('two\n');
    await sleep(20);
    expect(openFds(path)).toBe(0);
  });

  it('follows a file that does not exist yet, and from an offset beyond the end', async () => {
    const log = openLog();
    const it = log.read({ follow: true })[Symbol.asyncIterator]();
    const beyond = log.read({ follow: true, from: 6 })[Symbol.asyncIterator]();
    const first = nextWithin(it, 3000);
    const far = nextWithin(beyond, 3000);
    await sleep(100);
    appendFileSync(path, encode([{ stream: 'stdout', partial: false, content: Buffer.from('hi') }]));
    expect((await first).value).toMatchObject({ data: Buffer.from('hi\n'), offset: 0 });
    appendFileSync(path, encode([{ stream: 'stdout', partial: false, content: Buffer.from('there') }]));
    expect((await far).value).toMatchObject({ data: Buffer.from('re\n'), offset: 6 });
    log.finish();
    expect((await nextWithin(it, 2000)).value).toMatchObject({ data: Buffer.from('there\n'), offset: 3 });
    expect((await nextWithin(it, 2000)).done).toBe(true);
    expect((await nextWithin(beyond, 2000)).done).toBe(true);
  });

  it('ends a follower promptly when its signal aborts', async () => {
    writeFileSync(path, encode([{ stream: 'stdout', partial: false, content: Buffer.from('x') }]));
    const ac = new AbortController();
    const it = openLog().read({ follow: true, signal: ac.signal })[Symbol.asyncIterator]();
    await nextWithin(it, 2000);
    const waiting = it.next();
    await sleep(50);
    const t0 = Date.now();
    ac.abort();
    expect((await waiting).done).toBe(true);
    expect(Date.now() - t0).toBeLessThan(100);
  });

  it('ends followers on close()', async () => {
    const log = openLog();
    const it = log.read({ follow: true })[Symbol.asyncIterator]();
    const waiting = it.next();
    await sleep(50);
    log.close();
    expect((await within(waiting, 1000)).done).toBe(true);
  });

  it('skips and counts malformed lines', async () => {
    writeFileSync(
      path,
      Buffer.concat([
        encode([{ stream: 'stdout', partial: false, content: Buffer.from('a') }]),
        Buffer.from('garbage\n\n\0\0\0\n'),
        encode([{ stream: 'stderr', partial: false, content: Buffer.from('b') }]),
      ]),
    );
    const log = openLog();
    const items = await collect(log.read());
    expect(bytesOf(items).toString()).toBe('a\nb\n');
    expect(log.malformedLines).toBe(3);
    expect(log.endOffset).toBe(4);
  });

  it('punches holes to keep the stored part under maxBytes, with stable offsets and a checkpoint', async () => {
    const maxBytes = 64 * 1024;
    const checkpoints: LogCheckpoint[] = [];
    const m = new Model();
    const log = openLog({ maxBytes, onCheckpoint: (c) => checkpoints.push(c) });
    for (let round = 0; round < 20; round++) {
      const recs = randomRecords(300, 100 + round, 200);
      m.add(recs);
      appendFileSync(path, encode(recs));
      await log.refresh();
      expect(log.storedBytes).toBeLessThanOrEqual(maxBytes);
    }
    const size = statSync(path).size;
    expect(log.storedBytes).toBeGreaterThan(maxBytes / 2);
    // Blocks actually allocated: the stored part and the one block the punch boundary falls into.
    expect(statSync(path).blocks * 512).toBeLessThanOrEqual(maxBytes + 2 * 4096);
    expect(size).toBeGreaterThan(10 * maxBytes);
    expect(checkpoints.length).toBeGreaterThan(5);
    expect(checkpoints[checkpoints.length - 1]).toEqual(log.checkpoint);
    expect(log.endOffset).toBe(m.combined.length);
    expect(log.startOffset).toBeGreaterThan(0);

    const items = await collect(log.read());
    expect(items[0]).toEqual({ skipped: log.startOffset });
    checkChunks(m, items);
    expect(bytesOf(items).equals(m.combined.subarray(log.startOffset))).toBe(true);
    const later = await collect(log.read({ from: log.startOffset + 10, stream: 'stderr' }));
    expect(bytesOf(later).equals(m.select(log.startOffset + 10, 'stderr'))).toBe(true);
    const tail = await collect(log.read({ tailLines: 3 }));
    expect(bytesOf(tail).equals(m.select(m.tailStart(3)))).toBe(true);

    // A restarted daemon: only the checkpoint survived.
    const again = openLog({ maxBytes, checkpoint: checkpoints[checkpoints.length - 1]! });
    expect(again.startOffset).toBe(log.startOffset);
    await again.refresh();
    for (const k of ['startOffset', 'endOffset', 'stdoutBytes', 'stderrBytes', 'storedBytes'] as const) {
      expect(again[k]).toBe(log[k]);
    }
    const reread = await collect(again.read({ from: log.startOffset }));
    expect(bytesOf(reread).equals(m.combined.subarray(log.startOffset))).toBe(true);
  });

  it('gives a lagging follower { skipped } and keeps its offsets consistent', async () => {
    const maxBytes = 32 * 1024;
    const m = new Model();
    const log = openLog({ maxBytes });
    const first = randomRecords(50, 1, 100);
    m.add(first);
    appendFileSync(path, encode(first));
    const it = log.read({ follow: true, maxChunkBytes: 512 })[Symbol.asyncIterator]();
    const items: Item[] = [(await nextWithin(it, 2000)).value as Item];
    // The follower lags: while it does not pull, much more than maxBytes is appended and punched away.
    for (let round = 0; round < 10; round++) {
      const recs = randomRecords(200, 10 + round, 100);
      m.add(recs);
      appendFileSync(path, encode(recs));
      await log.refresh();
    }
    log.finish();
    for (;;) {
      const r = await nextWithin(it, 2000);
      if (r.done) break;
      items.push(r.value);
    }
    checkChunks(m, items, 512);
    const skips = items.filter(isSkip);
    expect(skips.length).toBe(1);
    // Every byte is accounted for: delivered chunks and skipped gaps tile [0, end) exactly.
    let next = 0;
    for (const i of items) {
      if (isSkip(i)) next += i.skipped;
      else {
        expect(i.offset).toBe(next);
        next += i.data.length;
      }
    }
    expect(next).toBe(m.combined.length);
  });

  it('does not punch and warns when fallocate fails, losing nothing', async () => {
    const warnings: string[] = [];
    const checkpoints: LogCheckpoint[] = [];
    const log = openLog({
      maxBytes: 8 * 1024,
      fallocatePath: join(dir, 'no-such-fallocate'),
      onWarning: (msg) => warnings.push(msg),
      onCheckpoint: (c) => checkpoints.push(c),
    });
    const m = new Model();
    const recs = randomRecords(500, 5, 100);
    m.add(recs);
    writeFileSync(path, encode(recs));
    await log.refresh();
    expect(warnings).toEqual([expect.stringContaining('punching')]);
    expect(log.startOffset).toBe(0);
    expect(checkpoints[checkpoints.length - 1]).toEqual({
      startFilePos: 0,
      startOffset: 0,
      stdoutBefore: 0,
      stderrBefore: 0,
    });
    expect(bytesOf(await collect(log.read())).equals(m.combined)).toBe(true);
  });

  it('follows a writer that appends torn pieces, with and without a cap', async () => {
    for (const maxBytes of [Number.POSITIVE_INFINITY, 16 * 1024]) {
      rmSync(path, { force: true });
      const m = new Model();
      const recs = randomRecords(3000, maxBytes === 16 * 1024 ? 11 : 12, 60);
      m.add(recs);
      const bytes = encode(recs);
      const log = openLog({ maxBytes });
      const reading = collect(log.read({ follow: true, maxChunkBytes: 100 }));
      const r = rng(5);
      // Pieces cut anywhere (inside timestamps, headers, content), as a writer that is not atomic would.
      for (let at = 0; at < bytes.length;) {
        const n = 1 + Math.floor(r() * 3000);
        appendFileSync(path, bytes.subarray(at, at + n));
        at += n;
        if (r() < 0.3) await sleep(1);
      }
      log.finish();
      const items = await within(reading, 10_000);
      checkChunks(m, items, 100);
      let next = 0;
      for (const i of items) {
        if (isSkip(i)) next += i.skipped;
        else {
          expect(i.offset).toBe(next);
          next += i.data.length;
        }
      }
      expect(next).toBe(m.combined.length);
      if (maxBytes === Number.POSITIVE_INFINITY) expect(bytesOf(items).equals(m.combined)).toBe(true);
      else expect(log.storedBytes).toBeLessThanOrEqual(maxBytes);
      log.close();
    }
  });

  it('with watch: true keeps the cap while nobody reads', async () => {
    const maxBytes = 16 * 1024;
    const log = openLog({ maxBytes, watch: true });
    for (let i = 0; i < 10; i++) appendFileSync(path, encode(randomRecords(100, i, 100)));
    for (let t = 0; t < 40 && log.storedBytes === 0; t++) await sleep(50);
    await sleep(300); // the watcher's scans settle
    expect(log.startOffset).toBeGreaterThan(0);
    expect(log.storedBytes).toBeLessThanOrEqual(maxBytes);
    expect(statSync(path).blocks * 512).toBeLessThanOrEqual(maxBytes + 2 * 4096);
  });

  it('keeps memory bounded while a paused follower does not pull', async () => {
    const maxBytes = 4 * 1024 * 1024;
    const log = openLog({ maxBytes });
    // 1 MiB of records, appended again and again (50 MiB in all) without allocating more.
    const block = encode(
      Array.from({ length: 1024 }, (_, i) => ({
        stream: 'stdout' as const,
        partial: i % 2 === 0,
        content: Buffer.alloc(1024 - 56, 0x61 + (i % 26)),
      })),
    );
    appendFileSync(path, block);
    const it = log.read({ follow: true })[Symbol.asyncIterator]();
    await nextWithin(it, 2000);
    const base = process.memoryUsage().arrayBuffers;
    let peak = base;
    for (let i = 0; i < 50; i++) {
      appendFileSync(path, block);
      if (i % 5 === 0) await sleep(5); // let the watcher's scans run, as they would under conmon
      peak = Math.max(peak, process.memoryUsage().arrayBuffers);
    }
    await log.refresh();
    peak = Math.max(peak, process.memoryUsage().arrayBuffers);
    expect(log.endOffset).toBe(51 * 1024 * (1024 - 56) + 51 * 512);
    expect(log.storedBytes).toBeLessThanOrEqual(maxBytes);
    expect(peak - base).toBeLessThan(8 * 1024 * 1024);
    // The follower resumes: it is told what it missed, then reads what is stored.
    log.finish();
    let skipped = 0;
    let got = 0;
    for (;;) {
      const r = await nextWithin(it, 5000);
      if (r.done) break;
      if (isSkip(r.value)) skipped += r.value.skipped;
      else got += r.value.data.length;
    }
    expect(skipped).toBeGreaterThan(0);
    expect(got + skipped + 64 * 1024).toBeGreaterThanOrEqual(log.endOffset);
  });
});
