import { z } from 'zod';
import { defaultPeerDaemonConfig, peerDaemonConfigSchema } from './peer';

/** A model id, the `{model}` of `models/{model}` (aether.models.v1 Model.id). */
export const MODEL_ID_PATTERN = /^[a-z][a-z0-9-]{0,62}$/;

const endpointUrl = z.string().superRefine((value, ctx) => {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    ctx.addIssue({ code: 'custom', message: `"${value}" is not a URL such as http://127.0.0.1:8080/v1` });
    return;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    ctx.addIssue({
      code: 'custom',
      // The scheme only: the value may carry credentials, which must not end up in a log.
      message: `must be an http:// or https:// URL such as http://127.0.0.1:8080/v1 (its scheme is "${url.protocol.slice(0, -1)}")`,
    });
  if (url.username || url.password)
    ctx.addIssue({ code: 'custom', message: 'must not carry credentials; put the key in apiKeyFile' });
  if (url.search || url.hash) ctx.addIssue({ code: 'custom', message: 'must not have a query or fragment' });
});

/**
 * One model served by an OpenAI-compatible HTTP endpoint (llama.cpp's server, vLLM, Ollama): Generate
 * posts to `{baseUrl}/chat/completions` (chat input) or `{baseUrl}/completions` (a plain prompt), Embed
 * to `{baseUrl}/embeddings`.
 */
export const generationEndpointSchema = z.strictObject({
  /** Base URL including the version path, as in the OpenAI clients: e.g. `http://127.0.0.1:8080/v1`. */
  baseUrl: endpointUrl,
  /** The endpoint's own name for the model, sent as `model` in each request. */
  model: z.string().min(1),
  /**
   * A file holding the API key sent as `Authorization: Bearer <key>`; '' for none. Read once at start;
   * it must not be accessible by others (mode `0600` or `0640`).
   */
  apiKeyFile: z.union([z.literal(''), z.string().startsWith('/', 'must be an absolute path')]).default(''),
  /** Per request: for Generate, the time to the first token and between tokens; for Embed, the whole answer. */
  timeoutMs: z.number().int().min(100).max(3_600_000).default(60_000),
  /** `max_tokens` sent when a Generate request leaves it 0. */
  maxTokens: z.number().int().min(1).max(1_048_576).default(512),
  /** What the model is used for: text generation (`chat`), embeddings (`embedding`) or both. */
  kind: z.enum(['chat', 'embedding', 'both']).default('both'),
});
export type GenerationEndpointConfig = z.infer<typeof generationEndpointSchema>;

/** In-process inference of registered ONNX models (Infer). */
export const inferenceSettingsSchema = z.strictObject({
  /**
   * How many models stay loaded (an onnxruntime session each) at once; loading one more unloads the
   * least recently used. In-flight requests on an unloaded model finish first.
   */
  maxLoadedModels: z.number().int().min(1).max(1024),
});
export type InferenceSettings = z.infer<typeof inferenceSettingsSchema>;

/** A training template's name, the `{training_template}` of `trainingTemplates/{training_template}`. */
export const TEMPLATE_NAME_PATTERN = /^[a-z][a-z0-9-]{0,62}$/;
const FILE_KEY = /^[a-z][a-z0-9_-]{0,62}$/;
const PLACEHOLDER = /\{(file|datasets|outputs)(?::([^}]*))?\}/g;

const relativeOutputPath = z
  .string()
  .min(1)
  .refine((p) => !p.startsWith('/') && !p.split('/').includes('..'), {
    message: 'must be a path relative to /work/outputs without ".."',
  });

/** One file of a template's trainer output registered as an artifact when the run succeeds. */
export const trainingOutputSchema = z.strictObject({
  /** Path relative to `/work/outputs`, or a glob there (`checkpoints/*.json`). */
  path: relativeOutputPath,
  /** Artifact type: a trained model or a checkpoint (cfcd may register only these). */
  type: z.enum(['MODEL', 'CHECKPOINT']).default('CHECKPOINT'),
  /** A missing file is not an error. */
  optional: z.boolean().default(false),
});

/** Default resources of a template's job; StartTraining may ask for others within policy. */
export const trainingResourcesSchema = z.strictObject({
  cpuMillicores: z.number().int().min(0).default(0),
  memoryBytes: z.number().int().min(0).default(0),
  pidsMax: z.number().int().min(0).default(0),
  /** 0: aetherd's default (none unless configured). */
  timeoutSeconds: z.number().int().min(0).default(0),
});

/**
 * A named, configured trainer command line. Placeholders in `argv`: `{file:NAME}` (the path in the
 * sandbox of the template file NAME), `{datasets}` (as a whole element: one element per dataset,
 * `/work/inputs/<artifact id>`), `{outputs}` (`/work/outputs`). Other braces are left as they are.
 */
export const trainingTemplateSchema = z
  .strictObject({
    description: z.string().default(''),
    argv: z.array(z.string().min(1)).min(1),
    /**
     * Files the trainer needs (its program), uploaded by cfcd as artifacts and bound read-only into the
     * job like the datasets, so a run's outputs cite the code that made them. An absolute host path, or
     * `builtin:<file>` for a file cfcd ships (`builtin:reference-trainer.js`).
     */
    files: z
      .record(
        z.string().regex(FILE_KEY),
        z.string().refine((f) => f.startsWith('/') || /^builtin:[A-Za-z0-9._-]+$/.test(f), {
          message: 'must be an absolute path or builtin:<file>',
        }),
      )
      .default({}),
    /** Extra environment of the trainer (AETHER_HPARAMS is always set). */
    env: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/), z.string()).default({}),
    outputs: z.array(trainingOutputSchema).max(64).default([]),
    /** The output registered as the model when StartTraining asks for it; '' for none. */
    model: z.union([z.literal(''), relativeOutputPath]).default(''),
    /** JSON Schema (draft 2020-12) of the hyperparameters; absent: any JSON object is accepted. */
    hyperparameters: z.record(z.string(), z.unknown()).optional(),
    resources: trainingResourcesSchema.default({
      cpuMillicores: 0,
      memoryBytes: 0,
      pidsMax: 0,
      timeoutSeconds: 0,
    }),
  })
  .superRefine((t, ctx) => {
    t.argv.forEach((arg, i) => {
      for (const m of arg.matchAll(PLACEHOLDER)) {
        const [whole, kind, key] = m;
        if (kind === 'file' && key !== undefined && key in t.files) continue;
        if (kind === 'datasets' && key === undefined && arg === whole) continue;
        if (kind === 'outputs' && key === undefined) continue;
        ctx.addIssue({
          code: 'custom',
          path: ['argv', i],
          message:
            kind === 'file'
              ? `${whole}: no file "${key ?? ''}" in files`
              : kind === 'datasets'
                ? '{datasets} must be a whole argument'
                : `${whole}: {outputs} takes no argument`,
        });
      }
    });
    if (t.model !== '' && !t.outputs.some((o) => o.path === t.model && o.type === 'MODEL'))
      ctx.addIssue({
        code: 'custom',
        path: ['model'],
        message: `"${t.model}" must also be listed in outputs with type MODEL`,
      });
  });
export type TrainingTemplateConfig = z.infer<typeof trainingTemplateSchema>;

/** The template cfcd ships: the reference MLP trainer on the host's Node. */
export function referenceTrainingTemplate(): TrainingTemplateConfig {
  return {
    description:
      'The reference trainer: an MLP 1 -> H -> 1 (tanh) trained with Adam on (x, y) pairs, exported to ONNX (input x, output y, float32 [N,1]).',
    argv: ['node', '{file:trainer}', '--out', '{outputs}', '{datasets}'],
    files: { trainer: 'builtin:reference-trainer.js' },
    env: {},
    outputs: [
      { path: 'model.onnx', type: 'MODEL', optional: false },
      { path: 'checkpoint.json', type: 'CHECKPOINT', optional: false },
      { path: 'metrics.json', type: 'CHECKPOINT', optional: true },
    ],
    model: 'model.onnx',
    hyperparameters: {
      type: 'object',
      additionalProperties: false,
      properties: {
        epochs: { type: 'integer', minimum: 1, maximum: 100000 },
        hidden: { type: 'integer', minimum: 1, maximum: 4096 },
        lr: { type: 'number', exclusiveMinimum: 0, maximum: 10 },
        learning_rate: { type: 'number', exclusiveMinimum: 0, maximum: 10 },
        seed: { type: 'integer', minimum: 0 },
        batch_size: { type: 'integer', minimum: 1, maximum: 1000000 },
        val_fraction: { type: 'number', minimum: 0, exclusiveMaximum: 1 },
        log_every: { type: 'integer', minimum: 0 },
      },
    },
    resources: { cpuMillicores: 1000, memoryBytes: 512 * 1024 * 1024, pidsMax: 64, timeoutSeconds: 3600 },
  };
}

/**
 * The evaluation template cfcd ships (the evaluate-model playbook's default): the reference trainer's
 * `--evaluate` mode measures a checkpoint.json on a dataset, both given as artifacts in the
 * hyperparameters; MSE and MAE become the run's metrics.
 */
export function referenceEvaluationTemplate(): TrainingTemplateConfig {
  const artifact = { type: 'string', pattern: '^artifacts/[0-9a-z]{26}$' };
  return {
    description:
      "Evaluates a reference-mlp checkpoint (checkpoint.json) on a dataset: hyperparameters {model, dataset} name the two artifacts, which must also be the run's datasets.",
    argv: ['node', '{file:trainer}', '--evaluate', '--out', '{outputs}'],
    files: { trainer: 'builtin:reference-trainer.js' },
    env: {},
    outputs: [],
    model: '',
    hyperparameters: {
      type: 'object',
      additionalProperties: false,
      required: ['model', 'dataset'],
      properties: { model: artifact, dataset: artifact },
    },
    resources: { cpuMillicores: 1000, memoryBytes: 512 * 1024 * 1024, pidsMax: 64, timeoutSeconds: 600 },
  };
}

export const cfcdSettingsSchema = z.strictObject({
  inference: inferenceSettingsSchema,
  /** Training runs: the templates StartTraining may name. */
  training: z
    .strictObject({
      templates: z.record(z.string().regex(TEMPLATE_NAME_PATTERN), trainingTemplateSchema, {
        error: (issue) =>
          issue.code === 'invalid_key'
            ? `${JSON.stringify(issue.input)} is not a template name: 1-63 characters of [a-z0-9-], starting with a letter`
            : undefined,
      }),
    })
    .default({ templates: {} }),
  generation: z.strictObject({
    /** Model id (`models/{id}` in requests) → the endpoint that serves it. */
    endpoints: z.record(z.string().regex(MODEL_ID_PATTERN), generationEndpointSchema, {
      error: (issue) =>
        issue.code === 'invalid_key'
          ? `${JSON.stringify(issue.input)} is not a model id: 1-63 characters of [a-z0-9-], starting with a letter`
          : undefined,
    }),
  }),
});
export type CfcdSettings = z.infer<typeof cfcdSettingsSchema>;

/** cfcd: its server, how it reaches aetherd, and the models it serves. */
export const cfcdConfigSchema = peerDaemonConfigSchema.extend({ cfcd: cfcdSettingsSchema });
export type CfcdConfig = z.infer<typeof cfcdConfigSchema>;

export function defaultCfcdConfig(): CfcdConfig {
  return {
    ...defaultPeerDaemonConfig('cfcd', '/var/lib/aether/cfc'),
    cfcd: {
      inference: { maxLoadedModels: 4 },
      generation: { endpoints: {} },
      training: {
        templates: { 'reference-mlp': referenceTrainingTemplate(), evaluate: referenceEvaluationTemplate() },
      },
    },
  };
}
