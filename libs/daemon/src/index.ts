export { runDaemon, type DaemonDefinition, type DaemonContext, type Registered, EXIT } from './run-daemon';
export { metricsServiceHandlers } from './metrics-service';
export { prepareAuditCheckpoints, type AuditCheckpointFiles } from './audit-checkpoint';
export { UpstreamWatch } from './upstream';
export {
  GovernedPolicy,
  APPROVE_ACTION,
  fileTokenVerifier,
  type VerifyToken,
  type PolicyTokenClaims,
} from './governed-policy';
