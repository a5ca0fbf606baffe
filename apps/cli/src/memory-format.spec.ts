import { memoryV1, timestampFromDate } from '@aether/proto';
import { citationText, entryDetail, entryName, parseKind } from './memory-format';
import { UsageError } from './units';

describe('memory output', () => {
  const provenance = memoryV1.Provenance.fromPartial({
    actor: 'spiffe://aether.local/admin',
    intentId: 'i1',
    sourceUri: 'https://wiki.example/x',
    createTime: timestampFromDate(new Date('2026-11-21T10:00:00Z')),
  });

  it('shows a citation as entry@version, span, score, the marked snippet and a provenance line', () => {
    const c = memoryV1.Citation.fromPartial({
      entry: 'entries/01jc7v0m4k3h2g1f0e9d8c7b6a',
      version: 2n,
      charStart: 10n,
      charEnd: 60n,
      score: 3.14159,
      title: 'Runbook',
      tags: ['ops'],
      snippet: 'restart the\n[ingest]   worker',
      provenance,
    });
    expect(citationText(c, 1)).toBe(
      '1. entries/01jc7v0m4k3h2g1f0e9d8c7b6a@2  chars 10-60  score 3.142  Runbook  [ops]\n' +
        '   restart the [ingest] worker\n' +
        '   by spiffe://aether.local/admin, intent i1, source https://wiki.example/x, at 2026-11-21T10:00:00.000Z\n',
    );
  });

  it('shows an entry with its fields, then its text', () => {
    const e = memoryV1.Entry.fromPartial({
      name: 'entries/x',
      version: 1n,
      kind: memoryV1.EntryKind.ENTRY_KIND_NOTE,
      text: 'hello',
      textLength: 5n,
      passages: [{ index: 0, charStart: 0n, charEnd: 5n }],
      provenance,
    });
    expect(entryDetail(e)).toMatch(/^Name: {7}entries\/x\nVersion: {4}1\nKind: {7}note\n/);
    expect(entryDetail(e)).toMatch(/Length: {5}5 characters, 1 passage\n\nhello\n$/);
  });

  it('parses names and kinds, refusing what it cannot read', () => {
    expect(entryName('abc')).toBe('entries/abc');
    expect(entryName('entries/abc')).toBe('entries/abc');
    expect(() => entryName(' ')).toThrow(UsageError);
    expect(parseKind('Document')).toBe(memoryV1.EntryKind.ENTRY_KIND_DOCUMENT);
    expect(() => parseKind('memo')).toThrow(UsageError);
  });
});
