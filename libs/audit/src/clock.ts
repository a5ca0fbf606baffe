import { readFileSync } from 'node:fs';
import type { AuditTimestamp } from './record';

let bootId: string | null | undefined;

/** `/proc/sys/kernel/random/boot_id`, read once; null where there is none. */
export function getBootId(): string | null {
  if (bootId === undefined) {
    try {
      bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || null;
    } catch {
      bootId = null;
    }
  }
  return bootId;
}

const NS_PER_MS = 1_000_000n;
const NS_PER_S = 1_000_000_000n;
/** Re-anchor when the derived wall time strays this far from Date.now() (clock stepped, NTP slew). */
const MAX_DRIFT_NS = 2_000_000n;
const CHECK_EVERY_NS = 1_000_000_000n;

let anchorWallNs = 0n;
let anchorMono = 0n;
let lastCheck = -CHECK_EVERY_NS * 2n;
let cachedSecond = -1n;
let cachedPrefix = '';

/**
 * Wall time with nanosecond digits: Date.now() anchored to process.hrtime.bigint() and advanced by the
 * monotonic clock, re-anchored (at most once a second checked) when the two drift apart by over 2 ms.
 */
export function now(): AuditTimestamp {
  const mono = process.hrtime.bigint();
  if (mono - lastCheck >= CHECK_EVERY_NS) {
    lastCheck = mono;
    const wallNs = BigInt(Date.now()) * NS_PER_MS;
    const derived = anchorWallNs + (mono - anchorMono);
    const drift = derived - wallNs;
    if (anchorMono === 0n || drift > MAX_DRIFT_NS || drift < -MAX_DRIFT_NS) {
      anchorWallNs = wallNs;
      anchorMono = mono;
    }
  }
  const ns = anchorWallNs + (mono - anchorMono);
  const second = ns / NS_PER_S;
  if (second !== cachedSecond) {
    cachedSecond = second;
    cachedPrefix = new Date(Number(second) * 1000).toISOString().slice(0, 19);
  }
  const frac = (ns % NS_PER_S).toString().padStart(9, '0');
  return { wall: `${cachedPrefix}.${frac}Z`, mono_ns: mono.toString(), boot_id: getBootId() };
}
