import { onnx } from 'onnx-proto';

const FLOAT = onnx.TensorProto.DataType.FLOAT;

const f32 = (values: number[] | Float32Array): Uint8Array => {
  const v = Float32Array.from(values);
  return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
};

/** A float32 input or output of the graph; a string dimension is dynamic. */
export const valueInfo = (name: string, dims: (number | string)[]): onnx.IValueInfoProto => ({
  name,
  type: {
    tensorType: {
      elemType: FLOAT,
      shape: { dim: dims.map((d) => (typeof d === 'string' ? { dimParam: d } : { dimValue: d })) },
    },
  },
});

/** A float32 weight of the graph. */
export const initializer = (
  name: string,
  dims: number[],
  values: number[] | Float32Array,
): onnx.ITensorProto => ({
  name,
  dims,
  dataType: FLOAT,
  rawData: f32(values),
});

/**
 * (A copy of apps/cfcd/test/onnx-models.ts: the e2e tests cannot import another package's tests.)
 *
 * A model computing y = x·W + b for x of shape [batch, in], built with the ONNX protobuf definitions
 * (MatMul, Add; opset 13), so tests know exactly what it must answer.
 */
export function linearModel(w: number[][], b: number[]): Uint8Array {
  const inputs = w.length;
  const outputs = b.length;
  return onnx.ModelProto.encode(
    onnx.ModelProto.create({
      irVersion: 8,
      producerName: 'aether-cfcd-tests',
      opsetImport: [{ domain: '', version: 13 }],
      graph: {
        name: 'linear',
        node: [
          { opType: 'MatMul', input: ['x', 'W'], output: ['xw'] },
          { opType: 'Add', input: ['xw', 'b'], output: ['y'] },
        ],
        initializer: [initializer('W', [inputs, outputs], w.flat()), initializer('b', [outputs], b)],
        input: [valueInfo('x', ['batch', inputs])],
        output: [valueInfo('y', ['batch', outputs])],
      },
    }),
  ).finish();
}

/** What linearModel(w, b) answers for the rows of x. */
export function linear(w: number[][], b: number[], x: number[][]): number[][] {
  return x.map((row) => b.map((bj, j) => row.reduce((s, xi, i) => s + xi * w[i]![j]!, bj)));
}
