import type { Duration } from './gen/google/protobuf/duration';
import type { Timestamp } from './gen/google/protobuf/timestamp';

/** google.protobuf.Timestamp from a Date (millisecond precision). */
export function timestampFromDate(d: Date): Timestamp {
  const ms = d.getTime();
  const seconds = Math.floor(ms / 1000);
  return { seconds: BigInt(seconds), nanos: (ms - seconds * 1000) * 1_000_000 };
}

/** A Date from google.protobuf.Timestamp (sub-millisecond precision is dropped). */
export function dateFromTimestamp(t: Timestamp): Date {
  return new Date(Number(t.seconds) * 1000 + Math.floor(t.nanos / 1_000_000));
}

/** google.protobuf.Duration from milliseconds. */
export function durationFromMs(ms: number): Duration {
  const seconds = Math.trunc(ms / 1000);
  return { seconds: BigInt(seconds), nanos: Math.round((ms - seconds * 1000) * 1_000_000) };
}

/** Milliseconds from google.protobuf.Duration. */
export function msFromDuration(d: Duration): number {
  return Number(d.seconds) * 1000 + d.nanos / 1_000_000;
}
