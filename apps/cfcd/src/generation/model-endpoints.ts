import { readFileSync, statSync } from 'node:fs';
import type { GenerationEndpointConfig } from '@aether/config';
import { OpenAiEndpoint } from './openai-endpoint';

/** What a configured model may be asked to do. */
export type Capability = 'generate' | 'embed';

export interface ModelEndpoint {
  /** The model id, the `{model}` of `models/{model}`. */
  id: string;
  config: GenerationEndpointConfig;
  endpoint: OpenAiEndpoint;
}

export function capabilitiesOf(kind: GenerationEndpointConfig['kind']): Capability[] {
  if (kind === 'chat') return ['generate'];
  if (kind === 'embedding') return ['embed'];
  return ['generate', 'embed'];
}

/** Reads an API key file: a regular file, not accessible by others, holding one non-empty line. */
function readApiKey(id: string, file: string): string {
  const where = `cfcd.generation.endpoints.${id}.apiKeyFile`;
  let mode: number;
  try {
    const st = statSync(file);
    if (!st.isFile()) throw new Error('not a regular file');
    mode = st.mode;
  } catch (err) {
    throw new Error(`${where}: cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
  if ((mode & 0o007) !== 0)
    throw new Error(
      `${where}: ${file} is accessible by others (mode ${(mode & 0o777).toString(8).padStart(4, '0')}); ` +
        'an API key file must be mode 0600 or 0640',
    );
  const key = readFileSync(file, 'utf8').trim();
  if (!key || /\s/.test(key)) throw new Error(`${where}: ${file} must hold one API key on one line`);
  return key;
}

/**
 * The models cfcd serves through OpenAI-compatible endpoints, from `cfcd.generation.endpoints`. API keys
 * are read once, here, so a bad key file stops the daemon at start instead of failing requests later.
 */
export class ModelEndpoints {
  private constructor(private readonly byId: ReadonlyMap<string, ModelEndpoint>) {}

  static load(endpoints: Record<string, GenerationEndpointConfig>): ModelEndpoints {
    const byId = new Map<string, ModelEndpoint>();
    for (const [id, config] of Object.entries(endpoints)) {
      const apiKey = config.apiKeyFile ? readApiKey(id, config.apiKeyFile) : undefined;
      byId.set(id, {
        id,
        config,
        endpoint: new OpenAiEndpoint({
          baseUrl: config.baseUrl,
          model: config.model,
          timeoutMs: config.timeoutMs,
          ...(apiKey ? { apiKey } : {}),
        }),
      });
    }
    return new ModelEndpoints(byId);
  }

  get(id: string): ModelEndpoint | undefined {
    return this.byId.get(id);
  }

  /** For the start-up log: what is served where (never a key). */
  describe(): { model: string; baseUrl: string; remoteModel: string; kind: string }[] {
    return [...this.byId.values()].map((m) => ({
      model: `models/${m.id}`,
      baseUrl: m.config.baseUrl,
      remoteModel: m.config.model,
      kind: m.config.kind,
    }));
  }
}
