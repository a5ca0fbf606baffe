export { runDaemon, type DaemonDefinition, type DaemonContext, type Registered, EXIT } from './run-daemon';
export { UpstreamWatch } from './upstream';
