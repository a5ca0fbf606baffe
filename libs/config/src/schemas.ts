import { z } from 'zod';
import { parseMetricsListen } from './metrics-listen';

export const DEFAULT_TRUST_DOMAIN = 'aether.local';

/** An octal permission string such as `0660`: group may connect, others may not. */
export const socketModeSchema = z
  .string()
  .regex(/^0?[0-7]{3}$/, 'must be an octal mode such as "0660"')
  .refine((m) => (parseInt(m, 8) & 0o007) === 0, 'must not grant access to others (last digit must be 0)');

const tlsFilesSchema = z.strictObject({
  /** PEM CA bundle that client/server certificates must chain to. */
  caFile: z.string().min(1),
  /** PEM certificate carrying this program's SPIFFE ID as a URI SAN. */
  certFile: z.string().min(1),
  /** PEM PKCS#8 private key for certFile; must not be readable by others. */
  keyFile: z.string().min(1),
});

/** How a daemon listens. */
export const serverConfigSchema = z.strictObject({
  socket: z.strictObject({
    path: z.string().min(1).startsWith('/', 'must be an absolute path'),
    mode: socketModeSchema,
    /** Group owning the socket; members may connect. Empty keeps the daemon's own group. */
    group: z.string(),
  }),
  tls: tlsFilesSchema.extend({
    /**
     * `mtls` (default): every client must present a certificate from caFile.
     * `insecure-plaintext`: no TLS; access rests on socket permissions alone. Development only.
     */
    mode: z.enum(['mtls', 'insecure-plaintext']),
    trustDomain: z.string().regex(/^[a-z0-9._-]+$/, 'must be a lowercase SPIFFE trust domain'),
  }),
  /** Directory for this daemon's persistent state. */
  stateDir: z.string().min(1).startsWith('/', 'must be an absolute path'),
  /** Directory holding policy files (*.cedar and the schema). */
  policyDir: z.string().min(1),
  /** Audit log file (JSON lines, hash-chained). */
  auditLog: z.string().min(1),
  /**
   * Signed checkpoints of the audit log's head (Ed25519), kept outside the log so that a truncated
   * tail is caught by `aether audit verify --checkpoint … --public-key …` and by VerifyAuditLog.
   */
  auditCheckpoint: z.strictObject({
    enabled: z.boolean(),
    /** PKCS#8 PEM signing key, created 0600 on first start; its public key is written beside it (`.pub`). Empty: `<stateDir>/audit/<daemon>-checkpoint.key`. */
    keyFile: z.string(),
    /** The checkpoint file, replaced atomically. Empty: `<stateDir>/audit/<daemon>.checkpoint.json`. */
    path: z.string(),
    /** Write one after this many records… */
    everyRecords: z.number().int().min(1),
    /** …or after this long with new records. */
    intervalMs: z.number().int().min(100),
  }),
  logLevel: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']),
  /** How long SIGTERM waits for in-flight calls before closing them. */
  shutdownGraceMs: z.number().int().min(0).max(600_000),
  /** Capability tokens (seed §3.2): where the issuer's verification key is published. */
  tokens: z.strictObject({
    /** SPKI PEM public key of the token issuer (aetherd writes it at start). */
    publicKeyFile: z.string().min(1),
    /** SPIFFE ID of the issuer whose tokens are accepted. */
    issuer: z.string().startsWith('spiffe://', 'must be a spiffe:// URI'),
  }),
  /** The optional HTTP scrape listener serving `GET /metrics` (the text of GetPrometheusMetrics). */
  metrics: z.strictObject({
    /**
     * `""` (default): off. `unix:/abs/path`: a Unix socket, mode 0660, group `socket.group`.
     * `127.0.0.1:PORT`, `localhost:PORT` or `[::1]:PORT`: loopback TCP. Nothing else is accepted.
     */
    listen: z.string().superRefine((value, ctx) => {
      const parsed = parseMetricsListen(value);
      if ('error' in parsed) ctx.addIssue({ code: 'custom', message: parsed.error });
    }),
  }),
  /** Largest request or response message, in bytes. */
  maxMessageBytes: z
    .number()
    .int()
    .min(64 * 1024)
    .max(256 * 1024 * 1024),
});
export type ServerConfig = z.infer<typeof serverConfigSchema>;

/** How a program reaches one daemon. */
export const clientEndpointSchema = tlsFilesSchema.extend({
  socket: z.string().min(1),
  /** The SPIFFE ID the server's certificate must carry, e.g. spiffe://aether.local/aetherd. */
  serverId: z.string().startsWith('spiffe://', 'must be a spiffe:// URI'),
  /** `insecure-plaintext` only for a daemon started that way. */
  mode: z.enum(['mtls', 'insecure-plaintext']),
});
export type ClientEndpointConfig = z.infer<typeof clientEndpointSchema>;

/** Packaged defaults (the paths of ARCHITECTURE §3 and §6) for the daemon called `name`. */
export function defaultServerConfig(name: string, stateDir = '/var/lib/aether'): ServerConfig {
  return {
    socket: { path: `/run/aether/${name}.sock`, mode: '0660', group: 'aether' },
    tls: {
      mode: 'mtls',
      trustDomain: DEFAULT_TRUST_DOMAIN,
      caFile: '/etc/aether/pki/ca.crt',
      certFile: `/etc/aether/pki/${name}.crt`,
      keyFile: `/etc/aether/pki/${name}.key`,
    },
    stateDir,
    policyDir: '/etc/aether/policy',
    auditLog: `/var/log/aether/${name}.jsonl`,
    auditCheckpoint: { enabled: true, keyFile: '', path: '', everyRecords: 10_000, intervalMs: 60_000 },
    logLevel: 'info',
    tokens: {
      publicKeyFile: '/run/aether/token-signing.pub',
      issuer: `spiffe://${DEFAULT_TRUST_DOMAIN}/aetherd`,
    },
    shutdownGraceMs: 10_000,
    metrics: { listen: '' },
    maxMessageBytes: 16 * 1024 * 1024,
  };
}
