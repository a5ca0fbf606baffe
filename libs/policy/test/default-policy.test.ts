import { PolicyEngine, validatePolicyDir, type Decision, type TokenClaims } from '@aether/policy';
import { GiB, SHIPPED_DIR, job, query } from './support';

describe('the shipped default policy (deploy/policy)', () => {
  const engine = PolicyEngine.fromDirectory(SHIPPED_DIR);
  const decide = (...args: Parameters<typeof query>): Decision => engine.decide(query(...args));
  const token = (claims: Partial<TokenClaims> = {}): TokenClaims => ({
    id: 'tok-1',
    subject: 'spiffe://aether.local/aurorad',
    actions: ['*'],
    constraints: {},
    ...claims,
  });

  it('loads and validates against the schema in strict mode, every policy with a unique @id', () => {
    const result = validatePolicyDir(SHIPPED_DIR);
    expect(result).toMatchObject({ ok: true, errors: [] });
    expect(result.hash).toMatch(/^[0-9a-f]{16}$/);
    expect(result.hash).toBe(engine.hash);
    expect(new Set(result.policyIds).size).toBe(result.policyIds.length);
    expect(result.policyIds).toEqual(engine.policyIds);
    expect(engine.policies.every((p) => !p.id.includes(':'))).toBe(true);
  });

  it('denies an identity that no policy names, with default-deny and the policy set hash', () => {
    for (const path of ['stranger', 'local-socket', 'users', 'admins', 'aurorad/extra']) {
      expect(decide(path, 'jobs.ListJobs')).toEqual({
        effect: 'deny',
        policyIds: ['default-deny'],
        reason: `no policy permits spiffe://aether.local/${path} to jobs.ListJobs`,
        policySetHash: engine.hash,
      });
    }
  });

  it('lets aurorad submit a sandboxed job with no network within its defaults', () => {
    expect(decide('aurorad', 'jobs.SubmitJob', job())).toMatchObject({
      effect: 'allow',
      policyIds: ['aurorad-submit-job'],
      reason: 'permitted by aurorad-submit-job',
    });
    const atTheBounds = job({
      cpuMillicores: 2000,
      memoryBytes: 4 * GiB,
      pidsMax: 1024,
      timeoutSeconds: 3600,
    });
    expect(decide('aurorad', 'jobs.SubmitJob', atTheBounds).effect).toBe('allow');
  });

  it('denies aurorad host network by aurorad-job-no-network, within its defaults or not', () => {
    for (const wanted of [{ network: 'host' }, { network: 'host', timeoutSeconds: 7200 }]) {
      expect(decide('aurorad', 'jobs.SubmitJob', job(wanted))).toMatchObject({
        effect: 'deny',
        policyIds: ['aurorad-job-no-network'],
        reason: 'aurorad jobs get no network',
      });
    }
    const unstated = job();
    delete unstated.attributes?.['network'];
    expect(decide('aurorad', 'jobs.SubmitJob', unstated).policyIds).toEqual(['aurorad-job-no-network']);
  });

  it('asks for a human approval when aurorad wants more than its defaults, up to the ceiling', () => {
    const large = {
      effect: 'ask',
      policyIds: ['aurorad-submit-job-large'],
      reason:
        "aurorad asks for a large job; a human must approve a job larger than aurorad's defaults (2 CPUs, 4 GiB, 1024 pids, 1 h)",
    };
    for (const over of [
      { cpuMillicores: 2001 },
      { memoryBytes: 4 * GiB + 1 },
      { pidsMax: 1025 },
      { timeoutSeconds: 3601 },
      { timeoutSeconds: 7200 },
    ]) {
      expect([over, decide('aurorad', 'jobs.SubmitJob', job(over))]).toMatchObject([over, large]);
    }
    const atTheCeiling = job({
      cpuMillicores: 8000,
      memoryBytes: 16 * GiB,
      pidsMax: 4096,
      timeoutSeconds: 86400,
    });
    expect(decide('aurorad', 'jobs.SubmitJob', atTheCeiling)).toMatchObject(large);
  });

  it('denies aurorad a job over the ceiling by aurorad-job-resource-bounds, approval or not', () => {
    expect(decide('aurorad', 'jobs.SubmitJob', job({ memoryBytes: 20 * GiB }))).toMatchObject({
      effect: 'deny',
      policyIds: ['aurorad-job-resource-bounds'],
      reason: 'aurorad jobs are limited to 8000 millicores, 16 GiB of memory, 4096 pids and 86400 s',
    });
    for (const over of [{ cpuMillicores: 8001 }, { pidsMax: 4097 }, { timeoutSeconds: 86401 }]) {
      expect(decide('aurorad', 'jobs.SubmitJob', job(over)).policyIds).toEqual([
        'aurorad-job-resource-bounds',
      ]);
    }
    // Every forbid that holds is named.
    expect(
      decide('aurorad', 'jobs.SubmitJob', job({ network: 'host', memoryBytes: 64 * GiB })).policyIds,
    ).toEqual(['aurorad-job-no-network', 'aurorad-job-resource-bounds']);
  });

  it('denies aurorad GPU devices, host mounts and unsandboxed profiles, each by its policy', () => {
    expect(decide('aurorad', 'jobs.SubmitJob', job({ devices: ['nvidia.com/gpu=0'] }))).toMatchObject({
      effect: 'deny',
      policyIds: ['aurorad-job-no-devices'],
    });
    expect(
      decide('aurorad', 'jobs.SubmitJob', job({ mounts: [{ hostPath: '/data', readOnly: true }] })).policyIds,
    ).toEqual(['aurorad-job-no-host-mounts']);
    expect(decide('aurorad', 'jobs.SubmitJob', job({ profile: 'unconfined' })).policyIds).toEqual([
      'aurorad-job-default-sandbox',
    ]);
  });

  it('denies a job spec that leaves out a bounded attribute, rather than assuming it is small', () => {
    const partial = job();
    delete partial.attributes?.['memoryBytes'];
    expect(decide('aurorad', 'jobs.SubmitJob', partial)).toMatchObject({
      effect: 'deny',
      policyIds: ['aurorad-job-resource-bounds'],
    });
    expect(decide('aurorad', 'jobs.SubmitJob').policyIds).toEqual(['default-deny']);
  });

  it('lets cfcd run larger GPU jobs but never with host network, other devices or beyond its bounds', () => {
    const training = job({
      devices: ['nvidia.com/gpu=0', 'nvidia.com/gpu=1'],
      cpuMillicores: 8000,
      memoryBytes: 64 * GiB,
      timeoutSeconds: 86400,
    });
    expect(decide('cfcd', 'jobs.SubmitJob', training)).toMatchObject({
      effect: 'allow',
      policyIds: ['cfcd-submit-job'],
    });
    expect(decide('cfcd', 'jobs.SubmitJob', job({ network: 'host' })).policyIds).toEqual([
      'cfcd-job-no-host-network',
    ]);
    expect(decide('cfcd', 'jobs.SubmitJob', job({ devices: ['/dev/kvm'] })).policyIds).toEqual([
      'cfcd-job-gpu-devices-only',
    ]);
    expect(decide('cfcd', 'jobs.SubmitJob', job({ memoryBytes: 65 * GiB })).policyIds).toEqual([
      'cfcd-job-resource-bounds',
    ]);
  });

  it('lets an admin do anything, on every daemon', () => {
    const wide = job({
      network: 'host',
      devices: ['nvidia.com/gpu=0'],
      memoryBytes: 512 * GiB,
      profile: 'x',
    });
    for (const [action, resource] of [
      ['jobs.SubmitJob', wide],
      ['jobs.DeleteJob', { type: 'job', id: 'j1' }],
      ['governance.MintToken', undefined],
      ['governance.ReloadPolicy', undefined],
      ['intents.ApproveIntent', undefined],
      ['models.StartTraining', { ...job({ devices: ['nvidia.com/gpu=0'] }), id: 'new' }],
      ['memory.DeleteEntry', { type: 'memory_entry', id: 'm1', attributes: { tags: ['x'] } }],
    ] as const) {
      expect(decide('admin', action, resource)).toMatchObject({ effect: 'allow', policyIds: ['admins-all'] });
    }
    expect(decide('admins/carol', 'governance.VerifyAuditLog').effect).toBe('allow');
  });

  it('gives aurorad exactly its share of jobs, memory, artifacts, events, metrics and models', () => {
    const allowed = [
      'jobs.GetJob',
      'jobs.ListJobs',
      'jobs.WaitJob',
      'jobs.StreamJobLogs',
      'jobs.StopJob',
      'jobs.KillJob',
      'jobs.CancelJob',
      'memory.Search',
      'memory.AddEntry',
      'memory.UpdateEntry',
      'artifacts.GetArtifact',
      'artifacts.ReadArtifact',
      'artifacts.UploadArtifact',
      'metrics.GetMetrics',
      'models.Infer',
      'grpc.health.v1.Health.Check',
    ];
    for (const action of allowed)
      expect([action, decide('aurorad', action).effect]).toEqual([action, 'allow']);
    // Training is policed as the job it would submit: on CPU yes, GPUs no.
    expect(decide('aurorad', 'models.StartTraining', { ...job(), id: 'new' })).toMatchObject({
      effect: 'allow',
      policyIds: ['aurorad-models'],
    });
    expect(
      decide('aurorad', 'models.StartTraining', { ...job({ devices: ['nvidia.com/gpu=0'] }), id: 'new' }),
    ).toMatchObject({ effect: 'deny', policyIds: ['aurorad-training-no-gpu'] });
    const denied = [
      'jobs.DeleteJob',
      'jobs.SignalJob',
      'memory.DeleteEntry',
      'artifacts.DeleteArtifact',
      'events.Subscribe',
      'governance.RevokeToken',
      'governance.CheckPolicy',
      'intents.SubmitIntent',
    ];
    for (const action of denied)
      expect([action, decide('aurorad', action).policyIds]).toEqual([action, ['default-deny']]);
    // Events: only its own namespace, for a single event or a batch.
    const events = (
      ...types: string[]
    ): { type: string; id: string; attributes: Record<string, unknown> } => ({
      type: 'event',
      id: 'new',
      attributes: { types, namespaces: [...new Set(types.map((t) => t.split('.')[0]))] },
    });
    expect(decide('aurorad', 'events.EmitEvent', events('intent.step_changed')).policyIds).toEqual([
      'aurorad-events-emit',
    ]);
    expect(
      decide('aurorad', 'events.BatchEmitEvents', events('intent.step_changed', 'intent.state_changed'))
        .effect,
    ).toBe('allow');
    expect(decide('aurorad', 'events.EmitEvent', events('training.state_changed')).effect).toBe('deny');
    expect(
      decide('aurorad', 'events.BatchEmitEvents', events('intent.step_changed', 'model.loaded')).effect,
    ).toBe('deny');
    expect(decide('cfcd', 'events.EmitEvent', events('training.metrics')).policyIds).toEqual([
      'cfcd-events-emit',
    ]);
    expect(decide('cfcd', 'events.EmitEvent', events('intent.step_changed')).effect).toBe('deny');
    // Approvals need tokens: aurorad mints its own (aetherd refuses other subjects for non-admins).
    expect(decide('aurorad', 'governance.MintToken').policyIds).toEqual(['aurorad-mint-own-tokens']);
    const artifact = (type: string): { type: string; id: string; attributes: Record<string, unknown> } => ({
      type: 'artifact',
      id: '',
      attributes: { type, sizeBytes: 1000 },
    });
    expect(decide('aurorad', 'artifacts.CreateArtifact', artifact('report')).effect).toBe('allow');
    expect(decide('aurorad', 'artifacts.CreateArtifact', artifact('model')).effect).toBe('deny');
    expect(
      decide('aurorad', 'artifacts.CreateArtifact', {
        type: 'artifact',
        id: '',
        attributes: { type: 'dataset', sizeBytes: 17 * GiB },
      }).policyIds,
    ).toEqual(['aurorad-artifact-size']);
  });

  it('lets cfcd register models and checkpoints, read datasets and write memory, and nothing of the rest', () => {
    const artifact = (type: string): { type: string; id: string; attributes: Record<string, unknown> } => ({
      type: 'artifact',
      id: 'a1',
      attributes: { type },
    });
    expect(decide('cfcd', 'artifacts.CreateArtifact', artifact('model')).effect).toBe('allow');
    expect(decide('cfcd', 'artifacts.CreateArtifact', artifact('checkpoint')).effect).toBe('allow');
    expect(decide('cfcd', 'artifacts.CreateArtifact', artifact('report')).effect).toBe('deny');
    expect(decide('cfcd', 'artifacts.ReadArtifact', artifact('dataset')).effect).toBe('allow');
    expect(decide('cfcd', 'artifacts.ReadArtifact', artifact('log')).effect).toBe('deny');
    expect(
      decide('cfcd', 'memory.AddEntry', { type: 'memory_entry', id: '', attributes: { tags: ['run'] } })
        .effect,
    ).toBe('allow');
    expect(decide('cfcd', 'memory.Search').effect).toBe('deny');
    expect(decide('cfcd', 'models.Infer').effect).toBe('deny');
  });

  it('lets users check health and submit, follow and cancel intents; only admins approve or reject', () => {
    expect(decide('users/alice', 'grpc.health.v1.Health.Check', { type: 'service', id: 'grpc' }).effect).toBe(
      'allow',
    );
    for (const action of [
      'intents.SubmitIntent',
      'intents.GetIntent',
      'intents.WatchIntent',
      'intents.CancelIntent',
    ]) {
      expect(decide('users/alice', action)).toMatchObject({ effect: 'allow', policyIds: ['users-intents'] });
    }
    for (const action of [
      'intents.ApproveIntent',
      'intents.RejectIntent',
      'jobs.ListJobs',
      'memory.Search',
    ]) {
      expect(decide('users/alice', action).policyIds).toEqual(['default-deny']);
    }
    expect(decide('admin', 'intents.ApproveIntent').effect).toBe('allow');
  });

  describe('capability tokens', () => {
    it('narrow: an action the token does not grant is denied by token-action-scope', () => {
      const d = decide('aurorad', 'jobs.SubmitJob', job(), { token: token({ actions: ['jobs.GetJob'] }) });
      expect(d).toEqual({
        effect: 'deny',
        policyIds: ['token-action-scope'],
        reason: 'the capability token does not grant this action',
        policySetHash: engine.hash,
        tokenId: 'tok-1',
      });
    });

    it('grant by action, action group, API or "*"', () => {
      for (const actions of [['jobs.SubmitJob'], ['jobs.write'], ['jobs.*'], ['*']]) {
        expect(decide('aurorad', 'jobs.SubmitJob', job(), { token: token({ actions }) })).toMatchObject({
          effect: 'allow',
          tokenId: 'tok-1',
        });
      }
      expect(
        decide(
          'aurorad',
          'jobs.GetJob',
          { type: 'job', id: 'j1' },
          { token: token({ actions: ['jobs.read'] }) },
        ).effect,
      ).toBe('allow');
    });

    it('narrow: a job over the token CPU, memory, pids or time limit is denied by the token policy', () => {
      const limits = {
        maxCpuMillicores: 500,
        maxMemoryBytes: GiB / 2,
        maxPidsMax: 64,
        maxTimeoutSeconds: 60,
      };
      const t = token({ constraints: limits });
      expect(
        decide('aurorad', 'jobs.SubmitJob', job({ memoryBytes: GiB / 4, pidsMax: 32, timeoutSeconds: 30 }), {
          token: t,
        }),
      ).toMatchObject({ effect: 'deny', policyIds: ['token-job-cpu'] });
      const d = decide('aurorad', 'jobs.SubmitJob', job(), { token: t });
      expect(d.policyIds).toEqual([
        'token-job-cpu',
        'token-job-memory',
        'token-job-pids',
        'token-job-timeout',
      ]);
      expect(d.reason).toContain('more CPU than the capability token allows');
      const within = job({ cpuMillicores: 500, memoryBytes: GiB / 2, pidsMax: 64, timeoutSeconds: 60 });
      expect(decide('aurorad', 'jobs.SubmitJob', within, { token: t }).effect).toBe('allow');
    });

    it('narrow: no network, devices or mounts when the token says so, even for an admin', () => {
      const t = token({
        subject: 'admin',
        constraints: { network: 'none', allowDevices: false, allowMounts: false },
      });
      const wide = job({
        network: 'host',
        devices: ['nvidia.com/gpu=0'],
        mounts: [{ hostPath: '/x', readOnly: false }],
      });
      expect(decide('admin', 'jobs.SubmitJob', wide, { token: t }).policyIds).toEqual([
        'token-job-network',
        'token-job-devices',
        'token-job-mounts',
      ]);
      expect(decide('admin', 'jobs.SubmitJob', job(), { token: t }).effect).toBe('allow');
    });

    it('narrow: a token bound to another intent or minted for another subject is refused', () => {
      const bound = token({ intentId: 'intent-a' });
      expect(
        decide('aurorad', 'jobs.SubmitJob', job(), { token: bound, intentId: 'intent-b' }).policyIds,
      ).toEqual(['token-intent']);
      expect(decide('aurorad', 'jobs.SubmitJob', job(), { token: bound }).policyIds).toEqual([
        'token-intent',
      ]);
      expect(decide('aurorad', 'jobs.SubmitJob', job(), { token: bound, intentId: 'intent-a' }).effect).toBe(
        'allow',
      );
      expect(decide('cfcd', 'jobs.SubmitJob', job(), { token: token() }).policyIds).toEqual([
        'token-subject',
      ]);
    });

    it('never widen: a token granting host network or large jobs leaves aurorad denied or at ask', () => {
      const host = { actions: ['*'], constraints: { network: 'host' as const, allowDevices: true } };
      expect(
        decide('aurorad', 'jobs.SubmitJob', job({ network: 'host' }), { token: token(host) }).policyIds,
      ).toEqual(['aurorad-job-no-network']);
      const wide = token({
        actions: ['jobs.SubmitJob'],
        constraints: { maxCpuMillicores: 8000, maxTimeoutSeconds: 86400 },
      });
      expect(
        decide('aurorad', 'jobs.SubmitJob', job({ timeoutSeconds: 7200 }), { token: wide }),
      ).toMatchObject({ effect: 'ask', policyIds: ['aurorad-submit-job-large'], tokenId: 'tok-1' });
      expect(
        decide('aurorad', 'jobs.SubmitJob', job({ devices: ['nvidia.com/gpu=0'] }), { token: token(host) })
          .policyIds,
      ).toEqual(['aurorad-job-no-devices']);
      expect(
        decide('cfcd', 'jobs.SubmitJob', job({ network: 'host' }), {
          token: token({ ...host, subject: 'cfcd' }),
        }).policyIds,
      ).toEqual(['cfcd-job-no-host-network']);
      expect(
        decide('stranger', 'jobs.ListJobs', undefined, { token: token({ subject: 'stranger' }) }).policyIds,
      ).toEqual(['default-deny']);
    });
  });

  describe('fails closed', () => {
    it.each([
      ['an unknown resource type', { type: 'volume', id: 'v1' }, /unknown resource type "volume"/],
      [
        'a badly typed attribute',
        job({ cpuMillicores: '1000' }),
        /job\.cpuMillicores must be a whole number/,
      ],
      ['a fractional number', job({ cpuMillicores: 1.5 }), /job\.cpuMillicores must be a whole number/],
      ['an unknown network mode', job({ network: 'bridge' }), /job\.network must be one of none, host/],
      ['an attribute the engine does not know', job({ privileged: true }), /job\.privileged is not known/],
      [
        'a malformed mount',
        job({ mounts: [{ hostPath: '/x' }] }),
        /job\.mounts\[0\]\.readOnly must be a boolean/,
      ],
      ['a resource type the action does not take', { type: 'memory_entry', id: 'm1' }, /not valid for/],
    ])('on %s: deny by engine-error with the problem named', (_what, resource, reason) => {
      const d = decide('admin', 'jobs.SubmitJob', resource);
      expect(d).toMatchObject({ effect: 'deny', policyIds: ['engine-error'], policySetHash: engine.hash });
      expect(d.reason).toMatch(reason);
    });

    it('on a malformed token claim', () => {
      const bad = { ...token(), constraints: { maxCpuMillicores: -1 } };
      expect(decide('admin', 'jobs.ListJobs', undefined, { token: bad })).toMatchObject({
        effect: 'deny',
        policyIds: ['engine-error'],
        tokenId: 'tok-1',
      });
    });

    it('denies an action the schema does not declare with default-deny, saying so', () => {
      const d = decide('admin', 'jobs.Teleport');
      expect(d.policyIds).toEqual(['default-deny']);
      expect(d.reason).toBe(
        'no policy permits spiffe://aether.local/admin to jobs.Teleport (the policy schema declares no action "jobs.Teleport")',
      );
    });
  });
});
