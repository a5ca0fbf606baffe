#!/usr/bin/env node
// The reference trainer: trains a small MLP (1 → H → 1, tanh) on (x, y) pairs with mini-batch Adam,
// deterministically from a seed, in plain JavaScript, and exports it to ONNX. It is written to run inside
// an aetherd sandbox with nothing but Node: no network, a read-only dataset, writable /work/outputs.
//
//   node reference-trainer.js [--dataset] <file|dir> ... --out <dir> [--epochs N] [--hidden H] [--lr X]
//                             [--seed S] [--batch-size B] [--val-fraction F] [--log-every K]
//                             [--hparams file.json]
//
// Hyperparameters come from, lowest precedence first: the defaults, a JSON object in --hparams <file>
// or else in $AETHER_HPARAMS (keys: epochs, hidden, lr, seed, batch_size, val_fraction, log_every), and
// the command-line flags.
//
// stdout carries JSON lines only: `{"step":…,"epoch":…,"loss":…,"val_loss":…,"lr":…}` as it trains and
// a final `{"done":true,"loss":…,…}` (or `{"stopped":true,…}` after SIGTERM/SIGINT). Losses are mean
// squared errors in the units of y. Errors go to stderr as one `reference-trainer: error: …` line, with
// exit status 2 for a bad dataset or bad arguments and 1 for anything else.
//
// It writes into --out: model.onnx (opset 13: MatMul, Add, Tanh, MatMul, Add; input `x` float32 [N,1],
// output `y` float32 [N,1]), checkpoint.json (the weights) and metrics.json (the metric history, the final
// losses and the model's predictions on a probe grid, for checking the ONNX file).
//
// ONNX is encoded with the `onnx-proto` package (the ONNX protobuf schema compiled by protobuf.js). Run
// from the repository it is resolved from node_modules; build.sh bundles it into dist/reference-trainer.js,
// one self-contained file for the sandbox (see README.md).
'use strict';

const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const TRAINER = 'aether-reference-trainer';
const TRAINER_VERSION = '1.0.0';
const MAX_ROWS = 10_000_000;
const PROBE_POINTS = 41;

const DEFAULTS = {
  epochs: 200,
  hidden: 16,
  lr: 0.01,
  seed: 1,
  batch_size: 32,
  val_fraction: 0.1,
  log_every: 0, // 0: about 100 lines over the run
};

const USAGE = `usage: node reference-trainer.js [--dataset] <file|dir> ... --out <dir> [--epochs N] [--hidden H]
       [--lr X] [--seed S] [--batch-size B] [--val-fraction F] [--log-every K] [--hparams file.json]`;

/** A bad dataset or bad arguments: exit status 2. */
class InputError extends Error {}

// ---------------------------------------------------------------------------------------------------
// Arguments and hyperparameters

const FLAGS = {
  '--dataset': 'dataset',
  '--out': 'out',
  '--hparams': 'hparams',
  '--epochs': 'epochs',
  '--hidden': 'hidden',
  '--lr': 'lr',
  '--seed': 'seed',
  '--batch-size': 'batch_size',
  '--val-fraction': 'val_fraction',
  '--log-every': 'log_every',
};

function parseArgs(argv) {
  const flags = {};
  // Datasets: every `--dataset` and every argument that is not a flag, in order (one dataset artifact each
  // when cfcd's template passes `{datasets}`).
  const datasets = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--help' || arg === '-h') {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    }
    if (!arg.startsWith('-')) {
      datasets.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    const key = FLAGS[flag];
    if (!key) throw new InputError(`unknown argument ${arg}\n${USAGE}`);
    const value = eq > 0 ? arg.slice(eq + 1) : argv[++i];
    if (value === undefined) throw new InputError(`${flag} needs a value`);
    if (key === 'dataset') datasets.push(value);
    else flags[key] = value;
  }
  let fromJson = {};
  let source = '';
  if (flags.hparams !== undefined) {
    source = flags.hparams;
    fromJson = parseHparams(readText(flags.hparams, 'hyperparameters file'), source);
  } else if (process.env.AETHER_HPARAMS) {
    source = '$AETHER_HPARAMS';
    fromJson = parseHparams(process.env.AETHER_HPARAMS, source);
  }
  const hp = { ...DEFAULTS };
  for (const [key, value] of Object.entries(fromJson)) hp[key] = checkHparam(key, value, source);
  for (const key of Object.keys(DEFAULTS))
    if (flags[key] !== undefined)
      hp[key] = checkHparam(key, Number(flags[key]), `--${key.replace('_', '-')}`);
  return {
    datasets: datasets.length > 0 ? datasets : ['/work/inputs'],
    out: flags.out ?? '/work/outputs',
    hp,
  };
}

function parseHparams(text, source) {
  let value;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new InputError(`${source}: not JSON: ${err.message}`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw new InputError(`${source}: hyperparameters must be a JSON object`);
  // Accept learning_rate and batchSize-style spellings too.
  const aliases = {
    learning_rate: 'lr',
    batchSize: 'batch_size',
    valFraction: 'val_fraction',
    logEvery: 'log_every',
  };
  const out = {};
  for (const [k, v] of Object.entries(value)) {
    const key = aliases[k] ?? k;
    if (!(key in DEFAULTS))
      throw new InputError(
        `${source}: unknown hyperparameter "${k}" (known: ${Object.keys(DEFAULTS).join(', ')})`,
      );
    out[key] = v;
  }
  return out;
}

function checkHparam(key, value, source) {
  const bad = (what) => new InputError(`${source}: ${key} must be ${what}, got ${JSON.stringify(value)}`);
  if (typeof value !== 'number' || !Number.isFinite(value)) throw bad('a number');
  switch (key) {
    case 'epochs':
      if (!Number.isInteger(value) || value < 1 || value > 1_000_000) throw bad('an integer in [1, 1000000]');
      break;
    case 'hidden':
      if (!Number.isInteger(value) || value < 1 || value > 4096) throw bad('an integer in [1, 4096]');
      break;
    case 'lr':
      if (!(value > 0 && value <= 10)) throw bad('a number in (0, 10]');
      break;
    case 'seed':
      if (!Number.isInteger(value)) throw bad('an integer');
      break;
    case 'batch_size':
      if (!Number.isInteger(value) || value < 0) throw bad('an integer >= 0 (0: the whole training set)');
      break;
    case 'val_fraction':
      if (!(value >= 0 && value < 1)) throw bad('a number in [0, 1)');
      break;
    case 'log_every':
      if (!Number.isInteger(value) || value < 0) throw bad('an integer >= 0');
      break;
  }
  return value;
}

// ---------------------------------------------------------------------------------------------------
// Dataset

function readText(file, what) {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new InputError(`cannot read ${what} ${file}: ${err.code ?? err.message}`);
  }
}

/** The dataset files: the file itself, or a directory's regular files in name order. */
function datasetFiles(dataset) {
  let st;
  try {
    st = fs.statSync(dataset);
  } catch (err) {
    throw new InputError(`cannot read dataset ${dataset}: ${err.code ?? err.message}`);
  }
  if (!st.isDirectory()) return [dataset];
  const files = fs
    .readdirSync(dataset, { withFileTypes: true })
    .filter((e) => !e.name.startsWith('.') && (e.isFile() || e.isSymbolicLink()))
    .map((e) => path.join(dataset, e.name))
    .filter((f) => fs.statSync(f).isFile())
    .sort();
  if (files.length === 0) throw new InputError(`dataset directory ${dataset} has no files`);
  return files;
}

/**
 * Reads (x, y) pairs: JSON lines (`{"x":…,"y":…}` or `[x, y]`) or CSV (`x,y`, an optional header line).
 * Blank lines and lines starting with `#` are skipped. Returns the pairs and the SHA-256 of the bytes.
 */
function readDataset(datasets) {
  const files = datasets.flatMap(datasetFiles);
  const xs = [];
  const ys = [];
  const hash = crypto.createHash('sha256');
  for (const file of files) {
    const text = readText(file, 'dataset');
    hash.update(text);
    const lines = text.split('\n');
    let first = true;
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i].trim();
      if (line === '' || line.startsWith('#')) continue;
      const where = `${file} line ${i + 1}`;
      let x;
      let y;
      if (line.startsWith('{') || line.startsWith('[')) {
        let v;
        try {
          v = JSON.parse(line);
        } catch {
          throw new InputError(`${where}: not valid JSON: ${excerpt(line)}`);
        }
        if (Array.isArray(v)) [x, y] = v.length === 2 ? v : [undefined, undefined];
        else ({ x, y } = v);
        if (typeof x !== 'number' || typeof y !== 'number' || !Number.isFinite(x) || !Number.isFinite(y))
          throw new InputError(
            `${where}: expected {"x": <number>, "y": <number>} or [x, y], got ${excerpt(line)}`,
          );
      } else {
        const fields = line.split(/\s*[,;\t]\s*/);
        const nums = fields.map((f) => (f === '' ? NaN : Number(f)));
        if (fields.length !== 2 || !nums.every(Number.isFinite)) {
          // The first line of a CSV file may be a header such as `x,y`.
          if (first && fields.length === 2 && nums.every(Number.isNaN)) {
            first = false;
            continue;
          }
          throw new InputError(`${where}: expected two finite numbers "x,y", got ${excerpt(line)}`);
        }
        [x, y] = nums;
      }
      first = false;
      xs.push(x);
      ys.push(y);
      if (xs.length > MAX_ROWS) throw new InputError(`dataset has more than ${MAX_ROWS} rows`);
    }
  }
  if (xs.length < 2)
    throw new InputError(
      `dataset ${datasets.join(', ')} has ${xs.length} row(s); at least 2 (x, y) pairs are needed`,
    );
  return { files, x: Float64Array.from(xs), y: Float64Array.from(ys), sha256: hash.digest('hex') };
}

function excerpt(line) {
  return JSON.stringify(line.length > 80 ? `${line.slice(0, 80)}…` : line);
}

function meanStd(values) {
  let mean = 0;
  for (const v of values) mean += v;
  mean /= values.length;
  let variance = 0;
  for (const v of values) variance += (v - mean) * (v - mean);
  const std = Math.sqrt(variance / values.length);
  return { mean, std: std > 1e-12 ? std : 1 };
}

// ---------------------------------------------------------------------------------------------------
// Model

/** mulberry32: a small seeded generator; the same seed gives the same run on every platform. */
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function shuffle(a, rand) {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    const t = a[i];
    a[i] = a[j];
    a[j] = t;
  }
}

/**
 * The MLP's parameters, float32 as in the ONNX file: y = W2ᵀ·tanh(W1·x + b1) + b2 with W1 [1,H],
 * b1 [H], W2 [H,1], b2 [1]. All parameters live in one Float32Array so Adam runs over it in one loop.
 */
class Mlp {
  constructor(hidden, params) {
    this.hidden = hidden;
    this.params = params ?? new Float32Array(3 * hidden + 1);
    const H = hidden;
    this.w1 = this.params.subarray(0, H);
    this.b1 = this.params.subarray(H, 2 * H);
    this.w2 = this.params.subarray(2 * H, 3 * H);
    this.b2 = this.params.subarray(3 * H, 3 * H + 1);
  }

  static init(hidden, rand) {
    const m = new Mlp(hidden);
    const a = Math.sqrt(6 / (1 + hidden)); // Glorot uniform for both layers (fan-in + fan-out = 1 + H)
    for (let j = 0; j < hidden; j++) {
      m.w1[j] = (2 * rand() - 1) * a;
      // Biases spread over the (standardised) input range, so the units' bends start at different x.
      m.b1[j] = 2 * rand() - 1;
      m.w2[j] = (2 * rand() - 1) * a;
    }
    m.b2[0] = 0;
    return m;
  }

  predict(x) {
    let y = this.b2[0];
    for (let j = 0; j < this.hidden; j++) y += this.w2[j] * Math.tanh(this.w1[j] * x + this.b1[j]);
    return y;
  }

  /** Mean squared error over rows `idx` of (x, y). */
  mse(x, y, idx) {
    let sum = 0;
    for (const i of idx) {
      const e = this.predict(x[i]) - y[i];
      sum += e * e;
    }
    return idx.length ? sum / idx.length : NaN;
  }

  /**
   * Adds the gradient of the batch's mean squared error to `grad` (laid out like `params`) and returns
   * that error.
   */
  gradient(x, y, batch, grad) {
    const H = this.hidden;
    const { w1, b1, w2 } = this;
    const h = new Float64Array(H);
    let loss = 0;
    const scale = 2 / batch.length;
    for (const i of batch) {
      const xi = x[i];
      let out = this.b2[0];
      for (let j = 0; j < H; j++) {
        h[j] = Math.tanh(w1[j] * xi + b1[j]);
        out += w2[j] * h[j];
      }
      const err = out - y[i];
      loss += err * err;
      const g = scale * err;
      grad[3 * H] += g;
      for (let j = 0; j < H; j++) {
        grad[2 * H + j] += g * h[j];
        const ga = g * w2[j] * (1 - h[j] * h[j]);
        grad[j] += ga * xi;
        grad[H + j] += ga;
      }
    }
    return loss / batch.length;
  }

  /**
   * The same function on raw (unstandardised) x and y: the standardisation x' = (x − mx)/sx,
   * y = sy·y' + my folded into the weights, rounded to float32 — the weights the ONNX file holds.
   */
  fold(nx, ny) {
    const H = this.hidden;
    const m = new Mlp(H);
    for (let j = 0; j < H; j++) {
      m.w1[j] = this.w1[j] / nx.std;
      m.b1[j] = this.b1[j] - (this.w1[j] * nx.mean) / nx.std;
      m.w2[j] = this.w2[j] * ny.std;
    }
    m.b2[0] = this.b2[0] * ny.std + ny.mean;
    return m;
  }
}

/** Adam (Kingma & Ba) over a Float32Array of parameters. */
class Adam {
  constructor(n, lr, beta1 = 0.9, beta2 = 0.999, eps = 1e-8) {
    Object.assign(this, { lr, beta1, beta2, eps, t: 0 });
    this.m = new Float64Array(n);
    this.v = new Float64Array(n);
  }

  step(params, grad) {
    this.t++;
    const { beta1, beta2, eps } = this;
    const c1 = 1 - beta1 ** this.t;
    const c2 = 1 - beta2 ** this.t;
    for (let k = 0; k < params.length; k++) {
      const g = grad[k];
      this.m[k] = beta1 * this.m[k] + (1 - beta1) * g;
      this.v[k] = beta2 * this.v[k] + (1 - beta2) * g * g;
      params[k] -= (this.lr * (this.m[k] / c1)) / (Math.sqrt(this.v[k] / c2) + eps);
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// ONNX export

function loadOnnx() {
  // Set by the bundle that build.sh writes; otherwise the package from node_modules.
  const bundled = globalThis.__aetherTrainerVendor;
  if (bundled) return bundled.onnx;
  try {
    return require('onnx-proto').onnx;
  } catch (err) {
    throw new Error(
      `cannot load onnx-proto (${err.message}); run the bundle built by apps/cfcd/trainer/build.sh, ` +
        'or run this file from the repository after npm install',
      { cause: err },
    );
  }
}

/** Encodes the folded model as an ONNX ModelProto (opset 13). */
function exportOnnx(model, metadata) {
  const onnx = loadOnnx();
  const H = model.hidden;
  const FLOAT = onnx.TensorProto.DataType.FLOAT;
  const tensor = (name, dims, values) =>
    onnx.TensorProto.create({ name, dims, dataType: FLOAT, floatData: Array.from(values) });
  const valueInfo = (name) =>
    onnx.ValueInfoProto.create({
      name,
      type: onnx.TypeProto.create({
        tensorType: onnx.TypeProto.Tensor.create({
          elemType: FLOAT,
          shape: onnx.TensorShapeProto.create({
            dim: [
              onnx.TensorShapeProto.Dimension.create({ dimParam: 'N' }),
              onnx.TensorShapeProto.Dimension.create({ dimValue: 1 }),
            ],
          }),
        }),
      }),
    });
  const node = (opType, input, output) =>
    onnx.NodeProto.create({ name: `${output}_${opType.toLowerCase()}`, opType, input, output: [output] });
  const graph = onnx.GraphProto.create({
    name: 'mlp',
    docString: `1 → ${H} → 1 MLP with tanh, trained by ${TRAINER}`,
    node: [
      node('MatMul', ['x', 'W1'], 'a1'),
      node('Add', ['a1', 'b1'], 'z1'),
      node('Tanh', ['z1'], 'h1'),
      node('MatMul', ['h1', 'W2'], 'a2'),
      node('Add', ['a2', 'b2'], 'y'),
    ],
    initializer: [
      tensor('W1', [1, H], model.w1),
      tensor('b1', [H], model.b1),
      tensor('W2', [H, 1], model.w2),
      tensor('b2', [1], model.b2),
    ],
    input: [valueInfo('x')],
    output: [valueInfo('y')],
  });
  const proto = onnx.ModelProto.create({
    irVersion: onnx.Version.IR_VERSION_2020_5_8, // IR 7, the version of opset 13
    opsetImport: [onnx.OperatorSetIdProto.create({ domain: '', version: 13 })],
    producerName: TRAINER,
    producerVersion: TRAINER_VERSION,
    domain: 'dev.aether',
    modelVersion: 1,
    docString: 'Reference MLP regressor: input x float32 [N,1], output y float32 [N,1].',
    graph,
    metadataProps: Object.entries(metadata).map(([key, value]) =>
      onnx.StringStringEntryProto.create({ key, value: String(value) }),
    ),
  });
  const problem = onnx.ModelProto.verify(proto);
  if (problem) throw new Error(`ONNX model does not verify: ${problem}`);
  return Buffer.from(onnx.ModelProto.encode(proto).finish());
}

// ---------------------------------------------------------------------------------------------------
// Training

function emit(record) {
  process.stdout.write(`${JSON.stringify(record)}\n`);
}

/** Rounds a loss for printing: 6 significant digits. */
function r6(v) {
  return Number.isFinite(v) ? Number(v.toPrecision(6)) : v;
}

/** Writes a file atomically (temporary file, then rename). */
function writeAtomic(file, data) {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, data);
  fs.renameSync(tmp, file);
}

async function train(opts) {
  const started = Date.now();
  const { hp } = opts;
  const data = readDataset(opts.datasets);
  const n = data.x.length;
  try {
    fs.mkdirSync(opts.out, { recursive: true });
  } catch (err) {
    throw new InputError(`cannot create the output directory ${opts.out}: ${err.code ?? err.message}`);
  }

  const rand = rng(hp.seed);
  // Split rows into training and validation sets (seeded), then standardise with the training rows.
  const order = Array.from({ length: n }, (_, i) => i);
  shuffle(order, rand);
  const nVal = n >= 10 ? Math.floor(n * hp.val_fraction) : 0;
  const valIdx = order.slice(0, nVal);
  const trainIdx = order.slice(nVal);
  const nx = meanStd(trainIdx.map((i) => data.x[i]));
  const ny = meanStd(trainIdx.map((i) => data.y[i]));
  const xs = data.x.map((v) => (v - nx.mean) / nx.std);
  const ys = data.y.map((v) => (v - ny.mean) / ny.std);
  const yScale = ny.std * ny.std; // standardised MSE → MSE in y's units

  const model = Mlp.init(hp.hidden, rand);
  const adam = new Adam(model.params.length, hp.lr);
  const grad = new Float64Array(model.params.length);
  const batchSize = hp.batch_size > 0 ? Math.min(hp.batch_size, trainIdx.length) : trainIdx.length;
  const stepsPerEpoch = Math.ceil(trainIdx.length / batchSize);
  const totalSteps = stepsPerEpoch * hp.epochs;
  const logEvery = hp.log_every > 0 ? hp.log_every : Math.max(1, Math.round(totalSteps / 100));

  let signal = '';
  const onSignal = (name) => {
    signal = name;
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  const history = [];
  let step = 0;
  let epoch = 0;
  let sinceLog = 0;
  let lossSum = 0;
  let lastYield = Date.now();
  training: for (epoch = 1; epoch <= hp.epochs; epoch++) {
    shuffle(trainIdx, rand);
    for (let s = 0; s < trainIdx.length; s += batchSize) {
      const batch = trainIdx.slice(s, s + batchSize);
      grad.fill(0);
      lossSum += model.gradient(xs, ys, batch, grad);
      adam.step(model.params, grad);
      step++;
      sinceLog++;
      if (!Number.isFinite(lossSum))
        throw new Error(`training diverged at step ${step} (loss is not finite); try a smaller --lr`);
      if (sinceLog === logEvery || step === totalSteps) {
        const point = { step, epoch, loss: r6((lossSum / sinceLog) * yScale) };
        if (nVal > 0) point.val_loss = r6(model.mse(xs, ys, valIdx) * yScale);
        point.lr = hp.lr;
        emit(point);
        history.push(point);
        sinceLog = 0;
        lossSum = 0;
      }
      // Let signal handlers run now and then: the loop is otherwise synchronous.
      if (Date.now() - lastYield > 50) {
        await new Promise((resolve) => setImmediate(resolve));
        lastYield = Date.now();
        if (signal) break training;
      }
    }
  }
  if (epoch > hp.epochs) epoch = hp.epochs;

  // The exported model: weights folded to raw x and y, float32. Final losses are computed with it.
  const folded = model.fold(nx, ny);
  const all = Array.from({ length: n }, (_, i) => i);
  const loss = folded.mse(data.x, data.y, trainIdx);
  const valLoss = nVal > 0 ? folded.mse(data.x, data.y, valIdx) : undefined;
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of data.x) {
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  const probeX = Array.from({ length: PROBE_POINTS }, (_, i) =>
    Math.fround(lo + ((hi - lo) * i) / (PROBE_POINTS - 1)),
  );
  const probe = { x: probeX, y: probeX.map((v) => Math.fround(folded.predict(v))) };

  const dataset = {
    files: data.files,
    rows: n,
    train_rows: trainIdx.length,
    val_rows: nVal,
    sha256: data.sha256,
  };
  const final = {
    step,
    epoch,
    loss: r6(loss),
    ...(valLoss !== undefined ? { val_loss: r6(valLoss) } : {}),
    mse_all: r6(folded.mse(data.x, data.y, all)),
    duration_ms: Date.now() - started,
  };
  const onnxBytes = exportOnnx(folded, {
    'aether.trainer': `${TRAINER}/${TRAINER_VERSION}`,
    'aether.dataset_sha256': data.sha256,
    'aether.hyperparameters': JSON.stringify(hp),
    'aether.final_loss': final.loss,
    'aether.steps': step,
  });
  writeAtomic(path.join(opts.out, 'model.onnx'), onnxBytes);
  const weights = {
    W1: { shape: [1, hp.hidden], data: Array.from(folded.w1) },
    b1: { shape: [hp.hidden], data: Array.from(folded.b1) },
    W2: { shape: [hp.hidden, 1], data: Array.from(folded.w2) },
    b2: { shape: [1], data: Array.from(folded.b2) },
  };
  writeAtomic(
    path.join(opts.out, 'checkpoint.json'),
    `${JSON.stringify(
      {
        format: 'aether.reference-mlp.v1',
        trainer: `${TRAINER}/${TRAINER_VERSION}`,
        architecture: { input: 1, hidden: hp.hidden, output: 1, activation: 'tanh' },
        // y = tanh(x·W1 + b1)·W2 + b2 on raw x and y, float32 (as in model.onnx).
        weights,
        // The standardisation used while training (already folded into the weights above).
        standardisation: { x: nx, y: ny },
        hyperparameters: hp,
        step,
        epoch,
        complete: !signal,
        dataset,
      },
      null,
      2,
    )}\n`,
  );
  writeAtomic(
    path.join(opts.out, 'metrics.json'),
    `${JSON.stringify({ hyperparameters: hp, dataset, final, history, probe }, null, 2)}\n`,
  );
  const outputs = ['model.onnx', 'checkpoint.json', 'metrics.json'];
  if (signal) {
    emit({ stopped: true, signal, ...final, outputs });
    process.exitCode = signal === 'SIGINT' ? 130 : 143;
  } else {
    emit({ done: true, ...final, outputs });
  }
}

// ---------------------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------------------
// Evaluation: `--evaluate` measures a checkpoint.json this trainer wrote on a dataset (cfcd's
// `evaluate` template). The checkpoint and the dataset come from flags or, as the evaluate-model
// playbook passes them, from $AETHER_HPARAMS {"model": "artifacts/<id>", "dataset": "artifacts/<id>"},
// bound at /work/inputs/<id>.

function parseEvaluateArgs(argv) {
  const opts = { model: undefined, datasets: [], out: '/work/outputs' };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--evaluate') continue;
    const value = argv[i + 1];
    if (arg === '--model' || arg === '--dataset' || arg === '--out') {
      if (value === undefined) throw new InputError(`${arg} needs a value`);
      i++;
      if (arg === '--model') opts.model = value;
      else if (arg === '--dataset') opts.datasets.push(value);
      else opts.out = value;
    } else throw new InputError(`unknown argument ${arg} (evaluation takes --model, --dataset and --out)`);
  }
  if (process.env.AETHER_HPARAMS && (opts.model === undefined || opts.datasets.length === 0)) {
    let hp;
    try {
      hp = JSON.parse(process.env.AETHER_HPARAMS);
    } catch (err) {
      throw new InputError(`$AETHER_HPARAMS: not JSON: ${err.message}`);
    }
    if (hp === null || typeof hp !== 'object') throw new InputError('$AETHER_HPARAMS: not a JSON object');
    const input = (key) => {
      const v = hp[key];
      if (typeof v !== 'string' || !/^artifacts\/[0-9a-z]{26}$/.test(v))
        throw new InputError(`$AETHER_HPARAMS: "${key}" must be an artifact name such as artifacts/<id>`);
      return `/work/inputs/${v.slice('artifacts/'.length)}`;
    };
    opts.model ??= input('model');
    if (opts.datasets.length === 0) opts.datasets.push(input('dataset'));
  }
  if (opts.model === undefined || opts.datasets.length === 0)
    throw new InputError('evaluation needs --model <checkpoint.json> and --dataset <file|dir>');
  return opts;
}

function loadCheckpoint(file) {
  let ck;
  try {
    ck = JSON.parse(readText(file, 'checkpoint'));
  } catch (err) {
    if (err instanceof InputError) throw err;
    throw new InputError(`${file}: not JSON (${err.message}); expected a checkpoint.json of this trainer`);
  }
  const w = ck && ck.weights;
  const H = ck && ck.architecture && ck.architecture.hidden;
  const ok = (t, n) => t && Array.isArray(t.data) && t.data.length === n && t.data.every(Number.isFinite);
  if (!Number.isInteger(H) || H < 1 || !w || !ok(w.W1, H) || !ok(w.b1, H) || !ok(w.W2, H) || !ok(w.b2, 1))
    throw new InputError(`${file}: not a checkpoint of this trainer (format aether.reference-mlp.v1)`);
  return new Mlp(H, Float32Array.from([...w.W1.data, ...w.b1.data, ...w.W2.data, ...w.b2.data]));
}

function evaluate(opts) {
  const started = Date.now();
  const model = loadCheckpoint(opts.model);
  const data = readDataset(opts.datasets);
  let se = 0;
  let ae = 0;
  for (let i = 0; i < data.x.length; i++) {
    const e = model.predict(data.x[i]) - data.y[i];
    se += e * e;
    ae += Math.abs(e);
  }
  const result = {
    step: 0,
    loss: r6(se / data.x.length),
    mse: r6(se / data.x.length),
    mae: r6(ae / data.x.length),
    rows: data.x.length,
  };
  emit(result);
  try {
    fs.mkdirSync(opts.out, { recursive: true });
    writeAtomic(
      path.join(opts.out, 'evaluation.json'),
      `${JSON.stringify({ ...result, model: opts.model, dataset: { files: data.files, sha256: data.sha256 } }, null, 2)}\n`,
    );
  } catch (err) {
    throw new InputError(`cannot write ${opts.out}/evaluation.json: ${err.code ?? err.message}`);
  }
  emit({ done: true, ...result, duration_ms: Date.now() - started });
}

async function main() {
  try {
    const argv = process.argv.slice(2);
    if (argv.includes('--evaluate')) evaluate(parseEvaluateArgs(argv));
    else await train(parseArgs(argv));
  } catch (err) {
    const input = err instanceof InputError;
    process.stderr.write(`reference-trainer: error: ${input ? err.message : (err.stack ?? err)}\n`);
    process.exitCode = input ? 2 : 1;
  }
}

if (require.main === module) void main();

module.exports = { Mlp, readDataset, exportOnnx, rng };
