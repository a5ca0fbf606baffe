import { join } from 'node:path';
import { PolicyEngine, explain, queryFromArgs, validatePolicyDir } from '@aether/policy';
import { SHIPPED_DIR, policyDir } from './support';

describe('validatePolicyDir (aether policy validate DIR)', () => {
  it('lists every error of a bad directory with its place, the ids that parsed and the hash', () => {
    const tmp = policyDir({
      'good.cedar': '@id("good") permit (principal in Aether::Group::"admins", action, resource);',
      'bad.cedar': '\n\n@id("bad") permit (principal, action, resource) when { context.nope };',
    });
    try {
      const result = validatePolicyDir(tmp.dir);
      expect(result).toMatchObject({
        ok: false,
        policyIds: ['bad', 'good'],
        errors: [
          {
            file: join(tmp.dir, 'bad.cedar'),
            line: 3,
            column: 56,
            message: expect.stringMatching(/nope/) as string,
          },
        ],
      });
      expect(result.hash).toMatch(/^[0-9a-f]{16}$/);
    } finally {
      tmp.remove();
    }
  });

  it('reports a directory it cannot read', () => {
    expect(validatePolicyDir('/nonexistent/policy')).toMatchObject({
      ok: false,
      errors: [
        {
          file: '/nonexistent/policy',
          message: expect.stringMatching(/cannot read the policy directory/) as string,
        },
      ],
    });
  });
});

describe('explain and queryFromArgs (aether policy check)', () => {
  const engine = PolicyEngine.fromDirectory(SHIPPED_DIR);

  it('builds the query from command-line arguments, reading attribute values as JSON when they parse', () => {
    expect(
      queryFromArgs({
        principal: 'aurorad',
        action: 'jobs.SubmitJob',
        resource: 'job',
        attrs: ['network=host', 'cpuMillicores=500', 'devices=["nvidia.com/gpu=0"]', 'profile='],
      }),
    ).toEqual({
      principal: {
        id: 'spiffe://aether.local/aurorad',
        trustDomain: 'aether.local',
        name: 'aurorad',
        authenticatedBy: 'certificate',
      },
      action: 'jobs.SubmitJob',
      resource: {
        type: 'job',
        id: '',
        attributes: { network: 'host', cpuMillicores: 500, devices: ['nvidia.com/gpu=0'], profile: '' },
      },
      context: { requestId: 'policy-check' },
    });
    expect(
      queryFromArgs({ principal: 'spiffe://corp.example/users/al', action: 'memory.Search' }),
    ).toMatchObject({
      principal: { trustDomain: 'corp.example', name: 'users/al' },
      resource: { type: 'service', id: 'memory' },
    });
    expect(
      queryFromArgs({ principal: 'cfcd', action: 'artifacts.GetArtifact', resource: 'artifact:a:1' })
        .resource,
    ).toEqual({ type: 'artifact', id: 'a:1' });
    expect(() => queryFromArgs({ principal: 'x', action: 'a.B', attrs: ['novalue'] })).toThrow(/key=value/);
  });

  it('explains a deny with every forbid that matched, where it is and why', () => {
    const q = queryFromArgs({
      principal: 'aurorad',
      action: 'jobs.SubmitJob',
      resource: 'job',
      attrs: [
        'network=none',
        'mounts=[]',
        'devices=["nvidia.com/gpu=0"]',
        'cpuMillicores=500',
        'memoryBytes=1024',
      ],
      // pidsMax, timeoutSeconds and profile left out
    });
    const e = explain(engine, q);
    expect(e.decision).toMatchObject({ effect: 'deny', policySetHash: engine.hash });
    expect(e.determining.map((p) => p.id)).toEqual([
      'aurorad-job-resource-bounds',
      'aurorad-job-no-devices',
      'aurorad-job-default-sandbox',
    ]);
    expect(e.determining[0]).toMatchObject({
      effect: 'forbid',
      file: join(SHIPPED_DIR, 'aurorad.cedar'),
      line: expect.any(Number) as number,
      reason: expect.stringMatching(/limited to 8000 millicores/) as string,
    });
    expect(e.errors).toEqual([]);
    expect(e.policySetHash).toBe(engine.hash);
  });

  it('explains an ask with the permit that asks', () => {
    const q = queryFromArgs({
      principal: 'aurorad',
      action: 'jobs.SubmitJob',
      resource: 'job',
      attrs: [
        'network=none',
        'mounts=[]',
        'devices=[]',
        'cpuMillicores=1',
        'memoryBytes=1',
        'pidsMax=1',
        'timeoutSeconds=7200',
        'profile=',
      ],
    });
    expect(explain(engine, q)).toMatchObject({
      decision: { effect: 'ask' },
      determining: [
        {
          id: 'aurorad-submit-job-large',
          effect: 'permit',
          ask: expect.stringMatching(/approve/) as string,
        },
      ],
    });
  });
});
