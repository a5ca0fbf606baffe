import { once } from 'node:events';
import { Command } from 'commander';
import { type AetherClient, RpcError, serverStreamCall } from '@aether/client';
import { durationFromMs, jobsV1, msFromDuration } from '@aether/proto';
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
import { errorText, withAetherErrors } from '../errors';
import {
  exitCodeOf,
  idOf,
  isTerminal,
  jobDetail,
  jobName,
  jobSummary,
  listRow,
  parseStates,
  signalNumber,
  stateName,
} from '../jobs-format';
import { table } from '../output';
import {
  formatDuration,
  parseBytes,
  parseCount,
  parseCpu,
  parseDuration,
  parseMount,
  UsageError,
} from '../units';

const { JobState, LogStream } = jobsV1;

/** Exit status of `aether jobs wait` when its --timeout passes before the job ends (as timeout(1)). */
const EX_WAIT_TIMEOUT = 124;
/** One WaitJob call waits at most this long; the CLI asks again until the job ends. */
const WAIT_SLICE_MS = 60_000;

/** `--output report.json:report` → an OutputSpec (type in upper case as the API spells it). */
function parseOutput(v: string): jobsV1.OutputSpec {
  const m = /^(.*?)(?::(dataset|checkpoint|model|report|log|other))?(\?)?$/i.exec(v);
  const path = m?.[1] ?? '';
  if (path === '' || path.startsWith('/') || path.split('/').includes('..'))
    throw new UsageError(
      `--output "${v}" must be a path relative to /work/outputs, optionally :TYPE (e.g. model.onnx:model)`,
    );
  return jobsV1.OutputSpec.fromPartial({
    path,
    artifactType: (m?.[2] ?? '').toUpperCase(),
    optional: m?.[3] === '?',
  });
}

function parseNetwork(v: string): jobsV1.NetworkMode {
  if (v === 'none') return jobsV1.NetworkMode.NETWORK_MODE_NONE;
  if (v === 'host') return jobsV1.NetworkMode.NETWORK_MODE_HOST;
  throw new UsageError(`network "${v}" must be none or host`);
}

function parseSignal(v: string): string {
  if (signalNumber(v) === undefined)
    throw new UsageError(`"${v}" is not a signal name; use e.g. TERM, SIGINT, HUP, USR1`);
  return v.toUpperCase().startsWith('SIG') ? v.toUpperCase() : `SIG${v.toUpperCase()}`;
}

const jobJson = (job: jobsV1.Job): unknown => jobsV1.Job.toJSON(job);

/**
 * Waits (WaitJob, asked again every minute) until the job ends or `timeoutMs` passes; returns the job
 * as it then is and whether it ended.
 */
async function waitForEnd(
  c: AetherClient,
  name: string,
  timeoutMs?: number,
): Promise<{ job: jobsV1.Job; terminal: boolean }> {
  const deadline = timeoutMs === undefined ? undefined : Date.now() + timeoutMs;
  for (;;) {
    const slice = Math.max(
      1,
      Math.min(WAIT_SLICE_MS, deadline === undefined ? WAIT_SLICE_MS : deadline - Date.now()),
    );
    const res = await c.call(
      c.jobs,
      'waitJob',
      jobsV1.WaitJobRequest.fromPartial({ name, waitTimeout: durationFromMs(slice) }),
      { timeoutMs: slice + 15_000 },
    );
    if (res.terminal || (deadline !== undefined && Date.now() >= deadline))
      return { job: res.job!, terminal: res.terminal };
  }
}

/**
 * Copies the job's log to our stdout and stderr, raw, each chunk to the stream it came from; notes
 * bytes lost to rotation on stderr. While following, a dropped connection (aetherd restarting) is
 * retried from the next offset for up to 30 s.
 */
async function copyLogs(c: AetherClient, request: jobsV1.StreamJobLogsRequest): Promise<void> {
  let req = request;
  let retryUntil: number | undefined;
  for (;;) {
    try {
      for await (const m of serverStreamCall(c.jobs.streamJobLogs.bind(c.jobs), req)) {
        retryUntil = undefined;
        if (m.skippedBytes > 0n)
          process.stderr.write(
            `aether: note: ${m.skippedBytes} bytes of the log were rotated away before they could be read\n`,
          );
        if (m.data.length > 0) {
          const out = m.stream === LogStream.LOG_STREAM_STDERR ? process.stderr : process.stdout;
          if (!out.write(m.data)) await once(out, 'drain');
          req = { ...req, start: { $case: 'offset', value: m.offset + BigInt(m.data.length) } };
        }
      }
      return;
    } catch (err) {
      const retryable = req.follow && err instanceof RpcError && err.codeName === 'UNAVAILABLE';
      if (!retryable) throw err;
      if (retryUntil === undefined) {
        retryUntil = Date.now() + 30_000;
        process.stderr.write(`aether: note: lost the log stream (${errorText(err)}); reconnecting\n`);
      } else if (Date.now() > retryUntil) throw err;
      await new Promise((r) => setTimeout(r, 1_000));
    }
  }
}

/** Ctrl-C while attached to a job: leave it running, say how to get back to it, exit 130. */
function detachFromJob(name: string): () => void {
  const id = name.replace(/^jobs\//, '');
  return detachOnInterrupt(
    `\naether: detached from ${name}; it keeps running.\n` +
      `  follow it again:  aether jobs logs -f ${id}\n` +
      `  wait for the end: aether jobs wait ${id}\n` +
      `  stop it:          aether jobs stop ${id}\n`,
  );
}

/** After the job ended: a note on stderr when it did not succeed, and the shell-style exit status. */
function finish(job: jobsV1.Job, note: boolean): void {
  if (note && job.state !== JobState.JOB_STATE_SUCCEEDED) {
    const why = job.failureReason ? `: ${job.failureReason}` : '';
    process.stderr.write(`aether: ${job.name} ended ${stateName(job.state)}${why}\n`);
  }
  process.exitCode = exitCodeOf(job);
}

interface RunOpts {
  cpu?: number;
  memory?: bigint;
  pids?: number;
  net?: jobsV1.NetworkMode;
  timeout?: number;
  grace?: number;
  stopSignal?: string;
  env?: Record<string, string>;
  cwd?: string;
  label?: Record<string, string>;
  mount?: ReturnType<typeof parseMount>[];
  output?: jobsV1.OutputSpec[];
  input?: string[];
  profile?: string;
  intent?: string;
  idempotencyKey?: string;
  wait?: boolean;
  follow?: boolean;
  json?: boolean;
}

function runCommand(): Command {
  return new Command('run')
    .description('run a command in a sandbox on aetherd; prints the job name unless --wait or --follow')
    .argument('<argv...>', 'the command and its arguments, after -- (no shell: use /bin/sh -c … for one)')
    .option('--cpu <cpu>', 'CPU limit: 500m (millicores) or 1.5 (cores)', arg(parseCpu))
    .option(
      '--memory <size>',
      'memory limit: 512Mi, 1.5Gi, 1G, or bytes',
      arg((v) => parseBytes(v, 'memory')),
    )
    .option(
      '--pids <n>',
      'most processes and threads',
      arg((v) => parseCount(v, 'pids')),
    )
    .option('--net <mode>', 'network: none (loopback only, default) or host', arg(parseNetwork))
    .option(
      '--timeout <duration>',
      'longest run time, e.g. 90s, 10m, 1h30m',
      arg((v) => parseDuration(v, 'timeout')),
    )
    .option(
      '--grace <duration>',
      'time between the stop signal and SIGKILL (default 10s)',
      arg((v) => parseDuration(v, 'grace')),
    )
    .option(
      '--stop-signal <signal>',
      'signal a stop or the timeout sends first (default TERM)',
      arg(parseSignal),
    )
    .option(
      '--env <KEY=VALUE>',
      'environment variable; a bare KEY passes ours on (repeatable)',
      collectPairs('env', true),
    )
    .option('--cwd <dir>', 'working directory, under /work (default /work)')
    .option('--label <key=value>', 'label for selecting jobs later (repeatable)', collectPairs('label'))
    .option(
      '--mount <HOST:CONTAINER[:rw]>',
      'bind mount from the allowlist, read-only unless :rw (repeatable)',
      list(parseMount),
    )
    .option(
      '--output <PATH[:TYPE]>',
      'register this file (or glob) under /work/outputs as an artifact when the job succeeds; TYPE: dataset, checkpoint, model, report, log, other; a trailing ? makes it optional (repeatable)',
      list(parseOutput),
    )
    .option(
      '--input <artifact>',
      'bind an artifact read-only at /work/inputs/<id>; recorded as the outputs’ lineage (repeatable)',
      list((v) => (v.startsWith('artifacts/') ? v : `artifacts/${v}`)),
    )
    .option('--profile <name>', 'sandbox profile from the aetherd configuration (default: default)')
    .option('--intent <id>', 'the intent this job serves')
    .option('--idempotency-key <key>', 'submitting again with the same key returns the same job')
    .option('--wait', 'wait for the end, print a summary, exit with the job’s exit status')
    .option('-f, --follow', 'stream the output until the end, exit with the job’s exit status')
    .option('--json', 'print the job as JSON (with --wait: the finished job)')
    .addHelpText(
      'after',
      `
Without --wait or --follow the job's name is printed on stdout and aether exits 0 at once.
With either, aether exits as the job did: its exit code, 128+N when signal N killed it, 1 when it
did not succeed otherwise (never started, stopped, lost, cancelled). Ctrl-C detaches: the job keeps
running (aether jobs stop ends it).

Units: --cpu 500m | 1.5; --memory 512Mi | 2Gi | 1G | 1073741824; durations 90s | 10m | 1h30m | 250ms.

Examples:
  $ aether jobs run -- /bin/echo hello
  $ aether jobs run --follow --cpu 500m --memory 512Mi -- python3 train.py --epochs 3
  $ aether jobs run --wait --timeout 10m -- /bin/sh -c 'make test'
  $ aether jobs run --env DEBUG=1 --label team=ml --mount /data/set:/work/data -- ./process.sh
  $ aether jobs run --wait --input <artifact id> --output 'model.onnx:model' -- ./train.sh
  $ id=$(aether jobs run -- /bin/sleep 600) && aether jobs stop "$id"`,
    )
    .action(async (argv: string[], opts: RunOpts, cmd: Command) => {
      if (opts.json && opts.follow)
        throw new UsageError('--json and --follow do not mix (the output goes to stdout); use --wait --json');
      if (opts.cwd !== undefined && !opts.cwd.startsWith('/'))
        throw new UsageError(`--cwd must be an absolute path under /work, got "${opts.cwd}"`);
      const spec = jobsV1.JobSpec.fromPartial({
        argv,
        env: opts.env ?? {},
        cwd: opts.cwd ?? '',
        resources: {
          cpuMillicores: opts.cpu ?? 0,
          memoryBytes: opts.memory ?? 0n,
          pidsMax: opts.pids ?? 0,
        },
        network: opts.net ?? jobsV1.NetworkMode.NETWORK_MODE_UNSPECIFIED,
        mounts: opts.mount ?? [],
        outputs: opts.output ?? [],
        inputArtifacts: opts.input ?? [],
        timeout: opts.timeout === undefined ? undefined : durationFromMs(opts.timeout),
        stopSignal: opts.stopSignal ?? '',
        stopGracePeriod: opts.grace === undefined ? undefined : durationFromMs(opts.grace),
        labels: opts.label ?? {},
        intentId: opts.intent ?? '',
        sandboxProfile: opts.profile ?? '',
      });
      await withClient(cmd, async (c) => {
        const res = await c.call(
          c.jobs,
          'submitJob',
          jobsV1.SubmitJobRequest.fromPartial({ spec, idempotencyKey: opts.idempotencyKey ?? '' }),
        );
        const job = res.job!;
        if (!opts.wait && !opts.follow) {
          if (opts.json) printJson(jobJson(job));
          else {
            process.stdout.write(`${job.name}\n`);
            process.stderr.write(
              `${stateName(job.state)}; follow it with: aether jobs logs -f ${idOf(job)}\n`,
            );
          }
          return;
        }
        const attached = detachFromJob(job.name);
        try {
          if (opts.follow) {
            exitOnClosedPipe();
            await copyLogs(c, jobsV1.StreamJobLogsRequest.fromPartial({ name: job.name, follow: true }));
          }
          const { job: ended } = await waitForEnd(c, job.name);
          if (opts.json) printJson(jobJson(ended));
          else if (opts.wait) process.stdout.write(jobSummary(ended));
          finish(ended, !opts.json && !opts.wait);
        } finally {
          attached();
        }
      });
    });
}

function lsCommand(): Command {
  return new Command('ls')
    .alias('list')
    .description('list jobs, newest first')
    .option('--state <states>', 'only these states, comma-separated: running,failed,…', arg(parseStates))
    .option('--label <selector>', 'label selector: team=ml,env!=prod,gpu,!draft')
    .option('--intent <id>', 'only jobs of this intent')
    .option(
      '--limit <n>',
      'jobs per page (at most 1000)',
      arg((v) => parseCount(v, 'limit', 1, 1000)),
      50,
    )
    .option('--all-pages', 'keep fetching pages until every matching job is listed')
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      `
Columns: ID, STATE, AGE (since it was submitted), DURATION (run time so far), EXIT (code or signal),
COMMAND.

Examples:
  $ aether jobs ls
  $ aether jobs ls --state running,pending
  $ aether jobs ls --label team=ml --all-pages --json`,
    )
    .action(
      async (
        opts: {
          state?: jobsV1.JobState[];
          label?: string;
          intent?: string;
          limit: number;
          allPages?: boolean;
          json?: boolean;
        },
        cmd: Command,
      ) => {
        await withClient(cmd, async (c) => {
          const { items: jobs, nextPageToken: more } = await collectPages(
            opts.allPages,
            async (pageToken) => {
              const res = await c.call(
                c.jobs,
                'listJobs',
                jobsV1.ListJobsRequest.fromPartial({
                  pageSize: opts.limit,
                  pageToken,
                  states: opts.state ?? [],
                  labelSelector: opts.label ?? '',
                  intentId: opts.intent ?? '',
                }),
              );
              return { items: res.jobs, nextPageToken: res.nextPageToken };
            },
          );
          if (opts.json) printJson(jobs.map(jobJson));
          else {
            const now = Date.now();
            process.stdout.write(
              table(
                ['ID', 'STATE', 'AGE', 'DURATION', 'EXIT', 'COMMAND'],
                jobs.map((j) => listRow(j, now)),
              ),
            );
          }
          if (more && !opts.json)
            process.stderr.write(
              `more jobs match: --limit ${opts.limit} per page; add --all-pages for all\n`,
            );
        });
      },
    );
}

function getCommand(): Command {
  return new Command('get')
    .description('show one job: state, actor, times, exit, usage, limits and its events')
    .argument('<job>', 'jobs/<id> or <id>')
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      `
Examples:
  $ aether jobs get 01jc7v0m4k3h2g1f0e9d8c7b6a
  $ aether jobs get jobs/01jc7v0m4k3h2g1f0e9d8c7b6a --json | jq .exitStatus`,
    )
    .action(async (job: string, opts: { json?: boolean }, cmd: Command) => {
      const name = jobName(job);
      await withClient(cmd, async (c) => {
        const res = await c.call(c.jobs, 'getJob', jobsV1.GetJobRequest.fromPartial({ name }));
        if (opts.json) printJson(jobJson(res.job!));
        else process.stdout.write(jobDetail(res.job!));
      });
    });
}

function logsCommand(): Command {
  return new Command('logs')
    .description("print a job's output: its stdout to stdout, its stderr to stderr, byte for byte")
    .argument('<job>', 'jobs/<id> or <id>')
    .option('-f, --follow', 'keep printing new output until the job ends')
    .option(
      '--tail <n>',
      'start at the last N lines',
      arg((v) => parseCount(v, 'tail', 1, 100_000)),
    )
    .option(
      '--from <offset>',
      'start at this byte offset of the combined log',
      arg((v) => BigInt(parseCount(v, 'from', 0, Number.MAX_SAFE_INTEGER))),
    )
    .option('--stdout', 'only the standard output')
    .option('--stderr', 'only the standard error')
    .addHelpText(
      'after',
      `
Offsets count bytes of stdout and stderr together, in the order they were written; resume an
interrupted read with --from <bytes already read>. When old output was rotated away a note on
stderr says how many bytes were skipped.

Examples:
  $ aether jobs logs 01jc7v0m4k3h2g1f0e9d8c7b6a
  $ aether jobs logs -f --tail 20 01jc7v0m4k3h2g1f0e9d8c7b6a
  $ aether jobs logs --stderr 01jc7v0m4k3h2g1f0e9d8c7b6a 2>errors.txt`,
    )
    .action(
      async (
        job: string,
        opts: { follow?: boolean; tail?: number; from?: bigint; stdout?: boolean; stderr?: boolean },
        cmd: Command,
      ) => {
        const name = jobName(job);
        if (opts.tail !== undefined && opts.from !== undefined)
          throw new UsageError('--tail and --from do not mix: choose where to start');
        const stream =
          opts.stdout && !opts.stderr
            ? LogStream.LOG_STREAM_STDOUT
            : opts.stderr && !opts.stdout
              ? LogStream.LOG_STREAM_STDERR
              : LogStream.LOG_STREAM_UNSPECIFIED;
        exitOnClosedPipe();
        await withClient(cmd, (c) =>
          copyLogs(
            c,
            jobsV1.StreamJobLogsRequest.fromPartial({
              name,
              stream,
              follow: opts.follow ?? false,
              start:
                opts.tail !== undefined
                  ? { $case: 'tailLines', value: opts.tail }
                  : opts.from !== undefined
                    ? { $case: 'offset', value: opts.from }
                    : undefined,
            }),
          ),
        );
      },
    );
}

function waitCommand(): Command {
  return new Command('wait')
    .description('wait until a job ends, print a summary, exit with its exit status')
    .argument('<job>', 'jobs/<id> or <id>')
    .option(
      '--timeout <duration>',
      'give up after this long (exit 124), e.g. 5m',
      arg((v) => parseDuration(v, 'timeout')),
    )
    .option('--json', 'print the job as JSON')
    .addHelpText(
      'after',
      `
Exit status: the job's exit code, 128+N when signal N killed it, 1 when it did not succeed otherwise,
124 when --timeout passed first. Ctrl-C stops waiting, not the job.

Examples:
  $ aether jobs wait 01jc7v0m4k3h2g1f0e9d8c7b6a
  $ aether jobs wait --timeout 5m 01jc7v0m4k3h2g1f0e9d8c7b6a || echo "failed: $?"`,
    )
    .action(async (job: string, opts: { timeout?: number; json?: boolean }, cmd: Command) => {
      const name = jobName(job);
      await withClient(cmd, async (c) => {
        const detach = detachFromJob(name);
        try {
          const { job: j, terminal } = await waitForEnd(c, name, opts.timeout);
          if (opts.json) printJson(jobJson(j));
          if (!terminal) {
            process.stderr.write(
              `aether: ${name} is still ${stateName(j.state)} after ${formatDuration(opts.timeout ?? 0)}\n`,
            );
            process.exitCode = EX_WAIT_TIMEOUT;
            return;
          }
          if (!opts.json) process.stdout.write(jobSummary(j));
          finish(j, false);
        } finally {
          detach();
        }
      });
    });
}

/** Prints what a control RPC did to the job. */
function reportControl(job: jobsV1.Job, json: boolean | undefined, did: string): void {
  if (json) printJson(jobJson(job));
  else process.stdout.write(`${did} ${job.name} (now ${stateName(job.state)})\n`);
}

function stopCommand(): Command {
  return new Command('stop')
    .description('stop a job: its stop signal (default SIGTERM), then SIGKILL after the grace period')
    .argument('<job>', 'jobs/<id> or <id>')
    .option(
      '--grace <duration>',
      "time before SIGKILL, e.g. 5s (default: the job's own, 10s unless set)",
      arg((v) => parseDuration(v, 'grace')),
    )
    .option('--json', 'print the job as JSON')
    .addHelpText(
      'after',
      `
Returns once the stop has begun; the job ends STOPPED if it exits within the grace period, KILLED
otherwise. A queued job is cancelled; an ended one is left as it is.

Examples:
  $ aether jobs stop 01jc7v0m4k3h2g1f0e9d8c7b6a
  $ aether jobs stop --grace 1s 01jc7v0m4k3h2g1f0e9d8c7b6a && aether jobs wait 01jc7v0m4k3h2g1f0e9d8c7b6a`,
    )
    .action(async (job: string, opts: { grace?: number; json?: boolean }, cmd: Command) => {
      const name = jobName(job);
      await withClient(cmd, async (c) => {
        const res = await c.call(
          c.jobs,
          'stopJob',
          jobsV1.StopJobRequest.fromPartial({
            name,
            gracePeriod: opts.grace === undefined ? undefined : durationFromMs(opts.grace),
          }),
        );
        const j = res.job!;
        if (opts.json) printJson(jobJson(j));
        else if (isTerminal(j.state)) process.stdout.write(`${j.name} has ended (${stateName(j.state)})\n`);
        else {
          const grace =
            opts.grace ?? (j.spec?.stopGracePeriod ? msFromDuration(j.spec.stopGracePeriod) : 10_000);
          process.stdout.write(
            `stopping ${j.name}: ${j.spec?.stopSignal || 'SIGTERM'} sent, SIGKILL after ${formatDuration(grace)}\n`,
          );
        }
      });
    });
}

function killCommand(): Command {
  return new Command('kill')
    .description('kill every process of a job with SIGKILL now (it ends KILLED)')
    .argument('<job>', 'jobs/<id> or <id>')
    .option('--json', 'print the job as JSON')
    .addHelpText('after', '\nExample:\n  $ aether jobs kill 01jc7v0m4k3h2g1f0e9d8c7b6a')
    .action(async (job: string, opts: { json?: boolean }, cmd: Command) => {
      const name = jobName(job);
      await withClient(cmd, async (c) => {
        const res = await c.call(c.jobs, 'killJob', jobsV1.KillJobRequest.fromPartial({ name }));
        reportControl(res.job!, opts.json, 'killed');
      });
    });
}

function signalCommand(): Command {
  return new Command('signal')
    .description("send a signal to a running job's main process (or all of its processes)")
    .argument('<job>', 'jobs/<id> or <id>')
    .argument('<signal>', 'signal name: HUP, USR1, SIGINT, …', arg(parseSignal))
    .option('--all', 'send it to every process of the job')
    .option('--json', 'print the job as JSON')
    .addHelpText(
      'after',
      `
Examples:
  $ aether jobs signal 01jc7v0m4k3h2g1f0e9d8c7b6a HUP
  $ aether jobs signal --all 01jc7v0m4k3h2g1f0e9d8c7b6a SIGUSR1`,
    )
    .action(async (job: string, signal: string, opts: { all?: boolean; json?: boolean }, cmd: Command) => {
      const name = jobName(job);
      await withClient(cmd, async (c) => {
        const res = await c.call(
          c.jobs,
          'signalJob',
          jobsV1.SignalJobRequest.fromPartial({ name, signal, allProcesses: opts.all ?? false }),
        );
        reportControl(
          res.job!,
          opts.json,
          `sent ${signal} to ${opts.all ? 'every process of' : ''}`.trimEnd(),
        );
      });
    });
}

function cancelCommand(): Command {
  return new Command('cancel')
    .description('cancel a queued (PENDING) job so that it never starts')
    .argument('<job>', 'jobs/<id> or <id>')
    .option('--json', 'print the job as JSON')
    .addHelpText(
      'after',
      '\nA job that has started is stopped with `aether jobs stop` instead.\n\nExample:\n  $ aether jobs cancel 01jc7v0m4k3h2g1f0e9d8c7b6a',
    )
    .action(async (job: string, opts: { json?: boolean }, cmd: Command) => {
      const name = jobName(job);
      await withClient(cmd, async (c) => {
        const res = await c.call(c.jobs, 'cancelJob', jobsV1.CancelJobRequest.fromPartial({ name }));
        reportControl(res.job!, opts.json, 'cancelled');
      });
    });
}

function rmCommand(): Command {
  return new Command('rm')
    .description('delete ended jobs: record, events, log and working directory')
    .argument('<jobs...>', 'jobs/<id> or <id>, one or more')
    .option('-f, --force', 'kill (or cancel) a job that has not ended first')
    .addHelpText(
      'after',
      `
Artifacts registered from a job's outputs are kept. Each job is deleted on its own: a failure is
reported and the rest still go (exit 1 if any failed).

Examples:
  $ aether jobs rm 01jc7v0m4k3h2g1f0e9d8c7b6a
  $ aether jobs rm -f $(aether jobs ls --state running --json | jq -r '.[].id')`,
    )
    .action(async (jobs: string[], opts: { force?: boolean }, cmd: Command) => {
      const names = jobs.map(jobName);
      await withClient(cmd, async (c) => {
        for (const name of names) {
          try {
            if (opts.force) {
              const killed = await c.call(c.jobs, 'killJob', jobsV1.KillJobRequest.fromPartial({ name }));
              if (!isTerminal(killed.job!.state)) await waitForEnd(c, name, 60_000);
            }
            await c.call(c.jobs, 'deleteJob', jobsV1.DeleteJobRequest.fromPartial({ name }));
            process.stdout.write(`deleted ${name}\n`);
          } catch (err) {
            process.stderr.write(`aether: ${name}: ${errorText(err)}\n`);
            process.exitCode = 1;
          }
        }
      });
    });
}

export function jobsCommand(): Command {
  const jobs = withAetherErrors(new Command('jobs'))
    .description('run commands in sandboxes on aetherd and observe and control them')
    .showHelpAfterError('(add --help for usage and examples)')
    .addHelpText(
      'after',
      `
A job is named jobs/<id>; every command takes the name or the bare id.

Examples:
  $ aether jobs run --follow -- /bin/echo hello
  $ aether jobs ls --state running
  $ aether jobs logs -f <id>
  $ aether jobs stop <id>`,
    );
  for (const sub of [
    runCommand(),
    lsCommand(),
    getCommand(),
    logsCommand(),
    waitCommand(),
    stopCommand(),
    killCommand(),
    signalCommand(),
    cancelCommand(),
    rmCommand(),
  ])
    jobs.addCommand(
      withAetherErrors(
        sub.showHelpAfterError(
          sub.name() === 'run'
            ? '(the command goes after --: aether jobs run [options] -- ARGV…; add --help for examples)'
            : '(add --help for usage and examples)',
        ),
      ),
    );
  return jobs;
}
