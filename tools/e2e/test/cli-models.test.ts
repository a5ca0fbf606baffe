import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { modelsV1 } from '@aether/proto';
import { repoRoot, Stack } from '../src';
import { linear, linearModel } from '../src/onnx-models';

interface Result {
  status: number | null;
  stdout: string;
  stderr: string;
}

const CLI = join(repoRoot, 'apps', 'cli', 'dist', 'main.js');

/** Runs the built `aether` command to its end, stdin not a terminal (so rm does not ask). */
function aether(...args: string[]): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NO_COLOR: '1' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', reject);
    child.once('close', (status) => resolve({ status, stdout, stderr }));
  });
}

const show = (r: Result): string => `exit ${r.status}\n--- stdout\n${r.stdout}--- stderr\n${r.stderr}`;
const expectExit = (r: Result, status: number): void => {
  if (r.status !== status) throw new Error(`expected exit ${status}, got ${show(r)}`);
};

/** y = x·W + b, the function of the ONNX model the tests register. */
const W = [
  [0.25, -1],
  [2, 0.5],
  [-3, 1.5],
];
const B = [1, -2];
const ROWS = [
  [1, 2, 3],
  [-0.5, 0, 4],
];

interface InferJson {
  model: string;
  outputs: Record<string, { dtype: string; shape: number[]; values: number[][] }>;
  computeTimeMs: number;
}

describe('aether models (the built CLI against real aetherd and cfcd)', () => {
  let stack: Stack;
  let artifact = '';
  let generated = '';
  const models = (...args: string[]): Promise<Result> =>
    aether('--config', stack.clientConfigPath, 'models', ...args);

  beforeAll(async () => {
    stack = await new Stack().init();
    await stack.start('aetherd');
    await stack.start('cfcd');
    // The model goes in as a user would put it there: a file uploaded with `aether artifacts add`.
    const file = join(stack.dir, 'linear.onnx');
    writeFileSync(file, linearModel(W, B));
    const add = await aether(
      '--config',
      stack.clientConfigPath,
      'artifacts',
      'add',
      file,
      '--type',
      'model',
      '--no-progress',
    );
    expectExit(add, 0);
    artifact = add.stdout.trim();
    expect(artifact).toMatch(/^artifacts\/[0-9a-z]{26}$/);
  }, 60_000);
  afterAll(() => stack?.close());

  it('register prints the model and the signature read from it; a taken id is refused with a remedy', async () => {
    const r = await models(
      'register',
      artifact.replace('artifacts/', ''),
      '--name',
      'linear',
      '--display-name',
      'Linear 3->2',
      '--label',
      'demo=cli',
    );
    expectExit(r, 0);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/^Name:\s+models\/linear$/m);
    expect(r.stdout).toMatch(/^Display name:\s+Linear 3->2$/m);
    expect(r.stdout).toMatch(/^Format:\s+onnx$/m);
    expect(r.stdout).toMatch(/^State:\s+READY$/m);
    expect(r.stdout).toMatch(/^Capabilities:\s+infer$/m);
    expect(r.stdout).toMatch(new RegExp(`^Artifact:\\s+${artifact}$`, 'm'));
    expect(r.stdout).toMatch(/^Digest:\s+sha256:[0-9a-f]{64}$/m);
    expect(r.stdout).toMatch(/^Labels:\s+demo=cli$/m);
    expect(r.stdout).toMatch(/^Inputs:\n\s+NAME\s+DTYPE\s+SHAPE\n\s+x\s+float32\s+\[N, 3\]$/m);
    expect(r.stdout).toMatch(/^Outputs:\n\s+NAME\s+DTYPE\s+SHAPE\n\s+y\s+float32\s+\[N, 2\]$/m);

    const again = await models('register', artifact, '--name', 'linear');
    expectExit(again, 1);
    expect(again.stderr).toMatch(/^aether: ALREADY_EXISTS: .*\[MODEL_EXISTS\]$/m);
    expect(again.stderr).toMatch(/^\s+choose another --name/m);

    // Without --name the id is generated; --json prints the model for scripts.
    const json = await models('register', artifact, '--json');
    expectExit(json, 0);
    const m = modelsV1.Model.fromJSON(JSON.parse(json.stdout));
    expect(m.name).toMatch(/^models\/m-[0-9a-z]+$/);
    expect(m.signature!.inputs).toEqual([
      { name: 'x', dtype: modelsV1.DataType.DATA_TYPE_FLOAT32, shape: [-1n, 3n] },
    ]);
    generated = m.name;
  });

  it('ls lists the models, filters by label and pages with a hint for the next page', async () => {
    const r = await models('ls');
    expectExit(r, 0);
    expect(r.stdout).toMatch(/^ID\s+FORMAT\s+STATE\s+AGE\s+LAST USED\s+SIGNATURE\s+DISPLAY NAME$/m);
    expect(r.stdout).toMatch(
      /^linear\s+onnx\s+READY\s+\S+\s+\S+\s+x: float32 \[N, 3\] -> y: float32 \[N, 2\]\s+Linear 3->2$/m,
    );
    expect(r.stdout).toContain(generated.replace('models/', ''));

    const labelled = await models('ls', '-l', 'demo=cli', '--json');
    expectExit(labelled, 0);
    expect((JSON.parse(labelled.stdout) as { name: string }[]).map((x) => x.name)).toEqual(['models/linear']);

    const first = await models('ls', '--page-size', '1');
    expectExit(first, 0);
    const token = /add --page-token (\S+) for the next page, or --all-pages/.exec(first.stderr)?.[1];
    if (!token) throw new Error(`no page hint: ${show(first)}`);
    expect(first.stdout.trimEnd().split('\n')).toHaveLength(2);
    const second = await models('ls', '--page-size', '1', '--page-token', token);
    expectExit(second, 0);
    expect(second.stdout.trimEnd().split('\n')).toHaveLength(2);
    expect(second.stdout.split('\n')[1]).not.toBe(first.stdout.split('\n')[1]);
    const all = await models('ls', '--page-size', '1', '--all-pages', '--json');
    expectExit(all, 0);
    expect((JSON.parse(all.stdout) as { name: string }[]).map((x) => x.name).sort()).toEqual(
      [generated, 'models/linear'].sort(),
    );
  });

  it('get shows one model with its signature, by name or bare id', async () => {
    const r = await models('get', 'models/linear');
    expectExit(r, 0);
    expect(r.stdout).toMatch(/^Name:\s+models\/linear$/m);
    expect(r.stdout).toMatch(/^\s+x\s+float32\s+\[N, 3\]$/m);
    const json = await models('get', 'linear', '--json');
    expectExit(json, 0);
    expect((JSON.parse(json.stdout) as { signature: unknown }).signature).toEqual({
      inputs: [{ name: 'x', dtype: 'DATA_TYPE_FLOAT32', shape: ['-1', '3'] }],
      outputs: [{ name: 'y', dtype: 'DATA_TYPE_FLOAT32', shape: ['-1', '2'] }],
    });
  });

  it('infer runs the model on nested JSON arrays and prints what y = x·W + b gives', async () => {
    const expected = linear(W, B, ROWS);
    const r = await models('infer', 'linear', '--input', `x=${JSON.stringify(ROWS)}`);
    expectExit(r, 0);
    expect(r.stderr).toBe('');
    // Every value here is exact in float32, so the printed text is exact too.
    expect(r.stdout).toContain(
      `y: float32 [2, 2]\n[[${expected[0]!.join(', ')}],\n [${expected[1]!.join(', ')}]]\n`,
    );
    expect(r.stdout).toMatch(/^compute time: [\d.]+m?s$/m);

    // A flat array with --shape, and JSON for scripts.
    const flat = await models(
      'infer',
      'models/linear',
      '--input',
      `x=${JSON.stringify(ROWS.flat())}`,
      '--shape',
      'x=2,3',
      '--json',
    );
    expectExit(flat, 0);
    const out = JSON.parse(flat.stdout) as InferJson;
    expect(out.model).toBe('models/linear');
    expect(out.outputs['y']!.dtype).toBe('float32');
    expect(out.outputs['y']!.shape).toEqual([2, 2]);
    expect(out.outputs['y']!.values).toEqual(expected);
    expect(out.computeTimeMs).toBeGreaterThanOrEqual(0);

    // Values that are not exact in float32 come back as their nearest float32.
    const rows = [[0.1, 0.2, 0.3]];
    const approx = await models('infer', 'linear', '--input', `x=${JSON.stringify(rows)}`, '--json');
    expectExit(approx, 0);
    const got = (JSON.parse(approx.stdout) as InferJson).outputs['y']!.values[0]!;
    linear(W, B, rows)[0]!.forEach((v, i) => expect(got[i]).toBeCloseTo(v, 5));
  });

  it('a wrong shape or dtype is refused naming the input and what the model expects; exit 1', async () => {
    const shape = await models('infer', 'linear', '--input', 'x=[[0.5],[1.0]]');
    expectExit(shape, 1);
    expect(shape.stdout).toBe('');
    expect(shape.stderr).toMatch(/^aether: INVALID_ARGUMENT: input "x": .*\[TENSOR_SHAPE_MISMATCH\]$/m);
    expect(shape.stderr).toMatch(/^\s+the model expects input x: float32 \[N, 3\]$/m);
    expect(shape.stderr).toMatch(/^\s+sent x: float32 \[2, 1\]$/m);

    const dtype = await models('infer', 'linear', '--input', 'x=[[1, 2, 3]]', '--dtype', 'x=int32');
    expectExit(dtype, 1);
    expect(dtype.stderr).toMatch(/^aether: INVALID_ARGUMENT: input "x": .*\[TENSOR_DTYPE_MISMATCH\]$/m);
    expect(dtype.stderr).toMatch(/^\s+the model expects input x: float32 \[N, 3\]$/m);
    expect(dtype.stderr).toMatch(/^\s+sent x: int32 \[1, 3\]$/m);

    // What the CLI can tell without asking cfcd is a usage error (64) naming the input.
    const ragged = await models('infer', 'linear', '--input', 'x=[[1, 2, 3], [4, 5]]');
    expectExit(ragged, 64);
    expect(ragged.stderr).toMatch(
      /^aether: --input x is ragged: x\[0\] has shape \[3\] but x\[1\] has \[2\]/m,
    );
    const missing = await models('infer', 'linear', '--input', 'z=[1]');
    expectExit(missing, 64);
    expect(missing.stderr).toMatch(/^aether: models\/linear needs x: float32 \[N, 3\]: give --input x=/m);
    const notJson = await models('infer', 'linear', '--input', 'x=[1, 2');
    expectExit(notJson, 64);
    expect(notJson.stderr).toMatch(/--input x: "\[1, 2" is not JSON/);

    const unknown = await models('infer', 'nothing', '--input', 'x=[[1, 2, 3]]');
    expectExit(unknown, 1);
    expect(unknown.stderr).toMatch(/^aether: NOT_FOUND: .*\[MODEL_NOT_FOUND\]$/m);
    expect(unknown.stderr).toMatch(/^\s+list the registered models: aether models ls$/m);
  });

  it('unload frees the model; the next infer loads it again', async () => {
    const r = await models('unload', 'linear');
    expectExit(r, 0);
    expect(r.stdout).toBe('unloaded models/linear (now UNLOADED)\n');
    expect((await models('get', 'linear')).stdout).toMatch(/^State:\s+UNLOADED$/m);
    expectExit(await models('infer', 'linear', '--input', 'x=[[0, 0, 0]]'), 0);
    expect((await models('get', 'linear')).stdout).toMatch(/^State:\s+READY$/m);
  });

  it('rm unregisters models (no question when stdin is not a terminal); the artifact stays', async () => {
    const r = await models('rm', 'linear', generated);
    expectExit(r, 0);
    expect(r.stdout).toBe(`deleted models/linear\ndeleted ${generated}\n`);
    const gone = await models('get', 'linear');
    expectExit(gone, 1);
    expect(gone.stderr).toMatch(/\[MODEL_NOT_FOUND\]/);
    const again = await models('rm', '--yes', 'linear');
    expectExit(again, 1);
    expect(again.stderr).toMatch(/^aether: models\/linear: NOT_FOUND: /m);
    expectExit(await models('ls'), 0);
    const kept = await aether('--config', stack.clientConfigPath, 'artifacts', 'get', artifact);
    expectExit(kept, 0);
  });

  // First what needs no run: the templates, an empty list and an unknown run.
  it('train templates lists the configured templates; train ls and get answer with no runs', async () => {
    const train = (...args: string[]): Promise<Result> =>
      aether('--config', stack.clientConfigPath, 'train', ...args);
    const t = await train('templates');
    expectExit(t, 0);
    expect(t.stdout).toMatch(/^NAME\s+DESCRIPTION\s+DEFAULTS\s+HYPERPARAMETERS$/m);
    expect(t.stdout).toMatch(/^reference-mlp\s+.*\bepochs\b/m);
    const json = await train('templates', '--json');
    expectExit(json, 0);
    expect((JSON.parse(json.stdout) as { name: string }[]).map((x) => x.name)).toContain(
      'trainingTemplates/reference-mlp',
    );

    const ls = await train('ls');
    expectExit(ls, 0);
    expect(ls.stdout).toBe('ID  STATE  TEMPLATE  AGE  DURATION  STEP  LOSS  NAME\n');
    const lsJson = await train('ls', '--state', 'running,failed', '--json');
    expectExit(lsJson, 0);
    expect(JSON.parse(lsJson.stdout)).toEqual([]);

    const missing = await train('get', '01jc7v0m4k3h2g1f0e9d8c7b6a');
    expectExit(missing, 1);
    expect(missing.stderr).toMatch(/^aether: NOT_FOUND: .*\[TRAINING_RUN_NOT_FOUND\]$/m);
    expect(missing.stderr).toMatch(/^\s+list the training runs: aether train ls$/m);
    const bad = await train('get', 'not-a-run');
    expectExit(bad, 64);
    expect(bad.stderr).toMatch(/^aether: "not-a-run" is not a training run/m);
  });

  it('train start --watch runs the reference trainer to its end; the model it registers infers sin(x)', async () => {
    const cli = (...args: string[]): Promise<Result> => aether('--config', stack.clientConfigPath, ...args);
    const data = join(stack.dir, 'sin.jsonl');
    const make = spawnSync(process.execPath, [
      join(repoRoot, 'apps', 'cfcd', 'dist', 'trainer', 'make-dataset.js'),
      ...['--fn', 'sin', '--n', '500', '--range', '-3,3', '--out', data],
    ]);
    expect(make.status).toBe(0);
    const add = await cli('artifacts', 'add', data, '--type', 'dataset', '--no-progress');
    expectExit(add, 0);
    const dataset = add.stdout.trim();

    const run = await cli(
      'train',
      'start',
      'reference-mlp',
      '--dataset',
      dataset,
      '--hparam',
      'epochs=150',
      '--register-model',
      '--watch',
    );
    expectExit(run, 0);
    expect(run.stdout).toMatch(/SUCCEEDED/);
    const runId = /trainingRuns\/([0-9a-z]{26})/.exec(run.stdout + run.stderr)?.[1];
    expect(runId).toBeDefined();

    const get = await cli('train', 'get', runId!, '--json');
    expectExit(get, 0);
    const shown = JSON.parse(get.stdout) as { state: string; model: string; checkpoints: string[] };
    expect(shown.state).toBe('TRAINING_RUN_STATE_SUCCEEDED');
    expect(shown.model).toBe(`models/tr-${runId!}`);
    expect(shown.checkpoints.length).toBeGreaterThanOrEqual(2);

    const infer = await cli('models', 'infer', shown.model, '--input', 'x=[[0.5],[-2]]', '--json');
    expectExit(infer, 0);
    const ys = (JSON.parse(infer.stdout) as InferJson).outputs['y']!.values.flat();
    expect(Math.abs(ys[0]! - Math.sin(0.5))).toBeLessThan(0.05);
    expect(Math.abs(ys[1]! - Math.sin(-2))).toBeLessThan(0.05);
  }, 120_000);

  it('train stop stops a running run; train watch then exits 2 (STOPPED)', async () => {
    const cli = (...args: string[]): Promise<Result> => aether('--config', stack.clientConfigPath, ...args);
    const ls = await cli('artifacts', 'ls', '--type', 'dataset', '--json');
    expectExit(ls, 0);
    const dataset = (JSON.parse(ls.stdout) as { name: string }[])[0]!.name;
    const start = await cli(
      'train',
      'start',
      'reference-mlp',
      '--dataset',
      dataset,
      '--hparam',
      'epochs=100000',
    );
    expectExit(start, 0);
    const name = start.stdout.trim();
    expect(name).toMatch(/^trainingRuns\/[0-9a-z]{26}$/);
    expectExit(await cli('train', 'stop', name, '--grace', '5s'), 0);
    const watch = await cli('train', 'watch', name);
    expectExit(watch, 2);
    expect(watch.stdout).toMatch(/STOPPED/);
  }, 60_000);
});
