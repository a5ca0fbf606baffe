import type { z } from 'zod';
import {
  clientEndpointSchema,
  defaultServerConfig,
  serverConfigSchema,
  type ClientEndpointConfig,
  type ServerConfig,
} from './schemas';

/** A daemon that also calls aetherd (aurorad, cfcd): its server config plus how it reaches aetherd. */
export const peerDaemonConfigSchema = serverConfigSchema.extend({ aetherd: clientEndpointSchema });
export type PeerDaemonConfig = z.infer<typeof peerDaemonConfigSchema>;

/** Defaults: reach aetherd on its packaged socket, presenting this daemon's own certificate. */
export function defaultPeerDaemonConfig(name: string, stateDir: string): PeerDaemonConfig {
  const base: ServerConfig = defaultServerConfig(name, stateDir);
  const aetherd: ClientEndpointConfig = {
    socket: '/run/aether/aetherd.sock',
    serverId: `spiffe://${base.tls.trustDomain}/aetherd`,
    mode: 'mtls',
    caFile: base.tls.caFile,
    certFile: base.tls.certFile,
    keyFile: base.tls.keyFile,
  };
  return { ...base, aetherd };
}
