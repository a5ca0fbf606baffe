import { copyFileSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PolicyEngine } from '@aether/policy';
import { RpcError, type PolicyQuery } from '@aether/rpc';
import { TokenSigner, type MintInput } from '@aether/tokens';
import { GovernedPolicy, type VerifyToken } from './governed-policy';

const SHIPPED_DIR = join(__dirname, '../../../deploy/policy');
const TD = 'aether.local';
const AURORAD = `spiffe://${TD}/aurorad`;
const ADMIN = `spiffe://${TD}/admin`;
const GiB = 1024 ** 3;
const LARGE_ASK =
  "aurorad asks for a large job; a human must approve a job larger than aurorad's defaults (2 CPUs, 4 GiB, 1024 pids, 1 h)";

/** The job aetherd's SubmitJob puts to policy: no network, 2 hours (over aurorad's 1 h default). */
const job = (over: Record<string, unknown> = {}): PolicyQuery['resource'] => ({
  type: 'job',
  id: '',
  attributes: {
    network: 'none',
    mounts: [],
    devices: [],
    cpuMillicores: 1000,
    memoryBytes: GiB,
    pidsMax: 100,
    timeoutSeconds: 7200,
    profile: '',
    ...over,
  },
});

/** An approval token as aurorad mints it for an approved step: bounding exactly that job. */
const approval: Omit<MintInput, 'ttlSeconds'> = {
  subject: AURORAD,
  audience: ['aetherd'],
  intentId: 'intent-x',
  actions: ['jobs.SubmitJob'],
  constraints: {
    network: 'none',
    maxCpuMillicores: 1000,
    maxMemoryBytes: GiB,
    maxPidsMax: 100,
    maxTimeoutSeconds: 7200,
    allowDevices: false,
    allowMounts: false,
  },
  onBehalfOf: ADMIN,
};

describe('GovernedPolicy over the shipped policy', () => {
  const dir = mkdtempSync(join(tmpdir(), 'aether-governed-'));
  let signer: TokenSigner;
  let verify: VerifyToken;
  const engine = PolicyEngine.fromDirectory(SHIPPED_DIR);
  let policy: GovernedPolicy;

  beforeAll(async () => {
    signer = await TokenSigner.fromKeyFile(join(dir, 'signing.key'), `spiffe://${TD}/aetherd`);
    const verifier = await signer.verifier();
    verify = (token, presenter) => verifier.verify(token, { audience: 'aetherd', presenter });
    policy = new GovernedPolicy(engine, verify);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** The approval token with some claims replaced (`undefined` leaves a claim out). */
  const mint = async (
    over: { [K in keyof typeof approval]?: (typeof approval)[K] | undefined } = {},
  ): Promise<string> => (await signer.mint({ ...approval, ...over, ttlSeconds: 600 } as MintInput)).token;

  const submit = (
    resource: PolicyQuery['resource'],
    context: { intentId?: string; bearerToken?: string } = {},
    path = 'aurorad',
  ): PolicyQuery => ({
    principal: {
      id: `spiffe://${TD}/${path}`,
      trustDomain: TD,
      name: path,
      authenticatedBy: 'certificate',
    },
    action: 'jobs.SubmitJob',
    resource,
    context: { requestId: 'req-1', ...context },
  });

  it('asks for a human approval of a 2-hour job when no token comes with it', async () => {
    expect(await policy.decide(submit(job(), { intentId: 'intent-x' }))).toEqual({
      effect: 'ask',
      policyIds: ['aurorad-submit-job-large'],
      reason: LARGE_ASK,
      policySetHash: engine.hash,
    });
  });

  it('allows the asked step for an approval token: its intent, its exact action, an admin approver', async () => {
    const token = await mint();
    const d = await policy.decide(submit(job(), { intentId: 'intent-x', bearerToken: token }));
    expect(d).toEqual({
      effect: 'allow',
      policyIds: ['aurorad-submit-job-large'],
      reason: `approved by ${ADMIN}: ${LARGE_ASK}`,
      policySetHash: engine.hash,
      tokenId: expect.stringMatching(/^[0-9a-f-]{36}$/) as string,
      onBehalfOf: ADMIN,
      approvedBy: ADMIN,
    });
    const carol = `spiffe://${TD}/admins/carol`;
    const byCarol = await mint({ onBehalfOf: carol });
    expect(await policy.decide(submit(job(), { intentId: 'intent-x', bearerToken: byCarol }))).toMatchObject({
      effect: 'allow',
      approvedBy: carol,
    });
  });

  it('keeps the ask for a token bound to no intent; one bound to another intent is denied outright', async () => {
    const unbound = await mint({ intentId: undefined });
    expect(await policy.decide(submit(job(), { intentId: 'intent-x', bearerToken: unbound }))).toMatchObject({
      effect: 'ask',
      policyIds: ['aurorad-submit-job-large'],
    });
    // A token bound to one intent used for another is refused outright by token-intent.
    const token = await mint();
    expect(await policy.decide(submit(job(), { intentId: 'intent-y', bearerToken: token }))).toMatchObject({
      effect: 'deny',
      policyIds: ['token-intent'],
    });
    expect(await policy.decide(submit(job(), { bearerToken: token }))).toMatchObject({
      effect: 'deny',
      policyIds: ['token-intent'],
    });
  });

  it('keeps the ask when the token grants the action only by a group or "*"', async () => {
    for (const actions of [['jobs.*'], ['jobs.write'], ['*'], ['jobs.GetJob', 'jobs.*']]) {
      const token = await mint({ actions });
      const d = await policy.decide(submit(job(), { intentId: 'intent-x', bearerToken: token }));
      expect([actions, d.effect, d.approvedBy]).toEqual([actions, 'ask', undefined]);
    }
  });

  it('keeps the ask when policy does not let the named approver approve, or it is no identity of ours', async () => {
    for (const onBehalfOf of [
      `spiffe://${TD}/users/alice`,
      `spiffe://${TD}/cfcd`,
      AURORAD,
      'spiffe://elsewhere.example/admin',
      'admin',
      `spiffe://${TD}/admins/..`,
      '',
    ]) {
      const token = await mint({ onBehalfOf });
      const d = await policy.decide(submit(job(), { intentId: 'intent-x', bearerToken: token }));
      expect([onBehalfOf, d.effect, d.approvedBy]).toEqual([onBehalfOf, 'ask', undefined]);
    }
  });

  it('never lifts a forbid: the token limits, host network and the ceiling still deny', async () => {
    const token = await mint({ constraints: { ...approval.constraints, maxCpuMillicores: 2000 } });
    expect(
      await policy.decide(submit(job({ cpuMillicores: 4000 }), { intentId: 'intent-x', bearerToken: token })),
    ).toMatchObject({ effect: 'deny', policyIds: ['token-job-cpu'] });
    const wide = await mint({ constraints: {} });
    expect(
      await policy.decide(submit(job({ network: 'host' }), { intentId: 'intent-x', bearerToken: wide })),
    ).toMatchObject({ effect: 'deny', policyIds: ['aurorad-job-no-network'] });
    expect(
      await policy.decide(
        submit(job({ memoryBytes: 20 * GiB }), { intentId: 'intent-x', bearerToken: wide }),
      ),
    ).toMatchObject({ effect: 'deny', policyIds: ['aurorad-job-resource-bounds'] });
  });

  it('leaves an allow as it is, recording on whose behalf the token was minted', async () => {
    const token = await mint({ onBehalfOf: `spiffe://${TD}/users/alice` });
    const d = await policy.decide(
      submit(job({ timeoutSeconds: 600 }), { intentId: 'intent-x', bearerToken: token }),
    );
    expect(d).toMatchObject({
      effect: 'allow',
      policyIds: ['aurorad-submit-job'],
      reason: 'permitted by aurorad-submit-job',
      onBehalfOf: `spiffe://${TD}/users/alice`,
    });
    expect(d.approvedBy).toBeUndefined();
  });

  it('refuses a token presented by another identity as UNAUTHENTICATED, before any approval', async () => {
    const token = await mint();
    const err = await policy
      .decide(submit(job(), { intentId: 'intent-x', bearerToken: token }, 'cfcd'))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RpcError);
    expect(err).toMatchObject({ reason: 'TOKEN_SUBJECT_MISMATCH' });
  });

  describe('with a set that lets one user approve, another only with an approval of their own', () => {
    const setDir = mkdtempSync(join(tmpdir(), 'aether-governed-set-'));
    for (const f of readdirSync(SHIPPED_DIR)) copyFileSync(join(SHIPPED_DIR, f), join(setDir, f));
    writeFileSync(
      join(setDir, 'approvers.cedar'),
      [
        '@id("bob-approves")',
        'permit (principal == Aether::Identity::"spiffe://aether.local/users/bob",',
        '  action == Aether::Action::"intents.ApproveIntent", resource == Aether::Service::"intents");',
        '@id("dave-approves-with-approval")',
        '@ask("dave\'s approvals need an admin")',
        'permit (principal == Aether::Identity::"spiffe://aether.local/users/dave",',
        '  action == Aether::Action::"intents.ApproveIntent", resource);',
        '',
      ].join('\n'),
    );
    const custom = PolicyEngine.fromDirectory(setDir);
    afterAll(() => rmSync(setDir, { recursive: true, force: true }));

    it('counts an approver whom policy allows ApproveIntent on the intents service, and only that', async () => {
      const governed = new GovernedPolicy(custom, verify);
      const bob = await mint({ onBehalfOf: `spiffe://${TD}/users/bob` });
      expect(await governed.decide(submit(job(), { intentId: 'intent-x', bearerToken: bob }))).toMatchObject({
        effect: 'allow',
        approvedBy: `spiffe://${TD}/users/bob`,
      });
      const dave = await mint({ onBehalfOf: `spiffe://${TD}/users/dave` });
      expect(await governed.decide(submit(job(), { intentId: 'intent-x', bearerToken: dave }))).toMatchObject(
        { effect: 'ask' },
      );
    });
  });
});
