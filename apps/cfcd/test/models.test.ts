import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { defaultServerConfig, type ClientEndpointConfig } from '@aether/config';
import { createLogger } from '@aether/log';
import { artifactsV1, modelsV1 } from '@aether/proto';
import { AetherServer, createClient, RpcError, unaryCall } from '@aether/rpc';
import { ModelFiles } from '../src/models/model-files';
import { ModelRegistry } from '../src/models/model-registry';
import { modelServiceHandlers } from '../src/models/model-service';
import { ModelStore } from '../src/models/model-store';
import { SessionCache } from '../src/models/session-cache';
import { SessionWorker } from '../src/models/session-worker';
import { linear, linearModel } from './onnx-models';

const { DataType, ModelState } = modelsV1;

const W = [
  [1, 2],
  [3, 4],
  [5, 6],
];
const B = [0.5, -1];

const failure = async (p: Promise<unknown>): Promise<RpcError> => {
  try {
    await p;
  } catch (err) {
    return RpcError.from(err);
  }
  throw new Error('expected the call to fail');
};

const f32 = (rows: number[][]): Buffer => Buffer.from(Float32Array.from(rows.flat()).buffer);
const rowsOf = (t: modelsV1.Tensor): number[][] => {
  const values = Array.from(new Float32Array(new Uint8Array(t.data).buffer));
  const cols = Number(t.shape[1]);
  return Array.from({ length: Number(t.shape[0]) }, (_, i) => values.slice(i * cols, (i + 1) * cols));
};

/**
 * cfcd's model API behind the real request pipeline on a real Unix socket, running a real ONNX model
 * (y = x·W + b, built with onnx-proto) in onnxruntime-node. Models are registered from local files
 * through the registry (the artifact path is covered end to end in tools/e2e/test/models.test.ts).
 */
describe('cfcd models and inference', () => {
  const dir = mkdtempSync(join(tmpdir(), 'aether-cfcd-models-'));
  const modelFile = join(dir, 'linear.onnx');
  let server: AetherServer;
  let client: modelsV1.ModelRuntimeServiceClient;
  let registry: ModelRegistry;
  let store: ModelStore;
  const loads: string[] = [];

  const call = <Req, Res>(
    method: (req: Req, md: never, opts: never, cb: never) => unknown,
    req: Req,
  ): Promise<Res> => unaryCall(method.bind(client) as never, req, { timeoutMs: 20_000 });
  const infer = (req: Partial<modelsV1.InferRequest>): Promise<modelsV1.InferResponse> =>
    call(client.infer, modelsV1.InferRequest.fromPartial(req));
  const x = (rows: number[][], extra: Partial<modelsV1.Tensor> = {}): modelsV1.Tensor =>
    modelsV1.Tensor.fromPartial({
      name: 'x',
      dtype: DataType.DATA_TYPE_FLOAT32,
      shape: [BigInt(rows.length), 3n],
      data: f32(rows),
      ...extra,
    });
  const register = (id: string, labels: Record<string, string> = {}): Promise<modelsV1.Model> =>
    registry.registerFile(modelFile, {
      id,
      displayName: id,
      artifact: '',
      labels,
      actor: 'spiffe://aether.local/test',
      trainingRun: '',
    });

  beforeAll(async () => {
    writeFileSync(modelFile, linearModel(W, B));
    writeFileSync(join(dir, 'garbage.onnx'), 'not a model');
    const files = new ModelFiles(join(dir, 'state', 'models'));
    store = new ModelStore(join(dir, 'state', 'models'));
    const cache = new SessionCache(2, (path) => {
      loads.push(path);
      return SessionWorker.start(path);
    });
    registry = new ModelRegistry(store, files, cache, (id) => id === 'planner');
    const config = defaultServerConfig('cfcd', dir);
    config.socket = { path: join(dir, 'cfcd.sock'), mode: '0600', group: '' };
    config.tls.mode = 'insecure-plaintext';
    server = new AetherServer({
      name: 'cfcd',
      config,
      log: createLogger({ service: 'cfcd', level: 'silent' }),
      policy: { decide: () => ({ effect: 'allow', policyIds: ['test-allow'], reason: 'test' }) },
      audit: { record: () => Promise.resolve() },
    });
    const artifacts = createClient(artifactsV1.ArtifactServiceClient, {
      socket: join(dir, 'no-aetherd.sock'),
      serverId: 'spiffe://aether.local/aetherd',
      mode: 'insecure-plaintext',
      caFile: '-',
      certFile: '-',
      keyFile: '-',
    });
    server.addService(modelsV1.ModelRuntimeServiceService, modelServiceHandlers(registry, files, artifacts));
    await server.start();
    const to: ClientEndpointConfig = {
      socket: config.socket.path,
      serverId: 'spiffe://aether.local/cfcd',
      mode: 'insecure-plaintext',
      caFile: '-',
      certFile: '-',
      keyFile: '-',
    };
    client = createClient(modelsV1.ModelRuntimeServiceClient, to);
    await register('linear', { team: 'a' });
  });

  afterAll(async () => {
    client?.close();
    await server?.stop();
    await registry?.close();
    store?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('reads the signature from the model itself', async () => {
    const { model } = await call<modelsV1.GetModelRequest, modelsV1.GetModelResponse>(client.getModel, {
      name: 'models/linear',
    });
    expect(model!.signature).toEqual({
      inputs: [{ name: 'x', dtype: DataType.DATA_TYPE_FLOAT32, shape: [-1n, 3n] }],
      outputs: [{ name: 'y', dtype: DataType.DATA_TYPE_FLOAT32, shape: [-1n, 2n] }],
    });
    expect(model!.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(model!.labels).toEqual({ team: 'a' });
    expect(model!.capabilities).toEqual([modelsV1.ModelCapability.MODEL_CAPABILITY_INFER]);
  });

  it('computes x·W + b', async () => {
    const rows = [
      [1, 1, 1],
      [0, 0, 0],
      [-2, 0.5, 3.25],
    ];
    const res = await infer({ name: 'models/linear', inputs: [x(rows)] });
    expect(res.outputs.map((o) => [o.name, o.dtype, o.shape])).toEqual([
      ['y', DataType.DATA_TYPE_FLOAT32, [3n, 2n]],
    ]);
    const got = rowsOf(res.outputs[0]!);
    linear(W, B, rows).forEach((row, i) => row.forEach((v, j) => expect(got[i]![j]).toBeCloseTo(v, 4)));
    expect(res.computeTime).toBeDefined();
  });

  it('takes float_values for a FLOAT32 input', async () => {
    const res = await infer({
      name: 'models/linear',
      inputs: [x([[1, 2, 3]], { data: Buffer.alloc(0), floatValues: [1, 2, 3] })],
    });
    expect(rowsOf(res.outputs[0]!)[0]).toEqual(linear(W, B, [[1, 2, 3]])[0]);
  });

  it.each([
    [
      'a wrong dtype',
      x([[1, 2, 3]], {
        dtype: DataType.DATA_TYPE_FLOAT64,
        data: Buffer.from(Float64Array.from([1, 2, 3]).buffer),
      }),
      'TENSOR_DTYPE_MISMATCH',
    ],
    ['a wrong shape', x([[1, 2, 3, 4]], { shape: [1n, 4n] }), 'TENSOR_SHAPE_MISMATCH'],
    ['a wrong rank', x([[1, 2, 3]], { shape: [3n] }), 'TENSOR_SHAPE_MISMATCH'],
    ['too few bytes', x([[1, 2, 3]], { data: Buffer.alloc(8) }), 'TENSOR_DATA_SIZE_MISMATCH'],
    ['an unknown input', x([[1, 2, 3]], { name: 'z' }), 'UNKNOWN_INPUT'],
  ])('answers INVALID_ARGUMENT naming the input for %s', async (_what, tensor, reason) => {
    const err = await failure(infer({ name: 'models/linear', inputs: [tensor] }));
    expect([err.code, err.reason]).toEqual([status.INVALID_ARGUMENT, reason]);
    expect(err.metadata.input).toBe(tensor.name);
    expect(err.message).toContain(`"${tensor.name}"`);
  });

  it('answers MISSING_INPUT and UNKNOWN_OUTPUT', async () => {
    const missing = await failure(infer({ name: 'models/linear', inputs: [] }));
    expect([missing.code, missing.reason, missing.metadata.input]).toEqual([
      status.INVALID_ARGUMENT,
      'MISSING_INPUT',
      'x',
    ]);
    const output = await failure(
      infer({ name: 'models/linear', inputs: [x([[1, 2, 3]])], outputNames: ['q'] }),
    );
    expect([output.reason, output.metadata.output]).toEqual(['UNKNOWN_OUTPUT', 'q']);
  });

  it('answers NOT_FOUND for an unknown model and CAPABILITY_UNSUPPORTED for an endpoint model', async () => {
    const err = await failure(infer({ name: 'models/nope', inputs: [x([[1, 2, 3]])] }));
    expect([err.code, err.reason]).toEqual([status.NOT_FOUND, 'MODEL_NOT_FOUND']);
    const endpoint = await failure(infer({ name: 'models/planner', inputs: [x([[1, 2, 3]])] }));
    expect([endpoint.code, endpoint.reason]).toEqual([status.FAILED_PRECONDITION, 'CAPABILITY_UNSUPPORTED']);
    const bad = await failure(infer({ name: 'planner', inputs: [] }));
    expect([bad.code, bad.reason]).toEqual([status.INVALID_ARGUMENT, 'INVALID_NAME']);
  });

  it('refuses a file that is not a model and leaves no record', async () => {
    const err = await failure(
      registry.registerFile(join(dir, 'garbage.onnx'), {
        id: 'garbage',
        displayName: '',
        artifact: '',
        labels: {},
        actor: 'x',
        trainingRun: '',
      }),
    );
    expect([err.code, err.reason]).toEqual([status.INVALID_ARGUMENT, 'MODEL_INVALID']);
    expect(store.get('garbage')).toBeUndefined();
    const taken = await failure(register('linear'));
    expect([taken.code, taken.reason]).toEqual([status.ALREADY_EXISTS, 'MODEL_EXISTS']);
  });

  it('unloads, reloads lazily, keeps at most 2 loaded, lists newest first with pages, and deletes', async () => {
    await register('second', { team: 'b' });
    await register('third', { team: 'b' });
    const state = async (id: string): Promise<modelsV1.ModelState> =>
      (
        await call<modelsV1.GetModelRequest, modelsV1.GetModelResponse>(client.getModel, {
          name: `models/${id}`,
        })
      ).model!.state;
    // Registering loaded `second` and `third`: `linear` was the least recently used and went out.
    expect(await state('linear')).toBe(ModelState.MODEL_STATE_UNLOADED);
    expect(await state('third')).toBe(ModelState.MODEL_STATE_READY);
    const { model } = await call<modelsV1.UnloadModelRequest, modelsV1.UnloadModelResponse>(
      client.unloadModel,
      {
        name: 'models/third',
      },
    );
    expect(model!.state).toBe(ModelState.MODEL_STATE_UNLOADED);
    const before = loads.length;
    await infer({ name: 'models/third', inputs: [x([[1, 2, 3]])] });
    expect(loads.length).toBe(before + 1);
    expect(await state('third')).toBe(ModelState.MODEL_STATE_READY);

    const list = (req: Partial<modelsV1.ListModelsRequest>): Promise<modelsV1.ListModelsResponse> =>
      call(client.listModels, modelsV1.ListModelsRequest.fromPartial(req));
    const page1 = await list({ pageSize: 2 });
    expect(page1.models.map((m) => m.id)).toEqual(['third', 'second']);
    const page2 = await list({ pageSize: 2, pageToken: page1.nextPageToken });
    expect(page2.models.map((m) => m.id)).toEqual(['linear']);
    expect(page2.nextPageToken).toBe('');
    expect((await list({ labelSelector: 'team=b' })).models.map((m) => m.id)).toEqual(['third', 'second']);
    expect((await list({ state: ModelState.MODEL_STATE_UNLOADED })).models.map((m) => m.id)).toEqual([
      'linear',
    ]);

    await call(client.deleteModel, { name: 'models/second' });
    const gone = await failure(call(client.getModel, { name: 'models/second' }));
    expect([gone.code, gone.reason]).toEqual([status.NOT_FOUND, 'MODEL_NOT_FOUND']);
    // The file is shared by digest with the models still registered: they still run.
    await infer({ name: 'models/linear', inputs: [x([[1, 2, 3]])] });
  });

  it('runs requests concurrently without blocking the daemon', async () => {
    const rows = Array.from({ length: 64 }, (_, i) => [i, i / 2, -i]);
    const results = await Promise.all(
      Array.from({ length: 16 }, () => infer({ name: 'models/linear', inputs: [x(rows)] })),
    );
    for (const r of results)
      expect(rowsOf(r.outputs[0]!)[63]![0]).toBeCloseTo(linear(W, B, [rows[63]!])[0]![0]!, 3);
  });
});
