import { dateFromTimestamp, memoryV1 } from '@aether/proto';
import { UsageError, resourceName, truncate } from './units';

const { EntryKind } = memoryV1;

/** `entries/<id>` from a name or a bare id. */
export function entryName(v: string): string {
  return resourceName('entries', v, 'an entry');
}

export function parseKind(v: string): memoryV1.EntryKind {
  const k = v.toLowerCase();
  if (k === 'note') return EntryKind.ENTRY_KIND_NOTE;
  if (k === 'document' || k === 'doc') return EntryKind.ENTRY_KIND_DOCUMENT;
  throw new UsageError(`kind "${v}" must be note or document`);
}

export function kindName(k: memoryV1.EntryKind): string {
  return k === EntryKind.ENTRY_KIND_DOCUMENT ? 'document' : k === EntryKind.ENTRY_KIND_NOTE ? 'note' : '-';
}

const iso = (t: memoryV1.Entry['createTime']): string => (t ? dateFromTimestamp(t).toISOString() : '');

/** The provenance of a version on one line: who, for what, from where, when. */
export function provenanceLine(p: memoryV1.Provenance | undefined): string {
  if (!p) return '';
  const parts = [`by ${p.actor}`];
  if (p.intentId) parts.push(`intent ${p.intentId}`);
  if (p.jobId) parts.push(`job ${p.jobId}`);
  if (p.artifact) parts.push(`from ${p.artifact}`);
  if (p.sourceUri) parts.push(`source ${p.sourceUri}`);
  if (p.createTime) parts.push(`at ${iso(p.createTime)}`);
  return parts.join(', ');
}

/**
 * One search hit for people: the entry and version with the cited span, the score and the title; the
 * snippet with its matches marked (whitespace folded to single spaces); the provenance.
 */
export function citationText(c: memoryV1.Citation, rank: number): string {
  const title = c.title ? `  ${truncate(c.title, 60)}` : '';
  const tags = c.tags.length ? `  [${c.tags.join(', ')}]` : '';
  return (
    `${rank}. ${c.entry}@${c.version}  chars ${c.charStart}-${c.charEnd}  score ${c.score.toFixed(3)}${title}${tags}\n` +
    `   ${c.snippet.replace(/\s+/g, ' ').trim()}\n` +
    `   ${provenanceLine(c.provenance)}\n`
  );
}

/** The human view of one entry version, `aether memory get`. */
export function entryDetail(e: memoryV1.Entry): string {
  const p = e.provenance;
  const rows: [string, string][] = [
    ['Name', e.name],
    ['Version', `${e.version}${e.deleted ? ' (deleted: tombstone)' : ''}`],
    ['Kind', kindName(e.kind)],
    ['Title', e.title],
    ['Tags', e.tags.join(', ')],
    ['Actor', p?.actor ?? ''],
    ['Intent', p?.intentId ?? ''],
    ['Job', p?.jobId ?? ''],
    ['Artifact', p?.artifact ?? ''],
    ['Source', p?.sourceUri ?? ''],
    ['Created', iso(e.createTime)],
    ['Updated', iso(e.updateTime)],
    [
      'Length',
      `${e.textLength} characters, ${e.passages.length} passage${e.passages.length === 1 ? '' : 's'}`,
    ],
    ['References', e.references.join(', ')],
  ];
  const head = rows
    .filter(([, v]) => v !== '')
    .map(([k, v]) => `${`${k}:`.padEnd(12)}${v}`)
    .join('\n');
  return `${head}\n\n${e.text}${e.text.endsWith('\n') || e.text === '' ? '' : '\n'}`;
}

/** What `ls` shows of an entry: the title, else its first line. */
export function entrySummary(e: memoryV1.Entry): string {
  const firstLine = e.text.split('\n', 1)[0] ?? '';
  return truncate((e.title || firstLine).replace(/\s+/g, ' ').trim(), 60);
}
