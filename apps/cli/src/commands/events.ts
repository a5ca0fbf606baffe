import { readFileSync } from 'node:fs';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { Command } from 'commander';
import { type AetherClient, serverStreamCall } from '@aether/client';
import { durationFromMs, eventsV1, timestampFromDate } from '@aether/proto';
import { arg, collectPages, exitOnClosedPipe, list, printJson, withClient } from '../command-support';
import { errorText, withAetherErrors } from '../errors';
import {
  EventCursor,
  eventData,
  eventDetail,
  eventFilter,
  eventLine,
  eventName,
  eventRow,
  type FilterOpts,
  gapLine,
  nextBackoffMs,
  parseDataField,
  parseDataObject,
  parseEventType,
  parseSequence,
} from '../events-format';
import { table } from '../output';
import { parseCount, parseSince, UsageError } from '../units';

const eventJson = (e: eventsV1.Event): unknown => eventsV1.Event.toJSON(e);

/** The filter options of `watch` and `list`. */
const withFilterOptions = (cmd: Command): Command =>
  cmd
    .option('--type <type>', 'only this event type, e.g. job.state_changed (repeatable)', list(String))
    .option(
      '--type-prefix <prefix>',
      'only types under this prefix, whole segments: job matches job.* (repeatable)',
      list(String),
    )
    .option('--job <id>', 'only events of this job (jobs/<id> or <id>)')
    .option('--intent <id>', 'only events of this intent')
    .option('--source <source>', 'only events from this source, e.g. aetherd (repeatable)', list(String))
    .option('--subject <subject>', 'only events about this subject, e.g. jobs/<id>');

const sequenceOption = (what: string): [string, string, (v: string) => bigint] => [
  '--from <sequence>',
  what,
  arg((v) => parseSequence(v, '--from')),
];

const timeOption = (flag: string, what: string): [string, string, (v: string) => Date] => [
  flag,
  `${what}: an RFC 3339 time (2026-11-21T10:00:00Z) or a duration ago (10m, 2h)`,
  arg((v) => parseSince(v)),
];

/** Writes to stdout, waiting when the reader is slower than the stream (so aetherd sees we are slow). */
async function writeOut(text: string): Promise<void> {
  if (!process.stdout.write(text)) await once(process.stdout, 'drain');
}

interface WatchOpts extends FilterOpts {
  from?: bigint;
  since?: Date;
  heartbeat?: number;
  disconnectWhenSlow?: boolean;
  json?: boolean;
}

/**
 * Prints the stream until `signal` aborts. A lost stream (aetherd restarting, or dropped as too slow)
 * is subscribed again from the next undelivered sequence with backoff, so nothing is printed twice and
 * nothing is skipped without a gap notice.
 */
async function watch(
  c: AetherClient,
  request: eventsV1.SubscribeRequest,
  json: boolean,
  signal: AbortSignal,
): Promise<void> {
  const cursor = new EventCursor(request.start);
  let delay: number | undefined;
  let lastNote = '';
  const subscribe = c.events.subscribe.bind(c.events);
  while (!signal.aborted) {
    let lost: unknown;
    try {
      for await (const m of serverStreamCall(subscribe, { ...request, start: cursor.start }, { signal })) {
        delay = undefined;
        lastNote = '';
        const shown = cursor.accept(m);
        if (!shown) continue;
        if (json)
          await writeOut(`${JSON.stringify(eventsV1.SubscribeResponse.toJSON({ message: shown }))}\n`);
        else await writeOut(`${shown.$case === 'event' ? eventLine(shown.value) : gapLine(shown.value)}\n`);
      }
      lost = new Error('aetherd ended the stream');
    } catch (err) {
      if (signal.aborted) return;
      if (!cursor.resumeAfter(err)) throw err;
      lost = err;
    }
    if (signal.aborted) return;
    delay = nextBackoffMs(delay);
    const from = cursor.nextSequence === undefined ? 'where it started' : `sequence ${cursor.nextSequence}`;
    const note = `aether: note: event stream lost (${errorText(lost)}); resubscribing from ${from}`;
    if (note !== lastNote) process.stderr.write(`${note}\n`);
    lastNote = note;
    await sleep(delay, undefined, { signal }).catch(() => undefined);
  }
}

function watchCommand(): Command {
  return withFilterOptions(
    new Command('watch').description(
      'print events as they happen, one line each; resumes by itself when aetherd restarts',
    ),
  )
    .option(...sequenceOption('start at this sequence (inclusive) instead of now'))
    .option(...timeOption('--since <time>', 'start at the first event recorded at or after this time'))
    .option(
      '--heartbeat <seconds>',
      'how often aetherd reports the head on an idle stream (1-300, default 15)',
      arg((v) => parseCount(v, '--heartbeat', 1, 300)),
    )
    .option(
      '--disconnect-when-slow',
      'when this watch falls behind, have aetherd drop it and resume from the store (no gap) instead of skipping ahead',
    )
    .option('--json', 'one JSON object per line (NDJSON): {"event": …} or {"gap": …}')
    .addHelpText(
      'after',
      `
Each line is: SEQUENCE  TIME (UTC)  TYPE  SUBJECT  SOURCE  DATA (key=value …). A range of events that
cannot be delivered (removed by retention, or skipped because this watch fell behind) is printed in
its place as "-- missed events 120..340 (…) --" (with --json: {"gap": …}). Heartbeats are not printed.

When the stream is lost (aetherd restarts) or aetherd drops a slow watch, it subscribes again from the
next undelivered sequence (retrying after 0.2 s, doubling to 5 s) with a note on stderr: no event is
printed twice and none is skipped without a notice. Ctrl-C ends it (exit 0).

Examples:
  $ aether events watch
  $ aether events watch --type-prefix job --job 01jc7v0m4k3h2g1f0e9d8c7b6a
  $ aether events watch --from 1 --json | jq -c 'select(.event) | .event.type'
  $ aether events watch --since 10m --type job.state_changed --disconnect-when-slow`,
    )
    .action(async (opts: WatchOpts, cmd: Command) => {
      if (opts.from !== undefined && opts.since !== undefined)
        throw new UsageError('--from and --since do not mix: choose where to start');
      exitOnClosedPipe();
      await withClient(cmd, async (c) => {
        // Ask once before subscribing: a wrong socket or a denial fails at once rather than retrying,
        // and "now" becomes a sequence, so a stream lost before its first message resumes exactly.
        const head = await c.call(
          c.events,
          'listEvents',
          eventsV1.ListEventsRequest.fromPartial({ pageSize: 1 }),
        );
        const start: eventsV1.SubscribeRequest['start'] =
          opts.from !== undefined
            ? { $case: 'startSequence', value: opts.from }
            : opts.since !== undefined
              ? { $case: 'startTime', value: timestampFromDate(opts.since) }
              : { $case: 'startSequence', value: head.headSequence + 1n };
        const stop = new AbortController();
        const onInterrupt = (): void => stop.abort();
        process.once('SIGINT', onInterrupt);
        try {
          await watch(
            c,
            eventsV1.SubscribeRequest.fromPartial({
              filter: eventFilter(opts),
              start,
              heartbeatInterval:
                opts.heartbeat === undefined ? undefined : durationFromMs(opts.heartbeat * 1000),
              overflow: opts.disconnectWhenSlow
                ? eventsV1.OverflowPolicy.OVERFLOW_POLICY_DISCONNECT
                : eventsV1.OverflowPolicy.OVERFLOW_POLICY_GAP,
            }),
            opts.json ?? false,
            stop.signal,
          );
        } finally {
          process.off('SIGINT', onInterrupt);
        }
      });
    });
}

/** The text of `--data-file` (`-`: stdin); unreadable is a usage error. */
function readDataFile(file: string): string {
  try {
    return readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (err) {
    throw new UsageError(
      `cannot read --data-file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
}

interface EmitOpts {
  subject?: string;
  data?: string;
  dataFile?: string;
  field?: [string, unknown][];
  job?: string;
  intent?: string;
  source?: string;
  idempotencyKey?: string;
  json?: boolean;
}

function emitCommand(): Command {
  return new Command('emit')
    .description('record an event; prints its sequence number')
    .argument('<type>', 'event type: dotted lowercase segments, e.g. training.metrics', arg(parseEventType))
    .option('--subject <subject>', 'what the event is about, usually a resource name (jobs/<id>)')
    .option('--data <json>', 'the payload: a JSON object')
    .option('--data-file <file>', 'read the JSON object payload from this file (- for stdin)')
    .option(
      '-d, --field <key=value>',
      'a payload field: key=value (a string) or key:=JSON (epoch:=3, ok:=true); added to --data (repeatable)',
      list(parseDataField),
    )
    .option('--job <id>', 'the job the event belongs to')
    .option('--intent <id>', 'the intent the event belongs to')
    .option('--source <source>', 'who the event comes from (default: your identity), e.g. my-tool')
    .option('--idempotency-key <key>', 'a retry with the same key within 24 h returns the first event')
    .option('--json', 'print the recorded event as JSON')
    .addHelpText(
      'after',
      `
Types whose first segment aetherd reserves (job, artifact, memory, policy, request, events) cannot be
emitted. The payload is at most 64 KiB as JSON.

Examples:
  $ aether events emit deploy.finished --subject services/api -d version=1.4.2 -d ok:=true
  $ aether events emit training.metrics --job 01jc7v0m4k3h2g1f0e9d8c7b6a --data '{"epoch": 3, "loss": 0.21}'
  $ ./report.sh | aether events emit report.ready --data-file -
  $ seq=$(aether events emit build.started) && aether events watch --from "$seq"`,
    )
    .action(async (type: string, opts: EmitOpts, cmd: Command) => {
      if (opts.data !== undefined && opts.dataFile !== undefined)
        throw new UsageError('--data and --data-file do not mix: give the payload once');
      const base =
        opts.data !== undefined
          ? parseDataObject(opts.data)
          : opts.dataFile !== undefined
            ? parseDataObject(readDataFile(opts.dataFile), `--data-file ${opts.dataFile}`)
            : undefined;
      const data = eventData(base, opts.field);
      await withClient(cmd, async (c) => {
        const res = await c.call(
          c.events,
          'emitEvent',
          eventsV1.EmitEventRequest.fromPartial({
            event: {
              type,
              subject: opts.subject ?? '',
              source: opts.source ?? '',
              jobId: opts.job?.replace(/^jobs\//, '') ?? '',
              intentId: opts.intent?.replace(/^intents\//, '') ?? '',
              ...(data === undefined ? {} : { data }),
            },
            idempotencyKey: opts.idempotencyKey ?? '',
          }),
        );
        const e = res.event!;
        if (opts.json) printJson(eventJson(e));
        else process.stdout.write(`${e.sequence}\n`);
      });
    });
}

interface ListOpts extends FilterOpts {
  from?: bigint;
  since?: Date;
  until?: Date;
  limit: number;
  allPages?: boolean;
  json?: boolean;
}

function lsCommand(): Command {
  return withFilterOptions(new Command('ls').alias('list').description('list stored events, oldest first'))
    .option(...sequenceOption('only events from this sequence on'))
    .option(...timeOption('--since <time>', 'only events recorded at or after'))
    .option(...timeOption('--until <time>', 'only events recorded before'))
    .option(
      '--limit <n>',
      'events per page (at most 1000)',
      arg((v) => parseCount(v, 'limit', 1, 1000)),
      50,
    )
    .option('--all-pages', 'keep fetching pages until every matching event is listed')
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      `
Columns: SEQ, TIME (UTC), TYPE, SUBJECT, SOURCE, DATA (key=value …).

Examples:
  $ aether events ls --since 1h
  $ aether events ls --type-prefix job --job 01jc7v0m4k3h2g1f0e9d8c7b6a --all-pages
  $ aether events ls --from 1000 --limit 100 --json | jq '.[].type'`,
    )
    .action(async (opts: ListOpts, cmd: Command) => {
      await withClient(cmd, async (c) => {
        const filter = eventFilter(opts);
        const { items: events, nextPageToken: more } = await collectPages(
          opts.allPages,
          async (pageToken) => {
            const res = await c.call(
              c.events,
              'listEvents',
              eventsV1.ListEventsRequest.fromPartial({
                pageSize: opts.limit,
                pageToken,
                filter,
                startSequence: opts.from ?? 0n,
                startTime: opts.since ? timestampFromDate(opts.since) : undefined,
                endTime: opts.until ? timestampFromDate(opts.until) : undefined,
              }),
            );
            return { items: res.events, nextPageToken: res.nextPageToken };
          },
        );
        if (opts.json) printJson(events.map(eventJson));
        else {
          process.stdout.write(
            table(['SEQ', 'TIME', 'TYPE', 'SUBJECT', 'SOURCE', 'DATA'], events.map(eventRow)),
          );
          const last = events.at(-1);
          if (more && last)
            process.stderr.write(
              `more events match: add --all-pages, or continue with --from ${last.sequence + 1n}\n`,
            );
        }
      });
    });
}

function getCommand(): Command {
  return new Command('get')
    .description('show one event with its whole payload')
    .argument('<event>', 'events/<sequence> or <sequence>')
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      `
Examples:
  $ aether events get 1042
  $ aether events get events/1042 --json | jq .data`,
    )
    .action(async (event: string, opts: { json?: boolean }, cmd: Command) => {
      const name = eventName(event);
      await withClient(cmd, async (c) => {
        const res = await c.call(c.events, 'getEvent', eventsV1.GetEventRequest.fromPartial({ name }));
        if (opts.json) printJson(eventJson(res.event!));
        else process.stdout.write(eventDetail(res.event!));
      });
    });
}

export function eventsCommand(): Command {
  const cmd = withAetherErrors(new Command('events'))
    .description('watch, list and emit the events of aetherd, aurorad, cfcd and your own tools')
    .showHelpAfterError('(add --help for usage and examples)')
    .addHelpText(
      'after',
      `
Events are named events/<sequence>: one stream, numbered from 1, stored by aetherd. aetherd records
job.*, artifact.*, memory.*, policy.* and request.denied events; aurorad intent.*, cfcd model.* and
training.*; anyone allowed may emit their own types.

Examples:
  $ aether events watch --type-prefix job
  $ aether events emit deploy.finished -d version=1.4.2
  $ aether events ls --since 1h
  $ aether events get 1042`,
    );
  for (const sub of [watchCommand(), emitCommand(), lsCommand(), getCommand()])
    cmd.addCommand(withAetherErrors(sub.showHelpAfterError('(add --help for usage and examples)')));
  return cmd;
}
