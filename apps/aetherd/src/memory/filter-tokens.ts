import { createHash } from 'node:crypto';

/**
 * Search filters (tags, actor, intent, job, kind) are indexed as tokens in a column of the full-text
 * index of their own, `meta`, and ANDed into the MATCH expression, so FTS5 intersects them with the
 * query's doclists instead of a page being filtered after ranking. A value becomes a token that no
 * tokenizer can split and no word can equal: a letter for the field and 80 bits of its SHA-256 in hex
 * (`zt3fa9…` for a tag), so any string is a safe token and two values collide with negligible chance.
 */
export type FilterField = 'tag' | 'actor' | 'intent' | 'job' | 'kind';

const PREFIX: Readonly<Record<FilterField, string>> = {
  tag: 'zt',
  actor: 'za',
  intent: 'zi',
  job: 'zj',
  kind: 'zk',
};

/** Recent tokens: the same few tags and actors recur in almost every write and search. */
const cache = new Map<string, string>();
const CACHE_SIZE = 4096;

/** The token that stands for `field = value` in the `meta` column. */
export function filterToken(field: FilterField, value: string): string {
  if (field === 'kind') return `${PREFIX.kind}${value}`;
  const key = `${field}\0${value}`;
  let token = cache.get(key);
  if (token === undefined) {
    token = PREFIX[field] + createHash('sha256').update(value).digest('hex').slice(0, 20);
    if (cache.size >= CACHE_SIZE) cache.clear();
    cache.set(key, token);
  }
  return token;
}

/** What a passage's `meta` column holds for a version with these attributes (empty ones are left out). */
export function metaTokens(
  tags: readonly string[],
  actor: string,
  intentId: string,
  jobId: string,
  kind: number,
): string {
  let meta = `${filterToken('actor', actor)} ${filterToken('kind', String(kind))}`;
  for (const t of tags) meta += ` ${filterToken('tag', t)}`;
  if (intentId) meta += ` ${filterToken('intent', intentId)}`;
  if (jobId) meta += ` ${filterToken('job', jobId)}`;
  return meta;
}
