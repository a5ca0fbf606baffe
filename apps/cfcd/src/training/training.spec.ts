import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { trainingTemplateSchema, referenceTrainingTemplate } from '@aether/config';
import { jobsV1, modelsV1, timestampFromDate } from '@aether/proto';
import { type RpcError } from '@aether/rpc';
import { checkHyperparameters, trainingJobSpec, TrainingTemplates } from './templates';
import { metricOfLine } from './training-manager';
import { MAX_METRIC_POINTS, TrainingStore } from './training-store';

const at = new Date('2026-11-21T10:00:00Z');
const DATASET_A = 'artifacts/01aaaaaaaaaaaaaaaaaaaaaaaa';
const DATASET_B = 'artifacts/01bbbbbbbbbbbbbbbbbbbbbbbb';
const TRAINER = 'artifacts/01cccccccccccccccccccccccc';

describe('metricOfLine: the trainer stdout JSON lines as metric points', () => {
  it('reads step, loss and every other finite number', () => {
    expect(
      metricOfLine('{"step": 40, "loss": 0.25, "val_loss": 0.3, "lr": 0.01, "tag": "x"}', -1n, at),
    ).toEqual({
      step: 40n,
      loss: 0.25,
      extra: { val_loss: 0.3, lr: 0.01 },
      time: timestampFromDate(at),
    });
  });

  it('numbers a line without a step after the previous one; a line without a loss has NaN', () => {
    expect(metricOfLine('{"loss": 1}', 9n, at)?.step).toBe(10n);
    expect(metricOfLine('{"step": 3, "acc": 0.9}', 2n, at)?.loss).toBeNaN();
  });

  it('ignores lines that are not metric objects, and a closing summary that repeats the last step', () => {
    for (const line of ['epoch 3 done', '[1, 2]', '{"step": "3"}', '{broken', '"x"', '{"done": true}', ''])
      expect(metricOfLine(line, 0n, at)).toBeUndefined();
    expect(metricOfLine('{"done": true, "step": 100, "loss": 0.1}', 100n, at)).toBeUndefined();
    expect(metricOfLine('{"stopped": true, "step": 120, "loss": 0.1}', 100n, at)?.step).toBe(120n);
  });
});

describe('training templates', () => {
  const templates = new TrainingTemplates({
    'reference-mlp': referenceTrainingTemplate(),
    custom: trainingTemplateSchema.parse({
      argv: ['python3', '{file:script}', '--data', '{datasets}', '--out={outputs}', '{"literal": 1}'],
      files: { script: '/opt/train.py' },
      env: { OMP_NUM_THREADS: '2' },
      outputs: [{ path: 'ckpt/*.pt' }, { path: 'model.onnx', type: 'MODEL' }],
      model: 'model.onnx',
      resources: { cpuMillicores: 2000, memoryBytes: 1073741824, timeoutSeconds: 600 },
    }),
  });

  it('resolves builtin files to the trainer bundle cfcd ships', () => {
    expect(templates.get('reference-mlp')!.files['trainer']).toMatch(/trainer\/reference-trainer\.js$/);
    expect(templates.names()).toEqual(['custom', 'reference-mlp']);
  });

  it('builds the job: placeholders filled, inputs bound, hyperparameters in env and file, outputs labelled', () => {
    const t = templates.get('custom')!;
    const spec = modelsV1.TrainingSpec.fromPartial({
      template: 'custom',
      datasets: [DATASET_A, DATASET_B],
      resources: { gpuCount: 2, memoryBytes: 2147483648n },
    });
    const job = trainingJobSpec(
      t,
      spec,
      { epochs: 3 },
      { script: TRAINER },
      { id: 'run1', labels: { team: 'a' }, intentId: 'i1' },
    );
    expect(job.argv.slice(0, 4)).toEqual([
      '/bin/sh',
      '-c',
      'printf "%s" "$AETHER_HPARAMS" > /work/hparams.json && exec "$@"',
      'trainer',
    ]);
    expect(job.argv.slice(4)).toEqual([
      'python3',
      '/work/inputs/01cccccccccccccccccccccccc',
      '--data',
      '/work/inputs/01aaaaaaaaaaaaaaaaaaaaaaaa',
      '/work/inputs/01bbbbbbbbbbbbbbbbbbbbbbbb',
      '--out=/work/outputs',
      '{"literal": 1}',
    ]);
    expect(job.env).toEqual({
      OMP_NUM_THREADS: '2',
      AETHER_HPARAMS: '{"epochs":3}',
      AETHER_TRAINING_RUN: 'run1',
    });
    expect(job.inputArtifacts).toEqual([DATASET_A, DATASET_B, TRAINER]);
    // Asked-for memory wins; the rest come from the template.
    expect(job.resources).toMatchObject({ cpuMillicores: 2000, memoryBytes: 2147483648n, pidsMax: 0 });
    expect(job.timeout).toEqual({ seconds: 600n, nanos: 0 });
    expect(job.devices).toEqual([
      { kind: jobsV1.DeviceKind.DEVICE_KIND_NVIDIA_GPU, path: '' },
      { kind: jobsV1.DeviceKind.DEVICE_KIND_NVIDIA_GPU, path: '' },
    ]);
    expect(job.labels).toEqual({ team: 'a', 'aether.training-run': 'run1' });
    expect(job.intentId).toBe('i1');
    expect(
      job.outputs.map((o) => [o.path, o.artifactType, o.mediaType, o.labels['aether.training-output']]),
    ).toEqual([
      ['ckpt/*.pt', 'CHECKPOINT', '', 'ckpt/*.pt'],
      ['model.onnx', 'MODEL', 'application/onnx', 'model.onnx'],
    ]);
  });

  it('checks hyperparameters against the template schema, naming each problem', () => {
    const t = templates.get('reference-mlp')!;
    expect(() => checkHyperparameters(t, { epochs: 10, lr: 0.1 })).not.toThrow();
    let err: RpcError | undefined;
    try {
      checkHyperparameters(t, { epochs: 0, hidden: 'wide', momentum: 0.9 });
    } catch (e) {
      err = e as RpcError;
    }
    expect(err?.fieldViolations.map((v) => v.field).sort()).toEqual([
      'spec.hyperparameters',
      'spec.hyperparameters.epochs',
      'spec.hyperparameters.hidden',
    ]);
    expect(err?.message).toContain('"momentum" is not a hyperparameter of template reference-mlp');
    // A template without a schema takes any object, within the size limit.
    expect(() => checkHyperparameters(templates.get('custom')!, { anything: [1, 2] })).not.toThrow();
    expect(() => checkHyperparameters(templates.get('custom')!, { big: 'x'.repeat(70_000) })).toThrow(
      /65536/,
    );
  });

  it('refuses a template whose argv names an unknown file or splits {datasets}, or whose model is not an output', () => {
    const issues = (t: unknown): string[] => {
      const r = trainingTemplateSchema.safeParse(t);
      return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    };
    expect(issues({ argv: ['node', '{file:nope}'] })).toEqual([
      'argv.1: {file:nope}: no file "nope" in files',
    ]);
    expect(issues({ argv: ['node', '--data={datasets}'] })).toEqual([
      'argv.1: {datasets} must be a whole argument',
    ]);
    expect(issues({ argv: ['x'], model: 'm.onnx' })).toEqual([
      'model: "m.onnx" must also be listed in outputs with type MODEL',
    ]);
    expect(issues({ argv: ['x'], outputs: [{ path: '../etc/passwd' }] })).toEqual([
      'outputs.0.path: must be a path relative to /work/outputs without ".."',
    ]);
    expect(issues({ argv: ['x'], files: { t: 'relative.js' } })).toEqual([
      'files.t: must be an absolute path or builtin:<file>',
    ]);
  });

  it('describes a template as ListTrainingTemplates shows it', () => {
    const p = templates.toProto(templates.get('reference-mlp')!);
    expect(p.name).toBe('trainingTemplates/reference-mlp');
    expect(p.defaultResources).toMatchObject({ cpuMillicores: 1000, memoryBytes: 536870912n, pidsMax: 64 });
    expect(p.defaultResources!.timeout).toEqual({ seconds: 3600n, nanos: 0 });
  });
});

describe('TrainingStore', () => {
  let dir: string;
  let store: TrainingStore;
  const run = (id: string, extra: Partial<modelsV1.TrainingRun> = {}): modelsV1.TrainingRun =>
    modelsV1.TrainingRun.fromPartial({
      name: `trainingRuns/${id}`,
      id,
      spec: { template: 'reference-mlp', datasets: [DATASET_A] },
      state: modelsV1.TrainingRunState.TRAINING_RUN_STATE_PENDING,
      actor: 'spiffe://aether.local/admin',
      ...extra,
    });
  const point = (step: number): modelsV1.TrainingMetricPoint => ({
    step: BigInt(step),
    loss: 1 / (step + 1),
    extra: {},
    time: timestampFromDate(at),
  });

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'aether-training-store-'));
    store = new TrainingStore(dir);
  });
  afterEach(() => {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('returns the first run for a repeated idempotency key of the same actor only', () => {
    expect(store.insert(run('a'), 'k1', at)).toBe('a');
    expect(store.insert(run('b'), 'k1', at)).toBe('a');
    expect(store.insert(run('c', { actor: 'spiffe://aether.local/aurorad' }), 'k1', at)).toBe('c');
    expect(store.insert(run('d'), '', at)).toBe('d');
    expect(store.insert(run('e'), '', at)).toBe('e');
  });

  it('lists newest first with state, template and intent filters, and keeps unfinished runs to resume', () => {
    const { TRAINING_RUN_STATE_RUNNING: RUNNING, TRAINING_RUN_STATE_SUCCEEDED: DONE } =
      modelsV1.TrainingRunState;
    store.insert(run('a', { state: DONE }), '', at);
    store.insert(run('b', { state: RUNNING, intentId: 'i9' }), '', at);
    store.insert(run('c', { spec: { template: 'other', datasets: [], registerModel: false } }), '', at);
    const ids = (q: Partial<Parameters<TrainingStore['list']>[0]>) =>
      store.list({ limit: 10, states: [], ...q }).map((r) => r.run.id);
    expect(ids({})).toEqual(['c', 'b', 'a']);
    expect(ids({ states: [RUNNING, DONE] })).toEqual(['b', 'a']);
    expect(ids({ template: 'other' })).toEqual(['c']);
    expect(ids({ intentId: 'i9' })).toEqual(['b']);
    expect(ids({ before: store.get('b')!.seq })).toEqual(['a']);
    expect(store.unfinished().map((r) => r.run.id)).toEqual(['b', 'c']);
  });

  it('records metric points with the log offset, replays after a step, and thins beyond the cap', () => {
    store.insert(run('a'), '', at);
    store.appendMetrics('a', [point(0), point(1), point(2)], 120n);
    expect(store.get('a')!.logOffset).toBe(120n);
    expect(store.metrics('a', 0n).map((p) => p.step)).toEqual([1n, 2n]);
    expect(store.lastMetric('a')!.step).toBe(2n);
    const many = Array.from({ length: MAX_METRIC_POINTS }, (_, i) => point(i + 3));
    store.appendMetrics('a', many, 999n);
    const kept = store.metrics('a');
    expect(kept.length).toBeLessThanOrEqual(MAX_METRIC_POINTS);
    expect(kept.length).toBeGreaterThan(MAX_METRIC_POINTS / 2);
    expect(kept.at(-1)!.step).toBe(BigInt(MAX_METRIC_POINTS + 2)); // the latest point stays
    const steps = kept.map((p) => Number(p.step));
    expect(steps).toEqual([...steps].sort((x, y) => x - y));
  });
});
