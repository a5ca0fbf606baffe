import { defaultPeerDaemonConfig, peerDaemonConfigSchema } from '@aether/config';
import { UpstreamWatch, type DaemonDefinition } from '@aether/daemon';
import { intentsV1 } from '@aether/proto';

/**
 * aurorad. Its API answers UNIMPLEMENTED (after authentication, policy and audit) until its issue lands;
 * it holds a client to aetherd from the start and logs whether aetherd is reachable.
 */
export const aurorad: DaemonDefinition<typeof peerDaemonConfigSchema> = {
  name: 'aurorad',
  description:
    'Aether orchestrator: turns intents into policy-checked plans and routes their steps to aetherd and cfcd.',
  schema: peerDaemonConfigSchema,
  defaults: () => defaultPeerDaemonConfig('aurorad', '/var/lib/aether/aurora'),
  envPrefix: 'AURORAD',
  extraFlags: [
    { flag: '--aetherd-socket <path>', path: 'aetherd.socket', description: "aetherd's Unix socket" },
    {
      flag: '--aetherd-id <spiffe-id>',
      path: 'aetherd.serverId',
      description: "aetherd's expected SPIFFE ID",
    },
  ],
  register: (server, { config, log }) => {
    server.addService(intentsV1.IntentServiceService, {});
    const aetherd = new UpstreamWatch('aetherd', config.aetherd, log);
    aetherd.start();
    return Promise.resolve({ close: () => Promise.resolve(aetherd.close()) });
  },
};
