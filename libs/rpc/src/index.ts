export { AetherServer, type AetherServerOptions } from './server';
export {
  createClient,
  clientCredentials,
  serverNameOf,
  unaryCall,
  serverStreamCall,
  clientStreamCall,
  callMetadata,
  type CallOpts,
  type ClientConstructor,
  type ClientFactoryOptions,
} from './client';
export {
  RpcError,
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
  UnauthenticatedError,
  FailedPreconditionError,
  ResourceExhaustedError,
  UnavailableError,
  UnimplementedError,
  AlreadyExistsError,
  Violations,
  ERROR_DOMAIN,
  type FieldViolation,
} from './errors';
export {
  unary,
  serverStream,
  clientStream,
  bidiStream,
  actionName,
  serviceResource,
  type CallContext,
  type ServiceHandlers,
  type UnaryMethod,
  type ServerStreamMethod,
  type ClientStreamMethod,
  type BidiStreamMethod,
} from './pipeline';
export type {
  PolicyHook,
  AuditHook,
  CallObserver,
  Decision,
  Effect,
  FinishedCall,
  ResourceRef,
  PolicyQuery,
  CallRecord,
} from './hooks';
export { type Principal, principalFromCall, principalFromSpiffeId } from './principal';
export { REQUEST_ID_KEY, INTENT_ID_KEY, JOB_ID_KEY, AUTHORIZATION_KEY } from './correlation';
export {
  SocketPathError,
  prepareSocketPath,
  resolveGroupId,
  applySocketPermissions,
  removeSocket,
} from './socket';
export { ReflectionResponder } from './reflection';
export { newId } from './ulid';
export { checkLabels, MAX_LABELS } from './labels';
export { parseLabelSelector } from './label-selector';
export { invalidFields } from './invalid-fields';
