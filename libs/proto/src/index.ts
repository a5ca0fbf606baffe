/**
 * Generated contracts of every Aether API (ts-proto, grpc-js services) and the descriptor image that
 * server reflection serves. Never edit src/gen by hand: change proto/ and run `npm run generate`.
 */
export * as jobsV1 from './gen/aether/jobs/v1/jobs';
export * as artifactsV1 from './gen/aether/artifacts/v1/artifacts';
export * as memoryV1 from './gen/aether/memory/v1/memory';
export * as eventsV1 from './gen/aether/events/v1/events';
export * as metricsV1 from './gen/aether/metrics/v1/metrics';
export * as intentsV1 from './gen/aether/intents/v1/intents';
export * as modelsV1 from './gen/aether/models/v1/models';
export * as healthV1 from './gen/grpc/health/v1/health';
export * as reflectionV1 from './gen/grpc/reflection/v1/reflection';
export * as reflectionV1alpha from './gen/grpc/reflection/v1alpha/reflection';
export * as rpcStatus from './gen/google/rpc/status';
export * as errorDetails from './gen/google/rpc/error_details';
export * as anyV1 from './gen/google/protobuf/any';
export * as timestampV1 from './gen/google/protobuf/timestamp';
export * as durationV1 from './gen/google/protobuf/duration';
export { descriptorSet, DESCRIPTOR_SET_PATH } from './descriptors';
export { timestampFromDate, dateFromTimestamp, durationFromMs, msFromDuration } from './well-known';
export * as governanceV1 from './gen/aether/governance/v1/governance';
export { TERMINAL_JOB_STATES, isTerminalJobState } from './job-states';
export { jobPolicyResource, type PolicyResourceShape } from './policy-resources';
