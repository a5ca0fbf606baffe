import { setTimeout as sleep } from 'node:timers/promises';
import { Command } from 'commander';
import { type AetherClient, RpcError, serverStreamCall } from '@aether/client';
import { dateFromTimestamp, durationFromMs, intentsV1, timestampFromDate } from '@aether/proto';
import {
  arg,
  collectPages,
  collectPairs,
  detachOnInterrupt,
  exitOnClosedPipe,
  list,
  printJson,
  withClient,
} from '../command-support';
import { errorText, exitCodeForError, withAetherErrors } from '../errors';
import { statusLine } from '../progress';
import { formatDuration, parseCount, parseDuration, parseSince, truncate, UsageError } from '../units';
import {
  approvalText,
  exitCodeOfIntent,
  intentDetail,
  intentIdOf,
  intentName,
  intentOverview,
  intentStateName,
  isTerminalIntentState,
  listTable,
  parseGoalName,
  parseIntentStates,
  parseParam,
  parsePlanner,
  rpcErrorNotes,
  stepsAwaitingApproval,
  stepsToDecide,
  WatchView,
} from './intent-format';

const { IntentState, StepState } = intentsV1;

/**
 * The deadline of SubmitIntent. aurorad plans and checks before it answers, and answers with the
 * intent still PLANNING when the deadline nears (a slow model planner), so this bounds the wait.
 */
const SUBMIT_TIMEOUT_MS = 60_000;
/** How long a watch keeps trying to get its stream back while aurorad is unreachable (restarting). */
const RECONNECT_FOR_MS = 30_000;

const intentJson = (i: intentsV1.Intent): unknown => intentsV1.Intent.toJSON(i);

/**
 * Runs `fn` with a client. An API error is printed as every command prints it (`aether: CODE: message
 * [REASON]`), followed by what the intents API adds (the field, the step, the deciding policies, and a
 * remedy where there is one); the exit status is then 1.
 */
async function withIntents(
  cmd: Command,
  id: string | undefined,
  fn: (c: AetherClient) => Promise<void>,
  moreNotes: (err: RpcError) => string[] = () => [],
): Promise<void> {
  try {
    await withClient(cmd, fn);
  } catch (err) {
    if (!(err instanceof RpcError)) throw err;
    const notes = [...rpcErrorNotes(err, id), ...moreNotes(err)];
    process.stderr.write(`aether: ${errorText(err)}\n${notes.map((n) => `  ${n}\n`).join('')}`);
    process.exitCode = exitCodeForError(err);
  }
}

/** Where a watch writes: plain lines, or on a terminal plain lines under a spinner for running steps. */
interface WatchOutput {
  print(text: string): void;
  note(text: string): void;
  status(intent: intentsV1.Intent): void;
  stop(): void;
}

const plainOutput = (): WatchOutput => ({
  print: (text) => {
    if (text) process.stdout.write(text);
  },
  note: (text) => {
    process.stderr.write(text);
  },
  status: () => undefined,
  stop: () => undefined,
});

const FRAMES = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/** On a terminal: a spinner line under the printed lines, naming what the intent is doing now. */
function spinnerOutput(out: NodeJS.WriteStream): WatchOutput {
  let frame = 0;
  let intent: intentsV1.Intent | undefined;
  const text = (i: intentsV1.Intent): string => {
    const now = Date.now();
    const running = (i.plan?.steps ?? []).filter((s) => s.state === StepState.STEP_STATE_RUNNING);
    if (running.length > 0)
      return running
        .map((s) => {
          const started = s.startTime ? dateFromTimestamp(s.startTime).getTime() : undefined;
          return `${s.id} (${s.tool})${started === undefined ? '' : ` ${formatDuration(now - started)}`}`;
        })
        .join(', ');
    if (i.state === IntentState.INTENT_STATE_PLANNING) return 'planning';
    if (i.state === IntentState.INTENT_STATE_AWAITING_APPROVAL) return 'waiting for approval';
    return intentStateName(i.state).toLowerCase();
  };
  const line = statusLine(
    out,
    (width) => {
      if (!intent || isTerminalIntentState(intent.state)) return undefined;
      frame = (frame + 1) % FRAMES.length;
      return truncate(`${FRAMES[frame]} ${text(intent)}`, width);
    },
    true,
  );
  return {
    print: (t) => line.print(t),
    note: (t) => line.note(t),
    status: (i) => {
      intent = i;
      line.changed(true);
    },
    stop: () => line.stop(),
  };
}

/** Ctrl-C while watching: the intent goes on; say how to get back to it; exit 130. */
function detachFromIntent(name: string, output: WatchOutput): () => void {
  const id = name.replace(/^intents\//, '');
  return detachOnInterrupt(
    `\naether: stopped watching ${name}; it goes on.\n` +
      `  watch it again: aether intent watch ${id}\n` +
      `  cancel it:      aether intent cancel ${id}\n`,
    () => output.stop(),
  );
}

/**
 * Follows an intent with WatchIntent until it ends and returns it as it ended. Human output: the plan,
 * one line per event, what awaits approval, the results; `--json`: each update as one line of proto3
 * JSON. A stream lost while aurorad restarts is taken up again for up to 30 s (a note on stderr);
 * the history it restates is not printed twice. Sets the exit status: 0 when the intent SUCCEEDED,
 * 1 otherwise.
 */
async function follow(
  c: AetherClient,
  name: string,
  json: boolean,
  showHead = true,
): Promise<intentsV1.Intent> {
  exitOnClosedPipe();
  const output = !json && process.stdout.isTTY ? spinnerOutput(process.stdout) : plainOutput();
  const view = new WatchView(showHead);
  const detach = detachFromIntent(name, output);
  const watch = c.intents.watchIntent.bind(c.intents);
  let last: intentsV1.Intent | undefined;
  let retryUntil: number | undefined;
  try {
    for (;;) {
      let lost: unknown;
      try {
        for await (const m of serverStreamCall(watch, intentsV1.WatchIntentRequest.fromPartial({ name }))) {
          retryUntil = undefined;
          if (m.intent) last = m.intent;
          if (json) process.stdout.write(`${JSON.stringify(intentsV1.WatchIntentResponse.toJSON(m))}\n`);
          else output.print(view.update(m));
          if (m.intent) output.status(m.intent);
        }
        if (last && isTerminalIntentState(last.state)) break;
        lost = new Error('aurorad ended the stream before the intent ended');
      } catch (err) {
        // Only a watch that was under way is taken up again: an aurorad that never answered is an error.
        if (!(err instanceof RpcError) || err.codeName !== 'UNAVAILABLE' || last === undefined) throw err;
        lost = err;
      }
      if (retryUntil === undefined) {
        retryUntil = Date.now() + RECONNECT_FOR_MS;
        output.note(`aether: note: lost the watch (${errorText(lost)}); reconnecting\n`);
      } else if (Date.now() > retryUntil) throw lost;
      await sleep(1_000);
    }
  } finally {
    output.stop();
    detach();
  }
  const ended = last;
  if (json) {
    if (ended.state !== IntentState.INTENT_STATE_SUCCEEDED)
      process.stderr.write(
        `aether: ${ended.name} ended ${intentStateName(ended.state)}${ended.failureReason ? `: ${ended.failureReason}` : ''}\n`,
      );
  } else process.stdout.write(view.finish(ended));
  process.exitCode = exitCodeOfIntent(ended);
  return ended;
}

interface SubmitOpts {
  goal?: string;
  param?: [string, unknown][];
  dryRun?: boolean;
  planner?: intentsV1.Planner;
  label?: Record<string, string>;
  maxSteps?: number;
  maxJobs?: number;
  maxRetries?: number;
  timeout?: number;
  idempotencyKey?: string;
  watch?: boolean;
  json?: boolean;
}

/** The SubmitIntent request of `aether intent`'s words and options. */
function submitRequest(words: string[], opts: SubmitOpts): intentsV1.SubmitIntentRequest {
  const text = words.join(' ').trim();
  if (opts.goal !== undefined && text !== '')
    throw new UsageError(
      `give the intent as text or as --goal with --param, not both (got --goal ${opts.goal} and "${truncate(text, 40)}")`,
    );
  if (opts.param && opts.goal === undefined)
    throw new UsageError('--param goes with --goal NAME (the parameters of a structured goal)');
  if (opts.goal === undefined && text === '')
    throw new UsageError(
      'nothing to do: give the intent as text (aether intent "…") or as --goal NAME; see aether intent --help',
    );
  const input: intentsV1.SubmitIntentRequest['input'] =
    opts.goal !== undefined
      ? {
          $case: 'goal',
          value: { name: opts.goal, parameters: Object.fromEntries(opts.param ?? []) },
        }
      : { $case: 'text', value: text };
  const limited =
    opts.maxSteps !== undefined ||
    opts.maxJobs !== undefined ||
    opts.maxRetries !== undefined ||
    opts.timeout !== undefined;
  return intentsV1.SubmitIntentRequest.fromPartial({
    input,
    dryRun: opts.dryRun ?? false,
    planner: opts.planner ?? intentsV1.Planner.PLANNER_UNSPECIFIED,
    labels: opts.label ?? {},
    budget: limited
      ? {
          maxSteps: opts.maxSteps ?? 0,
          maxJobs: opts.maxJobs ?? 0,
          maxRetries: opts.maxRetries ?? 0,
          maxDuration: opts.timeout === undefined ? undefined : durationFromMs(opts.timeout),
        }
      : undefined,
    idempotencyKey: opts.idempotencyKey ?? '',
  });
}

function submitCommand(): Command {
  return new Command('submit')
    .description('submit an intent: aurorad plans it, checks each step against policy, and runs it')
    .usage('[options] <text...>')
    .argument('[text...]', 'what to do, in words (quote it, or put it after --)')
    .option('--goal <name>', 'a structured goal (a playbook name) instead of text', arg(parseGoalName))
    .option(
      '--param <key=value>',
      'a goal parameter; the value is JSON when it parses as JSON, else a string (repeatable)',
      list(parseParam),
    )
    .option('--dry-run', 'plan and check against policy only: nothing runs, nothing asks for approval')
    .option('--planner <planner>', 'playbook or model (default: the configured one)', arg(parsePlanner))
    .option('--label <key=value>', 'label for selecting intents later (repeatable)', collectPairs('label'))
    .option(
      '--max-steps <n>',
      'at most this many steps in the plan',
      arg((v) => parseCount(v, 'max-steps')),
    )
    .option(
      '--max-jobs <n>',
      'at most this many aetherd jobs',
      arg((v) => parseCount(v, 'max-jobs')),
    )
    .option(
      '--max-retries <n>',
      'at most this many retries per step (only UNAVAILABLE is retried)',
      arg((v) => parseCount(v, 'max-retries', 0)),
    )
    .option(
      '--timeout <duration>',
      'at most this long from submission to the end, e.g. 30m, 1h30m',
      arg((v) => parseDuration(v, 'timeout')),
    )
    .option(
      '--idempotency-key <key>',
      'submitting again with the same key within 24 h returns the same intent',
    )
    .option('--watch', 'follow it to the end (as aether intent watch) and exit 0 only if it succeeded')
    .option('--json', 'print the intent as JSON (with --watch: one JSON line per update)')
    .addHelpText(
      'after',
      `
Without --watch it prints the intent's plan, each step's policy decision and the state, and exits 0;
when a step needs approval it shows exactly what and how to approve it. With --watch it exits 0 when
the intent succeeded and 1 when it failed, was denied or cancelled.

Examples:
  $ aether intent submit "run python3 -c 'print(42)'"
  $ aether intent submit --dry-run --goal train-and-report --param dataset=artifacts/01jc… --param epochs=3`,
    )
    .action(async (words: string[], opts: SubmitOpts, cmd: Command) => {
      const request = submitRequest(words, opts);
      await withIntents(
        cmd,
        undefined,
        async (c) => {
          const res = await c.call(c.intents, 'submitIntent', request, { timeoutMs: SUBMIT_TIMEOUT_MS });
          const intent = res.intent!;
          if (!opts.watch) {
            if (opts.json) printJson(intentJson(intent));
            else process.stdout.write(intentOverview(intent));
            return;
          }
          await follow(c, intent.name, opts.json ?? false);
        },
        (err) =>
          err.codeName === 'DEADLINE_EXCEEDED'
            ? [
                `no answer in time: the intent may have been recorded (aether intent ls)${request.idempotencyKey ? '' : '; to retry safely, pass --idempotency-key'}`,
              ]
            : [],
      );
    });
}

function getCommand(): Command {
  return new Command('get')
    .description('show one intent: state, plan with decisions, step results, events, summary, citations')
    .argument('<intent>', 'intents/<id> or <id>')
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      `
Examples:
  $ aether intent get 01jc7v0m4k3h2g1f0e9d8c7b6a
  $ aether intent get intents/01jc7v0m4k3h2g1f0e9d8c7b6a --json | jq .plan.steps`,
    )
    .action(async (intent: string, opts: { json?: boolean }, cmd: Command) => {
      const name = intentName(intent);
      await withIntents(cmd, name.slice('intents/'.length), async (c) => {
        const res = await c.call(c.intents, 'getIntent', intentsV1.GetIntentRequest.fromPartial({ name }));
        if (opts.json) printJson(intentJson(res.intent!));
        else process.stdout.write(intentDetail(res.intent!));
      });
    });
}

interface LsOpts {
  state?: intentsV1.IntentState[][];
  label?: string;
  goal?: string;
  actor?: string;
  since?: Date;
  until?: Date;
  limit: number;
  allPages?: boolean;
  json?: boolean;
}

function lsCommand(): Command {
  return new Command('ls')
    .alias('list')
    .description('list intents, newest first')
    .option(
      '--state <states>',
      'only these states, comma-separated or repeated: running,awaiting_approval,…',
      list(parseIntentStates),
    )
    .option('--label <selector>', 'label selector: team=ml,env!=prod,gpu,!draft')
    .option('--goal <name>', 'only intents with this structured goal')
    .option('--actor <spiffe-id>', 'only intents this identity submitted')
    .option(
      '--since <time>',
      'only intents submitted since: 2h, 30m or an ISO time',
      arg((v) => parseSince(v)),
    )
    .option(
      '--until <time>',
      'only intents submitted before: 2h, 30m or an ISO time',
      arg((v) => parseSince(v)),
    )
    .option(
      '--limit <n>',
      'intents per page (at most 1000)',
      arg((v) => parseCount(v, 'limit', 1, 1000)),
      50,
    )
    .option('--all-pages', 'keep fetching pages until every matching intent is listed')
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      `
Columns: ID, STATE, AGE (since it was submitted), STEPS (succeeded/planned), WHAT (the text or goal).

Examples:
  $ aether intent ls
  $ aether intent ls --state awaiting_approval
  $ aether intent ls --state failed --state denied --since 24h --json`,
    )
    .action(async (opts: LsOpts, cmd: Command) => {
      await withIntents(cmd, undefined, async (c) => {
        const { items: intents, nextPageToken: more } = await collectPages(
          opts.allPages,
          async (pageToken) => {
            const res = await c.call(
              c.intents,
              'listIntents',
              intentsV1.ListIntentsRequest.fromPartial({
                pageSize: opts.limit,
                pageToken,
                states: [...new Set((opts.state ?? []).flat())],
                labelSelector: opts.label ?? '',
                goalName: opts.goal ?? '',
                actor: opts.actor ?? '',
                startTime: opts.since ? timestampFromDate(opts.since) : undefined,
                endTime: opts.until ? timestampFromDate(opts.until) : undefined,
              }),
            );
            return { items: res.intents, nextPageToken: res.nextPageToken };
          },
        );
        if (opts.json) printJson(intents.map(intentJson));
        else {
          process.stdout.write(listTable(intents));
          if (more)
            process.stderr.write(
              `more intents match: --limit ${opts.limit} per page; add --all-pages for all\n`,
            );
        }
      });
    });
}

function watchCommand(): Command {
  return new Command('watch')
    .description("follow an intent's progress to its end: plan, one line per event, then the results")
    .argument('<intent>', 'intents/<id> or <id>')
    .option('--json', 'one JSON line per update (proto3 JSON of WatchIntentResponse)')
    .addHelpText(
      'after',
      `
Prints the plan with each step's decision, then one line per event (TIME (UTC)  TYPE  STEP  MESSAGE),
and when the intent ends its summary, citations and each step's outcome. Exit status: 0 when the
intent SUCCEEDED, 1 when it FAILED, was DENIED or CANCELLED. Ctrl-C stops watching, not the intent.

Examples:
  $ aether intent watch 01jc7v0m4k3h2g1f0e9d8c7b6a
  $ aether intent watch 01jc7v0m4k3h2g1f0e9d8c7b6a --json | jq -c .event`,
    )
    .action(async (intent: string, opts: { json?: boolean }, cmd: Command) => {
      const name = intentName(intent);
      await withIntents(cmd, name.slice('intents/'.length), async (c) => {
        await follow(c, name, opts.json ?? false);
      });
    });
}

interface DecideOpts {
  step?: string[];
  comment?: string;
  reason?: string;
  yes?: boolean;
  watch?: boolean;
  json?: boolean;
}

/**
 * Approve or reject: reads the intent, prints exactly the steps being decided (tool, why policy asks,
 * arguments), then decides on those steps quoting the plan's etag, so that a plan changed in between is
 * refused (ABORTED / PLAN_CHANGED) rather than approved unseen.
 */
async function decide(c: AetherClient, name: string, approve: boolean, opts: DecideOpts): Promise<void> {
  const got = await c.call(c.intents, 'getIntent', intentsV1.GetIntentRequest.fromPartial({ name }));
  const intent = got.intent!;
  const steps = stepsToDecide(intent, opts.step ?? []);
  const etag = intent.plan?.etag ?? '';
  if (!opts.json)
    process.stdout.write(
      `${approve ? 'Approving' : 'Rejecting'} ${steps.length === 1 ? '1 step' : `${steps.length} steps`} of ${name} (plan etag ${etag || '-'}):\n${approvalText(steps)}`,
    );
  const stepIds = steps.map((s) => s.id);
  const res = approve
    ? await c.call(
        c.intents,
        'approveIntent',
        intentsV1.ApproveIntentRequest.fromPartial({
          name,
          stepIds,
          planEtag: etag,
          comment: opts.comment ?? '',
        }),
      )
    : await c.call(
        c.intents,
        'rejectIntent',
        intentsV1.RejectIntentRequest.fromPartial({
          name,
          stepIds,
          planEtag: etag,
          reason: opts.reason ?? '',
        }),
      );
  const after = res.intent!;
  if (opts.watch) {
    if (!opts.json)
      process.stdout.write(`${approve ? 'Approved' : 'Rejected'}; following ${name} to its end.\n\n`);
    await follow(c, name, opts.json ?? false, false);
    return;
  }
  if (opts.json) {
    printJson(intentJson(after));
    return;
  }
  const still = stepsAwaitingApproval(after).map((s) => s.id);
  process.stdout.write(
    `${approve ? 'approved' : 'rejected'} ${stepIds.join(', ')}; ${name} is now ${intentStateName(after.state)}\n` +
      (still.length > 0 ? `still awaiting approval: ${still.join(', ')}\n` : '') +
      (isTerminalIntentState(after.state)
        ? ''
        : `follow it with: aether intent watch ${intentIdOf(after)}\n`),
  );
}

function approveCommand(): Command {
  return new Command('approve')
    .description('approve the steps of an intent that policy marked "ask" (shows exactly what first)')
    .argument('<intent>', 'intents/<id> or <id>')
    .option('--step <id>', 'only this step (repeatable; default: every step awaiting approval)', list(String))
    .option('--comment <text>', 'a comment recorded with the approval')
    .option('-y, --yes', 'accepted for scripts; aether never prompts')
    .option('--watch', 'then follow the intent to its end (as aether intent watch)')
    .option('--json', 'print the intent after the approval as JSON (with --watch: one JSON line per update)')
    .addHelpText(
      'after',
      `
Approval quotes the etag of the plan shown; if the plan changed in between nothing is approved
(ABORTED / PLAN_CHANGED): look at it again and approve what you then see.

Examples:
  $ aether intent approve 01jc7v0m4k3h2g1f0e9d8c7b6a
  $ aether intent approve 01jc7v0m4k3h2g1f0e9d8c7b6a --step publish --comment "checked the report" --watch`,
    )
    .action(async (intent: string, opts: DecideOpts, cmd: Command) => {
      const name = intentName(intent);
      await withIntents(cmd, name.slice('intents/'.length), (c) => decide(c, name, true, opts));
    });
}

function rejectCommand(): Command {
  return new Command('reject')
    .description('reject the steps of an intent that policy marked "ask"; the intent ends DENIED')
    .argument('<intent>', 'intents/<id> or <id>')
    .option('--step <id>', 'only this step (repeatable; default: every step awaiting approval)', list(String))
    .option(
      '--reason <text>',
      'why (required): recorded in the steps, the intent, its events and the audit log',
    )
    .option('--watch', 'then follow the intent to its end')
    .option('--json', 'print the intent after the rejection as JSON (with --watch: one JSON line per update)')
    .addHelpText(
      'after',
      '\nExample:\n  $ aether intent reject 01jc7v0m4k3h2g1f0e9d8c7b6a --reason "not on the production dataset"',
    )
    .action(async (intent: string, opts: DecideOpts, cmd: Command) => {
      const name = intentName(intent);
      if (!opts.reason?.trim())
        throw new UsageError('--reason <text> is required: say why the steps are rejected');
      await withIntents(cmd, name.slice('intents/'.length), (c) => decide(c, name, false, opts));
    });
}

function cancelCommand(): Command {
  return new Command('cancel')
    .description('cancel an intent: no further step starts and running steps are stopped')
    .argument('<intent>', 'intents/<id> or <id>')
    .option('--reason <text>', 'why: recorded in the events and the audit log')
    .option('--json', 'print the intent as JSON')
    .addHelpText(
      'after',
      '\nExample:\n  $ aether intent cancel 01jc7v0m4k3h2g1f0e9d8c7b6a --reason "wrong dataset"',
    )
    .action(async (intent: string, opts: { reason?: string; json?: boolean }, cmd: Command) => {
      const name = intentName(intent);
      await withIntents(cmd, name.slice('intents/'.length), async (c) => {
        const res = await c.call(
          c.intents,
          'cancelIntent',
          intentsV1.CancelIntentRequest.fromPartial({ name, reason: opts.reason ?? '' }),
        );
        const i = res.intent!;
        if (opts.json) printJson(intentJson(i));
        else if (i.state === IntentState.INTENT_STATE_CANCELLED)
          process.stdout.write(`cancelled ${i.name}\n`);
        else if (isTerminalIntentState(i.state))
          process.stdout.write(`${i.name} had already ended (${intentStateName(i.state)})\n`);
        else
          process.stdout.write(
            `cancelling ${i.name}: stopping its running steps (now ${intentStateName(i.state)})\n`,
          );
      });
    });
}

export function intentCommand(): Command {
  const cmd = withAetherErrors(new Command('intent'))
    .description('ask aurorad to plan and carry out a goal, each step checked against policy')
    .usage('[options] <text...> | <command> [options]')
    .showHelpAfterError('(add --help for usage and examples)')
    .addHelpText(
      'after',
      `
"aether intent <text>" is "aether intent submit <text>"; use submit when the text starts with a
command's name. Quote the text (or put it after --) so that its words are not read as options.
Intents are named intents/<id>; every command takes the name or the bare id. See
"aether intent submit --help" for the options of a submission (--goal, --dry-run, --watch, budgets).

Examples:
  $ aether intent "run python3 -c 'print(42)'" --watch
  $ aether intent --dry-run --goal train-and-report --param dataset=artifacts/01jc… --param epochs=3
  $ aether intent approve 01jc7v0m4k3h2g1f0e9d8c7b6a --watch
  $ aether intent ls --state awaiting_approval`,
    );
  cmd.addCommand(
    withAetherErrors(submitCommand().showHelpAfterError('(add --help for usage and examples)')),
    {
      isDefault: true,
    },
  );
  for (const sub of [
    getCommand(),
    lsCommand(),
    watchCommand(),
    approveCommand(),
    rejectCommand(),
    cancelCommand(),
  ])
    cmd.addCommand(withAetherErrors(sub.showHelpAfterError('(add --help for usage and examples)')));
  return cmd;
}
