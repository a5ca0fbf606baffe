import { status as Status } from '@grpc/grpc-js';
import { MODEL_ID_PATTERN } from '@aether/config';
import { modelsV1 } from '@aether/proto';
import { invalidFields, RpcError, serverStream, unary, Violations, type ServiceHandlers } from '@aether/rpc';
import { EndpointError } from './endpoint-error';
import { capabilitiesOf, type Capability, type ModelEndpoint, type ModelEndpoints } from './model-endpoints';
import type { FinishReason, GenerateParams, TokenCounts } from './openai-endpoint';

const { ChatRole } = modelsV1;

const MAX_STOP_SEQUENCES = 4;
const MAX_EMBED_TEXTS = 256;
const MAX_EMBED_TEXT_BYTES = 64 * 1024;

const ROLES: Partial<Record<modelsV1.ChatRole, 'system' | 'user' | 'assistant'>> = {
  [ChatRole.CHAT_ROLE_SYSTEM]: 'system',
  [ChatRole.CHAT_ROLE_USER]: 'user',
  [ChatRole.CHAT_ROLE_ASSISTANT]: 'assistant',
};

const FINISH: Record<FinishReason, modelsV1.FinishReason> = {
  stop: modelsV1.FinishReason.FINISH_REASON_STOP,
  length: modelsV1.FinishReason.FINISH_REASON_LENGTH,
  content_filter: modelsV1.FinishReason.FINISH_REASON_CONTENT_FILTER,
};

function check(v: Violations): void {
  if (v.all.length > 0) throw invalidFields(v.all);
}

/** `models/planner` → `planner`, or INVALID_ARGUMENT / INVALID_NAME. */
function modelIdOf(name: string): string {
  const id = name.startsWith('models/') ? name.slice('models/'.length) : '';
  if (!MODEL_ID_PATTERN.test(id))
    throw invalidFields(
      [
        {
          field: 'name',
          description: `"${name}" is not a model name such as models/planner (1-63 characters of [a-z0-9-], starting with a letter)`,
        },
      ],
      'INVALID_NAME',
    );
  return id;
}

function validateGenerate(req: modelsV1.GenerateRequest): void {
  modelIdOf(req.name);
  const v = new Violations();
  const input = req.input;
  if (!input) v.add('prompt', 'set prompt or chat');
  else if (input.$case === 'prompt') v.check(input.value.trim() !== '', 'prompt', 'must not be empty');
  else {
    v.check(input.value.messages.length > 0, 'chat.messages', 'must not be empty');
    input.value.messages.forEach((m, i) =>
      v.check(
        ROLES[m.role] !== undefined,
        `chat.messages[${i}].role`,
        'must be CHAT_ROLE_SYSTEM, CHAT_ROLE_USER or CHAT_ROLE_ASSISTANT',
      ),
    );
  }
  v.check(req.maxTokens >= 0, 'max_tokens', 'must not be negative (0: the model’s default)');
  if (req.temperature !== undefined)
    v.check(req.temperature >= 0 && req.temperature <= 2, 'temperature', 'must be between 0 and 2');
  if (req.topP !== undefined) v.check(req.topP > 0 && req.topP <= 1, 'top_p', 'must be in (0, 1]');
  v.check(
    req.stop.length <= MAX_STOP_SEQUENCES,
    'stop',
    `must have at most ${MAX_STOP_SEQUENCES} stop sequences, not ${req.stop.length}`,
  );
  req.stop.forEach((s, i) => v.check(s !== '', `stop[${i}]`, 'must not be empty'));
  if (req.seed !== undefined)
    v.check(
      req.seed >= BigInt(Number.MIN_SAFE_INTEGER) && req.seed <= BigInt(Number.MAX_SAFE_INTEGER),
      'seed',
      'must be within ±2^53',
    );
  check(v);
}

function validateEmbed(req: modelsV1.EmbedRequest): void {
  modelIdOf(req.name);
  const v = new Violations();
  v.check(
    req.texts.length >= 1 && req.texts.length <= MAX_EMBED_TEXTS,
    'texts',
    `must have 1 to ${MAX_EMBED_TEXTS} texts, not ${req.texts.length}`,
  );
  req.texts.forEach((t, i) => {
    v.check(t !== '', `texts[${i}]`, 'must not be empty');
    v.check(
      Buffer.byteLength(t) <= MAX_EMBED_TEXT_BYTES,
      `texts[${i}]`,
      `must be at most ${MAX_EMBED_TEXT_BYTES} bytes`,
    );
  });
  check(v);
}

function paramsOf(req: modelsV1.GenerateRequest, model: ModelEndpoint): GenerateParams {
  const input = req.input!;
  return {
    input:
      input.$case === 'prompt'
        ? { kind: 'prompt', prompt: input.value }
        : {
            kind: 'chat',
            messages: input.value.messages.map((m) => ({ role: ROLES[m.role]!, content: m.content })),
          },
    maxTokens: req.maxTokens > 0 ? req.maxTokens : model.config.maxTokens,
    ...(req.temperature !== undefined ? { temperature: req.temperature } : {}),
    ...(req.topP !== undefined ? { topP: req.topP } : {}),
    stop: req.stop,
    ...(req.seed !== undefined ? { seed: Number(req.seed) } : {}),
    json: req.jsonOutput,
  };
}

const usageOf = (u: TokenCounts): modelsV1.TokenUsage => ({
  promptTokens: BigInt(u.promptTokens),
  completionTokens: BigInt(u.completionTokens),
});

/**
 * The one mapping of endpoint failures to status codes and reasons (aether.models.v1, "Endpoint
 * errors"). The message names the model and the endpoint; metadata carries both and the HTTP status.
 */
function endpointFailure(err: unknown, name: string): unknown {
  if (!(err instanceof EndpointError)) return err;
  const metadata: Record<string, string> = {
    model: name,
    endpoint: err.url,
    ...(err.httpStatus !== undefined ? { http_status: String(err.httpStatus) } : {}),
  };
  const message = `${name}: ${err.message}`;
  const as = (code: Status, reason: string): RpcError =>
    new RpcError(code, reason, message, { metadata, cause: err });
  switch (err.kind) {
    case 'unreachable':
    case 'server-error':
    case 'malformed':
      return as(Status.UNAVAILABLE, 'ENDPOINT_UNAVAILABLE');
    case 'timeout':
      return as(Status.DEADLINE_EXCEEDED, 'ENDPOINT_TIMEOUT');
    case 'rejected':
      return as(Status.INVALID_ARGUMENT, 'ENDPOINT_REJECTED');
    case 'cancelled':
      return as(Status.CANCELLED, 'CANCELLED');
  }
}

/**
 * Generate and Embed through the OpenAI-compatible endpoint configured for each model. The other
 * methods of ModelRuntimeService stay UNIMPLEMENTED until models become artifacts.
 */
export function generationServiceHandlers(
  models: ModelEndpoints,
): ServiceHandlers<typeof modelsV1.ModelRuntimeServiceService> {
  const find = (name: string, capability: Capability): ModelEndpoint => {
    const model = models.get(modelIdOf(name));
    if (!model)
      throw new RpcError(Status.NOT_FOUND, 'MODEL_NOT_FOUND', `${name} not found`, {
        metadata: { resource: name },
      });
    if (!capabilitiesOf(model.config.kind).includes(capability))
      throw new RpcError(
        Status.FAILED_PRECONDITION,
        'CAPABILITY_UNSUPPORTED',
        `${name} is configured for ${model.config.kind === 'embedding' ? 'embeddings' : 'generation'} only (kind: ${model.config.kind}); it cannot ${capability === 'generate' ? 'Generate' : 'Embed'}`,
        { metadata: { resource: name, capability } },
      );
    return model;
  };

  return {
    generate: serverStream<modelsV1.GenerateRequest, modelsV1.GenerateResponse>({
      validate: validateGenerate,
      handle: async (req, ctx, send) => {
        const model = find(req.name, 'generate');
        try {
          const end = await model.endpoint.generate(paramsOf(req, model), ctx.signal, (text) =>
            send(modelsV1.GenerateResponse.fromPartial({ text })),
          );
          await send(
            modelsV1.GenerateResponse.fromPartial({
              finishReason: FINISH[end.finishReason],
              ...(end.usage ? { usage: usageOf(end.usage) } : {}),
            }),
          );
        } catch (err) {
          throw endpointFailure(err, req.name);
        }
      },
    }),
    embed: unary<modelsV1.EmbedRequest, modelsV1.EmbedResponse>({
      validate: validateEmbed,
      handle: async (req, ctx) => {
        const model = find(req.name, 'embed');
        try {
          const { vectors, usage } = await model.endpoint.embed(req.texts, ctx.signal);
          return modelsV1.EmbedResponse.fromPartial({
            embeddings: vectors.map((values) => ({ values })),
            dimensions: vectors[0]!.length,
            ...(usage ? { usage: usageOf(usage) } : {}),
          });
        } catch (err) {
          throw endpointFailure(err, req.name);
        }
      },
    }),
  };
}
