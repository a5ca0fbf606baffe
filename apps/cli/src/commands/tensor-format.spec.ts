import { modelsV1 } from '@aether/proto';
import { EX_USAGE, UsageError } from '../units';
import {
  bfloat16Bits,
  bfloat16Value,
  buildTensor,
  dtypeName,
  float16Bits,
  float16Value,
  float32Text,
  inferShape,
  nest,
  parseDtype,
  parseDtypeArg,
  parseInputArg,
  parseShapeArg,
  shapeText,
  specText,
  tensorValues,
  valuesJson,
  valuesText,
} from './tensor-format';

const { DataType } = modelsV1;

const usage = (fn: () => unknown): string => {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(UsageError);
    expect((err as UsageError).exitCode).toBe(EX_USAGE);
    return (err as UsageError).message;
  }
  throw new Error('expected a UsageError');
};

/** An output tensor as cfcd sends it: packed little-endian data. */
const output = (dtype: modelsV1.DataType, shape: number[], data: Buffer): modelsV1.Tensor =>
  modelsV1.Tensor.fromPartial({ name: 'y', dtype, shape: shape.map(BigInt), data });

describe('dtypes and shapes', () => {
  it('names dtypes in lower case and parses them in any case, with or without the prefix', () => {
    expect(dtypeName(DataType.DATA_TYPE_FLOAT32)).toBe('float32');
    expect(dtypeName(DataType.DATA_TYPE_BFLOAT16)).toBe('bfloat16');
    expect(parseDtype('float32')).toBe(DataType.DATA_TYPE_FLOAT32);
    expect(parseDtype('INT64')).toBe(DataType.DATA_TYPE_INT64);
    expect(parseDtype('DATA_TYPE_BOOL')).toBe(DataType.DATA_TYPE_BOOL);
    expect(parseDtype('double')).toBe(DataType.DATA_TYPE_FLOAT64);
    expect(usage(() => parseDtype('float128'))).toMatch(
      /unknown dtype "float128"; choose from float32, float64, .*string/,
    );
    expect(usage(() => parseDtype('unspecified'))).toMatch(/unknown dtype/);
  });

  it('shows a dynamic leading dimension as N and any other as ?', () => {
    expect(shapeText([-1n, 3n])).toBe('[N, 3]');
    expect(shapeText([1n, -1n, -1n])).toBe('[1, ?, ?]');
    expect(shapeText([])).toBe('[]');
    expect(specText({ name: 'x', dtype: DataType.DATA_TYPE_FLOAT32, shape: [-1n, 3n] })).toBe(
      'x: float32 [N, 3]',
    );
  });
});

describe('command-line arguments', () => {
  it('reads --input name=<JSON> and refuses what is not JSON, naming the input', () => {
    expect(parseInputArg('x=[[0.5],[1.0]]')).toEqual(['x', [[0.5], [1]]]);
    expect(parseInputArg('text=["a=b"]')).toEqual(['text', ['a=b']]);
    expect(parseInputArg('s=3')).toEqual(['s', 3]);
    expect(usage(() => parseInputArg('x=[1,2'))).toMatch(/^--input x: "\[1,2" is not JSON/);
    expect(usage(() => parseInputArg('[1,2]'))).toMatch(/--input must be KEY=VALUE/);
  });

  it('reads --shape name=2,3 with at most one -1, and an empty shape for a scalar', () => {
    expect(parseShapeArg('x=2,3')).toEqual(['x', [2, 3]]);
    expect(parseShapeArg('x=-1, 3')).toEqual(['x', [-1, 3]]);
    expect(parseShapeArg('s=')).toEqual(['s', []]);
    expect(usage(() => parseShapeArg('x=-1,-1'))).toMatch(/at most one -1/);
    expect(usage(() => parseShapeArg('x=2x3'))).toMatch(/^--shape x: "2x3" must be comma-separated sizes/);
  });

  it('reads --dtype name=dtype', () => {
    expect(parseDtypeArg('ids=int64')).toEqual(['ids', DataType.DATA_TYPE_INT64]);
    expect(usage(() => parseDtypeArg('ids=long'))).toMatch(/unknown dtype "long"/);
  });
});

describe('inferShape', () => {
  it('reads the shape from the nesting of JSON arrays', () => {
    expect(inferShape([[0.5], [1.0]], 'x')).toEqual([2, 1]);
    expect(
      inferShape(
        [
          [
            [1, 2],
            [3, 4],
            [5, 6],
          ],
        ],
        'x',
      ),
    ).toEqual([1, 3, 2]);
    expect(inferShape(7, 'x')).toEqual([]);
    expect(inferShape([], 'x')).toEqual([0]);
    expect(inferShape([[], []], 'x')).toEqual([2, 0]);
  });

  it('refuses ragged arrays, saying where the rows differ', () => {
    expect(
      usage(() =>
        inferShape(
          [
            [1, 2, 3],
            [4, 5],
          ],
          'x',
        ),
      ),
    ).toBe('--input x is ragged: x[0] has shape [3] but x[1] has [2]; every row must have the same shape');
    expect(
      usage(() =>
        inferShape(
          [
            [[1], [2]],
            [[3], 4],
          ],
          'x',
        ),
      ),
    ).toMatch(/^--input x is ragged: x\[1\]\[0\] has shape \[1\] but x\[1\]\[1\] has \[\]/);
    expect(usage(() => inferShape([1, [2]], 'x'))).toMatch(/x\[0\] has shape \[\] but x\[1\] has \[1\]/);
  });
});

describe('buildTensor', () => {
  it('packs float32 little-endian with the shape of the nesting', () => {
    const t = buildTensor('x', [[0.5], [1.0]], DataType.DATA_TYPE_FLOAT32);
    expect(t.shape).toEqual([2n, 1n]);
    expect(t.dtype).toBe(DataType.DATA_TYPE_FLOAT32);
    expect([t.data.readFloatLE(0), t.data.readFloatLE(4)]).toEqual([0.5, 1]);
    expect(t.data.length).toBe(8);
  });

  it('reads a flat array with --shape, inferring one -1, and refuses a count that does not fit', () => {
    const t = buildTensor('x', [1, 2, 3, 4, 5, 6], DataType.DATA_TYPE_FLOAT64, [2, 3]);
    expect(t.shape).toEqual([2n, 3n]);
    expect(t.data.readDoubleLE(5 * 8)).toBe(6);
    expect(buildTensor('x', [1, 2, 3, 4, 5, 6], DataType.DATA_TYPE_INT32, [-1, 3]).shape).toEqual([2n, 3n]);
    expect(usage(() => buildTensor('x', [1, 2, 3, 4, 5], DataType.DATA_TYPE_FLOAT32, [2, 3]))).toBe(
      '--input x has 5 elements but --shape x=2,3 needs 6',
    );
    expect(usage(() => buildTensor('x', [1, 2, 3, 4], DataType.DATA_TYPE_FLOAT32, [-1, 3]))).toBe(
      '--input x has 4 elements but --shape x=-1,3 needs a multiple of 3',
    );
  });

  it('packs integers, bools and strings, and names the element that does not fit the dtype', () => {
    const i64 = buildTensor('ids', [[101, '9007199254740993']], DataType.DATA_TYPE_INT64);
    expect([i64.data.readBigInt64LE(0), i64.data.readBigInt64LE(8)]).toEqual([101n, 9007199254740993n]);
    const b = buildTensor('mask', [true, false, 1, 0], DataType.DATA_TYPE_BOOL);
    expect([...b.data]).toEqual([1, 0, 1, 0]);
    const s = buildTensor('text', [['a', 'b']], DataType.DATA_TYPE_STRING);
    expect([s.stringValues, s.data.length, s.shape]).toEqual([['a', 'b'], 0, [1n, 2n]]);
    const nan = buildTensor('x', ['NaN', '-Infinity'], DataType.DATA_TYPE_FLOAT32);
    expect([nan.data.readFloatLE(0), nan.data.readFloatLE(4)]).toEqual([NaN, -Infinity]);

    expect(
      usage(() =>
        buildTensor(
          'x',
          [
            [1, 2],
            [3, 0.5],
          ],
          DataType.DATA_TYPE_INT32,
        ),
      ),
    ).toBe('--input x: x[1][1] is 0.5, not a whole number (the dtype is int32)');
    expect(usage(() => buildTensor('x', [300], DataType.DATA_TYPE_UINT8))).toBe(
      '--input x: x[0] is 300, out of range 0..255 (the dtype is uint8)',
    );
    expect(usage(() => buildTensor('x', [[1, 'a']], DataType.DATA_TYPE_FLOAT32))).toMatch(
      /^--input x: x\[0\]\[1\] is "a", not a number/,
    );
    expect(usage(() => buildTensor('ids', [2 ** 60], DataType.DATA_TYPE_INT64))).toMatch(
      /give it as a string/,
    );
    expect(usage(() => buildTensor('t', ['a', 1], DataType.DATA_TYPE_STRING))).toBe(
      '--input t: t[1] is 1, not a string (the dtype is string)',
    );
    expect(usage(() => buildTensor('m', [2], DataType.DATA_TYPE_BOOL))).toMatch(/not a boolean/);
  });

  it('refuses ragged input even with a dtype known', () => {
    expect(usage(() => buildTensor('x', [[1, 2, 3], [4]], DataType.DATA_TYPE_FLOAT32))).toMatch(/ragged/);
  });
});

describe('half precision', () => {
  it('rounds float16 to nearest even, with subnormals, infinities and NaN', () => {
    expect(float16Bits(1)).toBe(0x3c00);
    expect(float16Bits(-2)).toBe(0xc000);
    expect(float16Bits(65504)).toBe(0x7bff);
    expect(float16Bits(1e6)).toBe(0x7c00);
    expect(float16Bits(2 ** -24)).toBe(0x0001);
    expect(float16Bits(1 + 2 ** -11)).toBe(0x3c00); // a tie: to even
    expect(float16Bits(NaN)).toBe(0x7e00);
    for (const v of [0.5, -3.25, 1 / 3, 6.1e-5, 1000.5])
      expect(float16Value(float16Bits(v))).toBeCloseTo(v, 3);
    expect(float16Value(0x7c00)).toBe(Infinity);
  });

  it('rounds bfloat16 from float32 bits', () => {
    expect(bfloat16Bits(1)).toBe(0x3f80);
    expect(bfloat16Value(bfloat16Bits(-2.5))).toBe(-2.5);
    expect(bfloat16Value(bfloat16Bits(3.14159))).toBeCloseTo(3.14, 1);
    expect(Number.isNaN(bfloat16Value(bfloat16Bits(NaN)))).toBe(true);
  });
});

describe('output tensors', () => {
  it('unpacks data into nested arrays of the shape', () => {
    const data = Buffer.alloc(16);
    [1.25, -0.5, 3, 4].forEach((v, i) => data.writeFloatLE(v, i * 4));
    expect(tensorValues(output(DataType.DATA_TYPE_FLOAT32, [2, 2], data))).toEqual([
      [1.25, -0.5],
      [3, 4],
    ]);
    const i64 = Buffer.alloc(8);
    i64.writeBigInt64LE(-7n);
    expect(tensorValues(output(DataType.DATA_TYPE_INT64, [], i64))).toBe(-7n);
    expect(nest([1, 2, 3, 4, 5, 6], [3, 1, 2])).toEqual([[[1, 2]], [[3, 4]], [[5, 6]]]);
    expect(nest([], [0])).toEqual([]);
  });

  it('prints float32 as its shortest decimal, matrices a row per line', () => {
    expect(float32Text(Math.fround(0.1))).toBe('0.1');
    expect(float32Text(Math.fround(-8.75))).toBe('-8.75');
    expect(float32Text(3)).toBe('3');
    const data = Buffer.alloc(16);
    [0.1, -0.5, 3, 4].forEach((v, i) => data.writeFloatLE(v, i * 4));
    const values = tensorValues(output(DataType.DATA_TYPE_FLOAT32, [2, 2], data));
    expect(valuesText(values, DataType.DATA_TYPE_FLOAT32)).toBe('[[0.1, -0.5],\n [3, 4]]');
    expect(valuesText([[[1, 2]], [[3, 4]]], DataType.DATA_TYPE_INT32)).toBe('[[[1, 2]],\n [[3, 4]]]');
    expect(valuesText(['a', 'b"'], DataType.DATA_TYPE_STRING)).toBe('["a", "b\\""]');
    expect(valuesText(5n, DataType.DATA_TYPE_INT64)).toBe('5');
  });

  it('writes JSON with shortest floats, non-finite ones as strings and big int64 as strings', () => {
    expect(valuesJson([Math.fround(0.1), NaN, -Infinity], DataType.DATA_TYPE_FLOAT32)).toEqual([
      0.1,
      'NaN',
      '-Infinity',
    ]);
    expect(valuesJson([[5n, 2n ** 60n]], DataType.DATA_TYPE_INT64)).toEqual([[5, '1152921504606846976']]);
    expect(valuesJson([true, false], DataType.DATA_TYPE_BOOL)).toEqual([true, false]);
  });
});
