import { status as Status } from '@grpc/grpc-js';
import { modelsV1 } from '@aether/proto';
import { RpcError } from '@aether/rpc';
import type { WireTensor, WireValueSpec } from './session-worker';

const { DataType } = modelsV1;

/** Max total input size of one Infer request (aether.models.v1 InferRequest.inputs). */
export const MAX_INFER_INPUT_BYTES = 64 * 1024 * 1024;

interface ElementType {
  /** onnxruntime's name for it. */
  ort: string;
  /** Bytes per element in `Tensor.data`; 0 for strings. */
  size: number;
  /** The typed array onnxruntime takes for it. */
  view?: (buf: ArrayBuffer) => ArrayBufferView;
}

const ELEMENT_TYPES: Partial<Record<modelsV1.DataType, ElementType>> = {
  [DataType.DATA_TYPE_FLOAT32]: { ort: 'float32', size: 4, view: (b) => new Float32Array(b) },
  [DataType.DATA_TYPE_FLOAT64]: { ort: 'float64', size: 8, view: (b) => new Float64Array(b) },
  [DataType.DATA_TYPE_FLOAT16]: { ort: 'float16', size: 2, view: (b) => new Uint16Array(b) },
  [DataType.DATA_TYPE_INT8]: { ort: 'int8', size: 1, view: (b) => new Int8Array(b) },
  [DataType.DATA_TYPE_INT16]: { ort: 'int16', size: 2, view: (b) => new Int16Array(b) },
  [DataType.DATA_TYPE_INT32]: { ort: 'int32', size: 4, view: (b) => new Int32Array(b) },
  [DataType.DATA_TYPE_INT64]: { ort: 'int64', size: 8, view: (b) => new BigInt64Array(b) },
  [DataType.DATA_TYPE_UINT8]: { ort: 'uint8', size: 1, view: (b) => new Uint8Array(b) },
  [DataType.DATA_TYPE_UINT16]: { ort: 'uint16', size: 2, view: (b) => new Uint16Array(b) },
  [DataType.DATA_TYPE_UINT32]: { ort: 'uint32', size: 4, view: (b) => new Uint32Array(b) },
  [DataType.DATA_TYPE_UINT64]: { ort: 'uint64', size: 8, view: (b) => new BigUint64Array(b) },
  [DataType.DATA_TYPE_BOOL]: { ort: 'bool', size: 1, view: (b) => new Uint8Array(b) },
  [DataType.DATA_TYPE_STRING]: { ort: 'string', size: 0 },
};

const BY_ORT = new Map(
  Object.entries(ELEMENT_TYPES).map(([dtype, t]) => [t.ort, Number(dtype) as modelsV1.DataType]),
);

const dtypeName = (d: modelsV1.DataType): string => modelsV1.dataTypeToJSON(d);

/** The signature onnxruntime reports: dtypes in Aether's terms, -1 for each dynamic dimension. */
export function signatureOf(inputs: WireValueSpec[], outputs: WireValueSpec[]): modelsV1.ModelSignature {
  const spec = (v: WireValueSpec): modelsV1.TensorSpec => ({
    name: v.name,
    dtype: BY_ORT.get(v.type) ?? DataType.DATA_TYPE_UNSPECIFIED,
    shape: v.shape.map((d) => (typeof d === 'number' && d >= 0 ? BigInt(d) : -1n)),
  });
  return { inputs: inputs.map(spec), outputs: outputs.map(spec) };
}

function invalidTensor(
  reason: string,
  key: 'input' | 'output',
  name: string,
  field: string,
  why: string,
): RpcError {
  return new RpcError(Status.INVALID_ARGUMENT, reason, `${key} "${name}": ${why}`, {
    metadata: { [key]: name, field },
    fieldViolations: [{ field, description: why }],
  });
}

const shapeText = (shape: readonly bigint[]): string => `[${shape.join(', ')}]`;

/**
 * Checks an Infer request's tensors against the model's signature and turns them into what onnxruntime
 * takes. Throws INVALID_ARGUMENT naming the offending input (or output) with the reasons of
 * aether.models.v1 Infer, or RESOURCE_EXHAUSTED / REQUEST_TOO_LARGE.
 */
export function feedsFor(
  signature: modelsV1.ModelSignature,
  req: Pick<modelsV1.InferRequest, 'inputs' | 'outputNames'>,
): { feeds: Record<string, WireTensor>; fetches: string[] } {
  const specs = new Map(signature.inputs.map((s) => [s.name, s]));
  const feeds: Record<string, WireTensor> = {};
  let total = 0;
  req.inputs.forEach((t, i) => {
    const field = `inputs[${i}]`;
    const spec = specs.get(t.name);
    if (!spec)
      throw invalidTensor(
        'UNKNOWN_INPUT',
        'input',
        t.name,
        `${field}.name`,
        `the model has no such input (its inputs: ${signature.inputs.map((s) => s.name).join(', ')})`,
      );
    if (feeds[t.name])
      throw invalidTensor('INVALID_FIELD', 'input', t.name, `${field}.name`, 'is given more than once');
    if (t.dtype !== spec.dtype)
      throw invalidTensor(
        'TENSOR_DTYPE_MISMATCH',
        'input',
        t.name,
        `${field}.dtype`,
        `dtype ${dtypeName(t.dtype)} does not match the model's ${dtypeName(spec.dtype)}`,
      );
    const type = ELEMENT_TYPES[t.dtype];
    if (!type)
      throw invalidTensor(
        'TENSOR_DTYPE_MISMATCH',
        'input',
        t.name,
        `${field}.dtype`,
        `${dtypeName(t.dtype)} is not supported`,
      );
    // An empty signature shape is how onnxruntime reports an undeclared one: onnxruntime checks it then.
    const shapeOk =
      t.shape.every((d) => d >= 0n) &&
      (spec.shape.length === 0 ||
        (t.shape.length === spec.shape.length &&
          t.shape.every((d, k) => spec.shape[k] === -1n || spec.shape[k] === d)));
    if (!shapeOk)
      throw invalidTensor(
        'TENSOR_SHAPE_MISMATCH',
        'input',
        t.name,
        `${field}.shape`,
        `shape ${shapeText(t.shape)} does not match the model's ${shapeText(spec.shape)} (-1: any size)`,
      );
    const count = t.shape.reduce((n, d) => n * Number(d), 1);
    const dims = t.shape.map(Number);
    const sizeMismatch = (got: string): RpcError =>
      invalidTensor(
        'TENSOR_DATA_SIZE_MISMATCH',
        'input',
        t.name,
        `${field}.data`,
        `shape ${shapeText(t.shape)} needs ${count} elements${type.size ? ` (${count * type.size} bytes)` : ''}, got ${got}`,
      );
    if (t.dtype === DataType.DATA_TYPE_STRING) {
      if (t.stringValues.length !== count || t.data.length > 0)
        throw sizeMismatch(`${t.stringValues.length} strings`);
      total += t.stringValues.reduce((n, s) => n + Buffer.byteLength(s), 0);
      feeds[t.name] = { type: type.ort, data: [...t.stringValues], dims };
    } else if (t.dtype === DataType.DATA_TYPE_FLOAT32 && t.floatValues.length > 0) {
      if (t.floatValues.length !== count || t.data.length > 0)
        throw sizeMismatch(`${t.floatValues.length} float_values${t.data.length ? ' and data' : ''}`);
      total += count * 4;
      feeds[t.name] = { type: type.ort, data: Float32Array.from(t.floatValues), dims };
    } else {
      if (t.data.length !== count * type.size) throw sizeMismatch(`${t.data.length} bytes`);
      total += t.data.length;
      // A copy: aligned for the typed array, and free to hand over to the worker.
      const buf = new ArrayBuffer(t.data.length);
      new Uint8Array(buf).set(t.data);
      if (t.dtype === DataType.DATA_TYPE_BOOL && new Uint8Array(buf).some((b) => b > 1))
        throw invalidTensor(
          'INVALID_FIELD',
          'input',
          t.name,
          `${field}.data`,
          'a BOOL element must be 0 or 1',
        );
      feeds[t.name] = { type: type.ort, data: type.view!(buf), dims };
    }
    if (total > MAX_INFER_INPUT_BYTES)
      throw new RpcError(
        Status.RESOURCE_EXHAUSTED,
        'REQUEST_TOO_LARGE',
        `the inputs exceed ${MAX_INFER_INPUT_BYTES} bytes`,
        { metadata: { input: t.name } },
      );
  });
  for (const spec of signature.inputs)
    if (!feeds[spec.name])
      throw invalidTensor(
        'MISSING_INPUT',
        'input',
        spec.name,
        'inputs',
        'the model needs this input and it is not given',
      );
  const outputs = new Set(signature.outputs.map((s) => s.name));
  req.outputNames.forEach((name, i) => {
    if (!outputs.has(name))
      throw invalidTensor(
        'UNKNOWN_OUTPUT',
        'output',
        name,
        `output_names[${i}]`,
        `the model has no such output (its outputs: ${[...outputs].join(', ')})`,
      );
  });
  return {
    feeds,
    fetches: req.outputNames.length > 0 ? [...req.outputNames] : signature.outputs.map((s) => s.name),
  };
}

/** An output of onnxruntime as an aether.models.v1 Tensor (packed little-endian `data`, or strings). */
export function tensorOf(name: string, t: WireTensor): modelsV1.Tensor {
  const dtype = BY_ORT.get(t.type) ?? DataType.DATA_TYPE_UNSPECIFIED;
  const shape = t.dims.map(BigInt);
  if (Array.isArray(t.data))
    return { name, dtype, shape, data: Buffer.alloc(0), floatValues: [], stringValues: t.data.map(String) };
  const view = t.data;
  return {
    name,
    dtype,
    shape,
    data: Buffer.from(view.buffer, view.byteOffset, view.byteLength),
    floatValues: [],
    stringValues: [],
  };
}
