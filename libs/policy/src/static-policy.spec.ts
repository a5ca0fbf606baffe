import { StaticPolicy } from './static-policy';

describe('StaticPolicy', () => {
  const policy = new StaticPolicy([
    { id: 'admin-all', principals: ['spiffe://t/admin'], actions: ['*'] },
    { id: 'aurorad-jobs', principals: ['spiffe://t/aurorad'], actions: ['jobs.*', 'memory.Search'] },
  ]);

  it('denies by default and names default-deny', () => {
    const d = policy.decide({ principal: { id: 'spiffe://t/stranger' }, action: 'jobs.GetJob' });
    expect(d).toMatchObject({ effect: 'deny', policyIds: ['default-deny'] });
  });

  it('allows what a rule names and reports the rule', () => {
    expect(
      policy.decide({ principal: { id: 'spiffe://t/aurorad' }, action: 'jobs.SubmitJob' }),
    ).toMatchObject({
      effect: 'allow',
      policyIds: ['aurorad-jobs'],
    });
    expect(policy.decide({ principal: { id: 'spiffe://t/aurorad' }, action: 'memory.AddEntry' }).effect).toBe(
      'deny',
    );
    expect(policy.decide({ principal: { id: 'spiffe://t/admin' }, action: 'models.Infer' }).effect).toBe(
      'allow',
    );
  });
});
