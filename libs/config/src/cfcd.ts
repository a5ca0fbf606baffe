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

export const cfcdSettingsSchema = z.strictObject({
  inference: inferenceSettingsSchema,
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
    cfcd: { inference: { maxLoadedModels: 4 }, generation: { endpoints: {} } },
  };
}
