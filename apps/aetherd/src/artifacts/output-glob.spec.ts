import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expandOutput, segmentPattern } from './output-glob';

describe('segmentPattern', () => {
  it.each([
    ['*.ckpt', 'step-1.ckpt', true],
    ['*.ckpt', 'step-1.ckpt.tmp', false],
    ['model-?.onnx', 'model-a.onnx', true],
    ['model-?.onnx', 'model-ab.onnx', false],
    ['[ab]*', 'beta', true],
    ['[!ab]*', 'beta', false],
    ['a.b', 'axb', false],
    ['(x)+', '(x)+', true],
  ])('%s matches %s: %s', (glob, name, expected) => {
    expect(segmentPattern(glob).test(name)).toBe(expected);
  });
});

describe('expandOutput', () => {
  let base: string;
  beforeAll(() => {
    base = mkdtempSync(join(tmpdir(), 'aether-glob-'));
    mkdirSync(join(base, 'ckpt', 'sub'), { recursive: true });
    for (const f of ['a.ckpt', 'b.ckpt', '.hidden.ckpt', 'notes.txt'])
      writeFileSync(join(base, 'ckpt', f), f);
    writeFileSync(join(base, 'ckpt', 'sub', 'c.ckpt'), 'c');
    mkdirSync(join(base, 'outside'));
    writeFileSync(join(base, 'outside', 'x.ckpt'), 'x');
    symlinkSync(join(base, 'outside'), join(base, 'link'));
  });
  afterAll(() => rmSync(base, { recursive: true, force: true }));

  it('returns a literal path as is, existing or not', () => {
    expect(expandOutput(base, 'ckpt/a.ckpt')).toEqual(['ckpt/a.ckpt']);
    expect(expandOutput(base, 'missing.bin')).toEqual(['missing.bin']);
  });

  it('matches files in one directory level, sorted, skipping hidden files and directories', () => {
    expect(expandOutput(base, 'ckpt/*.ckpt')).toEqual(['ckpt/a.ckpt', 'ckpt/b.ckpt']);
    expect(expandOutput(base, 'ckpt/*')).toEqual(['ckpt/a.ckpt', 'ckpt/b.ckpt', 'ckpt/notes.txt']);
    expect(expandOutput(base, 'ckpt/.*.ckpt')).toEqual(['ckpt/.hidden.ckpt']);
    expect(expandOutput(base, '*/*.ckpt')).toEqual(['ckpt/a.ckpt', 'ckpt/b.ckpt', 'outside/x.ckpt']);
  });

  it('does not walk through a symbolic link to a directory', () => {
    expect(expandOutput(base, 'link/*.ckpt')).toEqual([]);
  });

  it('matches nothing in a missing directory', () => {
    expect(expandOutput(base, 'nope/*.ckpt')).toEqual([]);
  });
});
