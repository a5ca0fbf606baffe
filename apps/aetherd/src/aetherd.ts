import { defaultServerConfig, serverConfigSchema } from '@aether/config';
import type { DaemonDefinition } from '@aether/daemon';
import { artifactsV1, eventsV1, governanceV1, jobsV1, memoryV1, metricsV1 } from '@aether/proto';

/**
 * aetherd, the substrate: jobs, artifacts, memory, events, metrics and governance (policy, tokens,
 * audit) behind one policy-enforcing
 * pipeline. Each API answers UNIMPLEMENTED (after authentication, policy and audit) until its issue lands.
 */
export const aetherd: DaemonDefinition<typeof serverConfigSchema> = {
  name: 'aetherd',
  description:
    'Aether substrate daemon: sandboxed jobs, content-addressed artifacts, memory with cited search, events and metrics over mTLS gRPC on a Unix socket.',
  schema: serverConfigSchema,
  defaults: () => defaultServerConfig('aetherd'),
  envPrefix: 'AETHERD',
  policyRules: ({ tls: { trustDomain: td } }) => [
    { id: 'admin-all', principals: [`spiffe://${td}/admin`], actions: ['*'] },
    {
      id: 'aurorad-substrate',
      principals: [`spiffe://${td}/aurorad`],
      actions: ['jobs.*', 'artifacts.*', 'memory.*', 'events.*', 'metrics.GetMetrics'],
    },
    {
      id: 'cfcd-substrate',
      principals: [`spiffe://${td}/cfcd`],
      actions: ['jobs.*', 'artifacts.*', 'memory.*', 'events.EmitEvent'],
    },
  ],
  register: (server) => {
    server
      .addService(jobsV1.JobServiceService, {})
      .addService(artifactsV1.ArtifactServiceService, {})
      .addService(memoryV1.MemoryServiceService, {})
      .addService(eventsV1.EventServiceService, {})
      .addService(metricsV1.MetricsServiceService, {})
      .addService(governanceV1.PolicyServiceService, {})
      .addService(governanceV1.TokenServiceService, {})
      .addService(governanceV1.AuditServiceService, {});
    return Promise.resolve({});
  },
};
