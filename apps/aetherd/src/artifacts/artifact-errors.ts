import { status as Status } from '@grpc/grpc-js';
import { RpcError } from '@aether/rpc';

// The artifact store's failures, each with the code and reason artifacts.proto documents for it.

export const artifactName = (id: string): string => `artifacts/${id}`;

export function artifactNotFound(id: string): RpcError {
  const name = artifactName(id);
  return new RpcError(Status.NOT_FOUND, 'ARTIFACT_NOT_FOUND', `${name} not found`, {
    metadata: { resource: name },
  });
}

/** A RESOURCE_EXHAUSTED reason: nothing was registered and nothing is left behind. */
export type LimitReason =
  'ARTIFACT_TOO_LARGE' | 'JOB_OUTPUT_QUOTA_EXCEEDED' | 'STORE_QUOTA_EXCEEDED' | 'DISK_FULL';

export function limitExceeded(
  reason: LimitReason,
  message: string,
  metadata: Record<string, string> = {},
): RpcError {
  return new RpcError(Status.RESOURCE_EXHAUSTED, reason, message, { metadata });
}

export function digestMismatch(expected: string, actual: string): RpcError {
  return new RpcError(
    Status.INVALID_ARGUMENT,
    'DIGEST_MISMATCH',
    `the content's digest is ${actual}, not the expected ${expected}; nothing was registered`,
    { metadata: { expected, actual } },
  );
}

export function sizeMismatch(expected: number, actual: number | string): RpcError {
  return new RpcError(
    Status.INVALID_ARGUMENT,
    'SIZE_MISMATCH',
    `the content is ${actual} bytes, not the expected ${expected}; nothing was registered`,
    { metadata: { expected: String(expected), actual: String(actual) } },
  );
}

export function invalidPath(path: string, why: string): RpcError {
  return new RpcError(Status.INVALID_ARGUMENT, 'INVALID_PATH', `source_path ${shown(path)} ${why}`, {
    fieldViolations: [{ field: 'source_path', description: why }],
  });
}

export function pathOutsideRoot(path: string, why: string): RpcError {
  return new RpcError(Status.PERMISSION_DENIED, 'PATH_OUTSIDE_ROOT', `source_path ${shown(path)} ${why}`, {
    metadata: { path: path.slice(0, 1024) },
  });
}

export function sourceNotFound(path: string): RpcError {
  return new RpcError(Status.NOT_FOUND, 'SOURCE_NOT_FOUND', `source_path ${shown(path)} does not exist`, {
    metadata: { path: path.slice(0, 1024) },
  });
}

export function notARegularFile(path: string, kind: string): RpcError {
  return new RpcError(
    Status.FAILED_PRECONDITION,
    'NOT_A_REGULAR_FILE',
    `source_path ${shown(path)} is ${kind}, not a regular file`,
    { metadata: { path: path.slice(0, 1024) } },
  );
}

export function blobMissing(id: string, path: string): RpcError {
  return new RpcError(
    Status.DATA_LOSS,
    'BLOB_MISSING',
    `the blob of ${artifactName(id)} is gone from the store (${path})`,
    { metadata: { resource: artifactName(id), path } },
  );
}

export function blobCorrupted(id: string, expected: string, actual: string): RpcError {
  return new RpcError(
    Status.DATA_LOSS,
    'BLOB_CORRUPTED',
    `the blob of ${artifactName(id)} no longer matches its digest (expected ${expected}, found ${actual})`,
    { metadata: { resource: artifactName(id), expected, actual } },
  );
}

export function idempotencyKeyReused(key: string, id: string): RpcError {
  return new RpcError(
    Status.ALREADY_EXISTS,
    'IDEMPOTENCY_KEY_REUSED',
    `idempotency key ${JSON.stringify(key)} was used for ${artifactName(id)} with different arguments`,
    { metadata: { resource: artifactName(id) } },
  );
}

/** The request that was writing an artifact ended (cancelled, past its deadline): nothing is registered. */
export function ingestAborted(signal: AbortSignal): RpcError {
  const reason: unknown = signal.reason;
  if (reason instanceof RpcError) return reason;
  const why = reason instanceof Error ? reason.message : 'aborted';
  return new RpcError(Status.CANCELLED, 'CANCELLED', `the request ended (${why}); nothing was registered`);
}

function shown(path: string): string {
  return JSON.stringify(path.length > 200 ? `${path.slice(0, 200)}…` : path);
}
