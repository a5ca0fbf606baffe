import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { issueClientCertificate } from '@aether/pki';
import { dateFromTimestamp, durationFromMs, governanceV1, intentsV1, jobsV1 } from '@aether/proto';
import type { RpcError } from '@aether/rpc';
import type { AetherClient } from '@aether/client';
import { Stack } from '../src';

const GiB = 1024 ** 3;
const AURORAD = 'spiffe://aether.local/aurorad';
const ADMIN = 'spiffe://aether.local/admin';
const HOURS_2 = 2 * 3600 * 1000;

const jobSpec = (over: Partial<jobsV1.JobSpec> = {}, res: Partial<jobsV1.Resources> = {}): jobsV1.JobSpec =>
  jobsV1.JobSpec.fromPartial({
    argv: ['/bin/true'],
    network: jobsV1.NetworkMode.NETWORK_MODE_NONE,
    resources: { cpuMillicores: 500, memoryBytes: BigInt(GiB), pidsMax: 100, ...res },
    timeout: durationFromMs(60_000),
    ...over,
  });

const submit = (
  c: AetherClient,
  spec: jobsV1.JobSpec,
  token?: string,
  intentId?: string,
): Promise<RpcError> =>
  c
    .call(c.jobs, 'submitJob', jobsV1.SubmitJobRequest.fromPartial({ spec }), {
      ...(token ? { token } : {}),
      ...(intentId ? { intentId } : {}),
    })
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
    // Defaults a job gets for what its spec leaves unset: 6 GiB is over aurorad's 4 GiB default, so the
    // unset-limits test below needs an approval whatever the host (half of whose memory is the default).
    stack = await new Stack({ jobs: { defaults: { cpuMillicores: 1000, memoryBytes: 6 * GiB } } }).init();
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

  it('denies aurorad host network, naming the policy', async () => {
    const err = await submit(aurorad, jobSpec({ network: jobsV1.NetworkMode.NETWORK_MODE_HOST }));
    expect(err).toMatchObject({ code: status.PERMISSION_DENIED, reason: 'POLICY_DENIED' });
    expect(err.metadata['policy']).toBe('aurorad-job-no-network');
  });

  it('asks a human before aurorad runs a job larger than its defaults (2 hours), naming the policy', async () => {
    const err = await submit(aurorad, jobSpec({ timeout: durationFromMs(HOURS_2) }));
    expect(err).toMatchObject({ code: status.PERMISSION_DENIED, reason: 'APPROVAL_REQUIRED' });
    expect(err.metadata['policy']).toBe('aurorad-submit-job-large');
    expect(err.message).toContain('a human must approve a job larger than');
  });

  it('denies aurorad a 20 GiB job by the resource-bounds policy', async () => {
    const err = await submit(aurorad, jobSpec({}, { memoryBytes: BigInt(20 * GiB) }));
    expect(err).toMatchObject({ code: status.PERMISSION_DENIED, reason: 'POLICY_DENIED' });
    expect(err.metadata['policy']).toBe('aurorad-job-resource-bounds');
  });

  it('does not let an unset limit slip past a bound: defaults are what policy sees', async () => {
    const spec = jobSpec();
    spec.resources = undefined;
    // The configured default memory (6 GiB) is over aurorad's 4 GiB default: not allowed without approval.
    const err = await submit(aurorad, spec);
    expect(err).toMatchObject({ code: status.PERMISSION_DENIED, reason: 'APPROVAL_REQUIRED' });
    expect(err.metadata['policy']).toBe('aurorad-submit-job-large');
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

  it('never widens with a token: host network stays denied, wide limits do not answer the ask', async () => {
    const host = await mint({ actions: ['jobs.SubmitJob'], constraints: { network: 'host' } });
    const err = await submit(aurorad, jobSpec({ network: jobsV1.NetworkMode.NETWORK_MODE_HOST }), host);
    expect(err).toMatchObject({ code: status.PERMISSION_DENIED, reason: 'POLICY_DENIED' });
    expect(err.metadata['policy']).toBe('aurorad-job-no-network');
    const wide = await mint({
      actions: ['jobs.SubmitJob'],
      constraints: { network: 'none', max_cpu_millicores: 8000, max_timeout_seconds: 86400 },
    });
    const asked = await submit(aurorad, jobSpec({ timeout: durationFromMs(HOURS_2) }), wide);
    expect(asked).toMatchObject({ code: status.PERMISSION_DENIED, reason: 'APPROVAL_REQUIRED' });
    expect(asked.metadata['policy']).toBe('aurorad-submit-job-large');
  });

  describe('approval tokens: aurorad runs an asked step a human approved', () => {
    const INTENT = '01japprovedintent000000000';
    const longJob = (): jobsV1.JobSpec => jobSpec({ timeout: durationFromMs(HOURS_2) });
    /** What aurorad mints for itself after `ApproveIntent`: bound to the intent, the action, this job. */
    const approvalToken = async (
      over: Partial<governanceV1.CapabilityToken> = {},
    ): Promise<governanceV1.MintTokenResponse> =>
      aurorad.call(aurorad.tokens, 'mintToken', {
        token: governanceV1.CapabilityToken.fromPartial({
          subject: AURORAD,
          intentId: INTENT,
          actions: ['jobs.SubmitJob'],
          constraints: {
            network: 'none',
            max_cpu_millicores: 500,
            max_memory_bytes: GiB,
            max_pids: 100,
            max_timeout_seconds: 7200,
            allow_devices: false,
            allow_mounts: false,
          },
          onBehalfOf: ADMIN,
          ...over,
        }),
        ttl: durationFromMs(600_000),
      });

    it('lets aurorad submit the 2-hour job with it, audited with the token and the approver', async () => {
      const minted = await approvalToken();
      expect(minted.token).toMatchObject({ subject: AURORAD, intentId: INTENT, onBehalfOf: ADMIN });
      const res = await aurorad.call(
        aurorad.jobs,
        'submitJob',
        jobsV1.SubmitJobRequest.fromPartial({ spec: longJob() }),
        { token: minted.tokenString, intentId: INTENT, requestId: 'gov-approved-1' },
      );
      expect(res.job).toMatchObject({ actor: AURORAD, spec: { intentId: INTENT } });
      const rec = records().find((r) => r['request_id'] === 'gov-approved-1');
      expect(rec).toMatchObject({
        actor: AURORAD,
        action: 'jobs.SubmitJob',
        intent_id: INTENT,
        on_behalf_of: ADMIN,
        token_id: minted.token!.id,
        outcome: 'OK',
        decision: {
          allowed: true,
          effect: 'allow',
          policy_ids: ['aurorad-submit-job-large'],
          reason: expect.stringMatching(
            /^approved by spiffe:\/\/aether\.local\/admin: aurorad asks for a large job/,
          ) as string,
        },
      });
    });

    it('still denies what the approval does not bound: a bigger job than the token allows', async () => {
      const { tokenString } = await approvalToken();
      const err = await submit(
        aurorad,
        jobSpec({ timeout: durationFromMs(HOURS_2) }, { cpuMillicores: 1000 }),
        tokenString,
        INTENT,
      );
      expect(err).toMatchObject({ code: status.PERMISSION_DENIED, reason: 'POLICY_DENIED' });
      expect(err.metadata['policy']).toBe('token-job-cpu');
    });

    it('does not count for another intent: refused outright, or still asked when the token names none', async () => {
      const { tokenString } = await approvalToken();
      const other = await submit(aurorad, longJob(), tokenString, '01jotherintent000000000000');
      expect(other).toMatchObject({ code: status.PERMISSION_DENIED, reason: 'POLICY_DENIED' });
      expect(other.metadata['policy']).toBe('token-intent');
      const unbound = await approvalToken({ intentId: '' });
      expect(unbound.token!.intentId).toBe('');
      expect(await submit(aurorad, longJob(), unbound.tokenString, INTENT)).toMatchObject({
        code: status.PERMISSION_DENIED,
        reason: 'APPROVAL_REQUIRED',
      });
    });

    it('does not count when policy does not let the named approver approve (a user)', async () => {
      const { tokenString } = await approvalToken({ onBehalfOf: 'spiffe://aether.local/users/alice' });
      const err = await submit(aurorad, longJob(), tokenString, INTENT);
      expect(err).toMatchObject({ code: status.PERMISSION_DENIED, reason: 'APPROVAL_REQUIRED' });
      expect(err.metadata['policy']).toBe('aurorad-submit-job-large');
    });

    it('does not count for an action granted by a group: such a token cannot even be minted', async () => {
      const err = (await approvalToken({ actions: ['jobs.*'] }).catch((e: unknown) => e)) as RpcError;
      expect(err).toMatchObject({ code: status.INVALID_ARGUMENT });
      expect(err.message).toContain('token.actions[0]');
      // GovernedPolicy's own check (exact action only) is covered in libs/daemon's unit test.
    });
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
            network: 'none',
            mounts: [],
            devices: [],
            cpuMillicores: 100,
            memoryBytes: 1000,
            pidsMax: 10,
            timeoutSeconds: 7200,
            profile: '',
          },
        },
      }),
    );
    expect(check.decision).toMatchObject({
      effect: governanceV1.PolicyEffect.POLICY_EFFECT_ASK,
      policyIds: ['aurorad-submit-job-large'],
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
