import { durationFromMs, modelsV1, timestampFromDate } from '@aether/proto';
import { UsageError } from '../units';
import {
  EX_RUN_FAILED,
  EX_RUN_STOPPED,
  exitCodeOfRun,
  formatLoss,
  hparamsFromJson,
  lossSummary,
  mergeHparams,
  metricsText,
  parseHparam,
  parseMemory,
  parseRunStates,
  resourcesText,
  runDetail,
  runListTable,
  sparkline,
  templateName,
  templatesTable,
  trainingRunName,
  TrainingWatchView,
} from './train-format';

const { TrainingRunState } = modelsV1;

const ID = '01jc7v0m4k3h2g1f0e9d8c7b6a';
const NOW = Date.parse('2026-11-21T10:00:00Z');
const at = (iso: string): ReturnType<typeof timestampFromDate> => timestampFromDate(new Date(iso));

const point = (
  step: number,
  loss: number,
  extra: Record<string, number> = {},
): modelsV1.TrainingMetricPoint =>
  modelsV1.TrainingMetricPoint.fromPartial({ step: BigInt(step), loss, extra });

const run = (over: Partial<modelsV1.TrainingRun> = {}): modelsV1.TrainingRun =>
  modelsV1.TrainingRun.fromPartial({
    name: `trainingRuns/${ID}`,
    id: ID,
    spec: {
      template: 'reference-mlp',
      datasets: ['artifacts/01jc7v0m4k3h2g1f0e9d8c7b6b'],
      hyperparameters: { epochs: 3, lr: 0.01 },
      resources: { cpuMillicores: 2000, memoryBytes: 1024n ** 3n, timeout: durationFromMs(600_000) },
      registerModel: true,
    },
    state: TrainingRunState.TRAINING_RUN_STATE_RUNNING,
    job: 'jobs/01jc7v0m4k3h2g1f0e9d8c7b6c',
    actor: 'spiffe://aether.local/admin',
    createTime: at('2026-11-21T09:55:00Z'),
    startTime: at('2026-11-21T09:56:00Z'),
    metrics: [point(0, 2), point(10, 1, { lr: 0.01 }), point(20, 0.5, { lr: 0.005 })],
    ...over,
  });

const watchRun = (r: modelsV1.TrainingRun): modelsV1.WatchTrainingRunResponse => ({
  update: { $case: 'run', value: r },
});
const watchPoint = (p: modelsV1.TrainingMetricPoint): modelsV1.WatchTrainingRunResponse => ({
  update: { $case: 'metric', value: p },
});

describe('sparkline', () => {
  it('draws rising values from ▁ to █', () => {
    expect(sparkline([1, 2, 3, 4, 5, 6, 7, 8])).toEqual({ line: '▁▂▃▄▅▆▇█', log: false });
    expect(sparkline([8, 1]).line).toBe('█▁');
  });

  it('uses a log scale when the values span more than two decades', () => {
    const losses = [1e4, 1e3, 100, 10, 1, 0.1, 0.01, 0.001];
    expect(sparkline(losses)).toEqual({ line: '█▇▆▅▄▃▂▁', log: true });
    // Two decades exactly, or a value at or below zero: linear.
    expect(sparkline([100, 1])).toEqual({ line: '█▁', log: false });
    expect(sparkline([1e4, 0, 1e-3])).toEqual({ line: '█▁▁', log: false });
  });

  it('leaves a gap for NaN (a line without a loss) and keeps it out of the range', () => {
    expect(sparkline([1, NaN, 3])).toEqual({ line: '▁ █', log: false });
    expect(sparkline([NaN, NaN]).line).toBe('  ');
    expect(sparkline([1e3, NaN, 1e-3]).log).toBe(true);
  });

  it('draws a flat series at mid height and nothing for no values', () => {
    expect(sparkline([2, 2, 2]).line).toBe('▄▄▄');
    expect(sparkline([]).line).toBe('');
  });

  it('averages more values than the width into even buckets', () => {
    const { line } = sparkline(
      Array.from({ length: 100 }, (_, i) => i + 1),
      10,
    );
    expect(line).toHaveLength(10);
    expect(line[0]).toBe('▁');
    expect(line[9]).toBe('█');
    const levels = [...line].map((c) => '▁▂▃▄▅▆▇█'.indexOf(c));
    expect(levels).toEqual([...levels].sort((a, b) => a - b));
  });
});

describe('names and parsers', () => {
  it('takes trainingRuns/<id> or a bare ULID, in any case', () => {
    expect(trainingRunName(ID)).toBe(`trainingRuns/${ID}`);
    expect(trainingRunName(`trainingRuns/${ID.toUpperCase()}`)).toBe(`trainingRuns/${ID}`);
    expect(() => trainingRunName('run-1')).toThrow(/is not a training run/);
    expect(templateName('trainingTemplates/reference-mlp')).toBe('reference-mlp');
    expect(() => templateName(' ')).toThrow(UsageError);
  });

  it('parses states and says which there are', () => {
    expect(parseRunStates('running, FAILED')).toEqual([
      TrainingRunState.TRAINING_RUN_STATE_RUNNING,
      TrainingRunState.TRAINING_RUN_STATE_FAILED,
    ]);
    expect(() => parseRunStates('done')).toThrow(
      'unknown training run state "done"; choose from pending, running, finalizing, succeeded, failed, stopped',
    );
  });

  it('reads hyperparameter values as JSON when they are, else as strings', () => {
    expect(parseHparam('epochs=3')).toEqual(['epochs', 3]);
    expect(parseHparam('lr=1e-3')).toEqual(['lr', 0.001]);
    expect(parseHparam('shuffle=true')).toEqual(['shuffle', true]);
    expect(parseHparam('layers=[64,32]')).toEqual(['layers', [64, 32]]);
    expect(parseHparam('optimizer=adam')).toEqual(['optimizer', 'adam']);
    expect(parseHparam('tag="3"')).toEqual(['tag', '3']);
    expect(parseHparam('note=')).toEqual(['note', '']);
    expect(() => parseHparam('epochs')).toThrow('--hparam must be KEY=VALUE, got "epochs"');
  });

  it('reads a hyperparameters file as a JSON object; flags win over the file', () => {
    const file = hparamsFromJson('{"epochs": 3, "lr": 0.1}', 'hp.json');
    expect(mergeHparams(file, [['lr', 0.01]])).toEqual({ epochs: 3, lr: 0.01 });
    expect(mergeHparams(undefined, undefined)).toEqual({});
    expect(() => hparamsFromJson('[1]', 'hp.json')).toThrow('--hparams-file hp.json must hold a JSON object');
    expect(() => hparamsFromJson('{epochs', 'hp.json')).toThrow(/^--hparams-file hp.json is not JSON/);
  });

  it('reads memory as parseBytes does, and 1GiB as 1Gi', () => {
    expect(parseMemory('1GiB')).toBe(1024n ** 3n);
    expect(parseMemory('512Mi')).toBe(512n * 1024n ** 2n);
    expect(parseMemory('2G')).toBe(2_000_000_000n);
    expect(() => parseMemory('0GiB')).toThrow(/memory "0GiB" must be more than zero/);
    expect(() => parseMemory('lots')).toThrow(/memory "lots" is not a size/);
  });

  it('exits 0 for SUCCEEDED and documented codes for FAILED and STOPPED', () => {
    expect(exitCodeOfRun({ state: TrainingRunState.TRAINING_RUN_STATE_SUCCEEDED })).toBe(0);
    expect(exitCodeOfRun({ state: TrainingRunState.TRAINING_RUN_STATE_FAILED })).toBe(EX_RUN_FAILED);
    expect(exitCodeOfRun({ state: TrainingRunState.TRAINING_RUN_STATE_STOPPED })).toBe(EX_RUN_STOPPED);
    expect(EX_RUN_FAILED).not.toBe(EX_RUN_STOPPED);
  });
});

describe('metrics', () => {
  it('formats losses with 4 significant digits, exponents when tiny, - for none', () => {
    expect(formatLoss(0.0123456)).toBe('0.01235');
    expect(formatLoss(2)).toBe('2');
    expect(formatLoss(0.00001234)).toBe('1.23e-5');
    expect(formatLoss(NaN)).toBe('-');
  });

  it('summarises steps, the latest loss and the lowest, skipping points without a loss', () => {
    const s = lossSummary([point(0, 2), point(10, 0.5), point(20, 0.8), point(30, NaN, { val_loss: 0.9 })]);
    expect(s).toEqual({
      points: 4,
      latestStep: 30n,
      latestLoss: 0.8,
      minLoss: 0.5,
      minStep: 10n,
      latestExtra: { val_loss: 0.9 },
    });
    expect(metricsText([])).toBe('  (no metrics yet)\n');
  });

  it('shows steps, losses and a sparkline', () => {
    const text = metricsText([point(0, 2), point(10, 1, { lr: 0.01 }), point(20, 0.5, { lr: 0.005 })]);
    expect(text).toMatch(/^ {2}Steps:\s+20 \(3 points\)$/m);
    expect(text).toMatch(/^ {2}Latest loss:\s+0\.5 {2}lr=0\.005$/m);
    expect(text).toMatch(/^ {2}Min loss:\s+0\.5 at step 20$/m);
    expect(text).toMatch(/^ {2}Loss:\s+█▃▁$/m);
    expect(text.endsWith('\n')).toBe(true);
    expect(text).not.toMatch(/ +$/m);
  });
});

describe('run views', () => {
  it('shows a running run: template, datasets, hyperparameters, resources, job, metrics', () => {
    const text = runDetail(run(), NOW);
    expect(text).toMatch(new RegExp(`^Name:\\s+trainingRuns/${ID}$`, 'm'));
    expect(text).toMatch(/^State:\s+RUNNING$/m);
    expect(text).toMatch(/^Template:\s+reference-mlp$/m);
    expect(text).toMatch(/^Datasets:\s+artifacts\/01jc7v0m4k3h2g1f0e9d8c7b6b$/m);
    expect(text).toMatch(/^Hyperparameters:\s+\{"epochs":3,"lr":0\.01\}$/m);
    expect(text).toMatch(/^Resources:\s+cpu 2, memory 1 GiB, timeout 10m0s$/m);
    expect(text).toMatch(/^Job:\s+jobs\/01jc7v0m4k3h2g1f0e9d8c7b6c$/m);
    expect(text).toMatch(/^Model:\s+\(registered when the run succeeds\)$/m);
    expect(text).toMatch(/^Duration:\s+4m0s$/m);
    expect(text).toMatch(/^Metrics:\n {2}Steps:\s+20 \(3 points\)$/m);
    expect(text).toMatch(/^ {2}Loss:\s+█▃▁$/m);
    expect(text).not.toMatch(/Last log lines|Reason/);
  });

  it('shows why a run failed and the last lines of its log', () => {
    const text = runDetail(
      run({
        state: TrainingRunState.TRAINING_RUN_STATE_FAILED,
        failureReason: 'the trainer exited 1',
        lastLogLines: ['epoch 1', 'Traceback: boom'],
        endTime: at('2026-11-21T09:58:00Z'),
      }),
      NOW,
    );
    expect(text).toMatch(/^State:\s+FAILED$/m);
    expect(text).toMatch(/^Reason:\s+the trainer exited 1$/m);
    expect(text).toMatch(/^Duration:\s+2m0s$/m);
    expect(text).toMatch(/^Last log lines:\n {2}epoch 1\n {2}Traceback: boom\n$/m);
  });

  it('shows what a succeeded run produced', () => {
    const text = runDetail(
      run({
        state: TrainingRunState.TRAINING_RUN_STATE_SUCCEEDED,
        model: 'models/m-01jc',
        checkpoints: ['artifacts/a', 'artifacts/b'],
        summaryEntry: 'entries/01jc',
      }),
      NOW,
    );
    expect(text).toMatch(/^Model:\s+models\/m-01jc$/m);
    expect(text).toMatch(/^Checkpoints:\s+artifacts\/a, artifacts\/b$/m);
    expect(text).toMatch(/^Summary in:\s+entries\/01jc$/m);
  });

  it('lists runs with the latest step and loss', () => {
    const lines = runListTable(
      [
        run({ metrics: [point(20, 0.5)], displayName: 'first try' }),
        run({ state: TrainingRunState.TRAINING_RUN_STATE_PENDING, startTime: undefined, metrics: [] }),
      ],
      NOW,
    )
      .trimEnd()
      .split('\n');
    expect(lines[0]).toMatch(/^ID\s+STATE\s+TEMPLATE\s+AGE\s+DURATION\s+STEP\s+LOSS\s+NAME$/);
    expect(lines[1]).toMatch(
      new RegExp(`^${ID}\\s+RUNNING\\s+reference-mlp\\s+5m\\s+4m0s\\s+20\\s+0\\.5\\s+first try$`),
    );
    expect(lines[2]).toMatch(new RegExp(`^${ID}\\s+PENDING\\s+reference-mlp\\s+5m\\s+-\\s+-\\s+-\\s+-$`));
  });

  it('lists templates with their defaults and the hyperparameters their schema names', () => {
    const t = modelsV1.TrainingTemplate.fromPartial({
      name: 'trainingTemplates/reference-mlp',
      description: 'A small MLP on a known function',
      argv: ['node', '/opt/trainer.js', '--hparams', '/work/hparams.json'],
      hyperparametersSchema: {
        type: 'object',
        properties: { epochs: { type: 'integer' }, lr: { type: 'number' } },
      },
      defaultResources: { cpuMillicores: 1000, memoryBytes: 512n * 1024n ** 2n },
    });
    const lines = templatesTable([t]).trimEnd().split('\n');
    expect(lines[1]).toMatch(
      /^reference-mlp\s+A small MLP on a known function\s+cpu 1, memory 512 MiB\s+epochs, lr$/,
    );
    expect(templatesTable([t], true)).toMatch(/node \/opt\/trainer\.js --hparams \/work\/hparams\.json$/m);
    expect(resourcesText(undefined)).toBeUndefined();
    expect(resourcesText(modelsV1.TrainingResources.fromPartial({ gpuCount: 2 }))).toBe('2 GPUs');
  });
});

describe('TrainingWatchView', () => {
  it('prints the head once, a line per state change and (when asked) per point', () => {
    const v = new TrainingWatchView();
    const pending = run({ state: TrainingRunState.TRAINING_RUN_STATE_PENDING, metrics: [] });
    const head = v.update(watchRun(pending), true);
    expect(head).toMatch(new RegExp(`^Run:\\s+trainingRuns/${ID}$`, 'm'));
    expect(head).toMatch(/^Template:\s+reference-mlp$/m);
    expect(head).toMatch(/^09:55:00 {2}PENDING$/m);
    expect(v.lastStep).toBe(-1n);
    expect(v.update(watchRun(run()), true)).toBe(
      '09:56:00  RUNNING  (job jobs/01jc7v0m4k3h2g1f0e9d8c7b6c)\n',
    );
    // The same state again (a snapshot with new metrics) prints nothing.
    expect(v.update(watchRun(run()), true)).toBe('');
    expect(v.update(watchPoint(point(0, 2, { lr: 0.1 })), true)).toBe('step 0  loss 2  lr=0.1\n');
    expect(v.update(watchPoint(point(10, 0.5)), false)).toBe('');
    expect(v.points.map((p) => p.step)).toEqual([0n, 10n]);
    expect(v.lastStep).toBe(10n);
  });

  it('draws the live line within the width, the sparkline when there is room', () => {
    const v = new TrainingWatchView();
    expect(v.liveLine(80)).toBe('CONNECTING  waiting for the first metrics');
    v.update(watchRun(run({ metrics: [] })), false);
    for (const [s, l] of [
      [0, 1000],
      [1, 10],
      [2, 0.1],
      [3, 0.001],
    ] as const)
      v.update(watchPoint(point(s, l)), false);
    expect(v.liveLine(80)).toBe('RUNNING  step 3  loss 0.001  min 0.001  █▆▃▁ (log)');
    expect(v.liveLine(30)).toHaveLength(30);
  });

  it('ends with the result, the metrics of the whole watch, and the log of a failure', () => {
    const v = new TrainingWatchView();
    v.update(watchRun(run({ metrics: [] })), false);
    v.update(watchPoint(point(0, 2)), false);
    v.update(watchPoint(point(10, 1)), false);
    const failed = run({
      state: TrainingRunState.TRAINING_RUN_STATE_FAILED,
      failureReason: 'out of memory',
      lastLogLines: ['killed'],
      endTime: at('2026-11-21T09:57:30Z'),
      metrics: [point(10, 1)],
    });
    v.update(watchRun(failed), false);
    const text = v.finish(failed);
    expect(text).toMatch(/^Result:\s+FAILED in 1m30s$/m);
    expect(text).toMatch(/^Reason:\s+out of memory$/m);
    expect(text).toMatch(/^ {2}Steps:\s+10 \(2 points\)$/m);
    expect(text).toMatch(/^Last log lines:\n {2}killed\n$/m);
  });
});
