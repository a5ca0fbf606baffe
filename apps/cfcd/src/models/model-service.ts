import { status as Status } from '@grpc/grpc-js';
import { MODEL_ID_PATTERN } from '@aether/config';
import { artifactsV1, modelsV1 } from '@aether/proto';
import {
  checkLabels,
  invalidFields,
  newId,
  parseLabelSelector,
  RpcError,
  serverStreamCall,
  unary,
  Violations,
  type CallContext,
  type CallOpts,
  type ServiceHandlers,
} from '@aether/rpc';
import { DigestMismatchError, type ModelFiles } from './model-files';
import type { ModelRegistry, NewModel } from './model-registry';

const { ModelFormat, ModelState } = modelsV1;
const { ArtifactType } = artifactsV1;

const ARTIFACT_NAME = /^artifacts\/[0-9a-z]{26}$/;
const MAX_DISPLAY_NAME_BYTES = 256;

/** `models/x` → `x`, or INVALID_ARGUMENT / INVALID_NAME. */
export function modelIdOf(name: string, field = 'name'): string {
  const id = name.startsWith('models/') ? name.slice('models/'.length) : '';
  if (!MODEL_ID_PATTERN.test(id))
    throw invalidFields(
      [
        {
          field,
          description: `"${name}" is not a model name such as models/mlp (1-63 characters of [a-z0-9-], starting with a letter)`,
        },
      ],
      'INVALID_NAME',
    );
  return id;
}

function validateRegister(req: modelsV1.RegisterModelRequest): void {
  const v = new Violations();
  const m = req.model;
  if (!m) v.add('model', 'is required');
  else {
    if (m.format === ModelFormat.MODEL_FORMAT_OPENAI_COMPATIBLE_ENDPOINT)
      v.add('model.format', 'endpoint models are configured in cfcd.generation.endpoints, not registered');
    else v.check(m.format === ModelFormat.MODEL_FORMAT_ONNX, 'model.format', 'must be MODEL_FORMAT_ONNX');
    v.check(
      ARTIFACT_NAME.test(m.artifact),
      'model.artifact',
      'must be an artifact name such as artifacts/<ulid>',
    );
    v.check(m.endpoint === undefined, 'model.endpoint', 'must be unset for an ONNX model');
    v.check(
      Buffer.byteLength(m.displayName) <= MAX_DISPLAY_NAME_BYTES,
      'model.display_name',
      `must be at most ${MAX_DISPLAY_NAME_BYTES} bytes`,
    );
    checkLabels(v, m.labels, 'model.labels');
    v.check(
      m.trainingRun === '' || /^trainingRuns\/[0-9a-z]{26}$/.test(m.trainingRun),
      'model.training_run',
      'must be empty or a training run name such as trainingRuns/<ulid>',
    );
  }
  v.check(
    req.modelId === '' || MODEL_ID_PATTERN.test(req.modelId),
    'model_id',
    'must be 1-63 characters of [a-z0-9-], starting with a letter',
  );
  if (v.all.length > 0) throw invalidFields(v.all);
}

function validateList(req: modelsV1.ListModelsRequest): void {
  const v = new Violations().page(req);
  v.check(
    req.format === ModelFormat.MODEL_FORMAT_UNSPECIFIED ||
      modelsV1.modelFormatToJSON(req.format) !== 'UNRECOGNIZED',
    'format',
    'is not a model format',
  );
  v.check(
    req.state === ModelState.MODEL_STATE_UNSPECIFIED ||
      modelsV1.modelStateToJSON(req.state) !== 'UNRECOGNIZED',
    'state',
    'is not a model state',
  );
  v.check(req.artifact === '' || ARTIFACT_NAME.test(req.artifact), 'artifact', 'must be an artifact name');
  if (v.all.length > 0) throw invalidFields(v.all);
  parseLabelSelector(req.labelSelector);
}

export const forward = (ctx: CallContext): CallOpts => ({
  requestId: ctx.requestId,
  ...(ctx.intentId ? { intentId: ctx.intentId } : {}),
  ...(ctx.jobId ? { jobId: ctx.jobId } : {}),
  signal: ctx.signal,
});

/** aetherd could not be reached (or answered UNAVAILABLE): UNAVAILABLE / AETHERD_UNAVAILABLE. */
function fromAetherd(err: unknown, artifact: string): unknown {
  const e = RpcError.from(err);
  if (e.code === Status.UNAVAILABLE && e.reason !== 'AUDIT_UNAVAILABLE' && e.reason !== 'SHUTTING_DOWN')
    return new RpcError(
      Status.UNAVAILABLE,
      'AETHERD_UNAVAILABLE',
      `cannot read ${artifact} from aetherd: ${e.message}`,
      {
        cause: err,
      },
    );
  if (e.code === Status.NOT_FOUND)
    return new RpcError(Status.NOT_FOUND, 'ARTIFACT_NOT_FOUND', e.message, {
      metadata: { artifact },
      cause: err,
    });
  return e;
}

/**
 * Downloads an artifact into the model files through ReadArtifact, under cfcd's identity, and checks its
 * type (MODEL or CHECKPOINT) and its digest.
 */
async function fetchArtifact(
  artifacts: artifactsV1.ArtifactServiceClient,
  files: ModelFiles,
  name: string,
  opts: CallOpts,
): Promise<{ digest: string }> {
  const stream = serverStreamCall(
    artifacts.readArtifact.bind(artifacts),
    artifactsV1.ReadArtifactRequest.fromPartial({ name }),
    opts,
  );
  let expected: string | undefined;
  async function* chunks(): AsyncGenerator<Uint8Array> {
    for await (const m of stream) {
      if (m.artifact) {
        const type = m.artifact.type;
        if (type !== ArtifactType.ARTIFACT_TYPE_MODEL && type !== ArtifactType.ARTIFACT_TYPE_CHECKPOINT)
          throw new RpcError(
            Status.FAILED_PRECONDITION,
            'ARTIFACT_TYPE_UNSUPPORTED',
            `${name} is of type ${artifactsV1.artifactTypeToJSON(type)}; a model is registered from a MODEL or CHECKPOINT artifact`,
            { metadata: { artifact: name } },
          );
        expected = m.artifact.digest;
      }
      if (expected === undefined)
        throw new RpcError(
          Status.UNAVAILABLE,
          'AETHERD_UNAVAILABLE',
          `aetherd sent ${name}'s content before its metadata`,
        );
      yield m.data;
    }
  }
  try {
    return await files.write(chunks(), () => expected);
  } catch (err) {
    if (err instanceof DigestMismatchError)
      throw new RpcError(Status.DATA_LOSS, 'DIGEST_MISMATCH', `${name}: ${err.message}`, {
        metadata: { artifact: name, expected: err.expected, actual: err.actual },
      });
    if (err instanceof RpcError && err.reason === 'ARTIFACT_TYPE_UNSUPPORTED') throw err;
    throw fromAetherd(err, name);
  }
}

/**
 * Registers an ONNX model from a MODEL or CHECKPOINT artifact: downloads it under cfcd's identity,
 * checks its digest, reads its signature. ALREADY_EXISTS / MODEL_EXISTS when the id is taken.
 */
export async function registerFromArtifact(
  registry: ModelRegistry,
  files: ModelFiles,
  artifacts: artifactsV1.ArtifactServiceClient,
  m: NewModel,
  opts: CallOpts,
): Promise<modelsV1.Model> {
  if (registry.exists(m.id))
    throw new RpcError(Status.ALREADY_EXISTS, 'MODEL_EXISTS', `models/${m.id} already exists`, {
      metadata: { resource: `models/${m.id}` },
    });
  const { digest } = await fetchArtifact(artifacts, files, m.artifact, opts);
  return registry.adopt(m, digest);
}

/**
 * RegisterModel, GetModel, ListModels, UnloadModel, DeleteModel and Infer for ONNX models stored as
 * aetherd artifacts and run in process.
 */
export function modelServiceHandlers(
  registry: ModelRegistry,
  files: ModelFiles,
  artifacts: artifactsV1.ArtifactServiceClient,
): ServiceHandlers<typeof modelsV1.ModelRuntimeServiceService> {
  const byName = (req: { name: string }): void => void modelIdOf(req.name);
  return {
    registerModel: unary<modelsV1.RegisterModelRequest, modelsV1.RegisterModelResponse>({
      validate: validateRegister,
      mutates: true,
      handle: async (req, ctx) => {
        const m = req.model!;
        const model = await registerFromArtifact(
          registry,
          files,
          artifacts,
          {
            id: req.modelId || `m-${newId().toLowerCase()}`,
            displayName: m.displayName,
            artifact: m.artifact,
            labels: m.labels,
            actor: ctx.principal.id,
            trainingRun: m.trainingRun,
          },
          forward(ctx),
        );
        return { model };
      },
    }),
    getModel: unary<modelsV1.GetModelRequest, modelsV1.GetModelResponse>({
      validate: byName,
      handle: (req) => Promise.resolve({ model: registry.get(modelIdOf(req.name)) }),
    }),
    listModels: unary<modelsV1.ListModelsRequest, modelsV1.ListModelsResponse>({
      validate: validateList,
      handle: (req) => {
        // Only ONNX models are registered; endpoint models are configuration.
        if (req.format === ModelFormat.MODEL_FORMAT_OPENAI_COMPATIBLE_ENDPOINT)
          return Promise.resolve({ models: [], nextPageToken: '' });
        const page = registry.list({
          pageSize: req.pageSize === 0 ? 50 : req.pageSize,
          ...(req.pageToken ? { before: Number(req.pageToken) } : {}),
          ...(req.artifact ? { artifact: req.artifact } : {}),
          ...(req.state !== ModelState.MODEL_STATE_UNSPECIFIED ? { state: req.state } : {}),
          labels: parseLabelSelector(req.labelSelector),
        });
        return Promise.resolve({
          models: page.models,
          nextPageToken: page.nextBefore !== undefined ? String(page.nextBefore) : '',
        });
      },
    }),
    unloadModel: unary<modelsV1.UnloadModelRequest, modelsV1.UnloadModelResponse>({
      validate: byName,
      mutates: true,
      handle: async (req) => ({ model: await registry.unload(modelIdOf(req.name)) }),
    }),
    deleteModel: unary<modelsV1.DeleteModelRequest, modelsV1.DeleteModelResponse>({
      validate: byName,
      mutates: true,
      handle: async (req) => {
        await registry.delete(modelIdOf(req.name));
        return {};
      },
    }),
    infer: unary<modelsV1.InferRequest, modelsV1.InferResponse>({
      validate: byName,
      handle: (req) => registry.infer(modelIdOf(req.name), req),
    }),
  };
}
