import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { Command } from 'commander';
import { type AetherClient, RpcError, serverStreamCall } from '@aether/client';
import { durationFromMs, modelsV1 } from '@aether/proto';
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
import { formatDuration, parseCount, parseCpu, parseDuration, UsageError } from '../units';
import { apiErrorNotes, artifactName } from './models-format';
import {
  EX_RUN_FAILED,
  EX_RUN_STOPPED,
  exitCodeOfRun,
  hparamsFromJson,
  isTerminalRunState,
  mergeHparams,
  parseHparam,
  parseMemory,
  parseRunStates,
  runDetail,
  runIdOf,
  runListTable,
  runStateName,
  templateName,
  templatesTable,
  trainingRunName,
  TrainingWatchView,
} from './train-format';

const { TrainingRunState } = modelsV1;

/** How long a watch keeps trying to get its stream back while cfcd is unreachable (restarting). */
const RECONNECT_FOR_MS = 30_000;

const runJson = (r: modelsV1.TrainingRun): unknown => modelsV1.TrainingRun.toJSON(r);

/**
 * Runs `fn` with a client. An API error is printed as every command prints it (`aether: CODE: message
 * [REASON]`), then what the API adds (field, artifact, policies, a remedy); the exit status is then 1.
 */
async function withTraining(cmd: Command, fn: (c: AetherClient) => Promise<void>): Promise<void> {
  try {
    await withClient(cmd, fn);
  } catch (err) {
    if (!(err instanceof RpcError)) throw err;
    const notes = apiErrorNotes(err);
    process.stderr.write(`aether: ${errorText(err)}\n${notes.map((n) => `  ${n}\n`).join('')}`);
    process.exitCode = exitCodeForError(err);
  }
}

/**
 * Follows a run with WatchTrainingRun (every point recorded so far, then live ones) until it ends, and
 * returns it as it ended. Human output: the run's head, a line per state change, and on a terminal the
 * loss as a sparkline redrawn in place (elsewhere a line per point); at the end the result, a metrics
 * summary and what the run produced or why it failed. `--json`: each update as one line of proto3 JSON.
 * A stream lost while cfcd restarts is taken up again for up to 30 s from the last step seen. Sets the
 * exit status: 0 SUCCEEDED, 1 FAILED, 2 STOPPED.
 */
async function follow(c: AetherClient, name: string, json: boolean): Promise<modelsV1.TrainingRun> {
  exitOnClosedPipe();
  const view = new TrainingWatchView();
  // On a terminal: the lines a watch prints, under one line redrawn in place with the loss sparkline (at
  // most ten redraws a second, however fast the points come: a replay brings thousands at once).
  const live =
    !json && process.stdout.isTTY ? statusLine(process.stdout, (w) => view.liveLine(w)) : undefined;
  const id = name.replace(/^trainingRuns\//, '');
  const detach = detachOnInterrupt(
    `\naether: stopped watching ${name}; it keeps running.\n` +
      `  watch it again: aether train watch ${id}\n` +
      `  stop it:        aether train stop ${id}\n`,
    () => live?.stop(),
  );
  const watch = c.models.watchTrainingRun.bind(c.models);
  let retryUntil: number | undefined;
  try {
    for (;;) {
      let lost: unknown;
      try {
        const request = modelsV1.WatchTrainingRunRequest.fromPartial({
          name,
          replayAfterStep: view.lastStep,
        });
        for await (const m of serverStreamCall(watch, request)) {
          retryUntil = undefined;
          if (json) {
            view.update(m, false);
            process.stdout.write(`${JSON.stringify(modelsV1.WatchTrainingRunResponse.toJSON(m))}\n`);
          } else if (live) {
            live.print(view.update(m, false));
            live.changed();
          } else process.stdout.write(view.update(m, true));
        }
        if (view.run && isTerminalRunState(view.run.state)) break;
        lost = new Error('cfcd ended the stream before the run ended');
      } catch (err) {
        // Only a watch that was under way is taken up again: a cfcd that never answered is an error.
        if (!(err instanceof RpcError) || err.codeName !== 'UNAVAILABLE' || view.run === undefined) throw err;
        lost = err;
      }
      if (retryUntil === undefined) {
        retryUntil = Date.now() + RECONNECT_FOR_MS;
        const note = `aether: note: lost the watch (${errorText(lost)}); reconnecting\n`;
        if (live) live.note(note);
        else process.stderr.write(note);
      } else if (Date.now() > retryUntil) throw lost;
      await sleep(1_000);
    }
  } finally {
    live?.stop();
    detach();
  }
  const ended = view.run;
  if (json) {
    if (ended.state !== TrainingRunState.TRAINING_RUN_STATE_SUCCEEDED)
      process.stderr.write(
        `aether: ${ended.name} ended ${runStateName(ended.state)}${ended.failureReason ? `: ${ended.failureReason}` : ''}\n`,
      );
  } else process.stdout.write(view.finish(ended));
  process.exitCode = exitCodeOfRun(ended);
  return ended;
}

function templatesCommand(): Command {
  return new Command('templates')
    .description('list the training templates cfcd is configured with')
    .option('--wide', 'also show the command line each template runs')
    .option(
      '--page-size <n>',
      'templates per page (at most 1000)',
      arg((v) => parseCount(v, 'page-size', 1, 1000)),
      50,
    )
    .option('--page-token <token>', 'start at this page (the token a previous call printed)')
    .option('--all-pages', 'keep fetching pages until every template is listed')
    .option('--json', 'print JSON (with the hyperparameters schema and the command line)')
    .addHelpText(
      'after',
      `
Columns: NAME (what aether train start takes), DESCRIPTION, DEFAULTS (resources when none are
asked for), HYPERPARAMETERS (those the template's schema names), COMMAND (with --wide).

Examples:
  $ aether train templates
  $ aether train templates --json | jq '.[] | {name, hyperparametersSchema}'`,
    )
    .action(
      async (
        opts: { wide?: boolean; pageSize: number; pageToken?: string; allPages?: boolean; json?: boolean },
        cmd: Command,
      ) => {
        await withTraining(cmd, async (c) => {
          const { items, nextPageToken: more } = await collectPages(opts.allPages, async (token) => {
            const res = await c.call(
              c.models,
              'listTrainingTemplates',
              modelsV1.ListTrainingTemplatesRequest.fromPartial({
                pageSize: opts.pageSize,
                pageToken: token || (opts.pageToken ?? ''),
              }),
            );
            return { items: res.templates, nextPageToken: res.nextPageToken };
          });
          if (opts.json) printJson(items.map((t) => modelsV1.TrainingTemplate.toJSON(t)));
          else process.stdout.write(templatesTable(items, opts.wide));
          if (more && !opts.json)
            process.stderr.write(
              `more templates: add --page-token ${more} for the next page, or --all-pages\n`,
            );
        });
      },
    );
}

interface StartOpts {
  dataset: string[];
  hparam?: [string, unknown][];
  hparamsFile?: string;
  cpu?: number;
  memory?: bigint;
  gpus?: number;
  pids?: number;
  timeout?: number;
  registerModel?: boolean;
  label?: Record<string, string>;
  name?: string;
  idempotencyKey?: string;
  watch?: boolean;
  json?: boolean;
}

/** The StartTraining request of `aether train start`'s template and options. */
export function startRequest(
  template: string,
  opts: StartOpts,
  readFile = (f: string) => readFileSync(f, 'utf8'),
): modelsV1.StartTrainingRequest {
  let fromFile: Record<string, unknown> | undefined;
  if (opts.hparamsFile !== undefined) {
    let text: string;
    try {
      text = readFile(opts.hparamsFile);
    } catch (err) {
      throw new UsageError(
        `cannot read --hparams-file ${opts.hparamsFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      );
    }
    fromFile = hparamsFromJson(text, opts.hparamsFile);
  }
  const hyperparameters = mergeHparams(fromFile, opts.hparam);
  const limited = [opts.cpu, opts.memory, opts.gpus, opts.pids, opts.timeout].some((v) => v !== undefined);
  return modelsV1.StartTrainingRequest.fromPartial({
    spec: {
      template: templateName(template),
      datasets: opts.dataset,
      hyperparameters: Object.keys(hyperparameters).length > 0 ? hyperparameters : undefined,
      resources: limited
        ? {
            cpuMillicores: opts.cpu ?? 0,
            memoryBytes: opts.memory ?? 0n,
            gpuCount: opts.gpus ?? 0,
            pidsMax: opts.pids ?? 0,
            timeout: opts.timeout === undefined ? undefined : durationFromMs(opts.timeout),
          }
        : undefined,
      registerModel: opts.registerModel ?? false,
    },
    labels: opts.label ?? {},
    displayName: opts.name ?? '',
    idempotencyKey: opts.idempotencyKey ?? '',
  });
}

function startCommand(): Command {
  return new Command('start')
    .description('start a training run: a template trained on dataset artifacts in a sandboxed job')
    .argument('<template>', 'a configured template (aether train templates), e.g. reference-mlp')
    .requiredOption(
      '--dataset <artifact>',
      'a dataset artifact, artifacts/<id> or <id>, bound read-only at /work/inputs/<id> (required; repeatable)',
      list(artifactName),
    )
    .option(
      '--hparam <key=value>',
      'a hyperparameter; the value is JSON when it parses as JSON (3, 0.01, true, [64,32]), else a string (repeatable; wins over --hparams-file)',
      list(parseHparam),
    )
    .option('--hparams-file <file.json>', 'hyperparameters from a JSON object')
    .option(
      '--cpu <cpu>',
      'CPU limit: 500m (millicores) or 2 (cores) (default: the template’s)',
      arg(parseCpu),
    )
    .option('--memory <size>', 'memory limit: 512Mi, 1GiB, 2G (default: the template’s)', arg(parseMemory))
    .option(
      '--gpus <n>',
      'NVIDIA GPUs (needs a policy grant)',
      arg((v) => parseCount(v, 'gpus', 0, 64)),
    )
    .option(
      '--pids <n>',
      'most processes and threads',
      arg((v) => parseCount(v, 'pids')),
    )
    .option(
      '--timeout <duration>',
      'longest run time, e.g. 10m, 1h30m (default: the template’s)',
      arg((v) => parseDuration(v, 'timeout')),
    )
    .option('--register-model', 'register the trained model for inference when the run succeeds')
    .option('--label <key=value>', 'label for the run and its job (repeatable)', collectPairs('label'))
    .option('--name <text>', 'a human-readable name for the run')
    .option('--idempotency-key <key>', 'starting again with the same key within 24 h returns the same run')
    .option('--watch', 'follow the run to its end (as aether train watch) and exit with its outcome')
    .option('--json', 'print the run as JSON (with --watch: one JSON line per update)')
    .addHelpText(
      'after',
      `
Without --watch the run's name is printed on stdout and aether exits 0 at once. With --watch it
exits 0 when the run SUCCEEDED, ${EX_RUN_FAILED} when it FAILED and ${EX_RUN_STOPPED} when it was STOPPED; Ctrl-C stops
watching, not the run.

Units: --cpu 500m | 2; --memory 512Mi | 1GiB | 1G; --timeout 90s | 10m | 1h30m.

Examples:
  $ aether train start reference-mlp --dataset 01jc7v0m4k3h2g1f0e9d8c7b6a --watch
  $ aether train start reference-mlp --dataset <id> --hparam epochs=20 --hparam lr=0.005 --register-model
  $ aether train start reference-mlp --dataset <id> --hparams-file hp.json --cpu 2 --memory 1GiB --timeout 10m`,
    )
    .action(async (template: string, opts: StartOpts, cmd: Command) => {
      const request = startRequest(template, opts);
      await withTraining(cmd, async (c) => {
        const res = await c.call(c.models, 'startTraining', request, { timeoutMs: 60_000 });
        const run = res.run!;
        if (opts.watch) {
          await follow(c, run.name, opts.json ?? false);
          return;
        }
        if (opts.json) printJson(runJson(run));
        else {
          process.stdout.write(`${run.name}\n`);
          process.stderr.write(
            `${runStateName(run.state)}; watch it with: aether train watch ${runIdOf(run)}\n`,
          );
        }
      });
    });
}

interface LsOpts {
  state?: modelsV1.TrainingRunState[][];
  template?: string;
  label?: string;
  intent?: string;
  pageSize: number;
  pageToken?: string;
  allPages?: boolean;
  json?: boolean;
}

function lsCommand(): Command {
  return new Command('ls')
    .alias('list')
    .description('list training runs, newest first')
    .option(
      '--state <states>',
      'only these states, comma-separated or repeated: running,failed,…',
      list(parseRunStates),
    )
    .option('--template <name>', 'only runs of this template', arg(templateName))
    .option('-l, --label <selector>', 'label selector: team=ml,env!=prod,gpu,!draft')
    .option('--intent <id>', 'only runs of this intent')
    .option(
      '--page-size <n>',
      'runs per page (at most 1000)',
      arg((v) => parseCount(v, 'page-size', 1, 1000)),
      50,
    )
    .option('--page-token <token>', 'start at this page (the token a previous ls printed)')
    .option('--all-pages', 'keep fetching pages until every matching run is listed')
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      `
Columns: ID, STATE, TEMPLATE, AGE (since it was started), DURATION (training time so far), STEP and
LOSS (the latest point), NAME.

Examples:
  $ aether train ls
  $ aether train ls --state running,pending --template reference-mlp
  $ aether train ls -l team=ml --all-pages --json`,
    )
    .action(async (opts: LsOpts, cmd: Command) => {
      await withTraining(cmd, async (c) => {
        const { items: runs, nextPageToken: more } = await collectPages(opts.allPages, async (token) => {
          const res = await c.call(
            c.models,
            'listTrainingRuns',
            modelsV1.ListTrainingRunsRequest.fromPartial({
              pageSize: opts.pageSize,
              pageToken: token || (opts.pageToken ?? ''),
              states: [...new Set((opts.state ?? []).flat())],
              template: opts.template ?? '',
              labelSelector: opts.label ?? '',
              intentId: opts.intent ?? '',
            }),
          );
          return { items: res.runs, nextPageToken: res.nextPageToken };
        });
        if (opts.json) printJson(runs.map(runJson));
        else process.stdout.write(runListTable(runs));
        if (more && !opts.json)
          process.stderr.write(
            `more runs match: add --page-token ${more} for the next page, or --all-pages\n`,
          );
      });
    });
}

function getCommand(): Command {
  return new Command('get')
    .description('show one training run: state, job, metrics (steps, loss, sparkline), checkpoints, model')
    .argument('<run>', 'trainingRuns/<id> or <id>')
    .option('--json', 'print JSON (with every metric point)')
    .addHelpText(
      'after',
      `
A failed run also shows why and the last lines of the trainer's log.

Examples:
  $ aether train get 01jc7v0m4k3h2g1f0e9d8c7b6a
  $ aether train get trainingRuns/01jc7v0m4k3h2g1f0e9d8c7b6a --json | jq '.metrics[-1]'`,
    )
    .action(async (run: string, opts: { json?: boolean }, cmd: Command) => {
      const name = trainingRunName(run);
      await withTraining(cmd, async (c) => {
        const res = await c.call(
          c.models,
          'getTrainingRun',
          modelsV1.GetTrainingRunRequest.fromPartial({ name }),
        );
        if (opts.json) printJson(runJson(res.run!));
        else process.stdout.write(runDetail(res.run!));
      });
    });
}

function watchCommand(): Command {
  return new Command('watch')
    .description("follow a training run's loss to its end; exits 0 when it succeeded")
    .argument('<run>', 'trainingRuns/<id> or <id>')
    .option('--json', 'one JSON line per update (proto3 JSON of WatchTrainingRunResponse)')
    .addHelpText(
      'after',
      `
Replays the points recorded so far, then follows live ones. On a terminal the loss is drawn as a
sparkline (▁▂▃▄▅▆▇█) redrawn in place, on a log scale when it spans more than two decades; otherwise
one line per point and per state change. At the end: the result, the metrics summary, the model and
checkpoints, or the failure reason and the trainer's last log lines.

Exit status: 0 when the run SUCCEEDED, ${EX_RUN_FAILED} when it FAILED, ${EX_RUN_STOPPED} when it was STOPPED, 130 after
Ctrl-C, which stops watching, not the run.

Examples:
  $ aether train watch 01jc7v0m4k3h2g1f0e9d8c7b6a
  $ aether train watch 01jc7v0m4k3h2g1f0e9d8c7b6a --json | jq -c 'select(.metric) | .metric.loss'`,
    )
    .action(async (run: string, opts: { json?: boolean }, cmd: Command) => {
      const name = trainingRunName(run);
      await withTraining(cmd, async (c) => {
        await follow(c, name, opts.json ?? false);
      });
    });
}

function stopCommand(): Command {
  return new Command('stop')
    .description('stop a training run: its job gets its stop signal, then SIGKILL after the grace period')
    .argument('<run>', 'trainingRuns/<id> or <id>')
    .option(
      '--grace <duration>',
      "time before SIGKILL, e.g. 10s (default: the job's)",
      arg((v) => parseDuration(v, 'grace')),
    )
    .option('--json', 'print the run as JSON')
    .addHelpText(
      'after',
      `
Returns once the stop has begun; the run ends STOPPED. Stopping a run that has ended changes nothing.

Examples:
  $ aether train stop 01jc7v0m4k3h2g1f0e9d8c7b6a
  $ aether train stop --grace 30s 01jc7v0m4k3h2g1f0e9d8c7b6a`,
    )
    .action(async (run: string, opts: { grace?: number; json?: boolean }, cmd: Command) => {
      const name = trainingRunName(run);
      await withTraining(cmd, async (c) => {
        const res = await c.call(
          c.models,
          'stopTrainingRun',
          modelsV1.StopTrainingRunRequest.fromPartial({
            name,
            gracePeriod: opts.grace === undefined ? undefined : durationFromMs(opts.grace),
          }),
        );
        const r = res.run!;
        if (opts.json) printJson(runJson(r));
        else if (isTerminalRunState(r.state))
          process.stdout.write(`${r.name} has ended (${runStateName(r.state)})\n`);
        else
          process.stdout.write(
            `stopping ${r.name}${opts.grace === undefined ? '' : `: SIGKILL after ${formatDuration(opts.grace)}`} (now ${runStateName(r.state)})\n`,
          );
      });
    });
}

export function trainCommand(): Command {
  const cmd = withAetherErrors(new Command('train'))
    .description('train models on cfcd: templates run as sandboxed jobs on dataset artifacts')
    .showHelpAfterError('(add --help for usage and examples)')
    .addHelpText(
      'after',
      `
A run is named trainingRuns/<id>; every command takes the name or the bare id. A run's checkpoints
become artifacts, and with --register-model its model is registered for aether models infer.

Examples:
  $ aether train templates
  $ aether train start reference-mlp --dataset <artifact id> --hparam epochs=5 --register-model --watch
  $ aether train ls --state running
  $ aether train get <id>
  $ aether train stop <id>`,
    );
  for (const sub of [
    templatesCommand(),
    startCommand(),
    lsCommand(),
    getCommand(),
    watchCommand(),
    stopCommand(),
  ])
    cmd.addCommand(withAetherErrors(sub.showHelpAfterError('(add --help for usage and examples)')));
  return cmd;
}
