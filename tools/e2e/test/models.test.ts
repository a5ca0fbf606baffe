import { status } from '@grpc/grpc-js';
import { artifactsV1, modelsV1 } from '@aether/proto';
import { clientStreamCall, RpcError, unaryCall } from '@aether/rpc';
import type { AetherClient } from '@aether/client';
import { Stack } from '../src';
import { linear, linearModel } from '../src/onnx-models';

const { ArtifactType } = artifactsV1;
const { DataType, ModelFormat, ModelState } = modelsV1;

const W = [
  [0.25, -1],
  [2, 0.5],
  [-3, 1.5],
];
const B = [1, -2];

const failure = async (p: Promise<unknown>): Promise<RpcError> => {
  try {
    await p;
  } catch (err) {
    return RpcError.from(err);
  }
  throw new Error('expected the call to fail');
};

const f32 = (rows: number[][]): Buffer => Buffer.from(Float32Array.from(rows.flat()).buffer);

/**
 * Models as artifacts, end to end: the admin uploads an ONNX file (y = x·W + b, built with onnx-proto)
 * to aetherd, registers it on cfcd (which fetches it from aetherd under its own identity, checks its
 * digest and reads its signature), and runs it through cfcd's Infer.
 */
describe('models: an ONNX artifact registered on cfcd and run in process', () => {
  let stack: Stack;
  let admin: AetherClient;
  let artifact: artifactsV1.Artifact;

  const upload = async (data: Uint8Array, type: artifactsV1.ArtifactType): Promise<artifactsV1.Artifact> => {
    const res = await clientStreamCall(admin.artifacts.uploadArtifact.bind(admin.artifacts), [
      artifactsV1.UploadArtifactRequest.fromPartial({
        payload: { $case: 'metadata', value: { metadata: { type, filename: 'linear.onnx' } } },
      }),
      { payload: { $case: 'chunk', value: Buffer.from(data) } },
    ]);
    return res.artifact!;
  };
  const models = (): modelsV1.ModelRuntimeServiceClient => admin.models;
  const register = (artifactName: string, modelId: string): Promise<modelsV1.RegisterModelResponse> =>
    unaryCall(
      models().registerModel.bind(models()),
      modelsV1.RegisterModelRequest.fromPartial({
        model: { format: ModelFormat.MODEL_FORMAT_ONNX, artifact: artifactName, labels: { demo: 'linear' } },
        modelId,
      }),
    );
  const infer = (req: Partial<modelsV1.InferRequest>): Promise<modelsV1.InferResponse> =>
    unaryCall(models().infer.bind(models()), modelsV1.InferRequest.fromPartial(req));
  const x = (rows: number[][], extra: Partial<modelsV1.Tensor> = {}): modelsV1.Tensor =>
    modelsV1.Tensor.fromPartial({
      name: 'x',
      dtype: DataType.DATA_TYPE_FLOAT32,
      shape: [BigInt(rows.length), 3n],
      data: f32(rows),
      ...extra,
    });

  beforeAll(async () => {
    stack = await new Stack().init();
    await stack.startAll();
    admin = stack.client();
    artifact = await upload(linearModel(W, B), ArtifactType.ARTIFACT_TYPE_MODEL);
  }, 60_000);

  afterAll(async () => {
    admin?.close();
    await stack?.close();
  });

  it('registers the artifact with the signature read from the model, and infers the known function', async () => {
    const { model } = await register(artifact.name, 'linear');
    expect(model).toMatchObject({
      name: 'models/linear',
      format: ModelFormat.MODEL_FORMAT_ONNX,
      artifact: artifact.name,
      digest: artifact.digest,
      state: ModelState.MODEL_STATE_READY,
      labels: { demo: 'linear' },
      actor: expect.stringMatching(/\/admin$/) as unknown,
    });
    expect(model!.signature).toEqual({
      inputs: [{ name: 'x', dtype: DataType.DATA_TYPE_FLOAT32, shape: [-1n, 3n] }],
      outputs: [{ name: 'y', dtype: DataType.DATA_TYPE_FLOAT32, shape: [-1n, 2n] }],
    });
    const rows = [
      [1, 2, 3],
      [-0.5, 0, 4],
    ];
    const { outputs } = await infer({ name: 'models/linear', inputs: [x(rows)] });
    expect(outputs[0]!.shape).toEqual([2n, 2n]);
    const got = Array.from(new Float32Array(new Uint8Array(outputs[0]!.data).buffer));
    expect(got.map((v) => Number(v.toFixed(4)))).toEqual(
      linear(W, B, rows)
        .flat()
        .map((v) => Number(v.toFixed(4))),
    );
  });

  it('answers INVALID_ARGUMENT naming the input for a wrong shape or dtype, NOT_FOUND for an unknown model', async () => {
    const shape = await failure(infer({ name: 'models/linear', inputs: [x([[1, 2]], { shape: [1n, 2n] })] }));
    expect([shape.code, shape.reason, shape.metadata.input]).toEqual([
      status.INVALID_ARGUMENT,
      'TENSOR_SHAPE_MISMATCH',
      'x',
    ]);
    const dtype = await failure(
      infer({ name: 'models/linear', inputs: [x([[1, 2, 3]], { dtype: DataType.DATA_TYPE_INT32 })] }),
    );
    expect([dtype.code, dtype.reason, dtype.metadata.input]).toEqual([
      status.INVALID_ARGUMENT,
      'TENSOR_DTYPE_MISMATCH',
      'x',
    ]);
    const unknown = await failure(infer({ name: 'models/nothing', inputs: [x([[1, 2, 3]])] }));
    expect([unknown.code, unknown.reason]).toEqual([status.NOT_FOUND, 'MODEL_NOT_FOUND']);
  });

  it('refuses an artifact that is not a model, an unknown artifact and a taken id', async () => {
    const other = await upload(Buffer.from('a,b\n1,2\n'), ArtifactType.ARTIFACT_TYPE_DATASET);
    const typed = await failure(register(other.name, 'dataset'));
    expect([typed.code, typed.reason]).toEqual([status.FAILED_PRECONDITION, 'ARTIFACT_TYPE_UNSUPPORTED']);
    const missing = await failure(register('artifacts/01aaaaaaaaaaaaaaaaaaaaaaaa', 'missing'));
    expect([missing.code, missing.reason]).toEqual([status.NOT_FOUND, 'ARTIFACT_NOT_FOUND']);
    const taken = await failure(register(artifact.name, 'linear'));
    expect([taken.code, taken.reason]).toEqual([status.ALREADY_EXISTS, 'MODEL_EXISTS']);
  });

  it('gets, lists, unloads and deletes', async () => {
    const m = models();
    const { model } = await unaryCall(m.getModel.bind(m), { name: 'models/linear' });
    expect(model!.digest).toBe(artifact.digest);
    const list = await unaryCall(
      m.listModels.bind(m),
      modelsV1.ListModelsRequest.fromPartial({ artifact: artifact.name }),
    );
    expect(list.models.map((x) => x.name)).toEqual(['models/linear']);
    const unloaded = await unaryCall(m.unloadModel.bind(m), { name: 'models/linear' });
    expect(unloaded.model!.state).toBe(ModelState.MODEL_STATE_UNLOADED);
    // Loaded again on use.
    await infer({ name: 'models/linear', inputs: [x([[0, 0, 0]])] });
    await unaryCall(m.deleteModel.bind(m), { name: 'models/linear' });
    const gone = await failure(unaryCall(m.getModel.bind(m), { name: 'models/linear' }));
    expect([gone.code, gone.reason]).toEqual([status.NOT_FOUND, 'MODEL_NOT_FOUND']);
  });
});
