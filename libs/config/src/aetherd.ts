import { z } from 'zod';
import { defaultJobsConfig, jobsConfigSchema } from './jobs';
import {
  artifactsConfigSchema,
  defaultArtifactsConfig,
  defaultEventsConfig,
  defaultMemoryConfig,
  eventsConfigSchema,
  memoryConfigSchema,
} from './storage';
import { clientEndpointSchema, defaultServerConfig, serverConfigSchema } from './schemas';

/** aetherd also issues capability tokens: it holds the signing key and the registry of minted tokens. */
export const aetherdConfigSchema = serverConfigSchema.extend({
  tokens: serverConfigSchema.shape.tokens.extend({
    /** Ed25519 PKCS#8 PEM signing key; created 0600 on first start. */
    signingKeyFile: z.string().min(1),
    /** Default lifetime of a minted token, seconds. */
    defaultTtlSeconds: z.number().int().min(1).max(3600),
  }),
  /** The job runner (ARCHITECTURE §5). */
  jobs: jobsConfigSchema,
  /** The artifact store (ARCHITECTURE §6). */
  artifacts: artifactsConfigSchema,
  /** The memory store (ARCHITECTURE §6). */
  memory: memoryConfigSchema,
  /** The event stream (ARCHITECTURE §8). */
  events: eventsConfigSchema,
  /** How aetherd reaches cfcd, for memory's semantic ranking (`memory.embeddingModel`); unused otherwise. */
  cfcd: clientEndpointSchema,
});
export type AetherdConfig = z.infer<typeof aetherdConfigSchema>;

export function defaultAetherdConfig(): AetherdConfig {
  const base = defaultServerConfig('aetherd');
  return {
    ...base,
    tokens: { ...base.tokens, signingKeyFile: '/var/lib/aether/tokens/signing.key', defaultTtlSeconds: 600 },
    jobs: defaultJobsConfig(),
    artifacts: defaultArtifactsConfig(),
    memory: defaultMemoryConfig(),
    events: defaultEventsConfig(),
    cfcd: {
      socket: '/run/aether/cfcd.sock',
      serverId: `spiffe://${base.tls.trustDomain}/cfcd`,
      mode: 'mtls',
      caFile: base.tls.caFile,
      certFile: base.tls.certFile,
      keyFile: base.tls.keyFile,
    },
  };
}
