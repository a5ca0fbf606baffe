export {
  TokenSigner,
  TokenVerifier,
  TokenError,
  type CapabilityClaims,
  type TokenConstraints,
  type MintInput,
  type TokenErrorReason,
  MAX_TOKEN_TTL_SECONDS,
} from './capability-token';
export { TokenRegistry, type TokenEntry } from './token-registry';
export {
  revocationListPath,
  publishRevocations,
  RevocationListReader,
  type RevocationEntry,
} from './revocations';
