import { Metadata, status as Status, type ServiceError } from '@grpc/grpc-js';
import { errorDetails, rpcStatus, type anyV1 } from '@aether/proto';

/** Where Aether's machine-readable error reasons are defined (google.rpc.ErrorInfo.domain). */
export const ERROR_DOMAIN = 'aether.dev';
const STATUS_DETAILS_KEY = 'grpc-status-details-bin';
const TYPE_PREFIX = 'type.googleapis.com/';

/** One invalid request field: a dotted path such as `spec.resources.memory_bytes` and why. */
export interface FieldViolation {
  field: string;
  description: string;
}

export interface RpcErrorOptions {
  /** Extra structured context for google.rpc.ErrorInfo.metadata, e.g. {policy: 'default-deny'}. */
  metadata?: Record<string, string>;
  fieldViolations?: readonly FieldViolation[];
  cause?: unknown;
}

/**
 * The one error type of the RPC layer. Handlers throw it (or a subclass); the pipeline turns it into a
 * status code, a message and a google.rpc.Status with ErrorInfo (and BadRequest for field violations)
 * in `grpc-status-details-bin`. Clients get it back from `RpcError.from(err)`.
 */
export class RpcError extends Error {
  override readonly name: string = 'RpcError';
  readonly metadata: Readonly<Record<string, string>>;
  readonly fieldViolations: readonly FieldViolation[];

  constructor(
    /** The canonical gRPC status code. */
    readonly code: Status,
    /** UPPER_SNAKE_CASE, stable, unique within ERROR_DOMAIN. */
    readonly reason: string,
    message: string,
    options: RpcErrorOptions = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.metadata = options.metadata ?? {};
    this.fieldViolations = options.fieldViolations ?? [];
  }

  /** The name of the status code, e.g. `PERMISSION_DENIED`. */
  get codeName(): string {
    return Status[this.code] ?? String(this.code);
  }

  /**
   * Turns anything thrown into an RpcError: an RpcError stays itself; a grpc-js ServiceError is decoded
   * (including ErrorInfo and BadRequest from its status details); anything else becomes UNKNOWN.
   */
  static from(err: unknown): RpcError {
    if (err instanceof RpcError) return err;
    if (isServiceError(err)) return fromServiceError(err);
    const message = err instanceof Error ? err.message : String(err);
    return new RpcError(Status.UNKNOWN, 'UNKNOWN', message, { cause: err });
  }

  /** The form grpc-js sends: code, message and the rich status in trailing metadata. */
  toServiceError(): Partial<ServiceError> & { code: Status; details: string; metadata: Metadata } {
    const details: anyV1.Any[] = [
      {
        typeUrl: TYPE_PREFIX + 'google.rpc.ErrorInfo',
        value: Buffer.from(
          errorDetails.ErrorInfo.encode({
            reason: this.reason,
            domain: ERROR_DOMAIN,
            metadata: { ...this.metadata },
          }).finish(),
        ),
      },
    ];
    if (this.fieldViolations.length > 0) {
      details.push({
        typeUrl: TYPE_PREFIX + 'google.rpc.BadRequest',
        value: Buffer.from(
          errorDetails.BadRequest.encode({
            fieldViolations: this.fieldViolations.map((v) => ({
              field: v.field,
              description: v.description,
            })),
          }).finish(),
        ),
      });
    }
    const metadata = new Metadata();
    metadata.set(
      STATUS_DETAILS_KEY,
      Buffer.from(rpcStatus.Status.encode({ code: this.code, message: this.message, details }).finish()),
    );
    return { name: this.name, message: this.message, code: this.code, details: this.message, metadata };
  }
}

function isServiceError(err: unknown): err is ServiceError {
  return err instanceof Error && typeof (err as Partial<ServiceError>).code === 'number' && 'metadata' in err;
}

function fromServiceError(err: ServiceError): RpcError {
  let reason = Status[err.code] ?? 'UNKNOWN';
  let metadata: Record<string, string> = {};
  let fieldViolations: FieldViolation[] = [];
  const raw = err.metadata?.get(STATUS_DETAILS_KEY)[0];
  if (raw instanceof Buffer) {
    try {
      const st = rpcStatus.Status.decode(raw);
      for (const d of st.details) {
        if (d.typeUrl === TYPE_PREFIX + 'google.rpc.ErrorInfo') {
          const info = errorDetails.ErrorInfo.decode(d.value);
          reason = info.reason;
          metadata = info.metadata;
        } else if (d.typeUrl === TYPE_PREFIX + 'google.rpc.BadRequest') {
          fieldViolations = errorDetails.BadRequest.decode(d.value).fieldViolations;
        }
      }
    } catch {
      // A peer that sends undecodable details still gets its code and message through.
    }
  }
  return new RpcError(err.code, reason, err.details || err.message, {
    metadata,
    fieldViolations,
    cause: err,
  });
}

/** A request field (or several) is malformed. */
export class InvalidArgumentError extends RpcError {
  override readonly name = 'InvalidArgumentError';
  constructor(violations: readonly FieldViolation[], reason = 'INVALID_ARGUMENT') {
    const summary = violations.map((v) => `${v.field}: ${v.description}`).join('; ');
    super(Status.INVALID_ARGUMENT, reason, summary || 'invalid argument', { fieldViolations: violations });
  }
}

/** The named resource does not exist. */
export class NotFoundError extends RpcError {
  override readonly name = 'NotFoundError';
  constructor(resourceName: string, message = `${resourceName} not found`) {
    super(Status.NOT_FOUND, 'NOT_FOUND', message, { metadata: { resource: resourceName } });
  }
}

/** Policy (or a capability token) does not allow the call. */
export class PermissionDeniedError extends RpcError {
  override readonly name = 'PermissionDeniedError';
  constructor(message: string, reason = 'POLICY_DENIED', metadata: Record<string, string> = {}) {
    super(Status.PERMISSION_DENIED, reason, message, { metadata });
  }
}

/** The caller could not be identified (no or unusable client certificate, bad token). */
export class UnauthenticatedError extends RpcError {
  override readonly name = 'UnauthenticatedError';
  constructor(message: string, reason = 'UNAUTHENTICATED') {
    super(Status.UNAUTHENTICATED, reason, message);
  }
}

/** The system is not in a state that allows the call (e.g. the host lacks an isolation feature). */
export class FailedPreconditionError extends RpcError {
  override readonly name = 'FailedPreconditionError';
  constructor(message: string, reason = 'FAILED_PRECONDITION', metadata: Record<string, string> = {}) {
    super(Status.FAILED_PRECONDITION, reason, message, { metadata });
  }
}

/** A limit or quota would be exceeded. */
export class ResourceExhaustedError extends RpcError {
  override readonly name = 'ResourceExhaustedError';
  constructor(message: string, reason = 'RESOURCE_EXHAUSTED', metadata: Record<string, string> = {}) {
    super(Status.RESOURCE_EXHAUSTED, reason, message, { metadata });
  }
}

/** A dependency (disk, audit log, another daemon) is unavailable; the call may be retried. */
export class UnavailableError extends RpcError {
  override readonly name = 'UnavailableError';
  constructor(message: string, reason = 'UNAVAILABLE', options: RpcErrorOptions = {}) {
    super(Status.UNAVAILABLE, reason, message, options);
  }
}

/** The method exists in the contract but this daemon does not implement it yet. */
export class UnimplementedError extends RpcError {
  override readonly name = 'UnimplementedError';
  constructor(method: string) {
    super(Status.UNIMPLEMENTED, 'NOT_IMPLEMENTED', `${method} is not implemented by this daemon yet`, {
      metadata: { method },
    });
  }
}

/** The resource already exists. */
export class AlreadyExistsError extends RpcError {
  override readonly name = 'AlreadyExistsError';
  constructor(resourceName: string, message = `${resourceName} already exists`) {
    super(Status.ALREADY_EXISTS, 'ALREADY_EXISTS', message, { metadata: { resource: resourceName } });
  }
}

/**
 * Collects field violations so a request is checked in one pass and every problem is reported at once.
 *   const v = new Violations(); v.check(req.argv.length > 0, 'spec.argv', 'must not be empty'); v.throwIfAny();
 */
export class Violations {
  private readonly list: FieldViolation[] = [];
  check(ok: boolean, field: string, description: string): this {
    if (!ok) this.list.push({ field, description });
    return this;
  }
  add(field: string, description: string): this {
    this.list.push({ field, description });
    return this;
  }
  /**
   * The AIP pagination fields every List shares: `page_size` within [0, max] (0 means the server's
   * default) and a `page_token` that is empty or one this server issued (a position, as digits).
   */
  page(req: { pageSize: number; pageToken: string }, max = 1000): this {
    return this.check(
      req.pageSize >= 0 && req.pageSize <= max,
      'page_size',
      `must be between 0 and ${max}`,
    ).check(
      req.pageToken === '' || /^\d+$/.test(req.pageToken),
      'page_token',
      'is not a token this server issued',
    );
  }
  get all(): readonly FieldViolation[] {
    return this.list;
  }
  throwIfAny(): void {
    if (this.list.length > 0) throw new InvalidArgumentError(this.list);
  }
}
