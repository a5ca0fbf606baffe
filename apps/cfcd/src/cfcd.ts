import { cfcdConfigSchema, defaultCfcdConfig } from '@aether/config';
import { UpstreamWatch, type DaemonDefinition } from '@aether/daemon';
import { modelsV1 } from '@aether/proto';
import { generationServiceHandlers } from './generation/generation-service';
import { ModelEndpoints } from './generation/model-endpoints';

/**
 * cfcd. Generate and Embed go to the OpenAI-compatible endpoint configured per model
 * (`cfcd.generation.endpoints`); the rest of its API answers UNIMPLEMENTED (after authentication,
 * policy and audit) until models become artifacts. It holds a client to aetherd from the start and logs
 * whether aetherd is reachable.
 */
export const cfcd: DaemonDefinition<typeof cfcdConfigSchema> = {
  name: 'cfcd',
  description:
    'Aether model runtime: models stored as artifacts, in-process inference, generation, embeddings and sandboxed training.',
  schema: cfcdConfigSchema,
  defaults: defaultCfcdConfig,
  envPrefix: 'CFCD',
  extraFlags: [
    { flag: '--aetherd-socket <path>', path: 'aetherd.socket', description: "aetherd's Unix socket" },
    {
      flag: '--aetherd-id <spiffe-id>',
      path: 'aetherd.serverId',
      description: "aetherd's expected SPIFFE ID",
    },
  ],
  register: (server, { config, log }) => {
    const models = ModelEndpoints.load(config.cfcd.generation.endpoints);
    log.info({ endpoints: models.describe() }, 'generation endpoints configured');
    server.addService(modelsV1.ModelRuntimeServiceService, generationServiceHandlers(models));
    const aetherd = new UpstreamWatch('aetherd', config.aetherd, log);
    aetherd.start();
    return Promise.resolve({ close: () => Promise.resolve(aetherd.close()) });
  },
};
