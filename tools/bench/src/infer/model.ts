import { initializer, valueInfo } from '@aether/e2e';
import { onnx } from 'onnx-proto';

/** The benchmark's model: an MLP of `width` inputs, one hidden layer of `width` with ReLU, `width` outputs. */
export interface MlpShape {
  width: number;
}

/** Deterministic numbers in [-1, 1) (mulberry32), so every run benchmarks the same weights and input. */
export function seededValues(seed: number, count: number): Float32Array {
  let a = seed >>> 0;
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = ((t ^ (t >>> 14)) >>> 0) / 2 ** 31 - 1;
  }
  return out;
}

/**
 * y = relu(x·W1 + b1)·W2 + b2 for x of shape [batch, width] (MatMul, Add, Relu; opset 13), with seeded
 * weights, built with the ONNX protobuf definitions as tools/e2e's onnx-models.ts builds its models.
 * Input `x`, output `y`.
 */
export function mlpModel({ width }: MlpShape): Uint8Array {
  const scale = 1 / Math.sqrt(width);
  const scaled = (v: Float32Array): Float32Array => v.map((x) => x * scale);
  return onnx.ModelProto.encode(
    onnx.ModelProto.create({
      irVersion: 8,
      producerName: 'aether-bench-infer',
      opsetImport: [{ domain: '', version: 13 }],
      graph: {
        name: 'mlp',
        node: [
          { opType: 'MatMul', input: ['x', 'W1'], output: ['xw1'] },
          { opType: 'Add', input: ['xw1', 'b1'], output: ['h0'] },
          { opType: 'Relu', input: ['h0'], output: ['h'] },
          { opType: 'MatMul', input: ['h', 'W2'], output: ['hw2'] },
          { opType: 'Add', input: ['hw2', 'b2'], output: ['y'] },
        ],
        initializer: [
          initializer('W1', [width, width], scaled(seededValues(1, width * width))),
          initializer('b1', [width], seededValues(2, width)),
          initializer('W2', [width, width], scaled(seededValues(3, width * width))),
          initializer('b2', [width], seededValues(4, width)),
        ],
        input: [valueInfo('x', ['batch', width])],
        output: [valueInfo('y', ['batch', width])],
      },
    }),
  ).finish();
}
