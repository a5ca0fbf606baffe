import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { artifactsV1, intentsV1, jobsV1, memoryV1, modelsV1 } from '@aether/proto';
import { clientStreamCall, RpcError, serverStreamCall, unaryCall } from '@aether/rpc';
import type { AetherClient } from '@aether/client';
import { Stack } from '../src';

const { ArtifactType } = artifactsV1;
const { DataType, TrainingRunState: S } = modelsV1;
const TRAINER_DIST = join(__dirname, '..', '..', '..', 'apps', 'cfcd', 'dist', 'trainer');

const failure = async (p: Promise<unknown>): Promise<RpcError> => {
  try {
    await p;
  } catch (err) {
    return RpcError.from(err);
  }
  throw new Error('expected the call to fail');
};

// A trainer that probes its sandbox: it tries to write to its dataset and to reach the network, and
// reports both as metric fields (1 = blocked), then leaves a checkpoint.
const PROBE = `
const fs = require('node:fs');
const net = require('node:net');
const dataset = process.argv[2];
let writeBlocked = 0;
try { fs.appendFileSync(dataset, 'tampered\\n'); } catch (e) { writeBlocked = 1; process.stderr.write('write: ' + e.code + '\\n'); }
const s = net.connect({ host: '10.255.255.1', port: 80 });
s.setTimeout(1500);
const done = (blocked, how) => {
  s.destroy();
  process.stderr.write('net: ' + how + '\\n');
  console.log(JSON.stringify({ step: 1, loss: 0.5, write_blocked: writeBlocked, net_blocked: blocked, hparam_epochs: JSON.parse(fs.readFileSync('/work/hparams.json', 'utf8')).epochs }));
  fs.mkdirSync('/work/outputs', { recursive: true });
  fs.writeFileSync('/work/outputs/probe.json', JSON.stringify({ writeBlocked, netBlocked: blocked }));
};
s.on('connect', () => done(0, 'connected'));
s.on('error', (e) => done(1, e.code));
s.on('timeout', () => done(1, 'timeout'));
`;
const CRASH = `
console.log(JSON.stringify({ step: 1, loss: 2.5 }));
console.log(JSON.stringify({ step: 2, loss: 1.25 }));
console.error('trainer: loading batch 3');
console.error('trainer: fatal: out of cheese');
process.exit(3);
`;

/**
 * Training as sandboxed aetherd jobs, end to end: a dataset artifact, the reference trainer run by cfcd
 * as a job (its stdout parsed into metrics), the checkpoints registered as artifacts with lineage, the
 * model registered and served by Infer, a summary in memory; the sandbox probed; stop, crash and bad
 * input.
 */
describe('training: dataset artifact → sandboxed training → checkpoint artifacts → model → Infer', () => {
  let stack: Stack;
  let admin: AetherClient;
  let aurorad: AetherClient;
  let dir: string;
  let dataset: artifactsV1.Artifact;
  let checkpoint = '';

  const upload = async (data: Buffer, filename: string): Promise<artifactsV1.Artifact> => {
    const res = await clientStreamCall(admin.artifacts.uploadArtifact.bind(admin.artifacts), [
      artifactsV1.UploadArtifactRequest.fromPartial({
        payload: {
          $case: 'metadata',
          value: { metadata: { type: ArtifactType.ARTIFACT_TYPE_DATASET, filename } },
        },
      }),
      { payload: { $case: 'chunk', value: data } },
    ]);
    return res.artifact!;
  };
  const m = (): modelsV1.ModelRuntimeServiceClient => admin.models;
  const start = (
    spec: Partial<modelsV1.TrainingSpec>,
    client: AetherClient = admin,
    extra: Partial<modelsV1.StartTrainingRequest> = {},
  ): Promise<modelsV1.TrainingRun> =>
    unaryCall(
      client.models.startTraining.bind(client.models),
      modelsV1.StartTrainingRequest.fromPartial({ spec, ...extra }),
    ).then((r) => r.run!);
  const get = (run: modelsV1.TrainingRun): Promise<modelsV1.TrainingRun> =>
    unaryCall(m().getTrainingRun.bind(m()), { name: run.name }).then((r) => r.run!);

  /** Watches a run to its end: every update, in order. */
  const watch = async (name: string, replayAfterStep?: bigint) => {
    const runs: modelsV1.TrainingRun[] = [];
    const metrics: modelsV1.TrainingMetricPoint[] = [];
    const order: string[] = [];
    for await (const u of serverStreamCall(
      m().watchTrainingRun.bind(m()),
      modelsV1.WatchTrainingRunRequest.fromPartial({
        name,
        ...(replayAfterStep !== undefined ? { replayAfterStep } : {}),
      }),
      { timeoutMs: 120_000 },
    )) {
      if (u.update?.$case === 'run') {
        runs.push(u.update.value);
        order.push(modelsV1.trainingRunStateToJSON(u.update.value.state));
      } else if (u.update?.$case === 'metric') {
        metrics.push(u.update.value);
        order.push('metric');
      }
    }
    return { runs, metrics, order, last: runs.at(-1)! };
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'aether-training-'));
    writeFileSync(join(dir, 'probe.js'), PROBE);
    writeFileSync(join(dir, 'crash.js'), CRASH);
    stack = await new Stack({
      cfcd: {
        training: {
          templates: {
            probe: {
              description: 'probes the sandbox',
              argv: ['node', '{file:probe}', '{datasets}'],
              files: { probe: join(dir, 'probe.js') },
              outputs: [{ path: 'probe.json', type: 'CHECKPOINT' }],
              resources: { cpuMillicores: 500, memoryBytes: 268435456, pidsMax: 32, timeoutSeconds: 120 },
            },
            crash: {
              argv: ['node', '{file:crash}'],
              files: { crash: join(dir, 'crash.js') },
              resources: { cpuMillicores: 500, memoryBytes: 268435456, pidsMax: 32, timeoutSeconds: 120 },
            },
          },
        },
      },
    }).init();
    await stack.startAll();
    admin = stack.client();
    aurorad = stack.client('aurorad');
    const file = join(dir, 'sin.jsonl');
    execFileSync(process.execPath, [
      join(TRAINER_DIST, 'make-dataset.js'),
      ...['--fn', 'sin', '--n', '600', '--seed', '7', '--range', '-3,3', '--out', file],
    ]);
    dataset = await upload(readFileSync(file), 'sin.jsonl');
  }, 60_000);

  afterAll(async () => {
    admin?.close();
    aurorad?.close();
    await stack?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('lists the configured templates, the reference trainer with its hyperparameter schema', async () => {
    const { templates } = await unaryCall(m().listTrainingTemplates.bind(m()), {
      pageSize: 0,
      pageToken: '',
    });
    expect(templates.map((t) => t.name)).toEqual([
      'trainingTemplates/crash',
      'trainingTemplates/evaluate',
      'trainingTemplates/probe',
      'trainingTemplates/reference-mlp',
    ]);
    const ref = templates.find((t) => t.name.endsWith('reference-mlp'))!;
    expect(ref.argv).toContain('{datasets}');
    expect(Object.keys((ref.hyperparametersSchema as { properties: object }).properties)).toContain('epochs');
  });

  it('trains the reference MLP in a sandboxed job and serves the model it produced', async () => {
    const started = await start(
      {
        template: 'reference-mlp',
        datasets: [dataset.name],
        hyperparameters: { epochs: 150, hidden: 16, seed: 3 },
        registerModel: true,
      },
      admin,
      { labels: { purpose: 'e2e' }, displayName: 'sin mlp' },
    );
    expect(started.state).toBe(S.TRAINING_RUN_STATE_PENDING);
    expect(started.job).toMatch(/^jobs\/[0-9a-z]{26}$/);
    expect(started.actor).toBe('spiffe://aether.local/admin');

    const { runs, metrics, order, last } = await watch(started.name, -1n);
    expect(last.state).toBe(S.TRAINING_RUN_STATE_SUCCEEDED);
    // RUNNING is told before the first point; no point after FINALIZING.
    expect(order.indexOf('TRAINING_RUN_STATE_RUNNING')).toBeLessThan(order.indexOf('metric'));
    expect(order.lastIndexOf('metric')).toBeLessThan(order.indexOf('TRAINING_RUN_STATE_FINALIZING'));
    // The states it went through, each once, in order.
    expect([...new Set(runs.map((r) => r.state))]).toEqual([
      ...(runs[0]!.state === S.TRAINING_RUN_STATE_PENDING ? [S.TRAINING_RUN_STATE_PENDING] : []),
      S.TRAINING_RUN_STATE_RUNNING,
      S.TRAINING_RUN_STATE_FINALIZING,
      S.TRAINING_RUN_STATE_SUCCEEDED,
    ]);
    // The trainer's JSON lines became metric points: steps increase, the loss falls.
    expect(metrics.length).toBeGreaterThan(20);
    const steps = metrics.map((p) => Number(p.step));
    expect(steps).toEqual([...steps].sort((a, b) => a - b));
    expect(metrics.at(-1)!.loss).toBeLessThan(metrics[0]!.loss / 10);
    expect(metrics.at(-1)!.extra['val_loss']).toBeGreaterThanOrEqual(0);

    const run = await get(started);
    expect(run.metrics.length).toBe(metrics.length);
    expect(run.startTime).toBeDefined();
    expect(run.endTime).toBeDefined();
    expect(run.checkpoints.length).toBeGreaterThanOrEqual(2);
    expect(run.model).toBe(`models/tr-${run.id}`);
    // The spec as it ran: the template's default resources filled in.
    expect(run.spec!.resources).toEqual({
      cpuMillicores: 1000,
      memoryBytes: 536870912n,
      pidsMax: 64,
      gpuCount: 0,
      timeout: { seconds: 3600n, nanos: 0 },
    });

    // The checkpoint artifacts: produced by the job, derived from the dataset (and the trainer file).
    const kinds = new Map<string, artifactsV1.Artifact>();
    for (const name of run.checkpoints) {
      const { artifact } = await unaryCall(admin.artifacts.getArtifact.bind(admin.artifacts), { name });
      kinds.set(artifact!.labels['aether.training-output']!, artifact!);
      expect(artifact!.jobId).toBe(run.job.slice('jobs/'.length));
      expect(artifact!.derivedFrom).toContain(dataset.name);
      expect(artifact!.labels['aether.training-run']).toBe(run.id);
    }
    expect(kinds.get('model.onnx')!.type).toBe(ArtifactType.ARTIFACT_TYPE_MODEL);
    expect(kinds.get('checkpoint.json')!.type).toBe(ArtifactType.ARTIFACT_TYPE_CHECKPOINT);
    checkpoint = kinds.get('checkpoint.json')!.name;

    // The registered model infers sin(x) within tolerance.
    const { model } = await unaryCall(m().getModel.bind(m()), { name: run.model });
    expect(model!.trainingRun).toBe(run.name);
    expect(model!.artifact).toBe(kinds.get('model.onnx')!.name);
    const xs = [-2.5, -1, 0, 0.7, 2];
    const { outputs } = await unaryCall(
      m().infer.bind(m()),
      modelsV1.InferRequest.fromPartial({
        name: run.model,
        inputs: [
          {
            name: 'x',
            dtype: DataType.DATA_TYPE_FLOAT32,
            shape: [BigInt(xs.length), 1n],
            data: Buffer.from(Float32Array.from(xs).buffer),
          },
        ],
      }),
    );
    const y = outputs[0]!;
    const ys = new Float32Array(
      y.data.buffer.slice(y.data.byteOffset, y.data.byteOffset + y.data.byteLength),
    );
    xs.forEach((x, i) => expect(Math.abs(ys[i]! - Math.sin(x))).toBeLessThan(0.05));

    // The summary in memory cites the run, its job, the dataset and every checkpoint.
    const { entry } = await unaryCall(
      admin.memory.getEntry.bind(admin.memory),
      memoryV1.GetEntryRequest.fromPartial({ name: run.summaryEntry }),
    );
    expect(entry!.text).toContain(`Training run ${run.name}`);
    expect(entry!.text).toMatch(/final loss \d/);
    expect(entry!.references).toEqual(
      expect.arrayContaining([run.name, run.job, dataset.name, ...run.checkpoints, run.model]),
    );
    expect(entry!.provenance!.actor).toBe('spiffe://aether.local/cfcd');

    // The job itself ran as cfcd, with the run's labels, the dataset among its inputs.
    const { job } = await unaryCall(admin.jobs.getJob.bind(admin.jobs), { name: run.job });
    expect(job!.actor).toBe('spiffe://aether.local/cfcd');
    expect(job!.spec!.labels).toMatchObject({ purpose: 'e2e', 'aether.training-run': run.id });
    expect(job!.spec!.inputArtifacts).toContain(dataset.name);
    expect(job!.spec!.env['AETHER_HPARAMS']).toBe('{"epochs":150,"hidden":16,"seed":3}');

    // Listed, newest first, with only the latest metric point; filters work.
    const list = await unaryCall(
      m().listTrainingRuns.bind(m()),
      modelsV1.ListTrainingRunsRequest.fromPartial({ labelSelector: 'purpose=e2e' }),
    );
    expect(list.runs.map((r) => r.name)).toEqual([run.name]);
    expect(list.runs[0]!.metrics).toHaveLength(1);
    const none = await unaryCall(
      m().listTrainingRuns.bind(m()),
      modelsV1.ListTrainingRunsRequest.fromPartial({ template: 'probe' }),
    );
    expect(none.runs.map((r) => r.name)).not.toContain(run.name);
  }, 120_000);

  it('evaluates the checkpoint on the dataset with the built-in evaluate template', async () => {
    expect(checkpoint).toMatch(/^artifacts\//);
    const started = await start({
      template: 'evaluate',
      datasets: [dataset.name, checkpoint],
      hyperparameters: { model: checkpoint, dataset: dataset.name },
    });
    const { last, metrics } = await watch(started.name, -1n);
    expect([last.failureReason, ...last.lastLogLines]).toEqual(['']);
    expect(last.state).toBe(S.TRAINING_RUN_STATE_SUCCEEDED);
    expect(metrics).toHaveLength(1);
    expect(metrics[0]!.extra['rows']).toBe(600);
    expect(metrics[0]!.extra['mse']).toBeLessThan(0.0025); // |error| < 0.05 on average, as Infer showed
    expect(metrics[0]!.loss).toBe(metrics[0]!.extra['mse']);
  }, 60_000);

  it('runs the trainer in the sandbox: the dataset is read-only and the network unreachable', async () => {
    const started = await start({
      template: 'probe',
      datasets: [dataset.name],
      hyperparameters: { epochs: 4 },
    });
    const { last, metrics } = await watch(started.name, -1n);
    expect(last.state).toBe(S.TRAINING_RUN_STATE_SUCCEEDED);
    expect(metrics).toHaveLength(1);
    expect(metrics[0]!.extra).toMatchObject({ write_blocked: 1, net_blocked: 1, hparam_epochs: 4 });
    // The dataset is unchanged: its digest still verifies.
    const { valid } = await unaryCall(
      admin.artifacts.verifyArtifact.bind(admin.artifacts),
      artifactsV1.VerifyArtifactRequest.fromPartial({ name: dataset.name }),
    );
    expect(valid).toBe(true);
    // No model asked for: no model, but the checkpoint and a summary.
    const run = await get(started);
    expect(run.model).toBe('');
    expect(run.checkpoints).toHaveLength(1);
    expect(run.summaryEntry).toMatch(/^entries\//);
  }, 60_000);

  it('a trainer that crashes gives a FAILED run with its exit status and last log lines', async () => {
    const started = await start({ template: 'crash', datasets: [dataset.name] });
    const { last, metrics } = await watch(started.name, -1n);
    expect(last.state).toBe(S.TRAINING_RUN_STATE_FAILED);
    expect(metrics.map((p) => p.loss)).toEqual([2.5, 1.25]);
    const run = await get(started);
    expect(run.failureReason).toMatch(/ended FAILED: exited with code 3$/);
    expect(run.lastLogLines).toEqual(expect.arrayContaining(['trainer: fatal: out of cheese']));
    expect(run.checkpoints).toEqual([]);
    expect(run.summaryEntry).toBe('');
  }, 60_000);

  it('stopping a run stops its job: the run ends STOPPED', async () => {
    const started = await start({
      template: 'reference-mlp',
      datasets: [dataset.name],
      hyperparameters: { epochs: 100000 },
    });
    // Wait for the trainer to report progress, then stop it.
    for await (const u of serverStreamCall(
      m().watchTrainingRun.bind(m()),
      modelsV1.WatchTrainingRunRequest.fromPartial({ name: started.name }),
      { timeoutMs: 60_000 },
    ))
      if (u.update?.$case === 'metric') break;
    const { run: stopping } = await unaryCall(
      m().stopTrainingRun.bind(m()),
      modelsV1.StopTrainingRunRequest.fromPartial({
        name: started.name,
        gracePeriod: { seconds: 5n, nanos: 0 },
      }),
    );
    expect(stopping!.name).toBe(started.name);
    const { last } = await watch(started.name);
    expect(last.state).toBe(S.TRAINING_RUN_STATE_STOPPED);
    const { job } = await unaryCall(admin.jobs.getJob.bind(admin.jobs), { name: last.job });
    expect([jobsV1.JobState.JOB_STATE_STOPPED, jobsV1.JobState.JOB_STATE_KILLED]).toContain(job!.state);
    // Stopping a terminal run returns it unchanged.
    const again = await unaryCall(
      m().stopTrainingRun.bind(m()),
      modelsV1.StopTrainingRunRequest.fromPartial({ name: started.name }),
    );
    expect(again.run!.state).toBe(S.TRAINING_RUN_STATE_STOPPED);
  }, 90_000);

  it('a run survives a cfcd restart: followed again from where its log was read, nothing counted twice', async () => {
    const started = await start({
      template: 'reference-mlp',
      datasets: [dataset.name],
      hyperparameters: { epochs: 12000 },
      registerModel: true,
    });
    for await (const u of serverStreamCall(
      m().watchTrainingRun.bind(m()),
      modelsV1.WatchTrainingRunRequest.fromPartial({ name: started.name }),
      { timeoutMs: 60_000 },
    ))
      if (u.update?.$case === 'metric') break;
    await stack.stop('cfcd');
    await new Promise((r) => setTimeout(r, 1_000)); // the job goes on without cfcd
    await stack.start('cfcd');
    const { last, metrics } = await watch(started.name, -1n);
    expect(last.state).toBe(S.TRAINING_RUN_STATE_SUCCEEDED);
    const steps = metrics.map((p) => Number(p.step));
    expect(new Set(steps).size).toBe(steps.length);
    expect(steps).toEqual([...steps].sort((a, b) => a - b));
    expect(metrics.length).toBeGreaterThanOrEqual(90);
    expect(last.model).toBe(`models/tr-${last.id}`);
  }, 120_000);

  it('an intent drives the round trip: aurorad plans train-and-report, cfcd trains, the report cites the run', async () => {
    const { intent } = await unaryCall(
      admin.intents.submitIntent.bind(admin.intents),
      intentsV1.SubmitIntentRequest.fromPartial({
        input: { $case: 'text', value: `train reference-mlp on ${dataset.name}` },
      }),
    );
    let current = intent!;
    for await (const u of serverStreamCall(
      admin.intents.watchIntent.bind(admin.intents),
      { name: intent!.name },
      { timeoutMs: 90_000 },
    ))
      if (u.intent) current = u.intent;
    const steps = current.plan!.steps;
    expect(steps.map((s) => [s.id, s.tool, s.state, s.error?.message ?? ''])).toEqual([
      ['train', 'models.train', intentsV1.StepState.STEP_STATE_SUCCEEDED, ''],
      ['report', 'memory.add', intentsV1.StepState.STEP_STATE_SUCCEEDED, ''],
    ]);
    expect(current.state).toBe(intentsV1.IntentState.INTENT_STATE_SUCCEEDED);
    const result = steps[0]!.result as { run: string; model: string; artifacts: string[] };
    const run = await get({ name: result.run } as modelsV1.TrainingRun);
    expect(run.intentId).toBe(intent!.id);
    expect(run.actor).toBe('spiffe://aether.local/aurorad');
    expect(run.state).toBe(S.TRAINING_RUN_STATE_SUCCEEDED);
    expect(result.model).toBe(run.model);
    expect(result.artifacts).toEqual(run.checkpoints);
    // The run's job carries the intent too.
    const { job } = await unaryCall(admin.jobs.getJob.bind(admin.jobs), { name: run.job });
    expect(job!.spec!.intentId).toBe(intent!.id);
  }, 120_000);

  it('refuses bad input with the right codes, and nothing is started', async () => {
    const before = await unaryCall(
      m().listTrainingRuns.bind(m()),
      modelsV1.ListTrainingRunsRequest.fromPartial({}),
    );
    let e = await failure(start({ template: 'nope', datasets: [dataset.name] }));
    expect([e.code, e.reason]).toEqual([status.NOT_FOUND, 'TEMPLATE_NOT_FOUND']);
    expect(e.message).toContain('reference-mlp');

    e = await failure(
      start({
        template: 'reference-mlp',
        datasets: [dataset.name],
        hyperparameters: { epochs: 'many', dropout: 0.5 },
      }),
    );
    expect([e.code, e.reason]).toEqual([status.INVALID_ARGUMENT, 'INVALID_FIELD']);
    expect(e.message).toContain('spec.hyperparameters.epochs');
    expect(e.message).toContain('"dropout" is not a hyperparameter of template reference-mlp');

    e = await failure(start({ template: 'reference-mlp', datasets: [] }));
    expect(e.code).toBe(status.INVALID_ARGUMENT);
    expect(e.message).toContain('spec.datasets');

    e = await failure(
      start({ template: 'reference-mlp', datasets: ['artifacts/01jzzzzzzzzzzzzzzzzzzzzzzz'] }),
    );
    expect([e.code, e.reason]).toEqual([status.NOT_FOUND, 'ARTIFACT_NOT_FOUND']);

    // GPUs are granted per caller: aurorad's runs get none (before cfcd asks aetherd).
    e = await failure(
      start(
        {
          template: 'reference-mlp',
          datasets: [dataset.name],
          resources: modelsV1.TrainingResources.fromPartial({ gpuCount: 1 }),
        },
        aurorad,
      ),
    );
    expect(e.code).toBe(status.PERMISSION_DENIED);
    expect(e.message).toContain('aurorad-training-no-gpu');

    e = await failure(
      unaryCall(m().getTrainingRun.bind(m()), { name: 'trainingRuns/01jzzzzzzzzzzzzzzzzzzzzzzz' }),
    );
    expect([e.code, e.reason]).toEqual([status.NOT_FOUND, 'TRAINING_RUN_NOT_FOUND']);
    e = await failure(unaryCall(m().getTrainingRun.bind(m()), { name: 'runs/x' }));
    expect(e.code).toBe(status.INVALID_ARGUMENT);

    const after = await unaryCall(
      m().listTrainingRuns.bind(m()),
      modelsV1.ListTrainingRunsRequest.fromPartial({}),
    );
    expect(after.runs.map((r) => r.name)).toEqual(before.runs.map((r) => r.name));
  }, 60_000);
});
