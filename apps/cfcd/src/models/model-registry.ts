import { status as Status } from '@grpc/grpc-js';
import { durationFromMs, modelsV1, timestampFromDate } from '@aether/proto';
import { RpcError } from '@aether/rpc';
import type { ModelFiles } from './model-files';
import type { ModelRecord, ModelStore } from './model-store';
import type { LoadState, SessionCache } from './session-cache';
import { InferenceRunError, ModelLoadError } from './session-worker';
import { feedsFor, signatureOf, tensorOf } from './tensors';

const { ModelFormat, ModelState, ModelCapability } = modelsV1;

const STATES: Record<LoadState, modelsV1.ModelState> = {
  loading: ModelState.MODEL_STATE_LOADING,
  ready: ModelState.MODEL_STATE_READY,
  failed: ModelState.MODEL_STATE_FAILED,
  unloaded: ModelState.MODEL_STATE_UNLOADED,
};

/** How often at most a model's `last_used_time` is written to the store. */
const TOUCH_INTERVAL_MS = 10_000;

export const modelNotFound = (id: string): RpcError =>
  new RpcError(Status.NOT_FOUND, 'MODEL_NOT_FOUND', `models/${id} not found`, {
    metadata: { resource: `models/${id}` },
  });

export interface NewModel {
  id: string;
  displayName: string;
  artifact: string;
  labels: Record<string, string>;
  actor: string;
  trainingRun: string;
}

/**
 * The ONNX models cfcd serves: registration (the file is stored content-addressed and loaded once, which
 * validates it and yields its signature), lookup, unloading and inference through the session cache.
 */
export class ModelRegistry {
  private readonly lastUsed = new Map<string, { at: Date; stored: number }>();

  constructor(
    private readonly store: ModelStore,
    private readonly files: ModelFiles,
    private readonly cache: SessionCache,
    /** Ids served otherwise (configured endpoints), which a registration may not take. */
    private readonly reserved: (id: string) => boolean = () => false,
  ) {}

  exists(id: string): boolean {
    return this.reserved(id) || this.store.get(id) !== undefined;
  }

  /**
   * Registers a model file already in the store (`digest`): loads it (INVALID_ARGUMENT / MODEL_INVALID
   * with the loader's message when it cannot be) and records it with the signature it reports.
   */
  async adopt(m: NewModel, digest: string): Promise<modelsV1.Model> {
    if (this.exists(m.id)) throw modelExists(m.id);
    let signature: modelsV1.ModelSignature;
    try {
      signature = await this.cache.use(m.id, this.files.pathOf(digest), (w) =>
        Promise.resolve(signatureOf(w.inputs, w.outputs)),
      );
    } catch (err) {
      await this.cache.unload(m.id);
      this.dropFileUnlessUsed(digest);
      if (err instanceof ModelLoadError)
        throw new RpcError(
          Status.INVALID_ARGUMENT,
          'MODEL_INVALID',
          `not a loadable ONNX model: ${err.message}`,
          {
            cause: err,
            ...(m.artifact ? { metadata: { artifact: m.artifact } } : {}),
          },
        );
      throw err;
    }
    const record: ModelRecord = { ...m, digest, signature, createTime: new Date() };
    if (!this.store.insert(record)) {
      await this.cache.unload(m.id);
      throw modelExists(m.id);
    }
    return this.toProto(record);
  }

  /** Registers a local model file (copied into the store); for tests and local tools. */
  async registerFile(path: string, m: NewModel): Promise<modelsV1.Model> {
    const { digest } = await this.files.add(path);
    return this.adopt(m, digest);
  }

  get(id: string): modelsV1.Model {
    const record = this.store.get(id);
    if (!record) throw modelNotFound(id);
    return this.toProto(record);
  }

  /** One page, newest first, filtered; `before` is the previous page's token. */
  list(q: {
    pageSize: number;
    before?: number;
    artifact?: string;
    state?: modelsV1.ModelState;
    labels: (l: Record<string, string>) => boolean;
  }): { models: modelsV1.Model[]; nextBefore?: number } {
    const models: modelsV1.Model[] = [];
    let before = q.before;
    for (;;) {
      const batch = this.store.list({
        ...(q.artifact ? { artifact: q.artifact } : {}),
        ...(before !== undefined ? { before } : {}),
        limit: 200,
      });
      for (const r of batch) {
        before = r.seq;
        const m = this.toProto(r);
        if (!q.labels(r.labels) || (q.state !== undefined && m.state !== q.state)) continue;
        models.push(m);
        if (models.length === q.pageSize) {
          const more = this.store.list({
            ...(q.artifact ? { artifact: q.artifact } : {}),
            before: r.seq,
            limit: 1,
          });
          return { models, ...(more.length > 0 ? { nextBefore: r.seq } : {}) };
        }
      }
      if (batch.length < 200) return { models };
    }
  }

  async unload(id: string): Promise<modelsV1.Model> {
    if (!this.store.get(id)) throw modelNotFound(id);
    await this.cache.unload(id);
    return this.get(id);
  }

  async delete(id: string): Promise<void> {
    const record = this.store.get(id);
    if (!record) throw modelNotFound(id);
    await this.cache.unload(id);
    this.store.delete(id);
    this.lastUsed.delete(id);
    this.dropFileUnlessUsed(record.digest);
  }

  async infer(id: string, req: modelsV1.InferRequest): Promise<modelsV1.InferResponse> {
    const record = this.store.get(id);
    if (!record) {
      if (this.reserved(id))
        throw new RpcError(
          Status.FAILED_PRECONDITION,
          'CAPABILITY_UNSUPPORTED',
          `models/${id} is served by an OpenAI-compatible endpoint; it cannot Infer`,
          { metadata: { resource: `models/${id}`, capability: 'infer' } },
        );
      throw modelNotFound(id);
    }
    const { feeds, fetches } = feedsFor(record.signature, req);
    let result;
    try {
      result = await this.cache.use(id, this.files.pathOf(record.digest), (w) => w.run(feeds, fetches));
    } catch (err) {
      if (err instanceof ModelLoadError)
        throw new RpcError(Status.FAILED_PRECONDITION, 'MODEL_LOAD_FAILED', `models/${id}: ${err.message}`, {
          cause: err,
          metadata: { resource: `models/${id}` },
        });
      if (err instanceof InferenceRunError)
        throw new RpcError(Status.INVALID_ARGUMENT, 'INFERENCE_REJECTED', `models/${id}: ${err.message}`, {
          cause: err,
          metadata: { resource: `models/${id}` },
        });
      throw err;
    }
    this.touch(id);
    return {
      outputs: fetches.map((name) => tensorOf(name, result.outputs[name]!)),
      computeTime: durationFromMs(result.computeMs),
    };
  }

  async close(): Promise<void> {
    await this.cache.close();
    for (const [id, { at }] of this.lastUsed) this.store.touch(id, at);
  }

  private touch(id: string): void {
    const now = new Date();
    const seen = this.lastUsed.get(id);
    const stored = !seen || now.getTime() - seen.stored >= TOUCH_INTERVAL_MS ? now.getTime() : seen.stored;
    if (stored === now.getTime()) this.store.touch(id, now);
    this.lastUsed.set(id, { at: now, stored });
  }

  private dropFileUnlessUsed(digest: string): void {
    if (!this.store.digestInUse(digest)) this.files.remove(digest);
  }

  private toProto(r: ModelRecord): modelsV1.Model {
    const lastUsed = this.lastUsed.get(r.id)?.at ?? r.lastUsedTime;
    return modelsV1.Model.fromPartial({
      name: `models/${r.id}`,
      id: r.id,
      displayName: r.displayName,
      format: ModelFormat.MODEL_FORMAT_ONNX,
      artifact: r.artifact,
      signature: r.signature,
      state: STATES[this.cache.state(r.id)],
      labels: r.labels,
      capabilities: [ModelCapability.MODEL_CAPABILITY_INFER],
      actor: r.actor,
      createTime: timestampFromDate(r.createTime),
      ...(lastUsed ? { lastUsedTime: timestampFromDate(lastUsed) } : {}),
      loadError: this.cache.loadError(r.id),
      trainingRun: r.trainingRun,
      digest: r.digest,
    });
  }
}

function modelExists(id: string): RpcError {
  return new RpcError(Status.ALREADY_EXISTS, 'MODEL_EXISTS', `models/${id} already exists`, {
    metadata: { resource: `models/${id}` },
  });
}
