#!/usr/bin/env node
// Writes a dataset of (x, y) pairs sampled from a known function, for the reference trainer.
//
//   node make-dataset.js --fn sin --n 1000 --seed 1 --out data.jsonl
//
// x is drawn uniformly from --range (default -1,1) with a seeded generator, so the same arguments give
// the same file byte for byte. The format follows the file name (.csv: `x,y` with a header line;
// anything else: JSON lines `{"x":…,"y":…}`) unless --format says otherwise. Without --out it writes to
// stdout.
'use strict';

const fs = require('node:fs');

const FUNCTIONS = {
  sin: (x) => Math.sin(x),
  sinpi: (x) => Math.sin(Math.PI * x),
  cos: (x) => Math.cos(x),
  quad: (x) => 2 * x * x - 1,
  cubic: (x) => x * x * x,
  tanh: (x) => Math.tanh(2 * x),
};

const USAGE = `usage: node make-dataset.js --fn <${Object.keys(FUNCTIONS).join('|')}> [--n 1000] [--seed 1]
       [--range -1,1] [--noise 0] [--format jsonl|csv] [--out file]`;

/** mulberry32: a small seeded generator; the same seed gives the same sequence on every platform. */
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

function fail(message) {
  process.stderr.write(`make-dataset: ${message}\n${USAGE}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { fn: '', n: 1000, seed: 1, range: [-1, 1], noise: 0, format: '', out: '' };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    if (flag === '--help' || flag === '-h') {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    }
    const value = argv[++i];
    if (value === undefined) fail(`${flag} needs a value`);
    switch (flag) {
      case '--fn':
        opts.fn = value;
        break;
      case '--n':
        opts.n = Number(value);
        if (!Number.isInteger(opts.n) || opts.n < 1 || opts.n > 10_000_000)
          fail('--n must be an integer in [1, 10000000]');
        break;
      case '--seed':
        opts.seed = Number(value);
        if (!Number.isInteger(opts.seed)) fail('--seed must be an integer');
        break;
      case '--range': {
        const r = value.split(',').map(Number);
        if (r.length !== 2 || !r.every(Number.isFinite) || !(r[0] < r[1]))
          fail('--range must be two numbers a,b with a < b');
        opts.range = r;
        break;
      }
      case '--noise':
        opts.noise = Number(value);
        if (!(opts.noise >= 0)) fail('--noise must be a number >= 0');
        break;
      case '--format':
        if (value !== 'jsonl' && value !== 'csv') fail('--format must be jsonl or csv');
        opts.format = value;
        break;
      case '--out':
        opts.out = value;
        break;
      default:
        fail(`unknown option ${flag}`);
    }
  }
  if (!FUNCTIONS[opts.fn]) fail(`--fn must be one of ${Object.keys(FUNCTIONS).join(', ')}`);
  if (!opts.format) opts.format = opts.out.endsWith('.csv') ? 'csv' : 'jsonl';
  return opts;
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  const f = FUNCTIONS[opts.fn];
  const rand = rng(opts.seed);
  // Box–Muller for the optional Gaussian noise.
  const gauss = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  const [a, b] = opts.range;
  const lines = opts.format === 'csv' ? ['x,y'] : [];
  for (let i = 0; i < opts.n; i++) {
    const x = a + (b - a) * rand();
    const y = f(x) + (opts.noise > 0 ? opts.noise * gauss() : 0);
    lines.push(opts.format === 'csv' ? `${x},${y}` : JSON.stringify({ x, y }));
  }
  const text = `${lines.join('\n')}\n`;
  if (opts.out) fs.writeFileSync(opts.out, text);
  else process.stdout.write(text);
}

main();
