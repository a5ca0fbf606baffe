import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { dateFromTimestamp, memoryV1, timestampFromDate } from '@aether/proto';
import { arg, collectPages, list, printJson, withClient } from '../command-support';
import { withAetherErrors } from '../errors';
import { citationText, entryDetail, entryName, entrySummary, kindName, parseKind } from '../memory-format';
import { table } from '../output';
import { UsageError, formatAge, parseCount, parseSince } from '../units';

const { EntryKind } = memoryV1;

const entryJson = (e: memoryV1.Entry): unknown => memoryV1.Entry.toJSON(e);

/** ANSI bold yellow around matches on a terminal; brackets in a pipe or with NO_COLOR. */
function markers(): { open: string; close: string } {
  return process.stdout.isTTY && !process.env['NO_COLOR']
    ? { open: '\x1b[1;33m', close: '\x1b[0m' }
    : { open: '[', close: ']' };
}

/** The text an add or update writes: the TEXT argument, `-` for stdin, or --file. */
function textFrom(text: string | undefined, file: string | undefined): string | undefined {
  if (text !== undefined && file !== undefined)
    throw new UsageError('give the text as an argument, - (stdin) or --file, not both');
  try {
    if (file !== undefined) return readFileSync(file, 'utf8');
    if (text === '-') return readFileSync(0, 'utf8');
  } catch (err) {
    throw new UsageError(
      `cannot read ${file ?? 'stdin'}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
  return text;
}

interface WriteOpts {
  title?: string;
  tag?: string[];
  kind?: memoryV1.EntryKind;
  file?: string;
  sourceUri?: string;
  artifact?: string;
  intent?: string;
  job?: string;
  reference?: string[];
  json?: boolean;
}

const withWriteOptions = (cmd: Command): Command =>
  cmd
    .option('--title <title>', 'a title (searchable with title:)')
    .option('-t, --tag <tag>', 'a tag, [a-z0-9._:/-] (repeatable)', list(String))
    .option('--kind <kind>', 'note (one passage) or document (split into passages)', arg(parseKind))
    .option('-f, --file <file>', 'read the text from this file')
    .option('--source-uri <uri>', 'where the text came from (https://…, file:///…)')
    .option('--artifact <artifact>', 'the artifact the text came from (artifacts/<id>)')
    .option('--intent <id>', 'the intent this was written for')
    .option('--job <id>', 'the job this came from')
    .option('--reference <name>', 'a resource this entry cites, e.g. jobs/<id> (repeatable)', list(String))
    .option('--json', 'print the entry as JSON');

function addCommand(): Command {
  return withWriteOptions(
    new Command('add')
      .description('add a note or document to memory; prints its name')
      .argument('[text]', 'the text; - reads stdin (or use --file)'),
  )
    .option('--idempotency-key <key>', 'a retry with the same key returns the first entry')
    .addHelpText(
      'after',
      `
The kind defaults to document with --file and to note otherwise. A document is split into passages
of about 1000 characters at paragraph breaks; each search hit cites one passage's span.

Examples:
  $ aether memory add --title "Deploy runbook" --tag ops "restart the ingest worker when the queue stalls"
  $ aether memory add --file notes.md --tag project:aurora --source-uri file:///home/me/notes.md
  $ git log -1 --format=%B | aether memory add --tag commits -`,
    )
    .action(async (text: string | undefined, opts: WriteOpts & { idempotencyKey?: string }, cmd: Command) => {
      const body = textFrom(text, opts.file);
      if (body === undefined || body === '')
        throw new UsageError('nothing to add: give the text as an argument, - for stdin, or --file');
      const kind = opts.kind ?? (opts.file ? EntryKind.ENTRY_KIND_DOCUMENT : EntryKind.ENTRY_KIND_NOTE);
      await withClient(cmd, async (c) => {
        const res = await c.call(
          c.memory,
          'addEntry',
          memoryV1.AddEntryRequest.fromPartial({
            entry: {
              title: opts.title ?? '',
              text: body,
              tags: opts.tag ?? [],
              kind,
              references: opts.reference ?? [],
              provenance: {
                sourceUri: opts.sourceUri ?? '',
                artifact: opts.artifact ?? '',
                intentId: opts.intent ?? '',
                jobId: opts.job ?? '',
              },
            },
            idempotencyKey: opts.idempotencyKey ?? '',
          }),
        );
        const e = res.entry!;
        if (opts.json) printJson(entryJson(e));
        else {
          process.stdout.write(`${e.name}\n`);
          process.stderr.write(
            `${kindName(e.kind)}, version ${e.version}, ${e.textLength} characters in ${e.passages.length} passage${e.passages.length === 1 ? '' : 's'}\n`,
          );
        }
      });
    });
}

function updateCommand(): Command {
  return withWriteOptions(
    new Command('update')
      .description('write a new version of an entry: only the fields given change')
      .argument('<entry>', 'entries/<id> or <id>')
      .argument('[text]', 'the new text; - reads stdin (or use --file)'),
  )
    .option(
      '--expected-version <n>',
      'only if this is the current version',
      arg((v) => parseCount(v, 'version')),
    )
    .addHelpText(
      'after',
      `
The previous version stays readable (aether memory get --version N); only the current one is searched.
--tag replaces all tags.

Examples:
  $ aether memory update <id> --title "Deploy runbook (v2)"
  $ aether memory update <id> --file notes.md --expected-version 3`,
    )
    .action(
      async (
        entry: string,
        text: string | undefined,
        opts: WriteOpts & { expectedVersion?: number },
        cmd: Command,
      ) => {
        const name = entryName(entry);
        const body = textFrom(text, opts.file);
        const mask: string[] = [];
        if (body !== undefined) mask.push('text');
        if (opts.title !== undefined) mask.push('title');
        if (opts.tag !== undefined) mask.push('tags');
        if (opts.kind !== undefined) mask.push('kind');
        if (opts.reference !== undefined) mask.push('references');
        if (opts.sourceUri !== undefined) mask.push('provenance.source_uri');
        if (opts.artifact !== undefined) mask.push('provenance.artifact');
        if (opts.intent !== undefined) mask.push('provenance.intent_id');
        if (opts.job !== undefined) mask.push('provenance.job_id');
        if (mask.length === 0) throw new UsageError('nothing to update: give new text or a field option');
        await withClient(cmd, async (c) => {
          const res = await c.call(
            c.memory,
            'updateEntry',
            memoryV1.UpdateEntryRequest.fromPartial({
              entry: {
                name,
                title: opts.title ?? '',
                text: body ?? '',
                tags: opts.tag ?? [],
                kind: opts.kind ?? EntryKind.ENTRY_KIND_UNSPECIFIED,
                references: opts.reference ?? [],
                provenance: {
                  sourceUri: opts.sourceUri ?? '',
                  artifact: opts.artifact ?? '',
                  intentId: opts.intent ?? '',
                  jobId: opts.job ?? '',
                },
              },
              updateMask: mask,
              ...(opts.expectedVersion !== undefined
                ? { expectedVersion: BigInt(opts.expectedVersion) }
                : {}),
            }),
          );
          if (opts.json) printJson(entryJson(res.entry!));
          else process.stdout.write(`${res.entry!.name}@${res.entry!.version}\n`);
        });
      },
    );
}

interface SearchOpts {
  tag?: string[];
  actor?: string;
  intent?: string;
  job?: string;
  kind?: memoryV1.EntryKind;
  since?: Date;
  until?: Date;
  limit: number;
  snippet?: number;
  semantic?: boolean;
  pageToken?: string;
  json?: boolean;
}

function searchCommand(): Command {
  return new Command('search')
    .description('full-text search (SQLite FTS5, bm25); every hit is a citation of an entry version')
    .argument('<query>', 'FTS5 query: terms, "phrases", prefix*, AND/OR/NOT, NEAR(a b, 10), title:/text:')
    .option('-t, --tag <tag>', 'only entries with this tag (repeatable: all of them)', list(String))
    .option('--actor <spiffe-id>', 'only entries whose current version this identity wrote')
    .option('--intent <id>', 'only entries of this intent')
    .option('--job <id>', 'only entries from this job')
    .option('--kind <kind>', 'only notes or only documents', arg(parseKind))
    .option(
      '--since <time>',
      'only entries updated since: 2h, 30m or an ISO time',
      arg((v) => parseSince(v)),
    )
    .option(
      '--until <time>',
      'only entries updated before: 2h, 30m or an ISO time',
      arg((v) => parseSince(v)),
    )
    .option(
      '-n, --limit <n>',
      'hits per page (at most 100)',
      arg((v) => parseCount(v, 'limit', 1, 100)),
      10,
    )
    .option(
      '--snippet <n>',
      'snippet length in characters (16-2000)',
      arg((v) => parseCount(v, 'snippet', 16, 2000)),
    )
    .option('--semantic', 'also rank by meaning when cfcd embeddings are configured')
    .option('--page-token <token>', 'the next page of an earlier search (printed after its hits)')
    .option('--json', 'print the response as JSON')
    .addHelpText(
      'after',
      `
Each hit shows entries/<id>@<version>, the cited span in characters (code points) of that version's
text, the score (higher is better), the snippet with the matches marked, and who wrote it, for what,
from where and when. "aether memory get <id> --version <n>" shows the whole version.

Examples:
  $ aether memory search 'queue stalls'
  $ aether memory search '"exact phrase" OR prefix*' --tag ops --limit 5
  $ aether memory search 'NEAR(ingest worker, 5)' --since 24h --json | jq '.citations[0]'`,
    )
    .action(async (query: string, opts: SearchOpts, cmd: Command) => {
      const { open, close } = opts.json ? { open: '', close: '' } : markers();
      await withClient(cmd, async (c) => {
        const res = await c.call(
          c.memory,
          'search',
          memoryV1.SearchRequest.fromPartial({
            query,
            tags: opts.tag ?? [],
            actor: opts.actor ?? '',
            intentId: opts.intent ?? '',
            jobId: opts.job ?? '',
            kind: opts.kind ?? EntryKind.ENTRY_KIND_UNSPECIFIED,
            startTime: opts.since ? timestampFromDate(opts.since) : undefined,
            endTime: opts.until ? timestampFromDate(opts.until) : undefined,
            pageSize: opts.limit,
            pageToken: opts.pageToken ?? '',
            semantic: opts.semantic ?? false,
            snippetLength: opts.snippet ?? 0,
            highlightOpen: open,
            highlightClose: close,
          }),
        );
        if (opts.json) {
          printJson(memoryV1.SearchResponse.toJSON(res));
          return;
        }
        res.citations.forEach((hit, i) => process.stdout.write(citationText(hit, i + 1)));
        const notes = [
          `${res.citations.length} hit${res.citations.length === 1 ? '' : 's'} of ${res.totalCandidates} matching passages`,
        ];
        if (res.truncated)
          notes.push(`only the newest ${res.totalCandidates} were ranked (a very common term)`);
        if (opts.semantic && !res.semanticApplied) notes.push('semantic ranking unavailable: FTS only');
        if (res.nextPageToken) notes.push(`more: --page-token ${res.nextPageToken}`);
        process.stderr.write(`${notes.join('; ')}\n`);
      });
    });
}

function getCommand(): Command {
  return new Command('get')
    .description('show an entry: its current version, or the one asked for, with provenance and text')
    .argument('<entry>', 'entries/<id> or <id>')
    .option(
      '--version <n>',
      'this version (deleted entries keep theirs)',
      arg((v) => parseCount(v, 'version')),
    )
    .option('--text', 'print only the text, as stored')
    .option('--json', 'print JSON')
    .action(
      async (entry: string, opts: { version?: number; text?: boolean; json?: boolean }, cmd: Command) => {
        const name = entryName(entry);
        await withClient(cmd, async (c) => {
          const res = await c.call(
            c.memory,
            'getEntry',
            memoryV1.GetEntryRequest.fromPartial({
              name,
              ...(opts.version !== undefined ? { version: BigInt(opts.version) } : {}),
            }),
          );
          const e = res.entry!;
          if (opts.json) printJson(entryJson(e));
          else if (opts.text) process.stdout.write(e.text);
          else process.stdout.write(entryDetail(e));
        });
      },
    );
}

interface LsOpts {
  tag?: string[];
  kind?: memoryV1.EntryKind;
  actor?: string;
  intent?: string;
  job?: string;
  limit: number;
  allPages?: boolean;
  json?: boolean;
}

function lsCommand(): Command {
  return new Command('ls')
    .alias('list')
    .description('list entries (current versions), most recently updated first')
    .option('-t, --tag <tag>', 'only entries with this tag (repeatable: all of them)', list(String))
    .option('--kind <kind>', 'only notes or only documents', arg(parseKind))
    .option('--actor <spiffe-id>', 'only entries whose current version this identity wrote')
    .option('--intent <id>', 'only entries of this intent')
    .option('--job <id>', 'only entries from this job')
    .option(
      '--limit <n>',
      'entries per page (at most 1000)',
      arg((v) => parseCount(v, 'limit', 1, 1000)),
      50,
    )
    .option('--all-pages', 'keep fetching pages until every matching entry is listed')
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      '\nColumns: ID, VERSION, KIND, UPDATED (age), TAGS, TITLE (or the first line of the text).',
    )
    .action(async (opts: LsOpts, cmd: Command) => {
      await withClient(cmd, async (c) => {
        const { items: found, nextPageToken: more } = await collectPages(opts.allPages, async (pageToken) => {
          const res = await c.call(
            c.memory,
            'listEntries',
            memoryV1.ListEntriesRequest.fromPartial({
              pageSize: opts.limit,
              pageToken,
              tags: opts.tag ?? [],
              kind: opts.kind ?? EntryKind.ENTRY_KIND_UNSPECIFIED,
              actor: opts.actor ?? '',
              intentId: opts.intent ?? '',
              jobId: opts.job ?? '',
            }),
          );
          return { items: res.entries, nextPageToken: res.nextPageToken };
        });
        if (opts.json) printJson(found.map(entryJson));
        else {
          const now = Date.now();
          process.stdout.write(
            table(
              ['ID', 'VERSION', 'KIND', 'UPDATED', 'TAGS', 'TITLE'],
              found.map((e) => [
                e.id,
                String(e.version),
                kindName(e.kind),
                e.updateTime ? formatAge(now - dateFromTimestamp(e.updateTime).getTime()) : '',
                e.tags.join(','),
                entrySummary(e),
              ]),
            ),
          );
          if (more)
            process.stderr.write(
              `more entries match: --limit ${opts.limit} per page; add --all-pages for all\n`,
            );
        }
      });
    });
}

function versionsCommand(): Command {
  return new Command('versions')
    .description('list the versions of an entry, newest first (a deleted entry ends in a tombstone)')
    .argument('<entry>', 'entries/<id> or <id>')
    .option('--json', 'print JSON')
    .action(async (entry: string, opts: { json?: boolean }, cmd: Command) => {
      const name = entryName(entry);
      await withClient(cmd, async (c) => {
        const { items: versions } = await collectPages(true, async (pageToken) => {
          const res = await c.call(
            c.memory,
            'listEntryVersions',
            memoryV1.ListEntryVersionsRequest.fromPartial({ name, pageSize: 1000, pageToken }),
          );
          return { items: res.versions, nextPageToken: res.nextPageToken };
        });
        if (opts.json) printJson(versions.map(entryJson));
        else {
          const now = Date.now();
          process.stdout.write(
            table(
              ['VERSION', 'UPDATED', 'ACTOR', 'CHARS', 'TITLE'],
              versions.map((v) => [
                `${v.version}${v.deleted ? ' (deleted)' : ''}`,
                v.updateTime ? formatAge(now - dateFromTimestamp(v.updateTime).getTime()) : '',
                v.provenance?.actor ?? '',
                String(v.textLength),
                entrySummary(v),
              ]),
            ),
          );
        }
      });
    });
}

function rmCommand(): Command {
  return new Command('rm')
    .alias('delete')
    .description('delete entries: they leave ls and search at once')
    .argument('<entry...>', 'entries/<id> or <id>')
    .option('--purge', 'remove every version and its text for good (default: keep them, readable by version)')
    .addHelpText(
      'after',
      `
Without --purge a tombstone version is recorded and earlier versions stay readable with
aether memory get <id> --version N.`,
    )
    .action(async (entries: string[], opts: { purge?: boolean }, cmd: Command) => {
      await withClient(cmd, async (c) => {
        for (const e of entries) {
          const name = entryName(e);
          await c.call(
            c.memory,
            'deleteEntry',
            memoryV1.DeleteEntryRequest.fromPartial({ name, purge: opts.purge ?? false }),
          );
          process.stdout.write(`${opts.purge ? 'purged' : 'deleted'} ${name}\n`);
        }
      });
    });
}

export function memoryCommand(): Command {
  const cmd = withAetherErrors(new Command('memory'))
    .description('add notes and documents with provenance to memory, and search them with citations')
    .showHelpAfterError('(add --help for usage and examples)')
    .addHelpText(
      'after',
      `
Entries are named entries/<id>; every command takes the name or the bare id. Updates keep earlier
versions; search covers current versions only and cites spans in characters (code points).

Examples:
  $ aether memory add --title "Runbook" --tag ops "restart the ingest worker when the queue stalls"
  $ aether memory search 'ingest AND worker' --tag ops
  $ aether memory get <id>
  $ aether memory rm <id>`,
    );
  for (const sub of [
    addCommand(),
    searchCommand(),
    getCommand(),
    lsCommand(),
    updateCommand(),
    versionsCommand(),
    rmCommand(),
  ])
    cmd.addCommand(withAetherErrors(sub.showHelpAfterError('(add --help for usage and examples)')));
  return cmd;
}
