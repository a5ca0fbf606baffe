import {
  EX_USAGE,
  formatAge,
  formatBytes,
  formatCpu,
  formatDuration,
  parseBytes,
  parseCount,
  parseCpu,
  parseDuration,
  parseKeyValue,
  parseMount,
  parseSince,
  shellJoin,
  truncate,
  UsageError,
} from './units';

const usage = (fn: () => unknown): UsageError => {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(UsageError);
    expect((err as UsageError).exitCode).toBe(EX_USAGE);
    return err as UsageError;
  }
  throw new Error('expected a UsageError');
};

describe('parseCpu', () => {
  it('reads millicores and cores', () => {
    expect(parseCpu('500m')).toBe(500);
    expect(parseCpu('1')).toBe(1000);
    expect(parseCpu('1.5')).toBe(1500);
    expect(parseCpu('0.25')).toBe(250);
    expect(parseCpu('0.001')).toBe(1);
    expect(parseCpu('16')).toBe(16_000);
  });
  it.each(['', 'm', '1.5m', '0', '0m', '-1', '1e3', ' 1', '1 ', '1.0001', '2 cores', '1,5', '99999999999m'])(
    'refuses %j',
    (v) => {
      expect(usage(() => parseCpu(v)).message).toContain('500m');
    },
  );
});

describe('parseBytes', () => {
  it('reads binary and decimal units and plain bytes', () => {
    expect(parseBytes('1073741824')).toBe(1073741824n);
    expect(parseBytes('512Mi')).toBe(512n * 1024n * 1024n);
    expect(parseBytes('1Ki')).toBe(1024n);
    expect(parseBytes('1.5Gi')).toBe(1536n * 1024n * 1024n);
    expect(parseBytes('2Ti')).toBe(2n * 1024n ** 4n);
    expect(parseBytes('1G')).toBe(1_000_000_000n);
    expect(parseBytes('500M')).toBe(500_000_000n);
    expect(parseBytes('3K')).toBe(3000n);
    expect(parseBytes('1.5K')).toBe(1500n);
  });
  it.each([
    '12XB',
    '',
    'Mi',
    '1MB',
    '1mi',
    '1 Mi',
    '-1',
    '0',
    '0Gi',
    '1.5',
    '1.0001K',
    '1e9',
    '1GiB',
    '9999999999Ti',
  ])('refuses %j', (v) => {
    const e = usage(() => parseBytes(v, 'memory'));
    expect(e.message).toContain(`memory "${v}"`);
    expect(e.message).toContain('512Mi');
  });
});

describe('parseDuration', () => {
  it('reads h, m, s and ms and combinations of them', () => {
    expect(parseDuration('90s')).toBe(90_000);
    expect(parseDuration('10m')).toBe(600_000);
    expect(parseDuration('1h')).toBe(3_600_000);
    expect(parseDuration('1h30m')).toBe(5_400_000);
    expect(parseDuration('1h2m3s')).toBe(3_723_000);
    expect(parseDuration('1m30s500ms')).toBe(90_500);
    expect(parseDuration('250ms')).toBe(250);
    expect(parseDuration('1.5s')).toBe(1500);
    expect(parseDuration('0s')).toBe(0);
  });
  it.each(['', '10', '1.5', '10x', 's', '1d', '30m1h', '1s1s', '1h 30m', '-5s', '10sec', '5m10', 'ms'])(
    'refuses %j',
    (v) => {
      expect(usage(() => parseDuration(v, 'timeout')).message).toMatch(/^timeout ".*" .*1h30m/);
    },
  );
  it('says when the unit is missing', () => {
    expect(usage(() => parseDuration('30')).message).toContain('has no unit');
  });
});

describe('parseSince', () => {
  it('reads an RFC 3339 time or a duration ago, refusing what it cannot read', () => {
    expect(parseSince('2h', 10_000_000).getTime()).toBe(10_000_000 - 7_200_000);
    expect(parseSince('2026-11-21T10:00:00Z').toISOString()).toBe('2026-11-21T10:00:00.000Z');
    expect(() => parseSince('2026-13-45')).toThrow(UsageError);
    expect(() => parseSince('yesterday')).toThrow(UsageError);
  });
});

describe('parseCount, parseKeyValue, parseMount', () => {
  it('reads whole numbers within bounds', () => {
    expect(parseCount('256', 'pids')).toBe(256);
    expect(parseCount('0', 'from', 0)).toBe(0);
    for (const v of ['0', '-1', '1.5', 'x', '', '1001']) usage(() => parseCount(v, 'limit', 1, 1000));
  });
  it('splits KEY=VALUE at the first =', () => {
    expect(parseKeyValue('A=b=c', 'env')).toEqual(['A', 'b=c']);
    expect(parseKeyValue('A=', 'env')).toEqual(['A', '']);
    expect(usage(() => parseKeyValue('=x', 'label')).message).toContain('label must be KEY=VALUE');
    usage(() => parseKeyValue('noequals', 'env'));
  });
  it('reads HOST:CONTAINER with an optional mode, read-only unless rw', () => {
    expect(parseMount('/data:/work/data')).toEqual({ hostPath: '/data', containerPath: '/work/data' });
    expect(parseMount('/data:/work/data:rw')).toEqual({
      hostPath: '/data',
      containerPath: '/work/data',
      readOnly: false,
    });
    expect(parseMount('/d:/w:ro').readOnly).toBe(true);
    for (const v of ['/data', '/a:/b:x', ':/b', '/a:', '/a:/b:rw:z']) usage(() => parseMount(v));
  });
});

describe('formatting', () => {
  it('formats bytes in binary units', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(1023)).toBe('1023 B');
    expect(formatBytes(1024)).toBe('1 KiB');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(256n * 1024n * 1024n)).toBe('256 MiB');
    expect(formatBytes(3.25 * 1024 ** 3)).toBe('3.3 GiB');
  });
  it('formats durations precisely when short', () => {
    expect(formatDuration(0)).toBe('0ms');
    expect(formatDuration(250)).toBe('250ms');
    expect(formatDuration(1500)).toBe('1.5s');
    expect(formatDuration(2000)).toBe('2s');
    expect(formatDuration(42_900)).toBe('42s');
    expect(formatDuration(303_000)).toBe('5m3s');
    expect(formatDuration(7_200_000)).toBe('2h0m');
    expect(formatDuration(3 * 86_400_000 + 4 * 3_600_000)).toBe('3d4h');
    expect(formatDuration(-5)).toBe('0ms');
  });
  it('formats ages with one unit', () => {
    expect(formatAge(5_000)).toBe('5s');
    expect(formatAge(185_000)).toBe('3m');
    expect(formatAge(2 * 3_600_000 + 5)).toBe('2h');
    expect(formatAge(4 * 86_400_000)).toBe('4d');
  });
  it('formats CPU as whole cores or millicores', () => {
    expect(formatCpu(2000)).toBe('2');
    expect(formatCpu(1500)).toBe('1500m');
    expect(formatCpu(250)).toBe('250m');
  });
  it('truncates and shell-quotes', () => {
    expect(truncate('abcdef', 4)).toBe('abc…');
    expect(truncate('abc', 4)).toBe('abc');
    expect(shellJoin(['/bin/sh', '-c', "echo 'hi'; exit 3"])).toBe(`/bin/sh -c 'echo '\\''hi'\\''; exit 3'`);
    expect(shellJoin(['a', ''])).toBe(`a ''`);
  });
});
