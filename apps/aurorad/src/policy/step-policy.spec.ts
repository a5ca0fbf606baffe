import { join } from 'node:path';
import { PolicyStore } from '@aether/policy';
import { intentsV1 } from '@aether/proto';
import type { PlannedStep } from '../planning/plan';
import { resolveReferences } from '../runner/references';
import {
  approvalConstraints,
  stepAccess,
  StepPolicy,
  withJobDefaults,
  withoutReferences,
} from './step-policy';

const POLICY_DIR = join(__dirname, '..', '..', '..', '..', 'deploy', 'policy');
const AURORAD = {
  id: 'spiffe://aether.local/aurorad',
  trustDomain: 'aether.local',
  name: 'aurorad',
  authenticatedBy: 'certificate',
};

const job = (spec: Record<string, unknown>): PlannedStep => ({
  id: 'run',
  description: '',
  tool: 'jobs.run',
  arguments: withJobDefaults('jobs.run', { spec: { argv: ['true'], ...spec } }),
  dependsOn: [],
  outputs: ['job'],
});

describe('step policy (the shipped Cedar files, as aurorad)', () => {
  const store = new PolicyStore(POLICY_DIR);
  store.load();
  const policy = new StepPolicy(store, AURORAD);
  const effect = (s: PlannedStep): string =>
    intentsV1.policyEffectToJSON(policy.check('01j00000000000000000000000', s).decision.effect);

  it('allows a default job, asks for a long one, denies host network and an oversized one', () => {
    expect(effect(job({}))).toBe('POLICY_EFFECT_ALLOW');
    expect(effect(job({ timeout: '7200s' }))).toBe('POLICY_EFFECT_ASK');
    expect(effect(job({ network: 'NETWORK_MODE_HOST' }))).toBe('POLICY_EFFECT_DENY');
    expect(effect(job({ resources: { memoryBytes: String(20 * 2 ** 30) } }))).toBe('POLICY_EFFECT_DENY');
    const d = policy.check('01j00000000000000000000000', job({ network: 'NETWORK_MODE_HOST' })).decision;
    expect(d).toMatchObject({ action: 'jobs.SubmitJob', principal: AURORAD.id });
    expect(d.policyIds).toContain('aurorad-job-no-network');
  });

  it('denies a step whose arguments are not its tool request, with the reason', () => {
    const bad: PlannedStep = { ...job({}), arguments: { spec: { argvv: ['x'] } } };
    const d = policy.check('01j00000000000000000000000', bad).decision;
    expect(d.effect).toBe(intentsV1.PolicyEffect.POLICY_EFFECT_DENY);
    expect(d.reason).toContain('argvv');
  });

  it('allows memory and artifact reads and writes aurorad is granted', () => {
    const step = (tool: PlannedStep['tool'], args: Record<string, unknown>): PlannedStep => ({
      id: 's',
      description: '',
      tool,
      arguments: args as never,
      dependsOn: [],
      outputs: [],
    });
    expect(effect(step('memory.add', { entry: { text: 'x', tags: ['note'] } }))).toBe('POLICY_EFFECT_ALLOW');
    expect(effect(step('memory.search', { query: 'x' }))).toBe('POLICY_EFFECT_ALLOW');
    expect(effect(step('artifacts.get', { name: '${steps.run.outputs.artifact}' }))).toBe(
      'POLICY_EFFECT_ALLOW',
    );
  });
});

describe('job defaults and approval constraints', () => {
  it('fills every unset limit so that policy sees what aetherd will run', () => {
    const args = withJobDefaults('jobs.run', { spec: { argv: ['true'], resources: { cpuMillicores: 500 } } });
    expect(args).toEqual({
      spec: {
        argv: ['true'],
        resources: { cpuMillicores: 500, memoryBytes: 536870912, pidsMax: 256 },
        timeout: '300s',
      },
    });
    expect(withJobDefaults('memory.add', { entry: {} })).toEqual({ entry: {} });
  });

  it('bounds an approval token to exactly the approved job', () => {
    const access = stepAccess('jobs.run', job({ timeout: '7200s' }).arguments);
    expect(approvalConstraints('jobs.run', access)).toEqual({
      network: 'none',
      max_cpu_millicores: 1000,
      max_memory_bytes: 536870912,
      max_pids: 256,
      max_timeout_seconds: 7200,
      allow_devices: false,
      allow_mounts: false,
    });
  });
});

describe('step references', () => {
  const outputs: Record<string, Record<string, unknown>> = {
    run: { job: 'jobs/01j', digests: ['sha256:a', 'sha256:b'], exit_code: 0 },
  };
  const lookup = (step: string, out: string): never => {
    const v = outputs[step]?.[out];
    if (v === undefined) throw new Error(`no ${step}.${out}`);
    return v as never;
  };

  it('keeps the type of a whole reference and writes text inside a longer string', () => {
    expect(
      resolveReferences(
        {
          name: '${steps.run.outputs.job}',
          list: '${steps.run.outputs.digests}',
          text: 'job ${steps.run.outputs.job} exited ${steps.run.outputs.exit_code}: ${steps.run.outputs.digests}',
          nested: [{ n: '${steps.run.outputs.exit_code}' }],
        },
        lookup,
      ),
    ).toEqual({
      name: 'jobs/01j',
      list: ['sha256:a', 'sha256:b'],
      text: 'job jobs/01j exited 0: ["sha256:a","sha256:b"]',
      nested: [{ n: 0 }],
    });
  });

  it('fails on an output the step did not produce', () => {
    expect(() => resolveReferences({ x: '${steps.run.outputs.nope}' }, lookup)).toThrow('no run.nope');
  });

  it('leaves out values that wait on references when checking before the run', () => {
    expect(
      withoutReferences({ a: '${steps.x.outputs.y}', b: ['k', 'v ${steps.x.outputs.y}'], c: 1 }),
    ).toEqual({
      b: ['k'],
      c: 1,
    });
  });
});
