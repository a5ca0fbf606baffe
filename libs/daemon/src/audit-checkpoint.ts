import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { generateCheckpointKey, toPublicKey } from '@aether/audit';
import type { ServerConfig } from '@aether/config';

/** Where a daemon's signed audit checkpoints go, and the key that verifies them. */
export interface AuditCheckpointFiles {
  keyFile: string;
  publicKeyFile: string;
  path: string;
  everyRecords: number;
  intervalMs: number;
}

/**
 * Resolves the checkpoint files of a daemon (defaults under its state directory) and makes sure the
 * signing key exists (created 0600 on first start) with its public key beside it (`.pub`, 0644), for
 * `aether audit verify --public-key`. Undefined when checkpoints are disabled.
 */
export async function prepareAuditCheckpoints(
  config: ServerConfig,
  daemon: string,
): Promise<AuditCheckpointFiles | undefined> {
  const c = config.auditCheckpoint;
  if (!c.enabled) return undefined;
  const keyFile = c.keyFile || join(config.stateDir, 'audit', `${daemon}-checkpoint.key`);
  const path = c.path || join(config.stateDir, 'audit', `${daemon}.checkpoint.json`);
  const publicKeyFile = keyFile.replace(/\.key$/, '') + '.pub';
  mkdirSync(dirname(keyFile), { recursive: true, mode: 0o700 });
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  if (!existsSync(keyFile)) {
    const { publicKeyPem } = await generateCheckpointKey(keyFile);
    writeFileSync(publicKeyFile, publicKeyPem, { mode: 0o644 });
  } else if (!existsSync(publicKeyFile)) {
    const pem = toPublicKey(readFileSync(keyFile)).export({ type: 'spki', format: 'pem' }) as string;
    writeFileSync(publicKeyFile, pem, { mode: 0o644 });
  }
  return { keyFile, publicKeyFile, path, everyRecords: c.everyRecords, intervalMs: c.intervalMs };
}
