import { modelsV1 } from '@aether/proto';
import { buildProgram } from '../program';
import { UsageError } from '../units';
import { inferInputs } from './models';

const { DataType } = modelsV1;

const model = modelsV1.Model.fromPartial({
  name: 'models/pair',
  signature: {
    inputs: [
      { name: 'x', dtype: DataType.DATA_TYPE_FLOAT32, shape: [-1n, 3n] },
      { name: 'ids', dtype: DataType.DATA_TYPE_INT64, shape: [-1n] },
    ],
    outputs: [{ name: 'y', dtype: DataType.DATA_TYPE_FLOAT32, shape: [-1n, 2n] }],
  },
});

describe('inferInputs', () => {
  it("packs each --input with the model's dtype and the shape of its nesting", () => {
    const [x, ids] = inferInputs(model, {
      input: [
        ['x', [[0.5, 1, 2]]],
        ['ids', [7, 8]],
      ],
    });
    expect([x!.name, x!.dtype, x!.shape]).toEqual(['x', DataType.DATA_TYPE_FLOAT32, [1n, 3n]]);
    expect(x!.data.readFloatLE(0)).toBe(0.5);
    expect([ids!.dtype, ids!.shape, ids!.data.readBigInt64LE(8)]).toEqual([
      DataType.DATA_TYPE_INT64,
      [2n],
      8n,
    ]);
  });

  it('takes --dtype over the signature and --shape over the nesting', () => {
    const [x] = inferInputs(model, {
      input: [
        ['x', [1, 2, 3, 4, 5, 6]],
        ['ids', [1]],
      ],
      shape: [['x', [2, 3]]],
      dtype: [['x', DataType.DATA_TYPE_FLOAT64]],
    });
    expect([x!.dtype, x!.shape, x!.data.length]).toEqual([DataType.DATA_TYPE_FLOAT64, [2n, 3n], 48]);
  });

  it('refuses a missing input, an unknown one without --dtype, a repeated one, and a stray --shape', () => {
    expect(() => inferInputs(model, { input: [['x', [[1, 2, 3]]]] })).toThrow(
      new UsageError(
        "models/pair needs ids: int64 [N]: give --input ids=<JSON array> (the model's inputs: x: float32 [N, 3], ids: int64 [N])",
      ),
    );
    expect(() =>
      inferInputs(model, {
        input: [
          ['x', [[1, 2, 3]]],
          ['ids', [1]],
          ['z', [1]],
        ],
      }),
    ).toThrow(/models\/pair has no input z .*give --dtype z=<dtype>/);
    expect(() =>
      inferInputs(model, {
        input: [
          ['x', [1]],
          ['x', [2]],
        ],
      }),
    ).toThrow('--input x is given more than once');
    expect(() =>
      inferInputs(model, {
        input: [
          ['x', [[1, 2, 3]]],
          ['ids', [1]],
        ],
        shape: [['w', [1]]],
      }),
    ).toThrow('--shape w names no --input; the inputs given: x, ids');
  });
});

describe('aether models and aether train on the command line', () => {
  it('are registered with their subcommands', () => {
    const program = buildProgram();
    const sub = (name: string): string[] =>
      program.commands.find((c) => c.name() === name)?.commands.map((c) => c.name()) ?? [];
    expect(sub('models')).toEqual(['register', 'ls', 'get', 'infer', 'unload', 'rm']);
    expect(sub('train')).toEqual(['templates', 'start', 'ls', 'get', 'watch', 'stop']);
  });
});
