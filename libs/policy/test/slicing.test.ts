import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PolicyEngine, type PolicyResource, type TokenClaims } from '@aether/policy';
import { GiB, SHIPPED_DIR, job, policyDir, query } from './support';

// Policies that exercise every kind of scope the slicer reasons about, and attribute reads it cannot
// attribute to one variable (so it must pass every attribute).
const EXTRA = `
@id("u1-memory") permit (principal == Aether::Identity::"spiffe://aether.local/users/u1", action in Aether::Action::"memory.read", resource is Aether::MemoryEntry)
when { resource has tags && resource.tags.contains("p1") };
@id("u2-in-identity") permit (principal in Aether::Identity::"spiffe://aether.local/users/u2", action in [Aether::Action::"jobs.read", Aether::Action::"artifacts.read"], resource);
@id("users-is-in") permit (principal is Aether::Identity in Aether::Group::"users", action == Aether::Action::"events.GetEvent", resource == Aether::Service::"events");
@id("jobs-service-only") permit (principal in Aether::Group::"aetherd", action in Aether::Action::"jobs.*", resource in Aether::Service::"jobs");
@id("artifact-a1") permit (principal in Aether::Group::"users", action in Aether::Action::"artifacts.*", resource == Aether::Artifact::"a1");
@id("record-read") @reason("a record literal hides which variable is read") forbid (principal, action == Aether::Action::"memory.AddEntry", resource is Aether::MemoryEntry)
when { {r: resource}.r has tags && ({r: resource}.r.tags).contains("secret") };
@id("if-read") forbid (principal in Aether::Group::"cfcd", action, resource is Aether::Job)
when { context has intentId && (if context.intentId == "i2" then resource else resource) has profile };
@id("overflow") forbid (principal == Aether::Identity::"spiffe://aether.local/users/u1", action == Aether::Action::"jobs.SubmitJob", resource is Aether::Job)
when { resource has pidsMax && resource.pidsMax * 9223372036854775807 > 1 };
@id("u1-jobs") permit (principal == Aether::Identity::"spiffe://aether.local/users/u1", action == Aether::Action::"jobs.SubmitJob", resource);
`;

describe('policy slicing', () => {
  const files: Record<string, string> = { 'zz-extra.cedar': EXTRA };
  for (const f of readdirSync(SHIPPED_DIR).filter((n) => n.endsWith('.cedar'))) {
    files[f] = readFileSync(join(SHIPPED_DIR, f), 'utf8');
  }
  const tmp = policyDir(files);
  const sliced = PolicyEngine.fromDirectory(tmp.dir);
  const whole = PolicyEngine.fromDirectory(tmp.dir, { slicing: false });
  afterAll(() => tmp.remove());

  const principals = [
    'admin',
    'admins/x',
    'aurorad',
    'cfcd',
    'aetherd',
    'users/u1',
    'users/u2',
    'users/u3',
    'nobody',
  ];
  const actions = [
    'jobs.SubmitJob',
    'jobs.GetJob',
    'jobs.KillJob',
    'jobs.DeleteJob',
    'artifacts.CreateArtifact',
    'artifacts.ReadArtifact',
    'artifacts.DeleteArtifact',
    'memory.AddEntry',
    'memory.Search',
    'events.GetEvent',
    'events.EmitEvent',
    'metrics.GetMetrics',
    'governance.MintToken',
    'intents.ApproveIntent',
    'intents.SubmitIntent',
    'models.Infer',
    'grpc.health.v1.Health.Check',
  ];
  const resources: Array<PolicyResource | undefined> = [
    undefined,
    job(),
    job({ network: 'host' }),
    job({ timeoutSeconds: 7200 }),
    job({ devices: ['nvidia.com/gpu=0'], memoryBytes: 16 * GiB }),
    job({ profile: 'evil' }),
    { type: 'job', id: 'j1' },
    { type: 'artifact', id: 'a1' },
    { type: 'artifact', id: '', attributes: { type: 'model', sizeBytes: 10 } },
    { type: 'memory_entry', id: 'm1', attributes: { tags: ['p1'] } },
    { type: 'memory_entry', id: '', attributes: { tags: ['secret'] } },
  ];
  const token = (subject: string): TokenClaims => ({
    id: 't',
    subject,
    intentId: 'i1',
    actions: ['jobs.*', 'memory.read', 'artifacts.ReadArtifact'],
    constraints: { network: 'none', maxCpuMillicores: 500 },
  });

  it('decides exactly as the whole set with every attribute: same effect, policies, reason and errors', () => {
    const effects: Record<string, number> = {};
    let compared = 0;
    for (const path of principals) {
      for (const action of actions) {
        for (const resource of resources) {
          for (const context of [{}, { token: token(path), intentId: 'i1' }, { intentId: 'i2' }]) {
            const q = query(path, action, resource, context);
            const a = sliced.evaluate(q);
            const b = whole.evaluate(q);
            const view = (e: typeof a): unknown => ({
              decision: e.decision,
              determining: e.determining.map((p) => p.id),
              errors: e.errors,
            });
            expect([path, action, resource, context, view(a)]).toEqual([
              path,
              action,
              resource,
              context,
              view(b),
            ]);
            effects[
              `${a.decision.effect}:${a.decision.policyIds[0] === 'engine-error' ? 'error' : 'policy'}`
            ] =
              (effects[
                `${a.decision.effect}:${a.decision.policyIds[0] === 'engine-error' ? 'error' : 'policy'}`
              ] ?? 0) + 1;
            compared++;
          }
        }
      }
    }
    expect(compared).toBe(principals.length * actions.length * resources.length * 3);
    // The mix covers every outcome.
    expect(Object.keys(effects).sort()).toEqual(['allow:policy', 'ask:policy', 'deny:error', 'deny:policy']);
    expect(sliced.sliceStats.slices).toBeGreaterThan(10);
  });

  it('shares one pre-parsed set among kinds of request with the same policies', () => {
    const { slices, policySets } = sliced.sliceStats;
    expect(policySets).toBeLessThan(slices);
    expect(whole.sliceStats).toEqual({ slices: 0, policySets: 0 });
  });
});
