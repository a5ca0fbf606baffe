import { homedir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { z } from 'zod';
import { loadConfig } from './load-config';
import { clientEndpointSchema, DEFAULT_TRUST_DOMAIN, type ClientEndpointConfig } from './schemas';

const DAEMONS = ['aetherd', 'aurorad', 'cfcd'] as const;

const clientConfigSchema = z.strictObject({
  aetherd: clientEndpointSchema,
  aurorad: clientEndpointSchema,
  cfcd: clientEndpointSchema,
});

/** Where a client (the CLI, the SDK, a daemon calling another) finds each daemon. */
export type ClientConfig = z.infer<typeof clientConfigSchema>;

/** `$AETHER_CONFIG`, else `~/.aether/config.yaml`. */
export function defaultClientConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  return env['AETHER_CONFIG'] ?? join(homedir(), '.aether', 'config.yaml');
}

function defaults(): ClientConfig {
  const pki = join(homedir(), '.aether', 'pki');
  const endpoint = (d: string): ClientEndpointConfig => ({
    socket: `/run/aether/${d}.sock`,
    serverId: `spiffe://${DEFAULT_TRUST_DOMAIN}/${d}`,
    mode: 'mtls',
    caFile: join(pki, 'ca.crt'),
    certFile: join(pki, 'client.crt'),
    keyFile: join(pki, 'client.key'),
  });
  return { aetherd: endpoint('aetherd'), aurorad: endpoint('aurorad'), cfcd: endpoint('cfcd') };
}

/**
 * Reads the client configuration. Relative paths in the file are resolved against the file's own
 * directory, so a dev stack's config keeps working wherever the checkout lives. Environment variables
 * `AETHER_CLIENT_AETHERD_SOCKET` etc. override the file.
 */
export function loadClientConfig(
  file: string = defaultClientConfigPath(),
  env: NodeJS.ProcessEnv = process.env,
): ClientConfig {
  const config = loadConfig(clientConfigSchema, {
    defaults: defaults(),
    file,
    envPrefix: 'AETHER_CLIENT',
    env,
  });
  const base = dirname(resolve(file));
  const abs = (p: string): string => (isAbsolute(p) ? p : resolve(base, p));
  for (const d of DAEMONS) {
    const e = config[d];
    config[d] = {
      ...e,
      socket: abs(e.socket),
      caFile: abs(e.caFile),
      certFile: abs(e.certFile),
      keyFile: abs(e.keyFile),
    };
  }
  return config;
}
