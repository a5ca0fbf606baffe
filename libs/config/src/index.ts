export { loadConfig, type ConfigSources, envVarName, leafPaths } from './load-config';
export { ConfigError, type ConfigIssue } from './config-error';
export {
  serverConfigSchema,
  clientEndpointSchema,
  type ServerConfig,
  type ClientEndpointConfig,
  defaultServerConfig,
  DEFAULT_TRUST_DOMAIN,
  socketModeSchema,
} from './schemas';
export { parseMetricsListen, type MetricsListen } from './metrics-listen';
export { loadClientConfig, defaultClientConfigPath, type ClientConfig } from './client-config';
export { peerDaemonConfigSchema, defaultPeerDaemonConfig, type PeerDaemonConfig } from './peer';
export { aetherdConfigSchema, defaultAetherdConfig, type AetherdConfig } from './aetherd';
export {
  jobsConfigSchema,
  defaultJobsConfig,
  sandboxProfileSchema,
  type JobsConfig,
  type SandboxProfileConfig,
} from './jobs';
export {
  artifactsConfigSchema,
  defaultArtifactsConfig,
  memoryConfigSchema,
  defaultMemoryConfig,
  eventsConfigSchema,
  defaultEventsConfig,
  type ArtifactsConfig,
  type MemoryConfig,
  type EventsConfig,
} from './storage';
export {
  auroradConfigSchema,
  auroraConfigSchema,
  intentLimitsSchema,
  defaultAuroradConfig,
  defaultAuroraConfig,
  type AuroradConfig,
  type AuroraConfig,
  type IntentLimits,
} from './aurora';
export {
  cfcdConfigSchema,
  cfcdSettingsSchema,
  generationEndpointSchema,
  inferenceSettingsSchema,
  defaultCfcdConfig,
  MODEL_ID_PATTERN,
  TEMPLATE_NAME_PATTERN,
  referenceTrainingTemplate,
  referenceEvaluationTemplate,
  trainingTemplateSchema,
  type TrainingTemplateConfig,
  type CfcdConfig,
  type CfcdSettings,
  type GenerationEndpointConfig,
  type InferenceSettings,
} from './cfcd';
