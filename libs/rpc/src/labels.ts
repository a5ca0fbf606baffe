import type { Violations } from './errors';

/** At most this many labels on one object. */
export const MAX_LABELS = 64;
const LABEL_KEY = /^[a-z0-9][a-z0-9._/-]{0,62}$/;

/** Checks labels against the rules every Aether API shares (see any proto file's header). */
export function checkLabels(v: Violations, labels: Record<string, string>, field: string): void {
  const entries = Object.entries(labels);
  v.check(entries.length <= MAX_LABELS, field, `at most ${MAX_LABELS}`);
  for (const [k, val] of entries) {
    v.check(
      LABEL_KEY.test(k),
      `${field}[${JSON.stringify(k)}]`,
      'key must be 1-63 characters of [a-z0-9._/-] starting with a letter or digit',
    );
    v.check(
      Buffer.byteLength(val) <= 256,
      `${field}[${JSON.stringify(k)}]`,
      'value must be at most 256 bytes',
    );
  }
}
