import { join } from 'node:path';
import { aetherdConfigSchema, defaultAetherdConfig } from '@aether/config';
import type { DaemonDefinition } from '@aether/daemon';
import { artifactsV1, governanceV1, jobsV1, memoryV1 } from '@aether/proto';
import { publishRevocations, revocationListPath, TokenRegistry, TokenSigner } from '@aether/tokens';
import { auditServiceHandlers } from './governance/audit-service';
import { policyServiceHandlers } from './governance/policy-service';
import { tokenServiceHandlers } from './governance/token-service';
import { startArtifacts, type JobLookup } from './artifacts/artifacts';
import { artifactMetrics } from './artifacts/artifact-metrics';
import { jobArtifacts } from './artifacts/job-outputs';
import { startJobs } from './jobs/jobs';
import { JobMetrics } from './jobs/job-metrics';
import { startMemory } from './memory/memory';
import { MemoryMetrics } from './memory/memory-metrics';
import { startEvents } from './events/events';
import { watchForEvents } from './events/own-events';

/**
 * aetherd, the substrate: jobs, artifacts, memory, events, metrics and governance (policy, tokens,
 * audit) behind one policy-enforcing pipeline. APIs whose capability has not landed answer
 * UNIMPLEMENTED (after authentication, policy and audit).
 */
export const aetherd: DaemonDefinition<typeof aetherdConfigSchema> = {
  name: 'aetherd',
  description:
    'Aether substrate daemon: sandboxed jobs, content-addressed artifacts, memory with cited search, events and metrics over mTLS gRPC on a Unix socket.',
  schema: aetherdConfigSchema,
  defaults: defaultAetherdConfig,
  envPrefix: 'AETHERD',
  register: async (server, { config, policy, policyStore, log, audit, auditCheckpoints, metrics }) => {
    const signer = await TokenSigner.fromKeyFile(config.tokens.signingKeyFile, config.tokens.issuer);
    signer.publishPublicKey(config.tokens.publicKeyFile);
    const registry = TokenRegistry.open(join(config.stateDir, 'tokens', 'registry.jsonl'));
    const verifier = await signer.verifier();
    // aurorad and cfcd verify tokens offline: they learn revocations from this list beside the key.
    const revocationList = revocationListPath(config.tokens.publicKeyFile);
    const publishRevoked = (): void => publishRevocations(revocationList, registry.liveRevocations());
    publishRevoked();
    policy.useVerifier((token, presenter) =>
      verifier.verify(token, { audience: 'aetherd', presenter, isRevoked: (id) => registry.isRevoked(id) }),
    );
    log.info({ publicKeyFile: config.tokens.publicKeyFile }, 'capability tokens: signing key ready');
    // The artifact store and the job runner need each other: jobs bind input artifacts and register
    // outputs; CreateArtifact checks a producing job. The store opens first (a job that ended while
    // aetherd was down registers its outputs during the runner's start-up reconciliation).
    // The event stream opens first: the others report into it from their start-up on.
    const events = startEvents(config, log);
    const emit = events.hub.sink;
    watchForEvents(server, policyStore, emit);
    server.onStopping(() => events.hub.shutdown());
    const runner: { lookup?: JobLookup } = {};
    const artifacts = await startArtifacts(config, log, { find: (id) => runner.lookup?.find(id) }, emit);
    const jobs = await startJobs(config, log, audit, jobArtifacts(artifacts.store), emit);
    runner.lookup = jobs.lookup;
    const memory = await startMemory(config, log, emit);
    new JobMetrics(metrics, jobs.manager.store, config.jobs.maxConcurrent);
    metrics.section('artifacts', () => artifactMetrics(artifacts.store, config.artifacts.quotaBytes));
    new MemoryMetrics(metrics, memory.store, memory.search);
    metrics.section('events', () => events.hub.metrics());
    server
      .addService(jobsV1.JobServiceService, jobs.handlers)
      .addService(artifactsV1.ArtifactServiceService, artifacts.handlers)
      .addService(memoryV1.MemoryServiceService, memory.handlers)
      .addService(events.definition, events.handlers)
      .addService(
        governanceV1.PolicyServiceService,
        policyServiceHandlers(policyStore, config.tls.trustDomain),
      )
      .addService(
        governanceV1.TokenServiceService,
        tokenServiceHandlers(signer, registry, config.tokens.defaultTtlSeconds, publishRevoked),
      )
      .addService(governanceV1.AuditServiceService, auditServiceHandlers(config.auditLog, auditCheckpoints));
    return {
      close: async () => {
        await jobs.close();
        await Promise.all([artifacts.close(), memory.close()]);
        await events.close();
      },
    };
  },
};
