import { join } from 'node:path';
import { aetherdConfigSchema, defaultAetherdConfig } from '@aether/config';
import type { DaemonDefinition } from '@aether/daemon';
import { artifactsV1, eventsV1, governanceV1, jobsV1, memoryV1, metricsV1 } from '@aether/proto';
import { publishRevocations, revocationListPath, TokenRegistry, TokenSigner } from '@aether/tokens';
import { auditServiceHandlers } from './governance/audit-service';
import { policyServiceHandlers } from './governance/policy-service';
import { tokenServiceHandlers } from './governance/token-service';
import { startArtifacts, type JobLookup } from './artifacts/artifacts';
import { jobArtifacts } from './artifacts/job-outputs';
import { startJobs } from './jobs/jobs';
import { startMemory } from './memory/memory';

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
  register: async (server, { config, policy, policyStore, log, audit, auditCheckpoints }) => {
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
    const runner: { lookup?: JobLookup } = {};
    const artifacts = await startArtifacts(config, log, { find: (id) => runner.lookup?.find(id) });
    const jobs = await startJobs(config, log, audit, jobArtifacts(artifacts.store));
    runner.lookup = jobs.lookup;
    const memory = await startMemory(config, log);
    server
      .addService(jobsV1.JobServiceService, jobs.handlers)
      .addService(artifactsV1.ArtifactServiceService, artifacts.handlers)
      .addService(memoryV1.MemoryServiceService, memory.handlers)
      .addService(eventsV1.EventServiceService, {})
      .addService(metricsV1.MetricsServiceService, {})
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
      },
    };
  },
};
