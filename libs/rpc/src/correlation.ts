import { randomUUID } from 'node:crypto';
import type { Metadata } from '@grpc/grpc-js';

/** Metadata keys that tie a call to a request, an intent and a job across daemons. */
export const REQUEST_ID_KEY = 'x-aether-request-id';
export const INTENT_ID_KEY = 'x-aether-intent-id';
export const JOB_ID_KEY = 'x-aether-job-id';
export const AUTHORIZATION_KEY = 'authorization';

const ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;

export interface Correlation {
  requestId: string;
  intentId?: string;
  jobId?: string;
}

function single(md: Metadata, key: string): string | undefined {
  const v = md.get(key)[0];
  return typeof v === 'string' && ID_PATTERN.test(v) ? v : undefined;
}

/** Reads correlation ids, ignoring malformed ones; a request id is generated when absent. */
export function correlationFrom(md: Metadata): Correlation {
  const c: Correlation = { requestId: single(md, REQUEST_ID_KEY) ?? randomUUID() };
  const intentId = single(md, INTENT_ID_KEY);
  const jobId = single(md, JOB_ID_KEY);
  if (intentId) c.intentId = intentId;
  if (jobId) c.jobId = jobId;
  return c;
}

/** The bearer token, if any, without the scheme. */
export function bearerTokenFrom(md: Metadata): string | undefined {
  const v = md.get(AUTHORIZATION_KEY)[0];
  if (typeof v !== 'string') return undefined;
  const m = /^Bearer\s+(\S+)$/i.exec(v);
  return m?.[1];
}
