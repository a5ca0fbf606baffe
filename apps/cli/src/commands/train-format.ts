// Pure helpers of `aether train`: names, parsers of the command line (states, hyperparameters), the
// loss sparkline, and the text views of a training run (detail, ls rows, templates, watch lines).
import { dateFromTimestamp, modelsV1, msFromDuration } from '@aether/proto';
import { fields, table } from '../output';
import {
  formatAge,
  formatBytes,
  formatCpu,
  formatDuration,
  parseBytes,
  parseKeyValue,
  resourceName,
  shellJoin,
  truncate,
  UsageError,
} from '../units';
import { compactJson } from './intent-format';

const { TrainingRunState } = modelsV1;

type Timestamp = modelsV1.TrainingRun['createTime'];

/** Exit status of `aether train watch` (and `start --watch`) when the run ended FAILED. */
export const EX_RUN_FAILED = 1;
/** Exit status of `aether train watch` (and `start --watch`) when the run ended STOPPED. */
export const EX_RUN_STOPPED = 2;

/** A lowercase ULID, the form of every training run id. */
const ULID = /^[0-9a-hjkmnp-tv-z]{26}$/;

/** `trainingRuns/<id>` from either that or a bare id; the id must be a ULID (case does not matter). */
export function trainingRunName(nameOrId: string): string {
  const name = resourceName('trainingRuns', nameOrId.trim(), 'a training run');
  const id = name.slice('trainingRuns/'.length).toLowerCase();
  if (!ULID.test(id))
    throw new UsageError(
      `"${nameOrId}" is not a training run: give trainingRuns/<id> or the bare id, a 26-character ULID such as 01jc7v0m4k3h2g1f0e9d8c7b6a`,
    );
  return `trainingRuns/${id}`;
}

/** The run id: the part of `trainingRuns/<id>` after the slash. */
export const runIdOf = (run: Pick<modelsV1.TrainingRun, 'id' | 'name'>): string =>
  run.id || run.name.replace(/^trainingRuns\//, '');

/** A template's name as StartTraining takes it: `reference-mlp` from that or `trainingTemplates/reference-mlp`. */
export function templateName(text: string): string {
  const t = text.trim().replace(/^trainingTemplates\//, '');
  if (t === '') throw new UsageError('a template name is required; list them with: aether train templates');
  return t;
}

/** `RUNNING` from TRAINING_RUN_STATE_RUNNING. */
export const runStateName = (s: modelsV1.TrainingRunState): string =>
  modelsV1.trainingRunStateToJSON(s).replace(/^TRAINING_RUN_STATE_/, '');

const TERMINAL: ReadonlySet<modelsV1.TrainingRunState> = new Set([
  TrainingRunState.TRAINING_RUN_STATE_SUCCEEDED,
  TrainingRunState.TRAINING_RUN_STATE_FAILED,
  TrainingRunState.TRAINING_RUN_STATE_STOPPED,
]);

/** Whether a run in this state has ended (SUCCEEDED, FAILED or STOPPED). */
export const isTerminalRunState = (s: modelsV1.TrainingRunState): boolean => TERMINAL.has(s);

/** The exit status of a watch that saw the run end: 0 SUCCEEDED, 1 FAILED, 2 STOPPED. */
export function exitCodeOfRun(run: Pick<modelsV1.TrainingRun, 'state'>): number {
  if (run.state === TrainingRunState.TRAINING_RUN_STATE_SUCCEEDED) return 0;
  if (run.state === TrainingRunState.TRAINING_RUN_STATE_STOPPED) return EX_RUN_STOPPED;
  return EX_RUN_FAILED;
}

/** The states of `--state running,failed` (case-insensitive, with or without the prefix). */
export function parseRunStates(text: string): modelsV1.TrainingRunState[] {
  const names = text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (names.length === 0) throw new UsageError('--state needs at least one state');
  const valid = Object.values(TrainingRunState)
    .filter(
      (v): v is modelsV1.TrainingRunState =>
        typeof v === 'number' &&
        v !== TrainingRunState.TRAINING_RUN_STATE_UNSPECIFIED &&
        v !== TrainingRunState.UNRECOGNIZED,
    )
    .map((s) => runStateName(s).toLowerCase());
  return names.map((n) => {
    const key = n
      .toUpperCase()
      .replace(/^TRAINING_RUN_STATE_/, '')
      .replace(/-/g, '_');
    const s = modelsV1.trainingRunStateFromJSON(`TRAINING_RUN_STATE_${key}`);
    if (s === TrainingRunState.UNRECOGNIZED || s === TrainingRunState.TRAINING_RUN_STATE_UNSPECIFIED)
      throw new UsageError(`unknown training run state "${n}"; choose from ${valid.join(', ')}`);
    return s;
  });
}

/**
 * One `--hparam key=value`: the value as JSON when it parses as JSON (`lr=0.01`, `epochs=3`,
 * `shuffle=true`, `layers=[64,32]`, `tag="3"` for the string "3"), else the string it is
 * (`optimizer=adam`).
 */
export function parseHparam(text: string): [string, unknown] {
  const [key, raw] = parseKeyValue(text, '--hparam');
  try {
    return [key, JSON.parse(raw) as unknown];
  } catch {
    return [key, raw];
  }
}

/** The hyperparameters of a `--hparams-file`: a JSON object, else a usage error naming the file. */
export function hparamsFromJson(text: string, file: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`--hparams-file ${file} is not JSON: ${(err as Error).message}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new UsageError(`--hparams-file ${file} must hold a JSON object such as {"lr": 0.01, "epochs": 3}`);
  return v as Record<string, unknown>;
}

/** `--hparam` values over those of the file: a flag wins over the file's key of the same name. */
export const mergeHparams = (
  file: Record<string, unknown> | undefined,
  flags: readonly [string, unknown][] | undefined,
): Record<string, unknown> => ({ ...(file ?? {}), ...Object.fromEntries(flags ?? []) });

/** `--memory`: what parseBytes takes, and `1GiB`, `512MiB` as people also write binary units. */
export function parseMemory(text: string): bigint {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti)B$/.exec(text);
  try {
    return parseBytes(m ? `${m[1]}${m[2]}` : text, 'memory');
  } catch (err) {
    throw m ? new UsageError((err as Error).message.replace(`"${m[1]}${m[2]}"`, `"${text}"`)) : err;
  }
}

const BARS = '▁▂▃▄▅▆▇█';

/** Losses that span more than this ratio (two decades) are drawn on a log scale. */
const LOG_SCALE_RATIO = 100;

/**
 * A sparkline of `values` in at most `width` characters (▁ lowest, █ highest). More values than
 * characters are averaged in even buckets. Non-finite values (NaN: a line without a loss) are gaps
 * (a space) and do not count towards the range. When every value is positive and they span more than
 * two decades the scale is logarithmic (`log: true`), so that the late, small losses still show a shape.
 * A flat series is drawn at mid height.
 */
export function sparkline(values: readonly number[], width = 60): { line: string; log: boolean } {
  const finite = values.filter(Number.isFinite);
  if (values.length === 0 || width <= 0) return { line: '', log: false };
  const min = Math.min(...finite);
  const max = Math.max(...finite);
  const log = finite.length > 0 && min > 0 && max / min > LOG_SCALE_RATIO;
  const scaled = values.map((v) => (Number.isFinite(v) ? (log ? Math.log10(v) : v) : NaN));
  const n = Math.min(width, scaled.length);
  const buckets: number[] = [];
  for (let i = 0; i < n; i++) {
    const part = scaled
      .slice(Math.floor((i * scaled.length) / n), Math.floor(((i + 1) * scaled.length) / n))
      .filter(Number.isFinite);
    buckets.push(part.length === 0 ? NaN : part.reduce((s, v) => s + v, 0) / part.length);
  }
  const lo = log ? Math.log10(min) : min;
  const hi = log ? Math.log10(max) : max;
  const line = buckets
    .map((b) => {
      if (!Number.isFinite(b)) return ' ';
      if (hi === lo) return BARS[3]!;
      const k = Math.round(((b - lo) / (hi - lo)) * (BARS.length - 1));
      return BARS[Math.min(BARS.length - 1, Math.max(0, k))]!;
    })
    .join('');
  return { line, log };
}

/** A loss for people: 4 significant digits, exponent notation when tiny or huge, `-` for none. */
export function formatLoss(v: number): string {
  if (!Number.isFinite(v)) return Number.isNaN(v) ? '-' : String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(2);
  return String(Number(v.toPrecision(4)));
}

/** What the metric points say: how far, where the loss is now and how low it got. */
export interface LossSummary {
  points: number;
  latestStep?: bigint;
  latestLoss?: number;
  minLoss?: number;
  minStep?: bigint;
  latestExtra: Record<string, number>;
}

export function lossSummary(points: readonly modelsV1.TrainingMetricPoint[]): LossSummary {
  const s: LossSummary = { points: points.length, latestExtra: {} };
  const last = points[points.length - 1];
  if (last) {
    s.latestStep = last.step;
    s.latestExtra = last.extra;
  }
  for (const p of points) {
    if (!Number.isFinite(p.loss)) continue;
    s.latestLoss = p.loss;
    if (s.minLoss === undefined || p.loss < s.minLoss) {
      s.minLoss = p.loss;
      s.minStep = p.step;
    }
  }
  return s;
}

const extraText = (extra: Record<string, number>): string =>
  Object.entries(extra)
    .map(([k, v]) => `${k}=${formatLoss(v)}`)
    .join(' ');

/** The lines of the metrics part of `train get` and of the end of a watch, two spaces in. */
export function metricsText(points: readonly modelsV1.TrainingMetricPoint[], width = 60): string {
  if (points.length === 0) return '  (no metrics yet)\n';
  const s = lossSummary(points);
  const spark = sparkline(
    points.map((p) => p.loss),
    width,
  );
  const extra = extraText(s.latestExtra);
  return fields([
    ['Steps', `${s.latestStep ?? '-'} (${points.length} point${points.length === 1 ? '' : 's'})`],
    [
      'Latest loss',
      s.latestLoss === undefined
        ? '- (no point has a loss)'
        : `${formatLoss(s.latestLoss)}${extra ? `  ${extra}` : ''}`,
    ],
    ['Min loss', s.minLoss === undefined ? undefined : `${formatLoss(s.minLoss)} at step ${s.minStep}`],
    ['Loss', spark.line.trim() === '' ? undefined : `${spark.line}${spark.log ? '  (log scale)' : ''}`],
  ])
    .split('\n')
    .map((l) => (l ? `  ${l}` : l))
    .join('\n');
}

const ms = (t: Timestamp): number | undefined => (t ? dateFromTimestamp(t).getTime() : undefined);

function when(t: Timestamp, now: number): string | undefined {
  const at = ms(t);
  return at === undefined ? undefined : `${new Date(at).toISOString()} (${formatAge(now - at)} ago)`;
}

/** How long the trainer ran (so far): from its start to its end or now; undefined before it started. */
export function runDuration(run: modelsV1.TrainingRun, now = Date.now()): number | undefined {
  const start = ms(run.startTime);
  if (start === undefined) return undefined;
  return (ms(run.endTime) ?? now) - start;
}

/** `cpu 2, memory 1 GiB, 1 GPU, timeout 10m`; undefined when nothing is set. */
export function resourcesText(r: modelsV1.TrainingResources | undefined): string | undefined {
  if (!r) return undefined;
  const parts: string[] = [];
  if (r.cpuMillicores > 0) parts.push(`cpu ${formatCpu(r.cpuMillicores)}`);
  if (r.memoryBytes > 0n) parts.push(`memory ${formatBytes(r.memoryBytes)}`);
  if (r.gpuCount > 0) parts.push(`${r.gpuCount} GPU${r.gpuCount === 1 ? '' : 's'}`);
  if (r.timeout) parts.push(`timeout ${formatDuration(msFromDuration(r.timeout))}`);
  if (r.pidsMax > 0) parts.push(`pids ${r.pidsMax}`);
  return parts.length > 0 ? parts.join(', ') : undefined;
}

const pairs = (labels: Record<string, string>): string | undefined => {
  const e = Object.entries(labels);
  return e.length > 0 ? e.map(([k, v]) => `${k}=${v}`).join(', ') : undefined;
};

/** The human view of one run, `aether train get`. */
export function runDetail(run: modelsV1.TrainingRun, now = Date.now()): string {
  const spec = run.spec;
  const hparams = spec?.hyperparameters;
  const duration = runDuration(run, now);
  const head = fields([
    ['Name', run.name],
    ['Display name', run.displayName || undefined],
    ['State', runStateName(run.state)],
    ['Reason', run.failureReason || undefined],
    ['Template', spec?.template || '-'],
    ['Datasets', spec && spec.datasets.length > 0 ? spec.datasets.join(', ') : '-'],
    ['Hyperparameters', hparams && Object.keys(hparams).length > 0 ? compactJson(hparams) : undefined],
    ['Resources', resourcesText(spec?.resources)],
    ['Job', run.job || undefined],
    ['Model', run.model || (spec?.registerModel ? '(registered when the run succeeds)' : undefined)],
    ['Checkpoints', run.checkpoints.length > 0 ? run.checkpoints.join(', ') : undefined],
    ['Summary in', run.summaryEntry || undefined],
    ['Intent', run.intentId || undefined],
    ['Actor', run.actor || undefined],
    ['Labels', pairs(run.labels)],
    ['Created', when(run.createTime, now) ?? '-'],
    ['Started', when(run.startTime, now)],
    ['Ended', when(run.endTime, now)],
    ['Duration', duration === undefined ? undefined : formatDuration(duration)],
  ]);
  const parts = [head, `\nMetrics:\n${metricsText(run.metrics)}`];
  if (run.lastLogLines.length > 0)
    parts.push(`\nLast log lines:\n${run.lastLogLines.map((l) => `  ${l}\n`).join('')}`);
  return parts.join('');
}

/** The columns of `aether train ls`. */
export const RUN_LIST_HEADERS = ['ID', 'STATE', 'TEMPLATE', 'AGE', 'DURATION', 'STEP', 'LOSS', 'NAME'];

/** One row of `aether train ls` (its `metrics` hold only the latest point). */
export function runListRow(run: modelsV1.TrainingRun, now = Date.now()): string[] {
  const created = ms(run.createTime);
  const duration = runDuration(run, now);
  const last = run.metrics[run.metrics.length - 1];
  return [
    runIdOf(run),
    runStateName(run.state),
    run.spec?.template || '-',
    created === undefined ? '-' : formatAge(now - created),
    duration === undefined ? '-' : formatDuration(duration),
    last ? String(last.step) : '-',
    last ? formatLoss(last.loss) : '-',
    truncate(run.displayName || '-', 40),
  ];
}

/** The `aether train ls` table. */
export const runListTable = (runs: readonly modelsV1.TrainingRun[], now = Date.now()): string =>
  table(
    RUN_LIST_HEADERS,
    runs.map((r) => runListRow(r, now)),
  );

/** The hyperparameters a template's JSON Schema names (its `properties`), or `-`. */
export function schemaParams(schema: Record<string, unknown> | undefined): string {
  const props = schema?.['properties'];
  if (typeof props !== 'object' || props === null) return '-';
  const keys = Object.keys(props);
  return keys.length > 0 ? keys.join(', ') : '-';
}

/** The `aether train templates` table: NAME, DESCRIPTION, DEFAULTS, HYPERPARAMETERS, and COMMAND when wide. */
export function templatesTable(templates: readonly modelsV1.TrainingTemplate[], wide = false): string {
  const headers = ['NAME', 'DESCRIPTION', 'DEFAULTS', 'HYPERPARAMETERS'];
  return table(
    wide ? [...headers, 'COMMAND'] : headers,
    templates.map((t) => {
      const row = [
        t.name.replace(/^trainingTemplates\//, ''),
        truncate(t.description || '-', wide ? 200 : 50),
        resourcesText(t.defaultResources) ?? '-',
        schemaParams(t.hyperparametersSchema),
      ];
      return wide ? [...row, shellJoin(t.argv)] : row;
    }),
  );
}

/** `10:00:01` (UTC) of a timestamp, or of now. */
const clock = (t: Timestamp): string => new Date(ms(t) ?? Date.now()).toISOString().slice(11, 19);

/** When the run entered its state, as far as the run says: created, started or ended. */
function stateTime(run: modelsV1.TrainingRun): Timestamp {
  if (isTerminalRunState(run.state)) return run.endTime;
  if (run.state === TrainingRunState.TRAINING_RUN_STATE_PENDING) return run.createTime;
  if (run.state === TrainingRunState.TRAINING_RUN_STATE_RUNNING) return run.startTime;
  return undefined;
}

/** A metric point as one line: `step 120  loss 0.0123  lr=0.001`. */
export const metricLine = (p: modelsV1.TrainingMetricPoint): string => {
  const extra = extraText(p.extra);
  return `step ${p.step}  loss ${formatLoss(p.loss)}${extra ? `  ${extra}` : ''}`;
};

/**
 * What a watch prints as updates arrive: the run's head once, one line per state change and (unless
 * drawing in place) one per metric point; it keeps every point for the sparkline and the summary.
 * After a reconnect the watch asks for the points after {@link lastStep}, so none comes twice.
 */
export class TrainingWatchView {
  readonly points: modelsV1.TrainingMetricPoint[] = [];
  run: modelsV1.TrainingRun | undefined;
  private state: modelsV1.TrainingRunState | undefined;

  /** The step after which a reconnecting watch asks to replay: -1 before any point. */
  get lastStep(): bigint {
    return this.points[this.points.length - 1]?.step ?? -1n;
  }

  /** Takes one update; returns the lines to print (`withMetrics`: a line per point too). */
  update(m: modelsV1.WatchTrainingRunResponse, withMetrics: boolean): string {
    const u = m.update;
    if (!u) return '';
    if (u.$case === 'metric') {
      const p = u.value;
      this.points.push(p);
      return withMetrics ? `${metricLine(p)}\n` : '';
    }
    const run = u.value;
    let out = '';
    if (this.run === undefined) {
      out += fields([
        ['Run', run.name],
        ['Display name', run.displayName || undefined],
        ['Template', run.spec?.template || '-'],
        ['Datasets', run.spec && run.spec.datasets.length > 0 ? run.spec.datasets.join(', ') : '-'],
        ['Job', run.job || undefined],
      ]);
    }
    this.run = run;
    if (run.state !== this.state) {
      out += `${clock(stateTime(run))}  ${runStateName(run.state)}${run.state === TrainingRunState.TRAINING_RUN_STATE_RUNNING && run.job ? `  (job ${run.job})` : ''}\n`;
      this.state = run.state;
    }
    return out;
  }

  /** The line drawn in place on a terminal: `step 1200  loss 0.0123  min 0.0100  ▇▆▅▃▂▁▁`, within `width`. */
  liveLine(width: number): string {
    const s = lossSummary(this.points);
    const state = this.run ? runStateName(this.run.state) : 'CONNECTING';
    const head =
      s.latestStep === undefined
        ? `${state}  waiting for the first metrics`
        : `${state}  step ${s.latestStep}  loss ${formatLoss(s.latestLoss ?? NaN)}  min ${formatLoss(s.minLoss ?? NaN)}`;
    const room = width - head.length - 2 - ' (log)'.length;
    if (room < 8) return truncate(head, width);
    const spark = sparkline(
      this.points.map((p) => p.loss),
      Math.min(room, 80),
    );
    return spark.line.trim() === '' ? head : `${head}  ${spark.line}${spark.log ? ' (log)' : ''}`;
  }

  /** The end of a watch: the result, the metrics summary, what the run produced or why it failed. */
  finish(run: modelsV1.TrainingRun): string {
    const duration = runDuration(run);
    const parts = [
      fields([
        [
          'Result',
          `${runStateName(run.state)}${duration === undefined ? '' : ` in ${formatDuration(duration)}`}`,
        ],
        ['Reason', run.failureReason || undefined],
        ['Model', run.model || undefined],
        ['Checkpoints', run.checkpoints.length > 0 ? run.checkpoints.join(', ') : undefined],
        ['Summary in', run.summaryEntry || undefined],
      ]),
      `Metrics:\n${metricsText(this.points.length > 0 ? this.points : run.metrics)}`,
    ];
    if (run.lastLogLines.length > 0)
      parts.push(`Last log lines:\n${run.lastLogLines.map((l) => `  ${l}\n`).join('')}`);
    return parts.join('');
  }
}
