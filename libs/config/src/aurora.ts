import { z } from 'zod';
import type { ClientEndpointConfig } from './schemas';
import { clientEndpointSchema } from './schemas';
import { defaultPeerDaemonConfig, peerDaemonConfigSchema } from './peer';

/** Limits every intent runs under (seed §4.1: runaway loops). An intent's budget can only narrow them. */
export const intentLimitsSchema = z.strictObject({
  /** Most steps one plan may have. */
  maxSteps: z.number().int().min(1).max(1000),
  /** Most aetherd jobs one intent may start. */
  maxJobs: z.number().int().min(0).max(1000),
  /** Most intents planning, awaiting approval or running at once; more are RESOURCE_EXHAUSTED. */
  maxConcurrentIntents: z.number().int().min(1).max(10_000),
  /** Wall-clock limit from submission to the end, in seconds (waiting for approval included). */
  maxDurationSeconds: z
    .number()
    .int()
    .min(1)
    .max(7 * 86_400),
  /** Retries per step; only UNAVAILABLE is retried, with exponential backoff. */
  maxRetries: z.number().int().min(0).max(20),
  /** The first retry's backoff; doubled each time (with jitter), capped at 30 s. */
  retryBackoffMs: z.number().int().min(1).max(60_000),
});
export type IntentLimits = z.infer<typeof intentLimitsSchema>;

export const auroraConfigSchema = z.strictObject({
  /** Playbook directories, read at start and on SIGHUP; a file with schema errors refuses to load. */
  playbookDirs: z.array(z.string().min(1)).min(1),
  /** The planner used when a request does not name one. */
  defaultPlanner: z.enum(['playbook', 'model']),
  /** The model planner: which cfcd model generates plans, and how often an invalid plan is retried. */
  modelPlanner: z.strictObject({
    /** `models/{model}` on cfcd; empty: the model planner is not configured (requests for it fail). */
    model: z.string(),
    /** Attempts before the intent fails with the last validation error. */
    attempts: z.number().int().min(1).max(10),
    maxTokens: z.number().int().min(64).max(32_768),
    timeoutMs: z.number().int().min(100).max(600_000),
  }),
  limits: intentLimitsSchema,
  /** Lifetime of the capability token minted for an approved step. */
  approvalTokenTtlSeconds: z.number().int().min(60).max(3600),
  /** Tags of the summary entry written to memory when an intent ends. */
  summaryTags: z.array(z.string().min(1)),
});
export type AuroraConfig = z.infer<typeof auroraConfigSchema>;

/** aurorad: its server, how it reaches aetherd and cfcd, and how it plans and bounds intents. */
export const auroradConfigSchema = peerDaemonConfigSchema.extend({
  cfcd: clientEndpointSchema,
  aurora: auroraConfigSchema,
});
export type AuroradConfig = z.infer<typeof auroradConfigSchema>;

export function defaultAuroraConfig(): AuroraConfig {
  return {
    playbookDirs: ['/etc/aether/aurora/playbooks'],
    defaultPlanner: 'playbook',
    modelPlanner: { model: '', attempts: 3, maxTokens: 2048, timeoutMs: 60_000 },
    limits: {
      maxSteps: 32,
      maxJobs: 16,
      maxConcurrentIntents: 64,
      maxDurationSeconds: 3600,
      maxRetries: 3,
      retryBackoffMs: 200,
    },
    approvalTokenTtlSeconds: 3600,
    summaryTags: ['intent-summary'],
  };
}

export function defaultAuroradConfig(): AuroradConfig {
  const base = defaultPeerDaemonConfig('aurorad', '/var/lib/aether/aurora');
  const cfcd: ClientEndpointConfig = {
    ...base.aetherd,
    socket: '/run/aether/cfcd.sock',
    serverId: `spiffe://${base.tls.trustDomain}/cfcd`,
  };
  return { ...base, cfcd, aurora: defaultAuroraConfig() };
}
