import { defaultPeerDaemonConfig, peerDaemonConfigSchema } from '@aether/config';
import { UpstreamWatch, type DaemonDefinition } from '@aether/daemon';
import { modelsV1 } from '@aether/proto';

/**
 * cfcd. Its API answers UNIMPLEMENTED (after authentication, policy and audit) until its issue lands;
 * it holds a client to aetherd from the start and logs whether aetherd is reachable.
 */
export const cfcd: DaemonDefinition<typeof peerDaemonConfigSchema> = {
  name: 'cfcd',
  description:
    'Aether model runtime: models stored as artifacts, in-process inference, generation, embeddings and sandboxed training.',
  schema: peerDaemonConfigSchema,
  defaults: () => defaultPeerDaemonConfig('cfcd', '/var/lib/aether/cfc'),
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
    server.addService(modelsV1.ModelRuntimeServiceService, {});
    const aetherd = new UpstreamWatch('aetherd', config.aetherd, log);
    aetherd.start();
    return Promise.resolve({ close: () => Promise.resolve(aetherd.close()) });
  },
};
