export {
  AuditLog,
  type AuditLogOptions,
  type AuditLogStats,
  type AuditPending,
  type AppendOptions,
} from './audit-log';
export {
  GENESIS_HASH,
  canonicalJson,
  canonicalRecordBody,
  computeRecordHash,
  type AuditDecision,
  type AuditDecisionInput,
  type AuditEntry,
  type AuditRecord,
  type AuditTimestamp,
  type JsonValue,
} from './record';
export { AuditCorruptError, AuditUnavailableError } from './errors';
export {
  checkpointPayload,
  generateCheckpointKey,
  loadCheckpointKey,
  toPublicKey,
  readCheckpoint,
  verifyCheckpointSignature,
  type Checkpoint,
  type CheckpointFields,
} from './checkpoint';
export {
  verifyAuditLog,
  type BadRecord,
  type VerifyOptions,
  type VerifyProblem,
  type VerifyResult,
} from './verify';
export { matchesFilter, readAuditRecords, type AuditFilter, type ReadAuditOptions } from './reader';
export { listRotated, type RotatedFile } from './files';
