export { AetherClient, type DaemonName, DAEMONS, type HealthReport } from './aether-client';
export { unaryCall, serverStreamCall, clientStreamCall, RpcError, type CallOpts } from '@aether/rpc';
