import { performance } from 'node:perf_hooks';
import {
  Metadata,
  status as Status,
  type sendUnaryData,
  type ServerDuplexStream,
  type ServerReadableStream,
  type ServerUnaryCall,
  type ServerWritableStream,
  type ServiceDefinition,
  type UntypedHandleCall,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import type { Logger } from '@aether/log';
import { bearerTokenFrom, correlationFrom, REQUEST_ID_KEY, type Correlation } from './correlation';
import {
  InvalidArgumentError,
  PermissionDeniedError,
  RpcError,
  UnavailableError,
  UnimplementedError,
} from './errors';
import type { AuditHook, CallObserver, CallRecord, Decision, PolicyHook, ResourceRef } from './hooks';
import { principalFromCall, socketPrincipal, type Principal } from './principal';

/** Everything a handler may know about the call besides its request. */
export interface CallContext extends Correlation {
  principal: Principal;
  /** `<api>.<Method>`, e.g. `jobs.SubmitJob`. */
  action: string;
  /** Aborted when the client cancels or the deadline passes. */
  signal: AbortSignal;
  deadline?: Date;
  log: Logger;
  metadata: Metadata;
  decision: Decision;
  bearerToken?: string;
}

interface MethodOptions<Req> {
  /** Throw InvalidArgumentError (see Violations) for a malformed request; runs before policy. */
  validate?: (request: Req) => void;
  /** The resource policy decides on; defaults to the service itself. */
  resource?: (request: Req, ctx: { principal: Principal }) => ResourceRef;
  /** Whether the call changes state (its audit record is made durable before the response). */
  mutates?: boolean;
}

export interface UnaryMethod<Req, Res> extends MethodOptions<Req> {
  kind: 'unary';
  handle: (request: Req, ctx: CallContext) => Promise<Res>;
}
export interface ServerStreamMethod<Req, Res> extends MethodOptions<Req> {
  kind: 'serverStream';
  /** `send` resolves when the message is handed to the transport; it waits while the client is slow. */
  handle: (request: Req, ctx: CallContext, send: (response: Res) => Promise<void>) => Promise<void>;
}
export interface ClientStreamMethod<Req, Res> extends MethodOptions<Req> {
  kind: 'clientStream';
  /**
   * Receives every message of the stream, the first one included. When `validate` or `resource` is
   * given, the pipeline reads the first message before policy (so a decision can depend on what the
   * stream declares up front, such as an upload's metadata) and an empty stream is INVALID_ARGUMENT.
   */
  handle: (requests: AsyncIterable<Req>, ctx: CallContext) => Promise<Res>;
}
export interface BidiStreamMethod<Req, Res> extends MethodOptions<undefined> {
  kind: 'bidiStream';
  handle: (
    requests: AsyncIterable<Req>,
    ctx: CallContext,
    send: (response: Res) => Promise<void>,
  ) => Promise<void>;
}
// Handlers are typed per method where they are written; the registry of a service only needs their kind.
/* eslint-disable @typescript-eslint/no-explicit-any */
export type AnyMethod =
  | UnaryMethod<any, any>
  | ServerStreamMethod<any, any>
  | ClientStreamMethod<any, any>
  | BidiStreamMethod<any, any>;
/* eslint-enable @typescript-eslint/no-explicit-any */

export const unary = <Req, Res>(m: Omit<UnaryMethod<Req, Res>, 'kind'>): UnaryMethod<Req, Res> => ({
  kind: 'unary',
  ...m,
});
export const serverStream = <Req, Res>(
  m: Omit<ServerStreamMethod<Req, Res>, 'kind'>,
): ServerStreamMethod<Req, Res> => ({
  kind: 'serverStream',
  ...m,
});
export const clientStream = <Req, Res>(
  m: Omit<ClientStreamMethod<Req, Res>, 'kind'>,
): ClientStreamMethod<Req, Res> => ({
  kind: 'clientStream',
  ...m,
});
export const bidiStream = <Req, Res>(
  m: Omit<BidiStreamMethod<Req, Res>, 'kind'>,
): BidiStreamMethod<Req, Res> => ({
  kind: 'bidiStream',
  ...m,
});

/** Implementations keyed like the generated service definition (`submitJob`, …); missing ones are UNIMPLEMENTED. */
export type ServiceHandlers<D extends ServiceDefinition> = Partial<Record<keyof D & string, AnyMethod>>;

export interface PipelineOptions {
  log: Logger;
  trustDomain: string;
  /** insecure-plaintext mode: no certificate, the caller is the anonymous socket principal. */
  plaintext: boolean;
  policy: PolicyHook;
  audit: AuditHook;
  /** Counts calls in flight so shutdown can drain them. */
  inFlight: { enter(): void; leave(): void };
  /** Told of every call's start and end; the array is read per call, so observers may be added later. */
  observers?: readonly CallObserver[];
}

/**
 * The resource policy decides on for a method that defines no `resource` function: the service itself,
 * e.g. `{ type: 'service', id: 'intents' }` for `intents.ApproveIntent`.
 */
export function serviceResource(action: string): ResourceRef {
  return { type: 'service', id: action.split('.')[0] ?? action };
}

/** `/aether.jobs.v1.JobService/SubmitJob` → `jobs.SubmitJob`. */
export function actionName(path: string): string {
  const [, service = '', method = ''] = /^\/(.+)\/([^/]+)$/.exec(path) ?? [];
  const parts = service.split('.');
  const api = parts[0] === 'aether' && parts.length >= 4 ? parts[1] : service;
  return `${api}.${method}`;
}

type AnyCall =
  | ServerUnaryCall<unknown, unknown>
  | ServerWritableStream<unknown, unknown>
  | ServerReadableStream<unknown, unknown>
  | ServerDuplexStream<unknown, unknown>;

/**
 * Wraps every method of a service in the one request path of ARCHITECTURE §4:
 * principal → correlation → validation → policy → handler → error mapping → audit → access log.
 */
export function wrapService<D extends ServiceDefinition>(
  definition: D,
  handlers: ServiceHandlers<D>,
  options: PipelineOptions,
): UntypedServiceImplementation {
  const impl: UntypedServiceImplementation = {};
  for (const [key, def] of Object.entries(definition)) {
    const action = actionName(def.path);
    const method: AnyMethod | undefined = handlers[key as keyof D & string];
    const kind = def.requestStream
      ? def.responseStream
        ? 'bidiStream'
        : 'clientStream'
      : def.responseStream
        ? 'serverStream'
        : 'unary';
    if (method && method.kind !== kind) {
      throw new Error(`${def.path} is ${kind} in the contract but its handler is ${method.kind}`);
    }
    impl[key] = makeHandler(def.path, action, kind, method, options);
  }
  return impl;
}

function makeHandler(
  path: string,
  action: string,
  kind: AnyMethod['kind'],
  method: AnyMethod | undefined,
  options: PipelineOptions,
): UntypedHandleCall {
  const run = async (
    call: AnyCall,
    request: unknown,
    respond: (ctx: CallContext) => Promise<unknown>,
    readFirst?: () => Promise<unknown>,
  ): Promise<unknown> => {
    const started = performance.now();
    options.inFlight.enter();
    const observers = options.observers ?? [];
    for (const o of observers) o.callStarted?.(path);
    const correlation = correlationFrom(call.metadata);
    const controller = new AbortController();
    const onCancel = (): void => controller.abort(new Error('cancelled by client'));
    (call as NodeJS.EventEmitter).on('cancelled', onCancel);
    const deadlineValue = call.getDeadline();
    const deadline =
      deadlineValue instanceof Date
        ? deadlineValue
        : Number.isFinite(deadlineValue)
          ? new Date(deadlineValue)
          : undefined;
    const timer =
      deadline && deadline.getTime() !== Infinity
        ? setTimeout(
            () => controller.abort(new Error('deadline exceeded')),
            Math.max(0, deadline.getTime() - Date.now()),
          )
        : undefined;
    const bearerToken = bearerTokenFrom(call.metadata);
    let principal: Principal | undefined;
    let resource = serviceResource(action);
    let decision: Decision = { effect: 'deny', policyIds: [], reason: 'not evaluated' };
    let outcome: RpcError | undefined;
    let response: unknown;
    let policySeconds: number | undefined;
    // A child logger costs a redaction setup; most calls never log from the handler, so make it on demand.
    let childLog: Logger | undefined;
    const log = (): Logger =>
      (childLog ??= options.log.child({
        requestId: correlation.requestId,
        ...(correlation.intentId ? { intentId: correlation.intentId } : {}),
      }));
    try {
      call.sendMetadata(withRequestId(correlation.requestId));
      principal = options.plaintext
        ? socketPrincipal(options.trustDomain)
        : principalFromCall(call, options.trustDomain);
      if (readFirst) {
        request = await readFirst();
        if (request === undefined)
          throw new InvalidArgumentError([
            { field: '', description: 'the request stream ended before its first message' },
          ]);
      }
      if (method?.validate && request !== undefined) method.validate(request as never);
      if (method?.resource && request !== undefined)
        resource = method.resource(request as never, { principal });
      const asked = performance.now();
      try {
        decision = await options.policy.decide({
          principal,
          action,
          resource,
          context: { ...correlation, ...(bearerToken ? { bearerToken } : {}) },
        });
      } finally {
        policySeconds = (performance.now() - asked) / 1000;
      }
      if (decision.effect !== 'allow') {
        throw new PermissionDeniedError(
          decision.effect === 'ask'
            ? `${action} needs a human approval (${decision.reason}); submit it through aurorad`
            : `${action} denied by ${decision.policyIds.join(', ') || 'default-deny'}: ${decision.reason}`,
          decision.effect === 'ask' ? 'APPROVAL_REQUIRED' : 'POLICY_DENIED',
          { policy: decision.policyIds.join(',') || 'default-deny', reason: decision.reason },
        );
      }
      if (!method) throw new UnimplementedError(path);
      if (method.mutates) options.audit.ensureWritable?.();
      const ctx: CallContext = {
        ...correlation,
        principal,
        action,
        signal: controller.signal,
        get log() {
          return log();
        },
        metadata: call.metadata,
        decision,
        ...(deadline ? { deadline } : {}),
        ...(bearerToken ? { bearerToken } : {}),
      };
      response = await respond(ctx);
    } catch (err) {
      outcome = toRpcError(err, log(), correlation.requestId);
    }
    clearTimeout(timer);
    (call as NodeJS.EventEmitter).removeListener('cancelled', onCancel);
    const durationMs = performance.now() - started;
    const durable = outcome?.code === Status.PERMISSION_DENIED || (method?.mutates ?? false);
    const record: CallRecord = {
      action,
      actor: principal?.id ?? 'unauthenticated',
      requestId: correlation.requestId,
      ...(correlation.intentId ? { intentId: correlation.intentId } : {}),
      ...(correlation.jobId ? { jobId: correlation.jobId } : {}),
      resource,
      decision,
      outcome: outcome?.codeName ?? 'OK',
      ...(outcome ? { error: outcome.message } : {}),
      durationMs,
      ...(decision.tokenId ? { tokenId: decision.tokenId } : {}),
      ...(decision.onBehalfOf ? { onBehalfOf: decision.onBehalfOf } : {}),
    };
    try {
      await options.audit.record(record, { durable });
    } catch (err) {
      if (durable)
        outcome = new UnavailableError(
          `audit log unavailable: ${(err as Error).message}`,
          'AUDIT_UNAVAILABLE',
        );
      log().error({ err }, 'audit record failed');
    }
    options.log.info(
      {
        requestId: correlation.requestId,
        ...(correlation.intentId ? { intentId: correlation.intentId } : {}),
        rpc: path,
        kind,
        principal: principal?.id,
        code: outcome?.codeName ?? 'OK',
        ...(outcome ? { reason: outcome.reason } : {}),
        decision: decision.effect,
        durationMs: Math.round(durationMs * 1000) / 1000,
      },
      'rpc',
    );
    if (observers.length > 0) {
      // The status the caller gets (an audit failure may have replaced it) and the whole duration.
      const finished = {
        ...record,
        outcome: outcome?.codeName ?? 'OK',
        ...(outcome ? { error: outcome.message } : {}),
        durationMs: performance.now() - started,
        path,
        ...(policySeconds !== undefined ? { policySeconds } : {}),
      };
      for (const o of observers) {
        try {
          o.callFinished?.(finished);
        } catch (err) {
          options.log.error({ err, rpc: path }, 'call observer failed');
        }
      }
    }
    options.inFlight.leave();
    if (outcome) throw outcome;
    return response;
  };

  const fail = (err: unknown): ReturnType<RpcError['toServiceError']> => RpcError.from(err).toServiceError();

  switch (kind) {
    case 'unary':
      return (call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) => {
        run(call, call.request, (ctx) =>
          (method as UnaryMethod<unknown, unknown>).handle(call.request, ctx),
        ).then(
          (res) => callback(null, res),
          (err: unknown) => callback(fail(err)),
        );
      };
    case 'serverStream':
      return (call: ServerWritableStream<unknown, unknown>) => {
        run(call, call.request, (ctx) =>
          (method as ServerStreamMethod<unknown, unknown>).handle(call.request, ctx, (res) =>
            writeWithBackpressure(call, res, ctx.signal),
          ),
        ).then(
          () => call.end(),
          // emit('error'), not destroy(): grpc-js sends the status from the stream's _final, which a
          // destroyed stream never runs, so the client would wait for a status forever.
          (err: unknown) => call.emit('error', fail(err)),
        );
      };
    case 'clientStream':
      return (call: ServerReadableStream<unknown, unknown>, callback: sendUnaryData<unknown>) => {
        const m = method as ClientStreamMethod<unknown, unknown> | undefined;
        const peek = m !== undefined && (m.validate !== undefined || m.resource !== undefined);
        const messages = (call as AsyncIterable<unknown>)[Symbol.asyncIterator]();
        let first: IteratorResult<unknown> | undefined;
        const readFirst = async (): Promise<unknown> => {
          first = await messages.next();
          return first.done ? undefined : first.value;
        };
        // The handler sees the whole stream: the message read for policy, then the rest.
        const all: AsyncIterable<unknown> = {
          [Symbol.asyncIterator]: () => ({
            next: () => {
              if (first && !first.done) {
                const value = first.value;
                first = undefined;
                return Promise.resolve({ done: false, value });
              }
              return messages.next();
            },
            return: (value?: unknown) =>
              messages.return ? messages.return(value) : Promise.resolve({ done: true, value }),
          }),
        };
        run(
          call,
          undefined,
          (ctx) => m!.handle(peek ? all : (call as AsyncIterable<unknown>), ctx),
          peek ? readFirst : undefined,
        ).then(
          (res) => callback(null, res),
          (err: unknown) => callback(fail(err)),
        );
      };
    case 'bidiStream':
      return (call: ServerDuplexStream<unknown, unknown>) => {
        run(call, undefined, (ctx) =>
          (method as BidiStreamMethod<unknown, unknown>).handle(call as AsyncIterable<unknown>, ctx, (res) =>
            writeWithBackpressure(call, res, ctx.signal),
          ),
        ).then(
          () => call.end(),
          // emit('error'), not destroy(): grpc-js sends the status from the stream's _final, which a
          // destroyed stream never runs, so the client would wait for a status forever.
          (err: unknown) => call.emit('error', fail(err)),
        );
      };
  }
}

function withRequestId(requestId: string): Metadata {
  const md = new Metadata();
  md.set(REQUEST_ID_KEY, requestId);
  return md;
}

/** Writes one message; when the transport's buffer is full, waits for it to drain (or the call to end). */
function writeWithBackpressure(
  call: ServerWritableStream<unknown, unknown> | ServerDuplexStream<unknown, unknown>,
  message: unknown,
  signal: AbortSignal,
): Promise<void> {
  if (signal.aborted) return Promise.reject(new RpcError(Status.CANCELLED, 'CANCELLED', 'call cancelled'));
  if (call.write(message)) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const done = (): void => {
      call.removeListener('drain', done);
      signal.removeEventListener('abort', abort);
      resolve();
    };
    const abort = (): void => {
      call.removeListener('drain', done);
      reject(new RpcError(Status.CANCELLED, 'CANCELLED', 'call cancelled'));
    };
    call.once('drain', done);
    signal.addEventListener('abort', abort, { once: true });
  });
}

/** Domain errors keep their code; anything unexpected becomes INTERNAL without leaking internals. */
function toRpcError(err: unknown, log: Logger, requestId: string): RpcError {
  if (err instanceof RpcError) return err;
  log.error({ err }, 'unexpected error in handler');
  return new RpcError(
    Status.INTERNAL,
    'INTERNAL',
    `internal error (request ${requestId}); see the daemon's log`,
    {
      cause: err,
    },
  );
}
