import { cfcdConfigSchema, defaultCfcdConfig } from '@aether/config';
import { UpstreamWatch, type DaemonDefinition } from '@aether/daemon';
import { join } from 'node:path';
import { artifactsV1, modelsV1 } from '@aether/proto';
import { createClient } from '@aether/rpc';
import { generationServiceHandlers } from './generation/generation-service';
import { ModelEndpoints } from './generation/model-endpoints';
import { ModelFiles } from './models/model-files';
import { ModelRegistry } from './models/model-registry';
import { modelServiceHandlers } from './models/model-service';
import { ModelStore } from './models/model-store';
import { SessionCache } from './models/session-cache';

/**
 * cfcd. ONNX models are registered from aetherd artifacts (fetched under cfcd's identity, stored
 * content-addressed in `<stateDir>/models`, recorded in `<stateDir>/models/models.db`) and run in
 * process, each loaded model in a worker thread of its own, at most `cfcd.inference.maxLoadedModels` at
 * once. Generate and Embed go to the OpenAI-compatible endpoint configured per model
 * (`cfcd.generation.endpoints`). Training answers UNIMPLEMENTED (after authentication, policy and audit).
 * It logs whether aetherd is reachable.
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
    const dir = join(config.stateDir, 'models');
    const files = new ModelFiles(dir);
    const store = new ModelStore(dir);
    const registry = new ModelRegistry(
      store,
      files,
      new SessionCache(config.cfcd.inference.maxLoadedModels),
      (id) => models.get(id) !== undefined,
    );
    const artifacts = createClient(artifactsV1.ArtifactServiceClient, config.aetherd);
    server.addService(modelsV1.ModelRuntimeServiceService, {
      ...generationServiceHandlers(models),
      ...modelServiceHandlers(registry, files, artifacts),
    });
    const aetherd = new UpstreamWatch('aetherd', config.aetherd, log);
    aetherd.start();
    return Promise.resolve({
      close: async () => {
        aetherd.close();
        artifacts.close();
        await registry.close();
        store.close();
      },
    });
  },
};
