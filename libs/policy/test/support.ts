import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PolicyQuery, PolicyResource, TokenClaims } from '@aether/policy';

/** The shipped policy directory. */
export const SHIPPED_DIR = join(__dirname, '../../../deploy/policy');
export const SHIPPED_SCHEMA = readFileSync(join(SHIPPED_DIR, 'aether.cedarschema'), 'utf8');

/** A temporary policy directory with the shipped schema and the given files. */
export function policyDir(files: Record<string, string>): {
  dir: string;
  write(name: string, text: string): void;
  remove(): void;
} {
  const dir = mkdtempSync(join(tmpdir(), 'aether-policy-'));
  const write = (name: string, text: string): void => writeFileSync(join(dir, name), text);
  write('aether.cedarschema', SHIPPED_SCHEMA);
  for (const [name, text] of Object.entries(files)) write(name, text);
  return { dir, write, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A query from the SPIFFE path of the caller, as the RPC pipeline builds it. */
export function query(
  path: string,
  action: string,
  resource?: PolicyResource,
  context: { intentId?: string; token?: TokenClaims } = {},
): PolicyQuery {
  return {
    principal: {
      id: `spiffe://aether.local/${path}`,
      trustDomain: 'aether.local',
      name: path,
      authenticatedBy: 'certificate',
    },
    action,
    resource: resource ?? { type: 'service', id: action.split('.')[0] ?? '' },
    context: { requestId: 'req-1', ...context },
  };
}

/** A job as jobs.SubmitJob describes it: sandboxed, no network, 1 CPU, 1 GiB; `overrides` change fields. */
export function job(overrides: Record<string, unknown> = {}): PolicyResource {
  return {
    type: 'job',
    id: '',
    attributes: {
      network: 'none',
      mounts: [],
      devices: [],
      cpuMillicores: 1000,
      memoryBytes: 1n << 30n,
      pidsMax: 256,
      timeoutSeconds: 600,
      profile: '',
      ...overrides,
    },
  };
}

export const GiB = 1024 ** 3;
