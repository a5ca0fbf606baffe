export { AetherClient, type DaemonName, DAEMONS, type HealthReport } from './aether-client';
export { unaryCall, serverStreamCall, RpcError, type CallOpts } from '@aether/rpc';
