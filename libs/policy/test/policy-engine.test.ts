import { join } from 'node:path';
import { PolicyEngine, PolicyLoadError, explain, formatPolicyErrors } from '@aether/policy';
import { SHIPPED_SCHEMA, job, policyDir, query } from './support';

function loadError(files: Record<string, string>): PolicyLoadError {
  const tmp = policyDir(files);
  try {
    PolicyEngine.fromDirectory(tmp.dir);
  } catch (err) {
    if (err instanceof PolicyLoadError) {
      // Paths relative to the directory, so assertions do not depend on the temporary name.
      const errors = err.errors.map((e) => ({ ...e, file: e.file.replace(`${tmp.dir}/`, '') }));
      return new PolicyLoadError(errors, err.hash);
    }
    throw err;
  } finally {
    tmp.remove();
  }
  throw new Error('the set loaded');
}

const ADMINS = '@id("admins")\npermit (principal in Aether::Group::"admins", action, resource);\n';

describe('PolicyEngine loading', () => {
  it('rejects a policy that does not parse with PolicyLoadError at file:line:column', () => {
    const err = loadError({
      'a.cedar': ADMINS,
      'b.cedar': '// comment\n\npermit (principal, action, resource)\n  when { 1 + };\n',
    });
    expect(err.errors).toHaveLength(1);
    expect(err.errors[0]).toMatchObject({ file: 'b.cedar', line: 4, column: 14 });
    expect(err.errors[0]?.message).toMatch(/unexpected token `}`/);
    expect(err.message).toContain('b.cedar:4:14: ');
    expect(err.hash).toMatch(/^[0-9a-f]{16}$/);
  });

  it('counts columns in characters even after non-ASCII text (Cedar reports UTF-8 bytes)', () => {
    const err = loadError({
      'ü.cedar': '// Größe — “quoted” §4.3\npermit (principal, action, resource) when { § };\n',
    });
    expect(err.errors[0]).toMatchObject({ file: 'ü.cedar', line: 2, column: 45 });
  });

  it('rejects a policy that does not validate against the schema, naming the policy and the place', () => {
    const err = loadError({
      'jobs.cedar': [
        ADMINS,
        '@id("bad-attribute")',
        'permit (principal, action == Aether::Action::"jobs.SubmitJob", resource is Aether::Job)',
        'when { resource.gpus > 0 };',
        '',
        'permit (principal, action == Aether::Action::"jobs.Teleport", resource);',
      ].join('\n'),
    });
    expect(err.errors.map((e) => [e.file, e.line, e.column])).toEqual([
      ['jobs.cedar', 6, 8],
      ['jobs.cedar', 8, 30],
    ]);
    expect(err.errors[0]?.message).toMatch(/^policy bad-attribute: .*gpus/);
    expect(err.errors[1]?.message).toMatch(
      /^policy jobs:2: unrecognized action `Aether::Action::"jobs.Teleport"`/,
    );
  });

  it('rejects a type error in strict mode, e.g. an optional attribute read without `has`', () => {
    const text = 'permit (principal, action, resource is Aether::Job) when { resource.cpuMillicores < 10 };';
    const err = loadError({ 'a.cedar': text });
    expect(err.errors[0]).toMatchObject({
      file: 'a.cedar',
      line: 1,
      column: text.indexOf('resource.cpu') + 1,
    });
    expect(err.errors[0]?.message).toMatch(/optional attribute/);
  });

  it('rejects duplicate @id annotations, pointing at the second and naming the first', () => {
    const err = loadError({ 'a.cedar': ADMINS, 'b.cedar': `// again\n${ADMINS}` });
    expect(err.errors).toEqual([
      {
        file: 'b.cedar',
        line: 2,
        column: 1,
        message: expect.stringMatching(
          /^duplicate policy id "admins" \(first at .*a\.cedar:1:1\)$/,
        ) as string,
      },
    ]);
  });

  it('rejects reserved ids, @ask on a forbid, a missing schema and a schema error', () => {
    expect(
      loadError({ 'a.cedar': '@id("default-deny") permit (principal, action, resource);' }).errors[0]
        ?.message,
    ).toMatch(/reserved/);
    expect(
      loadError({ 'a.cedar': '@ask("x") forbid (principal, action, resource);' }).errors[0]?.message,
    ).toMatch(/@ask belongs on a permit/);
    const tmp = policyDir({ 'a.cedar': ADMINS });
    try {
      const noSchema = PolicyEngine.fromSources([{ path: join(tmp.dir, 'a.cedar'), text: ADMINS }], tmp.dir);
      throw new Error(`loaded ${noSchema.hash}`);
    } catch (err) {
      expect((err as PolicyLoadError).errors[0]?.message).toMatch(/no schema/);
    } finally {
      tmp.remove();
    }
    const bad = SHIPPED_SCHEMA.replace('entity Service;', 'entity Service in [Nowhere];');
    const err = loadError({ 'aether.cedarschema': bad, 'a.cedar': ADMINS });
    expect(err.errors[0]).toMatchObject({
      file: 'aether.cedarschema',
      message: expect.stringMatching(/Nowhere/) as string,
    });
    const line = bad.split('\n').findIndex((l) => l.includes('Nowhere')) + 1;
    expect(err.errors[0]?.line).toBe(line);
  });

  it('formats errors one per line as file:line:column: message', () => {
    expect(
      formatPolicyErrors([
        { file: 'a.cedar', line: 1, column: 2, message: 'x' },
        { file: 'b.cedar', line: 3, column: 4, message: 'y' },
      ]),
    ).toBe('a.cedar:1:2: x\nb.cedar:3:4: y');
  });

  it('names policies without @id <file basename>:<index>, in file order past ten policies', () => {
    const many = Array.from(
      { length: 12 },
      (_, i) => `// #${i}\npermit (principal, action, resource) when { ${i} == ${i} };`,
    );
    const tmp = policyDir({ 'many.cedar': many.join('\n\n') });
    try {
      const engine = PolicyEngine.fromDirectory(tmp.dir);
      expect(engine.policyIds).toEqual(Array.from({ length: 12 }, (_, i) => `many:${i}`));
      expect(engine.policies.map((p) => p.text.match(/\d+ ==/)?.[0])).toEqual(many.map((_, i) => `${i} ==`));
      expect(engine.policy('many:11')).toMatchObject({ line: 35, column: 1, effect: 'permit' });
    } finally {
      tmp.remove();
    }
  });

  it('gives every engine its own pre-parsed set: two engines side by side decide by their own files', () => {
    const a = policyDir({ 'p.cedar': '@id("all") permit (principal, action, resource);' });
    const b = policyDir({ 'p.cedar': '@id("none") forbid (principal, action, resource);' });
    try {
      const ea = PolicyEngine.fromDirectory(a.dir);
      const eb = PolicyEngine.fromDirectory(b.dir);
      const ea2 = PolicyEngine.fromDirectory(a.dir);
      expect(ea.hash).not.toBe(eb.hash);
      expect(ea2.hash).toBe(ea.hash);
      const q = query('anyone', 'jobs.ListJobs');
      expect(ea.decide(q)).toMatchObject({ effect: 'allow', policyIds: ['all'], policySetHash: ea.hash });
      expect(eb.decide(q)).toMatchObject({
        effect: 'deny',
        policyIds: ['none'],
        reason: 'forbidden by none',
      });
      expect(ea.decide(q).effect).toBe('allow');
    } finally {
      a.remove();
      b.remove();
    }
  });
});

describe('PolicyEngine decisions', () => {
  const tmp = policyDir({
    'p.cedar': [
      '@id("plain") permit (principal, action == Aether::Action::"jobs.ListJobs", resource);',
      '@id("ask-1") @ask("first approval") permit (principal, action in Aether::Action::"jobs.read", resource);',
      '@id("ask-2") @ask("second approval") permit (principal in Aether::Group::"users", action in Aether::Action::"jobs.*", resource);',
      // Long overflow: validates, but errors when evaluated.
      '@id("overflowing-forbid") forbid (principal, action == Aether::Action::"jobs.SubmitJob", resource is Aether::Job)',
      '  when { resource has cpuMillicores && resource.cpuMillicores * 9223372036854775807 > 0 };',
      '@id("overflowing-permit") permit (principal, action == Aether::Action::"jobs.WaitJob", resource is Aether::Job)',
      '  when { resource has pidsMax && resource.pidsMax * 9223372036854775807 > 0 };',
      '@id("users-wait") permit (principal in Aether::Group::"users", action == Aether::Action::"jobs.WaitJob", resource);',
    ].join('\n'),
  });
  const engine = PolicyEngine.fromDirectory(tmp.dir);
  afterAll(() => tmp.remove());

  it('reports ask when every determining permit asks, with their reasons', () => {
    expect(engine.decide(query('aurorad', 'jobs.GetJob'))).toMatchObject({
      effect: 'ask',
      policyIds: ['ask-1'],
      reason: 'first approval',
    });
    expect(engine.decide(query('users/bob', 'jobs.GetJob'))).toMatchObject({
      effect: 'ask',
      policyIds: ['ask-1', 'ask-2'],
      reason: 'first approval; second approval',
    });
  });

  it('answers a repeated question from its cache exactly as Cedar did, and never mixes up questions', () => {
    const shipped = PolicyEngine.fromDirectory(join(__dirname, '..', '..', '..', 'deploy', 'policy'));
    const none = query('aurorad', 'jobs.SubmitJob', job());
    const host = query('aurorad', 'jobs.SubmitJob', job({ network: 'host' }));
    const first = shipped.decide(none);
    // The same question with another request id (no policy reads it), many times over: the same answer.
    for (let i = 0; i < 50; i++) {
      expect(shipped.decide({ ...none, context: { requestId: `req-${i}` } })).toEqual(first);
      expect(shipped.decide(host)).toMatchObject({ effect: 'deny', policyIds: ['aurorad-job-no-network'] });
    }
    expect(first).toMatchObject({ effect: 'allow' });
    // Another principal, the same resource: its own answer.
    expect(shipped.decide(query('users/bob', 'jobs.SubmitJob', job())).policyIds).toEqual(['default-deny']);
    // A token (read by token.cedar) is part of the question: one that does not grant the action denies.
    const token = { id: 't1', subject: none.principal.id, actions: ['memory.Search'], constraints: {} };
    expect(shipped.decide(query('aurorad', 'jobs.SubmitJob', job(), { token })).effect).toBe('deny');
    expect(shipped.decide(none)).toEqual(first);
  });

  it('allows when one determining permit needs no approval, naming only the plain permits', () => {
    expect(engine.decide(query('aurorad', 'jobs.ListJobs'))).toMatchObject({
      effect: 'allow',
      policyIds: ['plain'],
      reason: 'permitted by plain',
    });
  });

  it('fails closed when a forbid cannot be evaluated', () => {
    const d = engine.decide(query('admin', 'jobs.SubmitJob', job({ cpuMillicores: 2 })));
    expect(d).toMatchObject({ effect: 'deny', policyIds: ['engine-error'] });
    expect(d.reason).toMatch(/forbid overflowing-forbid could not be evaluated: .*overflow/);
  });

  it('skips a permit that cannot be evaluated (it permits nothing) and explains why', () => {
    const q = query('users/bob', 'jobs.WaitJob', job({ pidsMax: 2 }));
    expect(engine.decide(q)).toMatchObject({ effect: 'allow', policyIds: ['users-wait'] });
    const e = explain(engine, q);
    expect(e.errors).toEqual([
      { policyId: 'overflowing-permit', message: expect.stringMatching(/overflow/) as string },
    ]);
    expect(e.determining.map((p) => p.id)).toEqual(['ask-1', 'ask-2', 'users-wait']);
    expect(engine.decide(query('aurorad', 'jobs.WaitJob', job({ pidsMax: 2 }))).policyIds).toEqual(['ask-1']);
  });

  it('never throws, even on a query with parts missing', () => {
    const broken = {
      principal: { id: 'x' },
      action: 42,
      resource: null,
      context: null,
    } as unknown as Parameters<PolicyEngine['decide']>[0];
    expect(engine.decide(broken)).toMatchObject({ effect: 'deny', policyIds: ['engine-error'] });
    const noResource = { ...query('admin', 'jobs.ListJobs'), resource: undefined } as unknown as Parameters<
      PolicyEngine['decide']
    >[0];
    expect(engine.decide(noResource)).toMatchObject({ effect: 'deny', policyIds: ['engine-error'] });
  });
});
