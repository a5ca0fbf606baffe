import { cfcdConfigSchema, defaultCfcdConfig } from '@aether/config';
import { UpstreamWatch, type DaemonDefinition } from '@aether/daemon';
import { join } from 'node:path';
import { artifactsV1, jobsV1, memoryV1, modelsV1 } from '@aether/proto';
import { createClient } from '@aether/rpc';
import { generationServiceHandlers } from './generation/generation-service';
import { ModelEndpoints } from './generation/model-endpoints';
import { ModelFiles } from './models/model-files';
import { ModelRegistry } from './models/model-registry';
import { modelServiceHandlers, registerFromArtifact } from './models/model-service';
import { ModelStore } from './models/model-store';
import { SessionCache } from './models/session-cache';
import { TrainingTemplates } from './training/templates';
import { TrainingManager } from './training/training-manager';
import { trainingServiceHandlers } from './training/training-service';
import { TrainingStore } from './training/training-store';

/**
 * cfcd. ONNX models are registered from aetherd artifacts (fetched under cfcd's identity, stored
 * content-addressed in `<stateDir>/models`, recorded in `<stateDir>/models/models.db`) and run in
 * process, each loaded model in a worker thread of its own, at most `cfcd.inference.maxLoadedModels` at
 * once. Generate and Embed go to the OpenAI-compatible endpoint configured per model
 * (`cfcd.generation.endpoints`). Training runs are aetherd jobs of the configured templates
 * (`cfcd.training.templates`), recorded in `<stateDir>/training/training.db` and followed until they end,
 * also across a restart. It logs whether aetherd is reachable.
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
    const jobs = createClient(jobsV1.JobServiceClient, config.aetherd);
    const memory = createClient(memoryV1.MemoryServiceClient, config.aetherd);
    const templates = new TrainingTemplates(config.cfcd.training.templates);
    for (const f of templates.missingFiles())
      log.warn({ file: f }, 'a training template file is missing; runs of that template will fail to start');
    log.info({ templates: templates.names() }, 'training templates configured');
    const trainingStore = new TrainingStore(join(config.stateDir, 'training'));
    const training = new TrainingManager({
      store: trainingStore,
      jobs,
      artifacts,
      memory,
      templates,
      log,
      registerModel: async (m) => (await registerFromArtifact(registry, files, artifacts, m, {})).name,
    });
    server.addService(modelsV1.ModelRuntimeServiceService, {
      ...generationServiceHandlers(models),
      ...modelServiceHandlers(registry, files, artifacts),
      ...trainingServiceHandlers(training, trainingStore, templates),
    });
    training.resume();
    const aetherd = new UpstreamWatch('aetherd', config.aetherd, log);
    aetherd.start();
    return Promise.resolve({
      close: async () => {
        aetherd.close();
        await training.close();
        jobs.close();
        memory.close();
        artifacts.close();
        await registry.close();
        store.close();
        trainingStore.close();
      },
    });
  },
};
