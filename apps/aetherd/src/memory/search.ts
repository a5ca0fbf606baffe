import { createHash } from 'node:crypto';
import { status as Status } from '@grpc/grpc-js';
import Database from 'better-sqlite3';
import { dateFromTimestamp, memoryV1, timestampFromDate } from '@aether/proto';
import { RpcError } from '@aether/rpc';
import type { Logger } from '@aether/log';
import { codePointLength, isClusterBoundary, sliceCodePoints } from './code-points';
import { filterToken } from './filter-tokens';
import {
  indexOfRowid,
  rowidOf,
  seqOfRowid,
  type Candidate,
  type MemoryStore,
  type VersionMeta,
} from './memory-store';

/** Search's page size when the request says 0, and its cap. */
export const DEFAULT_SEARCH_PAGE = 10;
export const MAX_SEARCH_PAGE = 100;
export const DEFAULT_SNIPPET_LENGTH = 200;
export const MAX_QUERY_BYTES = 4096;

const SYNTAX_HELP =
  'FTS5 syntax: bare terms (all must match), "exact phrases", prefix*, AND/OR/NOT, (…), NEAR(a b, 10), title:/text:';

// ---- query checking ------------------------------------------------------------------------------------

/** INVALID_ARGUMENT / INVALID_QUERY, with the code point `position` of the problem when known. */
export function invalidQuery(message: string, position?: number): RpcError {
  return new RpcError(Status.INVALID_ARGUMENT, 'INVALID_QUERY', `query: ${message}`, {
    metadata: { field: 'query', ...(position !== undefined ? { position: String(position) } : {}) },
    fieldViolations: [{ field: 'query', description: message }],
  });
}

/**
 * Checks a search query before it runs: not empty, within 4096 bytes, no NUL, strings closed and
 * parentheses balanced (so the query can be wrapped in parentheses and ANDed with filters without
 * changing its meaning), and valid FTS5 syntax: it is parsed against an empty FTS5 table with the
 * searchable columns (`title`, `text`), so SQLite's own parser decides, and a failure here is the
 * caller's mistake (INVALID_QUERY), never an internal error.
 */
export class QueryChecker {
  private readonly probe: Database.Statement;
  private readonly db: Database.Database;

  constructor() {
    this.db = new Database(':memory:');
    this.db.exec(
      "CREATE VIRTUAL TABLE probe USING fts5(title, text, tokenize = 'unicode61 remove_diacritics 2')",
    );
    this.probe = this.db.prepare('SELECT rowid FROM probe WHERE probe MATCH ?');
  }

  close(): void {
    this.db.close();
  }

  check(query: string): void {
    if (query.trim() === '') throw invalidQuery(`is empty; ${SYNTAX_HELP}`);
    if (Buffer.byteLength(query) > MAX_QUERY_BYTES)
      throw invalidQuery(`is ${Buffer.byteLength(query)} bytes; at most ${MAX_QUERY_BYTES}`);
    const nul = query.indexOf('\0');
    if (nul >= 0) throw invalidQuery('must not contain NUL', codePointLength(query.slice(0, nul)));
    const lexical = lexicalProblem(query);
    if (lexical) throw invalidQuery(`${lexical.message}; ${SYNTAX_HELP}`, lexical.position);
    try {
      this.probe.all(query);
    } catch (err) {
      // By its code, not `instanceof SqliteError`: classes differ between realms (jest's contexts).
      const { code, message: sqliteMessage } = (err ?? {}) as { code?: unknown; message?: unknown };
      if (typeof code !== 'string' || !code.startsWith('SQLITE_') || typeof sqliteMessage !== 'string')
        throw err;
      const { message, position } = explainSyntaxError(query, sqliteMessage);
      throw invalidQuery(`${message}; ${SYNTAX_HELP}`, position);
    }
  }
}

/** An unterminated string or unbalanced parenthesis, with where it is (code points). */
export function lexicalProblem(query: string): { message: string; position: number } | undefined {
  const open: number[] = [];
  let cp = 0;
  for (let i = 0; i < query.length;) {
    const c = query.codePointAt(i)!;
    if (c === 0x22) {
      const start = cp;
      i++;
      cp++;
      let closed = false;
      while (i < query.length) {
        const d = query.codePointAt(i)!;
        i += d > 0xffff ? 2 : 1;
        cp++;
        if (d === 0x22) {
          if (query.charCodeAt(i) === 0x22) {
            i++;
            cp++;
            continue;
          }
          closed = true;
          break;
        }
      }
      if (!closed)
        return {
          message: `unterminated string: the " at position ${start} is never closed (write "" for a quote inside a phrase)`,
          position: start,
        };
      continue;
    }
    if (c === 0x28) open.push(cp);
    else if (c === 0x29) {
      if (open.length === 0)
        return { message: `unbalanced ")" at position ${cp}: no "(" opens it`, position: cp };
      open.pop();
    }
    i += c > 0xffff ? 2 : 1;
    cp++;
  }
  if (open.length > 0) {
    const at = open[open.length - 1]!;
    return { message: `unbalanced "(" at position ${at}: it is never closed`, position: at };
  }
  return undefined;
}

/** SQLite's terse FTS5 errors, said helpfully, with a position where one can be found. */
export function explainSyntaxError(
  query: string,
  sqliteMessage: string,
): { message: string; position?: number } {
  const near = /^fts5: syntax error near "(.*)"$/s.exec(sqliteMessage);
  if (near) {
    const token = near[1]!;
    if (token === '')
      return {
        message:
          'the query ends where a term was expected (after an operator, a column filter, "(" or "NEAR(")',
        position: codePointLength(query),
      };
    const position = positionOfToken(query, token);
    if (token === 'AND' || token === 'OR' || token === 'NOT')
      return {
        message: `${token} needs a term on each side (NOT is binary: a NOT b); to search for the word, quote it: "${token.toLowerCase()}"`,
        ...(position !== undefined ? { position } : {}),
      };
    if (/^[^\p{L}\p{N}_]$/u.test(token))
      return {
        message: `"${token}" cannot appear in a bare term: put terms with punctuation in double quotes, e.g. "node.js"`,
        ...(position !== undefined ? { position } : {}),
      };
    return {
      message: `syntax error near "${token}"`,
      ...(position !== undefined ? { position } : {}),
    };
  }
  const column = /^no such column: (.*)$/s.exec(sqliteMessage);
  if (column)
    return {
      message: `unknown column "${column[1]}": the columns are title and text (quote a term that contains ":")`,
      ...(positionOfToken(query, column[1]!) !== undefined
        ? { position: positionOfToken(query, column[1]!)! }
        : {}),
    };
  if (/^unknown special query/.test(sqliteMessage))
    return { message: 'a query cannot start with "*" (a prefix query is term*, e.g. data*)', position: 0 };
  return { message: sqliteMessage.replace(/^fts5: /, '') };
}

/** The code point offset of `token` in `query` when it occurs there exactly once outside strings. */
function positionOfToken(query: string, token: string): number | undefined {
  const outside = query.replace(/"(?:[^"]|"")*"/g, (m) => ' '.repeat(m.length));
  const first = outside.indexOf(token);
  if (first < 0 || outside.indexOf(token, first + 1) >= 0) return undefined;
  return codePointLength(query.slice(0, first));
}

// ---- the MATCH expression ------------------------------------------------------------------------------

/** The filters of a search, as tokens of the `meta` column and a range of rowids. */
export interface SearchFilters {
  tags: readonly string[];
  actor: string;
  intentId: string;
  jobId: string;
  kind: memoryV1.EntryKind;
}

export function filterTokens(f: SearchFilters): string[] {
  const tokens = f.tags.map((t) => filterToken('tag', t));
  if (f.actor) tokens.push(filterToken('actor', f.actor));
  if (f.intentId) tokens.push(filterToken('intent', f.intentId));
  if (f.jobId) tokens.push(filterToken('job', f.jobId));
  if (f.kind !== memoryV1.EntryKind.ENTRY_KIND_UNSPECIFIED) tokens.push(filterToken('kind', String(f.kind)));
  return tokens;
}

/**
 * The expression FTS5 runs: the caller's query (checked by {@link QueryChecker}, so wrapping it in
 * parentheses keeps its meaning) AND the filter tokens in the `meta` column. A prefix query is confined
 * to `title` and `text` so that `z*` cannot match filter tokens; other terms cannot equal one.
 */
export function matchExpression(query: string, filters: readonly string[]): string {
  const user = query.includes('*') ? `{title text} : (${query})` : `(${query})`;
  return filters.length > 0 ? `${user} AND meta : (${filters.join(' AND ')})` : user;
}

// ---- highlights and snippets ---------------------------------------------------------------------------

/** Marker pairs for FTS5 `highlight()`: private-use code points, the first pair the passage lacks. */
const MARKER_PAIRS: readonly [string, string][] = [
  ['\uE000', '\uE001'],
  ['\uF8FE', '\uF8FF'],
  [String.fromCodePoint(0xf0000), String.fromCodePoint(0xf0001)],
  [String.fromCodePoint(0x10fffc), String.fromCodePoint(0x10fffd)],
];

/** Spans in code points, relative to whatever they are spans of. */
export interface Span {
  start: number;
  end: number;
}

/**
 * Reads FTS5 `highlight()` output: the text without the markers and the marked spans, in code points.
 * `open` and `close` are single code points that do not occur in the text itself.
 */
export function parseMarked(marked: string, open: string, close: string): { text: string; spans: Span[] } {
  const parts: string[] = [];
  const spans: Span[] = [];
  let cp = 0;
  let from = 0;
  let spanStart = -1;
  for (let i = 0; i < marked.length;) {
    const c = marked.codePointAt(i)!;
    const w = c > 0xffff ? 2 : 1;
    const ch = w === 2 ? marked.slice(i, i + 2) : marked[i]!;
    if (ch === open || ch === close) {
      parts.push(marked.slice(from, i));
      from = i + w;
      if (ch === open) spanStart = cp;
      else if (spanStart >= 0) {
        if (cp > spanStart) spans.push({ start: spanStart, end: cp });
        spanStart = -1;
      }
    } else cp++;
    i += w;
  }
  parts.push(marked.slice(from));
  return { text: parts.join(''), spans };
}

/**
 * The window of a passage a snippet shows, in code points of the passage: about `length` code points
 * around the first match (a quarter of the room before it), widened to whole words when a space is
 * near and never cutting a grapheme cluster.
 */
export function snippetWindow(
  passage: string,
  passageLength: number,
  spans: readonly Span[],
  length: number,
): Span {
  if (passageLength <= length) return { start: 0, end: passageLength };
  const anchor = spans[0] ?? { start: 0, end: 0 };
  let start = Math.max(0, anchor.start - Math.floor(length / 4));
  let end = Math.min(passageLength, start + length);
  if (anchor.end > end) {
    end = Math.min(passageLength, anchor.end);
    start = Math.max(0, end - length);
  }
  if (end - start < length) start = Math.max(0, end - length);
  // Code points around both edges, to look for spaces and cluster boundaries.
  const slack = 16;
  const regionStart = Math.max(0, start - slack);
  const region = Array.from(sliceCodePoints(passage, regionStart, Math.min(passageLength, end + slack)));
  const at = (i: number): number | undefined => region[i - regionStart]?.codePointAt(0);
  const isSpace = (i: number): boolean => {
    const c = at(i);
    return c !== undefined && /\s/u.test(String.fromCodePoint(c));
  };
  if (start > 0 && !isSpace(start - 1)) {
    // Forward to the next word (not past the match), else back to a cluster boundary.
    let s = start;
    while (s < Math.min(anchor.start, start + slack) && !isSpace(s - 1)) s++;
    if (isSpace(s - 1)) start = s;
    else while (start > regionStart && !isClusterBoundary(at(start - 1), at(start))) start--;
  }
  if (end < passageLength && !isSpace(end)) {
    let e = end;
    while (e > Math.max(anchor.end, end - slack) && !isSpace(e)) e--;
    if (isSpace(e) && e > start) end = e;
    else
      while (
        end < passageLength &&
        end < regionStart + region.length &&
        !isClusterBoundary(at(end - 1), at(end))
      )
        end++;
  }
  return { start, end };
}

/** `text` with `open`/`close` around each span (code points of `text`). */
export function markSpans(text: string, spans: readonly Span[], open: string, close: string): string {
  if (spans.length === 0) return text;
  const out: string[] = [];
  let cp = 0;
  let k = 0;
  let inside = false;
  for (const ch of text) {
    if (inside && k < spans.length && cp === spans[k]!.end) {
      out.push(close);
      inside = false;
      k++;
    }
    if (!inside && k < spans.length && cp === spans[k]!.start) {
      out.push(open);
      inside = true;
    }
    out.push(ch);
    cp++;
  }
  if (inside) out.push(close);
  return out.join('');
}

// ---- rank fusion and the semantic leg ------------------------------------------------------------------

/**
 * Reciprocal-rank fusion (Cormack et al., 2009): each item scores Σ 1 / (k + rank) over the rankings it
 * appears in (rank from 1; a repeat within one ranking counts once), best first; ties keep the order in
 * which items were first seen, the first ranking first.
 */
export function fuseRrf<K>(rankings: readonly (readonly K[])[], k = 60): { key: K; score: number }[] {
  if (!(k > 0)) throw new RangeError(`fuseRrf: k must be positive, got ${k}`);
  const fused = new Map<K, { score: number; seen: number }>();
  let seen = 0;
  for (const ranking of rankings) {
    const counted = new Set<K>();
    ranking.forEach((key, i) => {
      if (counted.has(key)) return;
      counted.add(key);
      const add = 1 / (k + i + 1);
      const e = fused.get(key);
      if (e) e.score += add;
      else fused.set(key, { score: add, seen: seen++ });
    });
  }
  return [...fused]
    .sort(([, a], [, b]) => b.score - a.score || a.seen - b.seen)
    .map(([key, { score }]) => ({ key, score }));
}

/**
 * A second ranking by meaning (embeddings of query and passages, e.g. from cfcd), fused with the FTS5
 * ranking by {@link fuseRrf}. Passages are named by their key in the full-text index (stable while their
 * version is current). Without one (no `memory.embeddingModel`), or when it fails, searches with
 * `semantic: true` use FTS alone and say so (`semantic_applied: false`). See CfcdEmbeddingLeg.
 */
export interface EmbeddingLeg {
  /** The embedding model, for logs. */
  readonly model: string;
  /**
   * Ranks `candidates` (the FTS candidates, filters applied) by similarity to `query`, best first; may
   * leave out those it cannot embed. Rejects when the embedding service is unavailable.
   */
  rank(query: string, candidates: readonly number[], signal: AbortSignal): Promise<number[]>;
}

// ---- page tokens ---------------------------------------------------------------------------------------

/** INVALID_ARGUMENT / INVALID_PAGE_TOKEN. */
export function invalidPageToken(why: string): RpcError {
  return new RpcError(Status.INVALID_ARGUMENT, 'INVALID_PAGE_TOKEN', `page_token: ${why}`, {
    metadata: { field: 'page_token' },
    fieldViolations: [{ field: 'page_token', description: why }],
  });
}

/** An opaque page token: a position and a hash of the request it belongs to. */
export function encodePageToken(position: Record<string, number>, requestHash: string): string {
  return Buffer.from(JSON.stringify({ ...position, h: requestHash })).toString('base64url');
}

export function decodePageToken<K extends string>(
  token: string,
  requestHash: string,
  keys: readonly K[],
): Record<K, number> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
  } catch {
    throw invalidPageToken('is not a token this server issued');
  }
  const p = parsed as Record<string, unknown> | null;
  if (
    typeof p !== 'object' ||
    p === null ||
    keys.some((k) => !Number.isSafeInteger(p[k]) || (p[k] as number) < 0)
  )
    throw invalidPageToken('is not a token this server issued');
  if (p['h'] !== requestHash)
    throw invalidPageToken('belongs to a different request: repeat the request unchanged but for page_token');
  return Object.fromEntries(keys.map((k) => [k, p[k] as number])) as Record<K, number>;
}

export function requestHash(parts: unknown[]): string {
  return createHash('sha256').update(JSON.stringify(parts)).digest('base64url').slice(0, 16);
}

// ---- the search itself ---------------------------------------------------------------------------------

export interface SearchOptions {
  candidateCap: number;
  leg?: EmbeddingLeg;
  log: Logger;
}

/** Runs searches against the store: candidates, ranking, fusion, pages and citations. */
export class MemorySearch {
  readonly checker = new QueryChecker();
  private readonly searchListeners: ((seconds: number) => void)[] = [];

  constructor(
    private readonly store: MemoryStore,
    private readonly options: SearchOptions,
  ) {}

  close(): void {
    this.checker.close();
  }

  /** Calls `listener` after every search, answered or failed, with the seconds it took (metrics). */
  onSearch(listener: (seconds: number) => void): void {
    this.searchListeners.push(listener);
  }

  async search(req: memoryV1.SearchRequest, signal: AbortSignal): Promise<memoryV1.SearchResponse> {
    const started = performance.now();
    try {
      return await this.searchOnce(req, signal);
    } finally {
      const seconds = (performance.now() - started) / 1000;
      for (const listener of this.searchListeners) listener(seconds);
    }
  }

  private async searchOnce(
    req: memoryV1.SearchRequest,
    signal: AbortSignal,
  ): Promise<memoryV1.SearchResponse> {
    const pageSize = req.pageSize === 0 ? DEFAULT_SEARCH_PAGE : Math.min(req.pageSize, MAX_SEARCH_PAGE);
    const startMs = req.startTime ? dateFromTimestamp(req.startTime).getTime() : undefined;
    const endMs = req.endTime ? dateFromTimestamp(req.endTime).getTime() : undefined;
    const hash = requestHash([
      'search',
      req.query,
      req.tags,
      req.actor,
      req.intentId,
      req.jobId,
      startMs,
      endMs,
      req.kind,
      req.semantic,
    ]);
    const { o: offset, m: lastSeq }: Record<'o' | 'm', number> = req.pageToken
      ? decodePageToken(req.pageToken, hash, ['o', 'm'])
      : { o: 0, m: this.store.lastSeq() };
    const match = matchExpression(req.query, this.selectiveFilters(filterTokens(req)));
    // A time range is a range of seqs, hence of rowids; the first page's last seq bounds later pages,
    // so entries written meanwhile do not shift them.
    const seqs = this.store.seqRange(startMs, endMs);
    const fromRowid = rowidOf(seqs.from, 0);
    const toRowid = Math.min(rowidOf(seqs.to, 0), rowidOf(lastSeq + 1, 0));
    const cap = this.options.candidateCap;

    let page: Candidate[];
    let candidates: number;
    let semanticApplied = false;
    const leg = req.semantic ? this.options.leg : undefined;
    if (leg) {
      const all = this.store.rankAll(match, fromRowid, toRowid, cap);
      candidates = all.length;
      let ranked: Candidate[] = all;
      try {
        const semantic = await leg.rank(
          req.query,
          all.map((c) => c.rowid),
          signal,
        );
        ranked = fuseRrf([all.map((c) => c.rowid), semantic]).map(({ key, score }) => ({
          rowid: key,
          score,
        }));
        semanticApplied = true;
      } catch (err) {
        this.options.log.warn({ err, model: leg.model }, 'memory: semantic ranking unavailable; FTS alone');
      }
      page = ranked.slice(offset, offset + pageSize);
    } else {
      ({ page, candidates } = this.store.rankPage(match, fromRowid, toRowid, cap, offset, pageSize));
    }
    const open = req.highlightOpen || '[';
    const close = req.highlightClose || ']';
    const snippetLength = req.snippetLength || DEFAULT_SNIPPET_LENGTH;
    const citations: memoryV1.Citation[] = [];
    for (const c of page) {
      const citation = this.cite(match, c, open, close, snippetLength);
      if (citation) citations.push(citation);
    }
    const next = offset + pageSize < candidates;
    return {
      citations,
      nextPageToken: next ? encodePageToken({ o: offset + pageSize, m: lastSeq }, hash) : '',
      totalCandidates: BigInt(candidates),
      truncated: candidates >= cap,
      semanticApplied,
    };
  }

  /**
   * The filter tokens worth matching: a token that every passage carries (a store with one writer, or
   * only notes) selects everything, yet would make FTS5 walk its whole doclist, once for bm25's IDF and
   * again to intersect; it is left out. The counts are kept exactly, in the transactions that change
   * the index (memory-store.ts `filter_counts`).
   */
  private selectiveFilters(tokens: string[]): string[] {
    if (tokens.length === 0) return tokens;
    const total = this.store.filterCount('');
    return tokens.filter((t) => total === 0 || this.store.filterCount(t) < total);
  }

  /** One hit as a citation; undefined when its entry changed since it was ranked. */
  private cite(
    match: string,
    c: Candidate,
    open: string,
    close: string,
    snippetLength: number,
  ): memoryV1.Citation | undefined {
    const meta = this.store.metaBySeq(seqOfRowid(c.rowid));
    if (!meta || meta.deleted) return undefined;
    const index = indexOfRowid(c.rowid);
    const passageStart = index === 0 ? 0 : (meta.passageEnds[index - 1] ?? 0);
    const passageEnd = meta.passageEnds[index] ?? passageStart;
    const marked = this.highlight(match, c.rowid);
    if (!marked) return undefined;
    const window = snippetWindow(marked.text, passageEnd - passageStart, marked.spans, snippetLength);
    const snippetText = sliceCodePoints(marked.text, window.start, window.end);
    const inWindow = marked.spans
      .map((s) => ({ start: Math.max(s.start, window.start), end: Math.min(s.end, window.end) }))
      .filter((s) => s.end > s.start);
    return citationOf(meta, {
      passageIndex: index,
      charStart: passageStart + window.start,
      charEnd: passageStart + window.end,
      snippetText,
      snippet: markSpans(
        snippetText,
        inWindow.map((s) => ({ start: s.start - window.start, end: s.end - window.start })),
        open,
        close,
      ),
      highlights: inWindow.map((s) => ({
        charStart: BigInt(passageStart + s.start),
        charEnd: BigInt(passageStart + s.end),
      })),
      score: c.score,
    });
  }

  /** The passage's text and its matches, with markers that the text does not contain. */
  private highlight(match: string, rowid: number): { text: string; spans: Span[] } | undefined {
    for (const [open, close] of MARKER_PAIRS) {
      const row = this.store.highlight(match, rowid, open, close);
      if (!row) return undefined;
      if (!row.text.includes(open) && !row.text.includes(close)) return parseMarked(row.marked, open, close);
    }
    // A passage holding every marker pair: show it without highlights rather than with wrong ones.
    const text = this.store.passageText(rowid);
    return text === undefined ? undefined : { text, spans: [] };
  }
}

interface Hit {
  passageIndex: number;
  charStart: number;
  charEnd: number;
  snippet: string;
  snippetText: string;
  highlights: memoryV1.TextSpan[];
  score: number;
}

function citationOf(meta: VersionMeta, hit: Hit): memoryV1.Citation {
  return memoryV1.Citation.fromPartial({
    entry: `entries/${meta.entryId}`,
    entryId: meta.entryId,
    version: BigInt(meta.version),
    passageIndex: hit.passageIndex,
    charStart: BigInt(hit.charStart),
    charEnd: BigInt(hit.charEnd),
    snippet: hit.snippet,
    snippetText: hit.snippetText,
    score: hit.score,
    provenance: {
      actor: meta.actor,
      intentId: meta.intentId,
      jobId: meta.jobId,
      artifact: meta.artifact,
      sourceUri: meta.sourceUri,
      createTime: timestampFromDate(new Date(meta.updateTime)),
    },
    highlights: hit.highlights,
    title: meta.title,
    tags: meta.tags,
  });
}
