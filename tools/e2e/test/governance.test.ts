import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { totalmem } from 'node:os';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { issueClientCertificate } from '@aether/pki';
import { dateFromTimestamp, durationFromMs, governanceV1, intentsV1, jobsV1 } from '@aether/proto';
import type { RpcError } from '@aether/rpc';
import type { AetherClient } from '@aether/client';
import { Stack } from '../src';

const GiB = 1024 ** 3;
const AURORAD = 'spiffe://aether.local/aurorad';

const jobSpec = (over: Partial<jobsV1.JobSpec> = {}, res: Partial<jobsV1.Resources> = {}): jobsV1.JobSpec =>
  jobsV1.JobSpec.fromPartial({
    argv: ['/bin/true'],
    network: jobsV1.NetworkMode.NETWORK_MODE_NONE,
    resources: { cpuMillicores: 500, memoryBytes: BigInt(GiB), pidsMax: 100, ...res },
    timeout: durationFromMs(60_000),
    ...over,
  });

const submit = (c: AetherClient, spec: jobsV1.JobSpec, token?: string): Promise<RpcError> =>
  c
    .call(c.jobs, 'submitJob', jobsV1.SubmitJobRequest.fromPartial({ spec }), token ? { token } : {})
    .then(() => {
      throw new Error('expected the call to fail');
    })
    .catch((e: RpcError) => e);

/** Submits a job that policy must allow; returns it. */
const submitOk = async (c: AetherClient, spec: jobsV1.JobSpec, token?: string): Promise<jobsV1.Job> =>
  (await c.call(c.jobs, 'submitJob', jobsV1.SubmitJobRequest.fromPartial({ spec }), token ? { token } : {}))
    .job!;

describe('governance: Cedar policy and capability tokens on real daemons', () => {
  let stack: Stack;
  let admin: AetherClient;
  let aurorad: AetherClient;
  let goodPolicyWrittenAt = 0;
  const records = (): Record<string, unknown>[] =>
    readFileSync(stack.auditPath('aetherd'), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);

  beforeAll(async () => {
    stack = await new Stack().init();
    await stack.start('aetherd');
    admin = stack.client();
    aurorad = stack.client('aurorad');
  });
  afterAll(async () => {
    admin.close();
    aurorad.close();
    await stack.close();
  });

  const mint = async (token: Partial<governanceV1.CapabilityToken>, ttlMs = 600_000): Promise<string> => {
    const res = await admin.call(admin.tokens, 'mintToken', {
      token: governanceV1.CapabilityToken.fromPartial({ subject: AURORAD, ...token }),
      ttl: durationFromMs(ttlMs),
    });
    return res.tokenString;
  };

  it('lets aurorad submit a no-network job, recorded with aurorad as its actor', async () => {
    const job = await submitOk(aurorad, jobSpec());
    expect(job.actor).toBe(AURORAD);
    expect(job.name).toMatch(/^jobs\/[0-9a-z]{26}$/);
  });

  it('asks a human before aurorad gets host network, naming the policy', async () => {
    const err = await submit(aurorad, jobSpec({ network: jobsV1.NetworkMode.NETWORK_MODE_HOST }));
    expect(err).toMatchObject({ code: status.PERMISSION_DENIED, reason: 'APPROVAL_REQUIRED' });
    expect(err.metadata['policy']).toBe('aurorad-submit-job-host-network');
  });

  it('denies aurorad a 5 GiB job by the resource-bounds policy', async () => {
    const err = await submit(aurorad, jobSpec({}, { memoryBytes: BigInt(5 * GiB) }));
    expect(err).toMatchObject({ code: status.PERMISSION_DENIED, reason: 'POLICY_DENIED' });
    expect(err.metadata['policy']).toBe('aurorad-job-resource-bounds');
  });

  it('does not let an unset limit slip past a bound: defaults are what policy sees', async () => {
    const spec = jobSpec();
    spec.resources = undefined;
    const err = await submit(aurorad, spec);
    // Half the host's memory by default: over aurorad's 4 GiB bound on any host with more than 8 GiB.
    if (totalmem() > 8 * GiB) {
      expect(err.code).toBe(status.PERMISSION_DENIED);
      expect(err.metadata['policy']).toBe('aurorad-job-resource-bounds');
    }
  });

  it('narrows with a token: an action outside it is denied, a limit over it is denied', async () => {
    const onlyGet = await mint({ actions: ['jobs.GetJob'] });
    expect((await submit(aurorad, jobSpec(), onlyGet)).metadata['policy']).toBe('token-action-scope');
    const small = await mint({
      actions: ['jobs.SubmitJob'],
      constraints: { network: 'none', max_cpu_millicores: 1000 },
    });
    expect((await submitOk(aurorad, jobSpec(), small)).actor).toBe(AURORAD);
    expect((await submit(aurorad, jobSpec({}, { cpuMillicores: 1500 }), small)).metadata['policy']).toBe(
      'token-job-cpu',
    );
  });

  it('never widens with a token: a token that says host network still needs the approval', async () => {
    const wide = await mint({ actions: ['jobs.SubmitJob'], constraints: { network: 'host' } });
    const err = await submit(aurorad, jobSpec({ network: jobsV1.NetworkMode.NETWORK_MODE_HOST }), wide);
    expect(err).toMatchObject({ code: status.PERMISSION_DENIED, reason: 'APPROVAL_REQUIRED' });
  });

  it('refuses an expired token and a revoked one, and another identity presenting it', async () => {
    const shortLived = await mint({ actions: ['jobs.SubmitJob'] }, 1_000);
    await new Promise((r) => setTimeout(r, 2_100));
    expect(await submit(aurorad, jobSpec(), shortLived)).toMatchObject({
      code: status.UNAUTHENTICATED,
      reason: 'TOKEN_EXPIRED',
    });
    const res = await admin.call(admin.tokens, 'mintToken', {
      token: governanceV1.CapabilityToken.fromPartial({ subject: AURORAD, actions: ['jobs.SubmitJob'] }),
    });
    await admin.call(admin.tokens, 'revokeToken', { name: res.token!.name, reason: 'test' });
    expect(await submit(aurorad, jobSpec(), res.tokenString)).toMatchObject({ reason: 'TOKEN_REVOKED' });
    const cfcd = stack.client('cfcd');
    expect(await submit(cfcd, jobSpec(), await mint({ actions: ['jobs.SubmitJob'] }))).toMatchObject({
      reason: 'TOKEN_SUBJECT_MISMATCH',
    });
    cfcd.close();
  });

  it('aurorad refuses a token aetherd has revoked (it learns revocations from the published list)', async () => {
    await stack.start('aurorad');
    const res = await admin.call(admin.tokens, 'mintToken', {
      token: governanceV1.CapabilityToken.fromPartial({
        audience: ['aurorad'],
        actions: ['intents.ListIntents'],
      }),
    });
    const list = (): Promise<RpcError | undefined> =>
      admin
        .call(admin.intents, 'listIntents', intentsV1.ListIntentsRequest.fromPartial({}), {
          token: res.tokenString,
        })
        .then(
          () => undefined,
          (e: RpcError) => e,
        );
    // Accepted: whatever aurorad answers, it is not an authentication failure.
    expect((await list())?.code).not.toBe(status.UNAUTHENTICATED);
    await admin.call(admin.tokens, 'revokeToken', { name: res.token!.name, reason: 'leaked' });
    expect(await list()).toMatchObject({ code: status.UNAUTHENTICATED, reason: 'TOKEN_REVOKED' });
  });

  it('lets aurorad mint tokens only for itself', async () => {
    const err = (await aurorad
      .call(aurorad.tokens, 'mintToken', {
        token: governanceV1.CapabilityToken.fromPartial({
          subject: 'spiffe://aether.local/cfcd',
          actions: ['jobs.GetJob'],
        }),
      })
      .catch((e: unknown) => e)) as RpcError;
    expect(err).toMatchObject({ code: status.PERMISSION_DENIED, reason: 'TOKEN_SUBJECT_NOT_CALLER' });
  });

  it('records the token id and the deciding policy in the audit log', async () => {
    const token = await mint({ actions: ['jobs.SubmitJob'] });
    await aurorad
      .call(aurorad.jobs, 'submitJob', jobsV1.SubmitJobRequest.fromPartial({ spec: jobSpec() }), {
        token,
        requestId: 'gov-audit-1',
      })
      .catch(() => undefined);
    const rec = records().find((r) => r['request_id'] === 'gov-audit-1');
    expect(rec).toBeDefined();
    expect(JSON.stringify(rec)).toContain('aurorad-submit-job');
    expect(rec?.['token_id']).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('keeps the old policy when a bad file arrives, and applies a good one without a restart', async () => {
    const alice = await issueClientCertificate(join(stack.dir, 'pki'), 'alice');
    const aliceClient = stack.client();
    for (const d of ['aetherd', 'aurorad', 'cfcd'] as const) {
      aliceClient.config[d] = { ...aliceClient.config[d], certFile: alice.certPath, keyFile: alice.keyPath };
    }
    const getJob = (): Promise<RpcError> =>
      aliceClient
        .call(aliceClient.jobs, 'getJob', { name: 'jobs/01aaaaaaaaaaaaaaaaaaaaaaaa' })
        .catch((e: RpcError) => e) as Promise<RpcError>;
    expect((await getJob()).code).toBe(status.PERMISSION_DENIED);

    const aetherd = stack.daemons.get('aetherd')!;
    writeFileSync(
      join(stack.policyDir, 'broken.cedar'),
      'permit (principal, action, resource) when { nonsense ;\n',
    );
    const rejected = await aetherd.waitForLog((l) => String(l['msg']).startsWith('policy reload rejected'));
    expect(String(rejected['msg'])).toContain('broken.cedar:1:');
    expect((await getJob()).code).toBe(status.PERMISSION_DENIED);

    rmSync(join(stack.policyDir, 'broken.cedar'));
    goodPolicyWrittenAt = Date.now();
    writeFileSync(
      join(stack.policyDir, 'local.cedar'),
      '@id("local-users-read-jobs")\npermit (principal in Aether::Group::"users", action == Aether::Action::"jobs.GetJob", resource);\n',
    );
    await aetherd.waitForLog((l) => l['msg'] === 'policy reloaded', 15_000);
    // Allowed now: the job does not exist, which only an allowed caller may learn.
    expect((await getJob()).code).toBe(status.NOT_FOUND);
    aliceClient.close();
  });

  it('explains, lists and verifies through the governance API', async () => {
    const check = await admin.call(
      admin.policy,
      'checkPolicy',
      governanceV1.CheckPolicyRequest.fromPartial({
        principal: 'aurorad',
        action: 'jobs.SubmitJob',
        resource: {
          type: 'job',
          attributes: {
            network: 'host',
            mounts: [],
            devices: [],
            cpuMillicores: 100,
            memoryBytes: 1000,
            pidsMax: 10,
            timeoutSeconds: 60,
            profile: '',
          },
        },
      }),
    );
    expect(check.decision).toMatchObject({
      effect: governanceV1.PolicyEffect.POLICY_EFFECT_ASK,
      policyIds: ['aurorad-submit-job-host-network'],
    });
    const set = await admin.call(admin.policy, 'getPolicySet', {});
    expect(set.policyCount).toBeGreaterThan(10);
    // The set in force is the one reloaded in the previous test, and says when it was loaded.
    expect(set.files.flatMap((f) => f.policyIds)).toContain('local-users-read-jobs');
    expect(dateFromTimestamp(set.loadTime!).getTime()).toBeGreaterThanOrEqual(goodPolicyWrittenAt);
    const denied = await admin.call(
      admin.audit,
      'listAuditRecords',
      governanceV1.ListAuditRecordsRequest.fromPartial({ filter: { deniedOnly: true }, pageSize: 500 }),
    );
    expect(denied.records.length).toBeGreaterThan(0);
    expect(denied.records.every((r) => r.decision?.allowed === false)).toBe(true);
    const verified = await admin.call(admin.audit, 'verifyAuditLog', {});
    expect(verified.valid).toBe(true);
    expect(Number(verified.recordsChecked)).toBeGreaterThan(5);
  });
});
