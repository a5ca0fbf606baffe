// The reference trainer (apps/cfcd/trainer), for real: build.sh bundles it, make-dataset.js writes a
// dataset from a known function, the bundle trains as a child process on a bare `node` (no
// node_modules reachable from where it lies), and onnxruntime-node runs the exported model.
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onnx } from 'onnx-proto';

const TRAINER_DIR = join(__dirname, '..', 'trainer');

interface Probe {
  x: number[];
  y: number[];
}
interface Weights {
  W1: { data: number[] };
  b1: { data: number[] };
  W2: { data: number[] };
  b2: { data: number[] };
}
type Line = Record<string, unknown> & { step?: number; loss?: number; done?: boolean };

let dir: string;
let bundle: string;

/** Runs a trainer file with `node` and a minimal environment; returns status, JSON lines and stderr. */
function train(file: string, args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [file, ...args], {
    cwd: dir,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
    encoding: 'utf8',
    timeout: 30_000,
  });
  const lines = r.stdout
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Line);
  return { status: r.status, lines, stderr: r.stderr };
}

function makeDataset(fn: string, out: string, n = 1000, seed = 1): string {
  const file = join(dir, out);
  execFileSync(process.execPath, [
    join(TRAINER_DIR, 'make-dataset.js'),
    '--fn',
    fn,
    '--n',
    `${n}`,
    '--seed',
    `${seed}`,
    '--out',
    file,
  ]);
  return file;
}

/** The model's function computed here from checkpoint.json, independently of the trainer and of ONNX. */
function forward(w: Weights, x: number): number {
  let y = w.b2.data[0]!;
  for (let j = 0; j < w.W1.data.length; j++)
    y += w.W2.data[j]! * Math.tanh(w.W1.data[j]! * x + w.b1.data[j]!);
  return y;
}

// onnxruntime-node runs in a child process: under jest its native outputs are typed arrays of another
// realm, which onnxruntime-common's `instanceof Float32Array` check refuses.
const ORT_SCRIPT = `
const [ortPath, file, xsJson] = process.argv.slice(1);
const ort = require(ortPath);
(async () => {
  const xs = JSON.parse(xsJson);
  const session = await ort.InferenceSession.create(file);
  const out = await session.run({ x: new ort.Tensor('float32', Float32Array.from(xs), [xs.length, 1]) });
  const r = { inputs: session.inputNames, outputs: session.outputNames, dims: out.y.dims, y: Array.from(out.y.data) };
  await session.release();
  process.stdout.write(JSON.stringify(r));
})().catch((err) => { console.error(err); process.exit(1); });
`;

function runOnnx(file: string, xs: number[]): number[] {
  const stdout = execFileSync(
    process.execPath,
    ['-e', ORT_SCRIPT, require.resolve('onnxruntime-node'), file, JSON.stringify(xs)],
    {
      encoding: 'utf8',
    },
  );
  const r = JSON.parse(stdout) as { inputs: string[]; outputs: string[]; dims: number[]; y: number[] };
  expect(r.inputs).toEqual(['x']);
  expect(r.outputs).toEqual(['y']);
  expect(r.dims).toEqual([xs.length, 1]);
  return r.y;
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'reference-trainer-'));
  // The bundle goes in a fresh directory outside the repository, so it cannot resolve node_modules.
  execFileSync('bash', [join(TRAINER_DIR, 'build.sh'), join(dir, 'bundle')], { stdio: 'pipe' });
  bundle = join(dir, 'bundle', 'reference-trainer.js');
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('reference trainer', () => {
  it('learns sin(x) on [-1, 1] and exports an ONNX model that onnxruntime runs to the same values', () => {
    const data = makeDataset('sin', 'sin.jsonl');
    const out = join(dir, 'out-sin');
    const started = Date.now();
    const r = train(bundle, ['--dataset', data, '--out', out, '--epochs', '40', '--seed', '7']);
    const seconds = (Date.now() - started) / 1000;
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(seconds).toBeLessThan(10);

    // Progress lines, then one final line.
    const steps = r.lines.filter((l) => typeof l.step === 'number' && !l.done);
    const final = r.lines[r.lines.length - 1]!;
    expect(steps.length).toBeGreaterThanOrEqual(50);
    expect(final).toMatchObject({
      done: true,
      epoch: 40,
      outputs: ['model.onnx', 'checkpoint.json', 'metrics.json'],
    });
    expect(steps.map((l) => l.step)).toEqual([...steps.map((l) => l.step)].sort((a, b) => a! - b!));
    expect(steps[steps.length - 1]!.loss!).toBeLessThan(steps[0]!.loss! / 10);
    expect(final.loss).toBeLessThan(1e-3);

    const metrics = JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8')) as { probe: Probe };
    const checkpoint = JSON.parse(readFileSync(join(out, 'checkpoint.json'), 'utf8')) as { weights: Weights };
    const { probe } = metrics;
    expect(probe.x[0]).toBeLessThan(-0.99);
    expect(probe.x[probe.x.length - 1]).toBeGreaterThan(0.99);

    const y = runOnnx(join(out, 'model.onnx'), probe.x);
    let mse = 0;
    for (let i = 0; i < probe.x.length; i++) {
      // ONNX equals the trainer's own forward pass, and the checkpoint's weights give the same.
      const [x, onnxY, trainerY] = [probe.x[i]!, y[i]!, probe.y[i]!];
      expect(Math.abs(onnxY - trainerY)).toBeLessThan(1e-5);
      expect(Math.abs(onnxY - forward(checkpoint.weights, x))).toBeLessThan(1e-5);
      mse += (onnxY - Math.sin(x)) ** 2;
    }
    mse /= probe.x.length;
    expect(mse).toBeLessThan(0.01);
    // For the report: visible with --verbose.
    console.info(
      `sin: ${final.step} steps in ${seconds.toFixed(2)} s, final loss ${final.loss}, probe MSE vs sin ${mse.toExponential(3)}`,
    );

    // A batch of one works too: the batch dimension is dynamic.
    const one = runOnnx(join(out, 'model.onnx'), [0.5]);
    expect(Math.abs(one[0]! - Math.sin(0.5))).toBeLessThan(0.05);
  });

  it('writes an opset-13 graph of MatMul, Add, Tanh, MatMul, Add with its weights as initializers', () => {
    const model = onnx.ModelProto.decode(readFileSync(join(dir, 'out-sin', 'model.onnx')));
    expect(model.opsetImport.map((o) => [o.domain, Number(o.version)])).toEqual([['', 13]]);
    expect(model.producerName).toBe('aether-reference-trainer');
    // Decoded messages have every repeated field set; the generated types only say so for the classes.
    const graph = model.graph as onnx.GraphProto;
    expect(graph.node.map((n) => n.opType)).toEqual(['MatMul', 'Add', 'Tanh', 'MatMul', 'Add']);
    expect((graph.initializer as onnx.TensorProto[]).map((t) => [t.name, t.dims.map(Number)])).toEqual([
      ['W1', [1, 16]],
      ['b1', [16]],
      ['W2', [16, 1]],
      ['b2', [1]],
    ]);
    const dims = (graph.input[0]!.type!.tensorType!.shape as onnx.TensorShapeProto).dim;
    expect(dims.map((d) => d.dimParam || Number(d.dimValue))).toEqual(['N', 1]);
  });

  it('is deterministic for a seed and differs for another', () => {
    const data = makeDataset('sin', 'sin-small.csv', 200, 3);
    const run = (seed: string, name: string) => {
      const r = train(bundle, ['--dataset', data, '--out', join(dir, name), '--epochs', '5', '--seed', seed]);
      expect(r.status).toBe(0);
      return readFileSync(join(dir, name, 'model.onnx'));
    };
    const a = run('1', 'det-a');
    expect(run('1', 'det-b').equals(a)).toBe(true);
    expect(run('2', 'det-c').equals(a)).toBe(false);
  });

  it('learns 2x² − 1 from CSV, from the unbundled source and hyperparameters in $AETHER_HPARAMS', () => {
    const data = makeDataset('quad', 'quad.csv', 800, 2);
    const out = join(dir, 'out-quad');
    const r = train(join(TRAINER_DIR, 'reference-trainer.js'), ['--dataset', data, '--out', out], {
      AETHER_HPARAMS: JSON.stringify({ epochs: 60, hidden: 12, learning_rate: 0.02 }),
    });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.lines[r.lines.length - 1]).toMatchObject({ done: true, epoch: 60 });
    const xs = Array.from({ length: 21 }, (_, i) => -1 + i / 10);
    const y = runOnnx(join(out, 'model.onnx'), xs);
    const mse = xs.reduce((s, x, i) => s + (y[i]! - (2 * x * x - 1)) ** 2, 0) / xs.length;
    expect(mse).toBeLessThan(0.01);
  });

  it('reads every file of a dataset directory (how /work/inputs looks in the sandbox)', () => {
    const inputs = join(dir, 'inputs');
    mkdirSync(inputs);
    copyFileSync(join(dir, 'sin-small.csv'), join(inputs, '01jabc'));
    const r = train(bundle, ['--dataset', inputs, '--out', join(dir, 'out-dir'), '--epochs', '2']);
    expect(r.status).toBe(0);
    expect(r.lines[r.lines.length - 1]).toMatchObject({ done: true });
  });

  it.each([
    [
      'a non-numeric value',
      'x,y\n0.1,0.2\n0.3,abc\n',
      /bad\.csv line 3: expected two finite numbers "x,y", got "0\.3,abc"/,
    ],
    [
      'a JSON line without y',
      '{"x":0.1,"y":0.2}\n{"x":0.3}\n',
      /bad\.csv line 2: expected \{"x": <number>, "y": <number>\}/,
    ],
    ['broken JSON', '{"x":0.1,"y":0.2}\n{"x":0.3,\n', /bad\.csv line 2: not valid JSON/],
    ['too few rows', 'x,y\n0.5,0.5\n', /has 1 row\(s\); at least 2/],
    ['an empty file', '', /has 0 row\(s\)/],
  ])('fails with status 2 and a clear message on %s', (_what, content, message) => {
    const file = join(dir, 'bad.csv');
    writeFileSync(file, content);
    const r = train(bundle, ['--dataset', file, '--out', join(dir, 'out-bad')]);
    expect(r.status).toBe(2);
    expect(r.lines).toEqual([]);
    expect(r.stderr).toMatch(/^reference-trainer: error: /);
    expect(r.stderr).toMatch(message);
  });

  it('fails with status 2 on a missing dataset or a bad hyperparameter', () => {
    const missing = train(bundle, ['--dataset', join(dir, 'nope'), '--out', join(dir, 'o')]);
    expect(missing.status).toBe(2);
    expect(missing.stderr).toMatch(/cannot read dataset .*nope: ENOENT/);
    const bad = train(bundle, ['--dataset', join(dir, 'sin.jsonl'), '--out', join(dir, 'o'), '--lr', '-1']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/--lr: lr must be a number in \(0, 10\], got -1/);
    const unknown = train(bundle, ['--dataset', join(dir, 'sin.jsonl')], { AETHER_HPARAMS: '{"epoch": 3}' });
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toMatch(/\$AETHER_HPARAMS: unknown hyperparameter "epoch"/);
  });
});
