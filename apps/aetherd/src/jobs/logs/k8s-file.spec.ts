import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  contentLength,
  MALFORMED,
  MAX_LINE,
  NEED_MORE,
  newRecord,
  parseTimestamp,
  RECORD,
  RecordCursor,
  type NextResult,
} from './k8s-file';

describe('parseTimestamp', () => {
  const ts = (s: string): number => parseTimestamp(Buffer.from(s), 0, Buffer.byteLength(s));

  it('parses conmon timestamps with nanoseconds and an offset', () => {
    expect(ts('2026-11-21T06:05:22.949080358+00:00')).toBe(Date.parse('2026-11-21T06:05:22.949Z'));
    expect(ts('2026-11-21T08:05:22.949999999+02:00')).toBe(Date.parse('2026-11-21T06:05:22.949Z'));
    expect(ts('2026-11-21T01:35:22.000000001-04:30')).toBe(Date.parse('2026-11-21T06:05:22.000Z'));
    expect(ts('2026-11-21T06:05:22Z')).toBe(Date.parse('2026-11-21T06:05:22Z'));
    expect(ts('2026-11-21T06:05:22.5Z')).toBe(Date.parse('2026-11-21T06:05:22.500Z'));
  });

  it('answers NaN for anything else', () => {
    for (const s of [
      '',
      'garbage',
      '2026-11-21 06:05:22Z',
      '2026-11-21T06:05:22.+00:00',
      '2026-11-21T06:05:22+0000',
    ]) {
      expect(ts(s)).toBeNaN();
    }
  });
});

describe('RecordCursor', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'k8s-file-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  async function parseAll(content: Buffer, limit = Number.POSITIVE_INFINITY): Promise<string[]> {
    const path = join(dir, 'log');
    writeFileSync(path, content);
    const fh = await open(path, 'r');
    try {
      const cur = new RecordCursor(16);
      const rec = newRecord();
      const out: string[] = [];
      cur.seek(0);
      for (;;) {
        const n = await cur.fill(fh, limit);
        if (n === 0) break;
        for (let st: NextResult = cur.next(rec); st !== NEED_MORE; st = cur.next(rec)) {
          if (st === MALFORMED) out.push('!');
          else {
            expect(st).toBe(RECORD);
            const c = cur.buf.subarray(rec.contentStart, rec.contentEnd).toString('latin1');
            out.push(`${rec.stream}${rec.partial ? 'P' : 'F'}${c}|${contentLength(rec)}`);
          }
        }
        // Short read: the end of the file (a torn line stays unconsumed, as in the daemon's scan).
        if (n < cur.requested) break;
      }
      out.push(`@${cur.pos}`);
      return out;
    } finally {
      await fh.close();
    }
  }

  const T = '2026-11-21T06:05:22.949080358+00:00';

  it('parses records, skips malformed lines and leaves a torn line unconsumed', async () => {
    const text =
      `${T} stdout F hello\n` +
      `${T} stderr P part\n` +
      `${T} stdout F \n` +
      `${T} stdout F\n` +
      `not a record\n` +
      `${T} stdin F x\n` +
      `${T} stdout X x\n` +
      `${T} stdout F  two spaces\n` +
      `${T} stderr F tor`;
    const got = await parseAll(Buffer.from(text, 'latin1'));
    expect(got).toEqual([
      '0Fhello|6',
      '1Ppart|4',
      '0F|1',
      '0F|1',
      '!',
      '!',
      '!',
      '0F two spaces|12',
      `@${Buffer.byteLength(text) - `${T} stderr F tor`.length}`,
    ]);
  });

  it('skips a line longer than MAX_LINE as one malformed line', async () => {
    const long = Buffer.alloc(MAX_LINE + 10, 0x61);
    const content = Buffer.concat([
      Buffer.from(`${T} stdout F a\n`),
      long,
      Buffer.from(`\n${T} stdout F b\n`),
    ]);
    expect(await parseAll(content)).toEqual(['0Fa|2', '!', '0Fb|2', `@${content.length}`]);
  });
});
