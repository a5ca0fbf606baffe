// Pure parsing and formatting of the units the command line speaks: CPU, memory sizes, durations.
// Parsers are strict (a typo is an error, never a silent default) and throw a UsageError that names
// the accepted forms; the commands turn it into exit status 64.

/** sysexits.h EX_USAGE: the command was used incorrectly. */
export const EX_USAGE = 64;

/** A bad command-line value: printed as `aether: <message>`, exit status 64 (EX_USAGE). */
export class UsageError extends Error {
  override readonly name = 'UsageError';
  readonly exitCode = EX_USAGE;
}

/** A decimal number as an exact fraction, so that `1.5Gi` or `0.25` never goes through a float. */
function exactDecimal(text: string): { num: bigint; den: bigint } | undefined {
  const m = /^(\d+)(?:\.(\d+))?$/.exec(text);
  if (!m) return undefined;
  const frac = m[2] ?? '';
  return { num: BigInt(`${m[1]}${frac}`), den: 10n ** BigInt(frac.length) };
}

/**
 * CPU in millicores: `500m` is 500 millicores, a plain number is cores (`1.5` → 1500, `2` → 2000).
 * Must be positive and a whole number of millicores.
 */
export function parseCpu(text: string): number {
  const bad = (why: string): UsageError =>
    new UsageError(`cpu "${text}" ${why}; use millicores like 500m, or cores like 1.5 or 2`);
  const milli = /^(\d+)m$/.exec(text);
  let value: bigint;
  if (milli) value = BigInt(milli[1]!);
  else {
    const d = exactDecimal(text);
    if (!d) throw bad('is not a CPU amount');
    const scaled = d.num * 1000n;
    if (scaled % d.den !== 0n) throw bad('is finer than one millicore');
    value = scaled / d.den;
  }
  if (value <= 0n) throw bad('must be more than zero');
  if (value > 2_147_483_647n) throw bad('is too large');
  return Number(value);
}

const SIZE_UNITS: Record<string, bigint> = {
  '': 1n,
  K: 1000n,
  M: 1000n ** 2n,
  G: 1000n ** 3n,
  T: 1000n ** 4n,
  Ki: 1024n,
  Mi: 1024n ** 2n,
  Gi: 1024n ** 3n,
  Ti: 1024n ** 4n,
};

/**
 * A size in bytes: plain bytes (`1073741824`), binary units `Ki Mi Gi Ti` (powers of 1024) or decimal
 * units `K M G T` (powers of 1000), as Kubernetes spells them. Fractions are allowed when they come
 * to whole bytes (`1.5Gi`). `what` names the option in the message.
 */
export function parseBytes(text: string, what = 'size'): bigint {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|K|M|G|T)?$/.exec(text);
  const bad = (why: string): UsageError =>
    new UsageError(
      `${what} "${text}" ${why}; use bytes (1073741824), binary units (512Mi, 1.5Gi: Ki Mi Gi Ti) or decimal units (500M, 1G: K M G T)`,
    );
  if (!m) throw bad('is not a size');
  const d = exactDecimal(m[1]!)!;
  const scaled = d.num * SIZE_UNITS[m[2] ?? '']!;
  if (scaled % d.den !== 0n) throw bad('is not a whole number of bytes');
  const bytes = scaled / d.den;
  if (bytes <= 0n) throw bad('must be more than zero');
  if (bytes > 9_223_372_036_854_775_807n) throw bad('is too large');
  return bytes;
}

const DURATION_UNITS: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1 };

/**
 * A duration in milliseconds from combinations of `h`, `m`, `s` and `ms`, largest first, each at most
 * once: `90s`, `10m`, `1h30m`, `1.5s`, `250ms`. A bare number is refused (seconds or minutes?).
 */
export function parseDuration(text: string, what = 'duration'): number {
  const bad = (why: string): UsageError =>
    new UsageError(`${what} "${text}" ${why}; use a number with a unit: 90s, 10m, 1h30m, 1.5s, 250ms`);
  if (/^\d+(\.\d+)?$/.test(text)) throw bad('has no unit');
  const re = /(\d+(?:\.\d+)?)(ms|h|m|s)/y;
  const order = ['h', 'm', 's', 'ms'];
  let pos = 0;
  let last = -1;
  let ms = 0;
  while (pos < text.length) {
    re.lastIndex = pos;
    const m = re.exec(text);
    if (!m) throw bad('is not a duration');
    const unit = m[2]!;
    const rank = order.indexOf(unit);
    if (rank <= last) throw bad(`has "${unit}" out of order or twice`);
    last = rank;
    ms += Number(m[1]) * DURATION_UNITS[unit]!;
    pos = re.lastIndex;
  }
  if (pos === 0) throw bad('is not a duration');
  if (!Number.isFinite(ms) || ms > 315_576_000_000_000) throw bad('is too long');
  return Math.round(ms);
}

/**
 * A point in time from an RFC 3339 / ISO 8601 time (`2026-11-21T10:00:00Z`) or a duration ago (`2h`,
 * `30m`), for options such as --since and --until.
 */
export function parseSince(v: string, now = Date.now()): Date {
  if (/^\d{4}-\d{2}-\d{2}/.test(v)) {
    const d = new Date(v);
    if (Number.isNaN(d.getTime())) throw new UsageError(`"${v}" is not a valid time`);
    return d;
  }
  return new Date(now - parseDuration(v, 'time'));
}

/** A positive whole number (`--pids`, `--limit`, `--tail`); `min`/`max` bound it. */
export function parseCount(text: string, what: string, min = 1, max = 2_147_483_647): number {
  if (!/^\d+$/.test(text) || Number(text) < min || Number(text) > max)
    throw new UsageError(`${what} "${text}" must be a whole number from ${min} to ${max}`);
  return Number(text);
}

/** `KEY=VALUE` for --env and --label; the value may be empty and may contain `=`. */
export function parseKeyValue(text: string, what: string): [string, string] {
  const i = text.indexOf('=');
  if (i <= 0) throw new UsageError(`${what} must be KEY=VALUE, got "${text}"`);
  return [text.slice(0, i), text.slice(i + 1)];
}

/** `HOST:CONTAINER[:ro|rw]` for --mount; read-only unless `:rw`. */
export function parseMount(text: string): { hostPath: string; containerPath: string; readOnly?: boolean } {
  const parts = text.split(':');
  const mode = parts.length === 3 ? parts[2] : undefined;
  if (
    parts.length < 2 ||
    parts.length > 3 ||
    !parts[0] ||
    !parts[1] ||
    (mode !== undefined && mode !== 'ro' && mode !== 'rw')
  )
    throw new UsageError(
      `mount must be HOST:CONTAINER, HOST:CONTAINER:ro or HOST:CONTAINER:rw; got "${text}"`,
    );
  return {
    hostPath: parts[0],
    containerPath: parts[1],
    ...(mode === 'rw' ? { readOnly: false } : mode === 'ro' ? { readOnly: true } : {}),
  };
}

/** Bytes for people: `512 B`, `1.5 KiB`, `256 MiB`, `3.2 GiB` (binary units, one decimal). */
export function formatBytes(n: bigint | number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];
  let v = Number(n);
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  const shown = i === 0 || Number.isInteger(v) ? String(v) : v.toFixed(1).replace(/\.0$/, '');
  return `${shown} ${units[i]}`;
}

/**
 * A duration for people, precise where it is short: `250ms`, `1.5s`, `42s`, `5m3s`, `2h0m`, `3d4h`.
 */
export function formatDuration(ms: number): string {
  if (ms < 0) ms = 0;
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 10_000) return `${(Math.floor(ms / 100) / 10).toFixed(1).replace(/\.0$/, '')}s`;
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${s % 60}s`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86_400)}d${Math.floor((s % 86_400) / 3600)}h`;
}

/** An age as `kubectl get` shows it: the largest unit only (`5s`, `3m`, `2h`, `4d`). */
export function formatAge(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86_400)}d`;
}

/** CPU as Kubernetes writes it: whole cores as a number (`2`), anything else in millicores (`1500m`). */
export function formatCpu(millicores: number): string {
  return millicores % 1000 === 0 ? String(millicores / 1000) : `${millicores}m`;
}

/** `s` cut to `max` characters with a trailing `…`. */
export function truncate(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, Math.max(0, max - 1))}…`;
}

/** argv as a shell would need it typed: words with special characters single-quoted. */
export function shellJoin(argv: readonly string[]): string {
  return argv
    .map((a) => (a !== '' && /^[A-Za-z0-9_@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`))
    .join(' ');
}

/** `<collection>/<id>` from either form; a usage error when empty. */
export function resourceName(collection: string, nameOrId: string, what: string): string {
  const t = nameOrId.trim();
  if (t === '' || t === `${collection}/`)
    throw new UsageError(`${what} name (${collection}/<id>) or id is required`);
  return t.startsWith(`${collection}/`) ? t : `${collection}/${t}`;
}
