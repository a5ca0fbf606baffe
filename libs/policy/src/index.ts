export {
  PolicyEngine,
  type Evaluation,
  type PolicyEngineOptions,
  type PolicyEvaluationError,
} from './policy-engine';
export { PolicyStore, type PolicyStoreOptions, type ReloadResult } from './policy-store';
export { PolicyLoadError, formatPolicyErrors } from './errors';
export {
  explain,
  queryFromArgs,
  validatePolicyDir,
  type Explanation,
  type PolicyCheckArgs,
  type PolicyDirValidation,
} from './policy-tools';
export { groupOf, PolicyQueryError, RESOURCE_TYPES } from './cedar-request';
export { DEFAULT_DENY, ENGINE_ERROR, policySetHash, type PolicySourceFile } from './policy-set-compiler';
export type {
  Decision,
  Effect,
  PolicyContext,
  PolicyFileError,
  PolicyInfo,
  PolicyPrincipal,
  PolicyQuery,
  PolicyResource,
  TokenClaims,
  TokenConstraints,
} from './types';
