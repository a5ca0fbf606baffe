// Pure helpers of `aether models infer`: tensors from the command line (`--input x=[[0.5],[1.0]]`,
// `--shape x=2,1`, `--dtype x=float32`) packed as the API wants them, and output tensors unpacked into
// nested arrays for people (numpy-like) and for JSON.
import { modelsV1 } from '@aether/proto';
import { parseKeyValue, UsageError } from '../units';

const { DataType } = modelsV1;

type Element = number | bigint | boolean | string;
/** A tensor's elements nested by its shape: a scalar, or arrays of arrays down to the elements. */
export type NestedValues = Element | NestedValues[];

/** `float32` from DATA_TYPE_FLOAT32. */
export const dtypeName = (d: modelsV1.DataType): string =>
  modelsV1
    .dataTypeToJSON(d)
    .replace(/^DATA_TYPE_/, '')
    .toLowerCase();

const DTYPES = Object.values(DataType).filter(
  (v): v is modelsV1.DataType =>
    typeof v === 'number' && v !== DataType.DATA_TYPE_UNSPECIFIED && v !== DataType.UNRECOGNIZED,
);

/** `float32`, `FLOAT32` or `DATA_TYPE_FLOAT32` (also `float`, `double`, `half`). */
export function parseDtype(text: string): modelsV1.DataType {
  const aliases: Record<string, string> = { FLOAT: 'FLOAT32', DOUBLE: 'FLOAT64', HALF: 'FLOAT16' };
  const key = text
    .trim()
    .toUpperCase()
    .replace(/^DATA_TYPE_/, '');
  const d = modelsV1.dataTypeFromJSON(`DATA_TYPE_${aliases[key] ?? key}`);
  if (d === DataType.UNRECOGNIZED || d === DataType.DATA_TYPE_UNSPECIFIED)
    throw new UsageError(`unknown dtype "${text}"; choose from ${DTYPES.map(dtypeName).join(', ')}`);
  return d;
}

/**
 * A signature's shape for people: `[N, 3]`. A dynamic dimension (-1) reads `N` when it leads (the
 * batch, by convention) and `?` elsewhere; `[]` is a scalar.
 */
export function shapeText(shape: readonly bigint[]): string {
  return `[${shape.map((d, i) => (d < 0n ? (i === 0 ? 'N' : '?') : String(d))).join(', ')}]`;
}

/** `x: float32 [N, 3]`. */
export const specText = (s: modelsV1.TensorSpec): string =>
  `${s.name}: ${dtypeName(s.dtype)} ${shapeText(s.shape)}`;

/** One `--input name=<JSON>`: the name and the parsed JSON value (a number, a string, nested arrays). */
export function parseInputArg(text: string): [string, unknown] {
  const [name, raw] = parseKeyValue(text, '--input');
  try {
    return [name, JSON.parse(raw) as unknown];
  } catch {
    throw new UsageError(
      `--input ${name}: "${raw}" is not JSON; give nested arrays such as ${name}=[[0.5,1.0]] (quote it for the shell)`,
    );
  }
}

/** One `--shape name=2,3` (a scalar: `name=`); at most one dimension may be -1, inferred from the data. */
export function parseShapeArg(text: string): [string, number[]] {
  const [name, raw] = parseKeyValue(text, '--shape');
  const dims = raw.trim() === '' ? [] : raw.split(',').map((d) => d.trim());
  if (!dims.every((d) => /^(-1|\d+)$/.test(d)) || dims.filter((d) => d === '-1').length > 1)
    throw new UsageError(
      `--shape ${name}: "${raw}" must be comma-separated sizes such as 2,3 (at most one -1, inferred from the data)`,
    );
  return [name, dims.map(Number)];
}

/** One `--dtype name=float32`. */
export function parseDtypeArg(text: string): [string, modelsV1.DataType] {
  const [name, raw] = parseKeyValue(text, '--dtype');
  return [name, parseDtype(raw)];
}

/**
 * The shape of nested JSON arrays: `[[1,2,3],[4,5,6]]` → [2, 3], a scalar → []. Every array at one
 * depth must have the same shape; a ragged one is a usage error that says where.
 */
export function inferShape(value: unknown, name: string): number[] {
  const walk = (v: unknown, path: string): number[] => {
    if (!Array.isArray(v)) return [];
    if (v.length === 0) return [0];
    const first = walk(v[0], `${path}[0]`);
    for (let i = 1; i < v.length; i++) {
      const other = walk(v[i], `${path}[${i}]`);
      if (other.length !== first.length || other.some((d, k) => d !== first[k]))
        throw new UsageError(
          `--input ${name} is ragged: ${path}[0] has shape [${first.join(', ')}] but ${path}[${i}] has [${other.join(', ')}]; every row must have the same shape`,
        );
    }
    return [v.length, ...first];
  };
  return walk(value, name);
}

/** The elements of nested arrays in row-major order. */
export function flatten(value: unknown): unknown[] {
  return Array.isArray(value) ? value.flatMap((v) => flatten(v)) : [value];
}

/** `x[1][2]`: where the flat index `i` is in a tensor of `shape`. */
function indexPath(name: string, shape: readonly number[], i: number): string {
  const idx: number[] = [];
  let rest = i;
  for (let k = shape.length - 1; k >= 0; k--) {
    const d = shape[k]!;
    idx.unshift(d === 0 ? 0 : rest % d);
    rest = d === 0 ? 0 : Math.floor(rest / d);
  }
  return `${name}${idx.map((j) => `[${j}]`).join('')}`;
}

const NON_FINITE: Record<string, number> = { NaN: NaN, Infinity: Infinity, '-Infinity': -Infinity };

/** The raw bits of a float16 nearest to `v` (ties to even). */
export function float16Bits(v: number): number {
  if (Number.isNaN(v)) return 0x7e00;
  const sign = v < 0 || Object.is(v, -0) ? 0x8000 : 0;
  const a = Math.abs(v);
  if (a === 0) return sign;
  const even = (x: number): number => (x % 1 === 0.5 ? 2 * Math.round(x / 2) : Math.round(x));
  if (a < 2 ** -14) return sign | even(a / 2 ** -24); // subnormal; 1024 rounds up to the least normal
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  else if (2 ** (e + 1) <= a) e++;
  let m = even((a / 2 ** e - 1) * 1024);
  if (m === 1024) {
    m = 0;
    e++;
  }
  if (e > 15) return sign | 0x7c00;
  return sign | ((e + 15) << 10) | m;
}

/** The number a float16's raw bits stand for. */
export function float16Value(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const e = (bits >> 10) & 0x1f;
  const m = bits & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 0x1f) return m ? NaN : sign * Infinity;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The raw bits of the bfloat16 nearest to `v` (ties to even). */
export function bfloat16Bits(v: number): number {
  if (Number.isNaN(v)) return 0x7fc0;
  f32[0] = v;
  const bits = u32[0]!;
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

/** The number a bfloat16's raw bits stand for. */
export function bfloat16Value(bits: number): number {
  u32[0] = (bits & 0xffff) << 16;
  return f32[0]!;
}

interface Codec {
  size: number;
  /** Writes one element, or returns why it cannot be one. */
  write(buf: Buffer, offset: number, v: unknown): string | undefined;
  read(buf: Buffer, offset: number): Element;
}

const floatOf = (v: unknown): number | undefined =>
  typeof v === 'number' ? v : typeof v === 'string' ? NON_FINITE[v] : undefined;

function floatCodec(
  size: number,
  write: (buf: Buffer, o: number, v: number) => void,
  read: Codec['read'],
): Codec {
  return {
    size,
    write: (buf, o, v) => {
      const n = floatOf(v);
      if (n === undefined) return 'not a number (write NaN and ±Infinity as "NaN", "Infinity", "-Infinity")';
      write(buf, o, n);
      return undefined;
    },
    read,
  };
}

function intCodec(
  size: number,
  min: number,
  max: number,
  write: (buf: Buffer, o: number, v: number) => void,
  read: Codec['read'],
): Codec {
  return {
    size,
    write: (buf, o, v) => {
      if (typeof v !== 'number' || !Number.isInteger(v)) return 'not a whole number';
      if (v < min || v > max) return `out of range ${min}..${max}`;
      write(buf, o, v);
      return undefined;
    },
    read,
  };
}

function int64Codec(signed: boolean): Codec {
  const [min, max] = signed ? [-(2n ** 63n), 2n ** 63n - 1n] : [0n, 2n ** 64n - 1n];
  return {
    size: 8,
    write: (buf, o, v) => {
      let n: bigint;
      if (typeof v === 'number') {
        if (!Number.isInteger(v)) return 'not a whole number';
        if (!Number.isSafeInteger(v))
          return 'beyond ±2^53: JSON numbers lose precision there, give it as a string';
        n = BigInt(v);
      } else if (typeof v === 'string' && /^-?\d+$/.test(v)) n = BigInt(v);
      else return 'not a whole number';
      if (n < min || n > max) return `out of range ${min}..${max}`;
      if (signed) buf.writeBigInt64LE(n, o);
      else buf.writeBigUInt64LE(n, o);
      return undefined;
    },
    read: (buf, o) => (signed ? buf.readBigInt64LE(o) : buf.readBigUInt64LE(o)),
  };
}

const CODECS: Partial<Record<modelsV1.DataType, Codec>> = {
  [DataType.DATA_TYPE_FLOAT32]: floatCodec(
    4,
    (b, o, v) => b.writeFloatLE(v, o),
    (b, o) => b.readFloatLE(o),
  ),
  [DataType.DATA_TYPE_FLOAT64]: floatCodec(
    8,
    (b, o, v) => b.writeDoubleLE(v, o),
    (b, o) => b.readDoubleLE(o),
  ),
  [DataType.DATA_TYPE_FLOAT16]: floatCodec(
    2,
    (b, o, v) => b.writeUInt16LE(float16Bits(v), o),
    (b, o) => float16Value(b.readUInt16LE(o)),
  ),
  [DataType.DATA_TYPE_BFLOAT16]: floatCodec(
    2,
    (b, o, v) => b.writeUInt16LE(bfloat16Bits(v), o),
    (b, o) => bfloat16Value(b.readUInt16LE(o)),
  ),
  [DataType.DATA_TYPE_INT8]: intCodec(
    1,
    -128,
    127,
    (b, o, v) => b.writeInt8(v, o),
    (b, o) => b.readInt8(o),
  ),
  [DataType.DATA_TYPE_INT16]: intCodec(
    2,
    -32768,
    32767,
    (b, o, v) => b.writeInt16LE(v, o),
    (b, o) => b.readInt16LE(o),
  ),
  [DataType.DATA_TYPE_INT32]: intCodec(
    4,
    -(2 ** 31),
    2 ** 31 - 1,
    (b, o, v) => b.writeInt32LE(v, o),
    (b, o) => b.readInt32LE(o),
  ),
  [DataType.DATA_TYPE_INT64]: int64Codec(true),
  [DataType.DATA_TYPE_UINT8]: intCodec(
    1,
    0,
    255,
    (b, o, v) => b.writeUInt8(v, o),
    (b, o) => b.readUInt8(o),
  ),
  [DataType.DATA_TYPE_UINT16]: intCodec(
    2,
    0,
    65535,
    (b, o, v) => b.writeUInt16LE(v, o),
    (b, o) => b.readUInt16LE(o),
  ),
  [DataType.DATA_TYPE_UINT32]: intCodec(
    4,
    0,
    2 ** 32 - 1,
    (b, o, v) => b.writeUInt32LE(v, o),
    (b, o) => b.readUInt32LE(o),
  ),
  [DataType.DATA_TYPE_UINT64]: int64Codec(false),
  [DataType.DATA_TYPE_BOOL]: {
    size: 1,
    write: (buf, o, v) => {
      if (v === true || v === 1) buf.writeUInt8(1, o);
      else if (v === false || v === 0) buf.writeUInt8(0, o);
      else return 'not a boolean (true, false, 1 or 0)';
      return undefined;
    },
    read: (buf, o) => buf.readUInt8(o) !== 0,
  },
};

/**
 * The Tensor for `--input name=<value>`: its shape from the nesting of the value, or from `shape`
 * (then the value may be flat; one -1 dimension is inferred from the element count), its elements
 * packed little-endian as `dtype` (strings in `string_values`). Any mismatch is a usage error naming
 * the input and, for a bad element, where it is.
 */
export function buildTensor(
  name: string,
  value: unknown,
  dtype: modelsV1.DataType,
  shape?: readonly number[],
): modelsV1.Tensor {
  let dims: number[];
  let elements: unknown[];
  if (shape === undefined) {
    dims = inferShape(value, name);
    elements = flatten(value);
  } else {
    elements = flatten(value);
    const known = shape.filter((d) => d !== -1).reduce((n, d) => n * d, 1);
    dims = shape.map((d) => (d === -1 ? (known === 0 ? 0 : Math.floor(elements.length / known)) : d));
    const count = dims.reduce((n, d) => n * d, 1);
    if (count !== elements.length)
      throw new UsageError(
        `--input ${name} has ${elements.length} element${elements.length === 1 ? '' : 's'} but --shape ${name}=${shape.join(',')} needs ${shape.includes(-1) ? `a multiple of ${known}` : count}`,
      );
  }
  const base = { name, dtype, shape: dims.map(BigInt) };
  if (dtype === DataType.DATA_TYPE_STRING) {
    const bad = elements.findIndex((e) => typeof e !== 'string');
    if (bad >= 0)
      throw new UsageError(
        `--input ${name}: ${indexPath(name, dims, bad)} is ${JSON.stringify(elements[bad])}, not a string (the dtype is string)`,
      );
    return modelsV1.Tensor.fromPartial({ ...base, stringValues: elements as string[] });
  }
  const codec = CODECS[dtype];
  if (!codec) throw new UsageError(`--input ${name}: dtype ${dtypeName(dtype)} cannot be written`);
  const data = Buffer.alloc(elements.length * codec.size);
  elements.forEach((e, i) => {
    const why = codec.write(data, i * codec.size, e);
    if (why !== undefined)
      throw new UsageError(
        `--input ${name}: ${indexPath(name, dims, i)} is ${JSON.stringify(e) ?? String(e)}, ${why} (the dtype is ${dtypeName(dtype)})`,
      );
  });
  return modelsV1.Tensor.fromPartial({ ...base, data });
}

/** Flat elements into nested arrays of `shape` (row-major); a scalar for an empty shape. */
export function nest(flat: readonly Element[], shape: readonly number[]): NestedValues {
  if (shape.length === 0) return flat[0] ?? 0;
  const [d, ...rest] = shape as [number, ...number[]];
  const step = rest.reduce((n, k) => n * k, 1);
  return Array.from({ length: d }, (_, i) => nest(flat.slice(i * step, (i + 1) * step), rest));
}

/** An output tensor's elements, nested by its shape (int64 as bigint, bool as boolean). */
export function tensorValues(t: modelsV1.Tensor): NestedValues {
  const shape = t.shape.map(Number);
  if (t.dtype === DataType.DATA_TYPE_STRING) return nest(t.stringValues, shape);
  if (t.dtype === DataType.DATA_TYPE_FLOAT32 && t.data.length === 0 && t.floatValues.length > 0)
    return nest(t.floatValues, shape);
  const codec = CODECS[t.dtype];
  if (!codec) throw new Error(`output ${t.name} has dtype ${dtypeName(t.dtype)}, which aether cannot read`);
  const flat: Element[] = [];
  for (let o = 0; o + codec.size <= t.data.length; o += codec.size) flat.push(codec.read(t.data, o));
  return nest(flat, shape);
}

/** The shortest decimal that reads back as the same float32 (`0.1`, not `0.10000000149011612`). */
export function float32Text(v: number): string {
  if (!Number.isFinite(v) || Number.isInteger(v)) return String(v);
  for (let p = 1; p < 9; p++) {
    const s = Number(v.toPrecision(p));
    if (Math.fround(s) === v) return String(s);
  }
  return String(v);
}

const isFloat32Like = (d: modelsV1.DataType): boolean =>
  d === DataType.DATA_TYPE_FLOAT32 || d === DataType.DATA_TYPE_FLOAT16 || d === DataType.DATA_TYPE_BFLOAT16;

function elementText(e: Element, dtype: modelsV1.DataType): string {
  if (typeof e === 'string') return JSON.stringify(e);
  if (typeof e === 'number' && isFloat32Like(dtype)) return float32Text(e);
  return String(e);
}

/**
 * Nested values as people read them, numpy-like: one line for a vector, the rows of a matrix one
 * per line, aligned under the opening bracket.
 *
 *   [[1.25, -0.5],
 *    [3, 4]]
 */
export function valuesText(values: NestedValues, dtype: modelsV1.DataType): string {
  const render = (v: NestedValues, depth: number): string => {
    if (!Array.isArray(v)) return elementText(v, dtype);
    if (v.some(Array.isArray))
      return `[${v.map((x) => render(x, depth + 1)).join(`,\n${' '.repeat(depth + 1)}`)}]`;
    return `[${v.map((x) => render(x, depth + 1)).join(', ')}]`;
  };
  return render(values, 0);
}

/**
 * Nested values for JSON: floats as the shortest decimal of their precision, non-finite ones as
 * "NaN"/"Infinity"/"-Infinity" (as proto3 JSON writes them), 64-bit integers as numbers when exact
 * and strings when not.
 */
export function valuesJson(values: NestedValues, dtype: modelsV1.DataType): unknown {
  if (Array.isArray(values)) return values.map((v) => valuesJson(v, dtype));
  if (typeof values === 'bigint')
    return values >= BigInt(Number.MIN_SAFE_INTEGER) && values <= BigInt(Number.MAX_SAFE_INTEGER)
      ? Number(values)
      : values.toString();
  if (typeof values === 'number') {
    if (!Number.isFinite(values)) return String(values);
    return isFloat32Like(dtype) ? Number(float32Text(values)) : values;
  }
  return values;
}
