import { status as Status } from '@grpc/grpc-js';
import { jobPolicyResource, modelsV1, msFromDuration } from '@aether/proto';
import {
  checkLabels,
  invalidFields,
  parseLabelSelector,
  RpcError,
  serverStream,
  unary,
  Violations,
  type ServiceHandlers,
} from '@aether/rpc';
import { forward } from '../models/model-service';
import { checkHyperparameters, trainingJobSpec, type TrainingTemplates } from './templates';
import type { TrainingManager } from './training-manager';
import type { TrainingStore } from './training-store';

const { TrainingRunState: S } = modelsV1;
const ARTIFACT_NAME = /^artifacts\/[0-9a-z]{26}$/;
const IDEMPOTENCY_KEY = /^[A-Za-z0-9._:-]{1,128}$/;
const MAX_DATASETS = 64;
const MAX_GPUS = 64;

/** `trainingRuns/x` → `x`, or INVALID_ARGUMENT / INVALID_NAME. */
export function runIdOf(name: string, field = 'name'): string {
  const id = name.startsWith('trainingRuns/') ? name.slice('trainingRuns/'.length) : '';
  if (!/^[0-9a-z]{26}$/.test(id))
    throw invalidFields(
      [{ field, description: `"${name}" is not a training run name such as trainingRuns/<ulid>` }],
      'INVALID_NAME',
    );
  return id;
}

function validateStart(req: modelsV1.StartTrainingRequest): void {
  const v = new Violations();
  const s = req.spec;
  if (!s) v.add('spec', 'is required');
  else {
    v.check(s.template !== '', 'spec.template', 'is required (see ListTrainingTemplates)');
    v.check(s.datasets.length >= 1, 'spec.datasets', 'at least one dataset artifact is required');
    v.check(s.datasets.length <= MAX_DATASETS, 'spec.datasets', `at most ${MAX_DATASETS}`);
    s.datasets.forEach((d, i) =>
      v.check(
        ARTIFACT_NAME.test(d),
        `spec.datasets[${i}]`,
        `"${d}" is not an artifact name such as artifacts/<ulid>`,
      ),
    );
    v.check(new Set(s.datasets).size === s.datasets.length, 'spec.datasets', 'lists a dataset twice');
    const r = s.resources;
    if (r) {
      v.check(r.cpuMillicores >= 0, 'spec.resources.cpu_millicores', 'must not be negative');
      v.check(r.memoryBytes >= 0n, 'spec.resources.memory_bytes', 'must not be negative');
      v.check(r.pidsMax >= 0, 'spec.resources.pids_max', 'must not be negative');
      v.check(r.gpuCount >= 0 && r.gpuCount <= MAX_GPUS, 'spec.resources.gpu_count', `must be 0-${MAX_GPUS}`);
      v.check(
        !r.timeout || msFromDuration(r.timeout) >= 0,
        'spec.resources.timeout',
        "must not be negative (0 or unset: the template's)",
      );
    }
  }
  checkLabels(v, req.labels, 'labels');
  v.check(Buffer.byteLength(req.displayName) <= 256, 'display_name', 'must be at most 256 bytes');
  v.check(
    req.idempotencyKey === '' || IDEMPOTENCY_KEY.test(req.idempotencyKey),
    'idempotency_key',
    'must be 1-128 characters of [A-Za-z0-9._:-]',
  );
  v.throwIfAny();
}

function validateList(req: modelsV1.ListTrainingRunsRequest): void {
  const v = new Violations().page(req);
  req.states.forEach((s, i) =>
    v.check(Number(s) >= 1 && Number(s) <= 6, `states[${i}]`, 'is not a training run state'),
  );
  v.check(
    req.pageToken === '' || /^[1-9][0-9]{0,15}$/.test(req.pageToken),
    'page_token',
    'is not a token from a previous call',
  );
  v.throwIfAny();
  parseLabelSelector(req.labelSelector);
}

/**
 * StartTraining, GetTrainingRun, ListTrainingRuns, WatchTrainingRun, StopTrainingRun and
 * ListTrainingTemplates. Policy sees StartTraining as the job it would submit (its devices, resources
 * and timeout), so a rule can keep GPUs from a caller; aetherd checks the job again as cfcd's.
 */
export function trainingServiceHandlers(
  manager: TrainingManager,
  store: TrainingStore,
  templates: TrainingTemplates,
): ServiceHandlers<typeof modelsV1.ModelRuntimeServiceService> {
  const templateOf = (name: string) => {
    const t = templates.get(name);
    if (!t)
      throw new RpcError(
        Status.NOT_FOUND,
        'TEMPLATE_NOT_FOUND',
        `training template "${name}" is not configured (configured: ${templates.names().join(', ') || 'none'})`,
        { metadata: { resource: `trainingTemplates/${name}` } },
      );
    return t;
  };
  const byName = (req: { name: string }): void => void runIdOf(req.name);
  return {
    startTraining: unary<modelsV1.StartTrainingRequest, modelsV1.StartTrainingResponse>({
      mutates: true,
      validate: validateStart,
      // The job's shape as policy sees it; the trainer files are not uploaded yet, so their inputs are
      // named by placeholders (inputs do not enter the policy resource).
      resource: (req) => {
        const t = templates.get(req.spec!.template);
        if (!t) return { type: 'job', id: 'new', attributes: {} };
        const files = Object.fromEntries(Object.keys(t.files).map((k) => [k, 'artifacts/pending']));
        const spec = trainingJobSpec(t, req.spec!, {}, files, { id: '', labels: {}, intentId: '' });
        return { ...jobPolicyResource(spec), id: 'new' };
      },
      handle: async (req, ctx) => {
        const spec = req.spec!;
        const t = templateOf(spec.template);
        const hp = spec.hyperparameters ?? {};
        checkHyperparameters(t, hp);
        const run = await manager.start({
          template: t,
          spec,
          hyperparameters: hp,
          labels: req.labels,
          displayName: req.displayName,
          idempotencyKey: req.idempotencyKey,
          actor: ctx.principal.id,
          intentId: ctx.intentId ?? '',
          opts: forward(ctx),
        });
        return { run: manager.brief(run) };
      },
    }),
    getTrainingRun: unary<modelsV1.GetTrainingRunRequest, modelsV1.GetTrainingRunResponse>({
      validate: byName,
      handle: (req) => Promise.resolve({ run: manager.get(runIdOf(req.name)) }),
    }),
    listTrainingRuns: unary<modelsV1.ListTrainingRunsRequest, modelsV1.ListTrainingRunsResponse>({
      validate: validateList,
      handle: (req) => {
        const selector = parseLabelSelector(req.labelSelector);
        const size = req.pageSize === 0 ? 50 : req.pageSize;
        const runs: modelsV1.TrainingRun[] = [];
        let before = req.pageToken ? Number(req.pageToken) : undefined;
        let more = true;
        // Labels are filtered here; scan in batches until the page is full.
        while (runs.length < size && more) {
          const batch = store.list({
            limit: 200,
            states: req.states,
            ...(before !== undefined ? { before } : {}),
            ...(req.template ? { template: req.template } : {}),
            ...(req.intentId ? { intentId: req.intentId } : {}),
          });
          more = batch.length === 200;
          for (const rec of batch) {
            before = rec.seq;
            if (!selector(rec.run.labels)) continue;
            runs.push(manager.brief(rec.run));
            if (runs.length === size) break;
          }
        }
        const last = runs.length === size && before !== undefined;
        return Promise.resolve({ runs, nextPageToken: last ? String(before) : '' });
      },
    }),
    watchTrainingRun: serverStream<modelsV1.WatchTrainingRunRequest, modelsV1.WatchTrainingRunResponse>({
      validate: byName,
      handle: async (req, ctx, send) => {
        const id = runIdOf(req.name);
        manager.get(id); // NOT_FOUND before the stream starts
        await manager.watch(
          id,
          req.replayAfterStep,
          (u) =>
            send(
              modelsV1.WatchTrainingRunResponse.fromPartial({
                update: 'run' in u ? { $case: 'run', value: u.run } : { $case: 'metric', value: u.metric },
              }),
            ),
          ctx.signal,
        );
      },
    }),
    stopTrainingRun: unary<modelsV1.StopTrainingRunRequest, modelsV1.StopTrainingRunResponse>({
      mutates: true,
      validate: (req) => {
        runIdOf(req.name);
        if (req.gracePeriod && msFromDuration(req.gracePeriod) < 0)
          throw invalidFields([{ field: 'grace_period', description: 'must not be negative' }]);
      },
      handle: async (req, ctx) => ({
        run: await manager.stop(runIdOf(req.name), req.gracePeriod, forward(ctx)),
      }),
    }),
    listTrainingTemplates: unary<
      modelsV1.ListTrainingTemplatesRequest,
      modelsV1.ListTrainingTemplatesResponse
    >({
      validate: (req) => new Violations().page(req).throwIfAny(),
      handle: (req) => {
        const names = templates.names();
        const from = req.pageToken ? names.findIndex((n) => n > req.pageToken) : 0;
        const size = req.pageSize === 0 ? 50 : req.pageSize;
        const page = from < 0 ? [] : names.slice(from, from + size);
        const next = from >= 0 && from + size < names.length ? page.at(-1)! : '';
        return Promise.resolve({
          templates: page.map((n) => templates.toProto(templates.get(n)!)),
          nextPageToken: next,
        });
      },
    }),
  };
}

export { S as TrainingRunState };
