import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PolicyLoadError, PolicyStore, type ReloadResult } from '@aether/policy';
import { policyDir, query } from './support';

const LIST_ONLY = '@id("list") permit (principal, action == Aether::Action::"jobs.ListJobs", resource);\n';
const GET_TOO = '@id("get") permit (principal, action == Aether::Action::"jobs.GetJob", resource);\n';

describe('PolicyStore', () => {
  let tmp: ReturnType<typeof policyDir>;
  let store: PolicyStore;
  beforeEach(() => {
    tmp = policyDir({ 'jobs.cedar': LIST_ONLY });
    store = new PolicyStore(tmp.dir, { debounceMs: 30, rewatchMs: 50 });
  });
  afterEach(() => {
    store.close();
    tmp.remove();
  });

  /** Waits for the next reload a watch reports. */
  const nextReload = (): Promise<ReloadResult> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no reload within 5 s')), 5000);
      store.watch((r) => {
        clearTimeout(timer);
        resolve(r);
      });
    });

  it('denies with engine-error until a set is loaded, then decides with it', () => {
    expect(store.decide(query('x', 'jobs.ListJobs'))).toMatchObject({
      effect: 'deny',
      policyIds: ['engine-error'],
    });
    expect(() => store.current).toThrow(/no policy set loaded/);
    const engine = store.load();
    expect(store.current).toBe(engine);
    expect(store.decide(query('x', 'jobs.ListJobs'))).toMatchObject({ effect: 'allow', policyIds: ['list'] });
  });

  it('refuses to start with a bad set (PolicyLoadError)', () => {
    tmp.write('bad.cedar', 'permit (principal, action, resource');
    expect(() => store.load()).toThrow(PolicyLoadError);
  });

  it('keeps the old set in force when a reload meets a bad file, and reports file:line:column', () => {
    store.load();
    const before = store.current.hash;
    tmp.write(
      'bad.cedar',
      '@id("get")\npermit (principal, action == Aether::Action::"jobs.GetJob", resource)\n  when { resource.nope };\n',
    );
    const result = store.reload();
    expect(result).toMatchObject({ applied: false, hash: before });
    if (result.applied) throw new Error('applied');
    expect(result.rejectedHash).not.toBe(before);
    expect(result.errors).toEqual([
      {
        file: join(tmp.dir, 'bad.cedar'),
        line: 3,
        column: 10,
        message: expect.stringMatching(/^policy get: /) as string,
      },
    ]);
    expect(store.current.hash).toBe(before);
    expect(store.decide(query('x', 'jobs.GetJob')).policyIds).toEqual(['default-deny']);
    expect(store.decide(query('x', 'jobs.ListJobs')).effect).toBe('allow');
  });

  it('puts a good file in force on reload, without a restart, and says when nothing changed', () => {
    store.load();
    const before = store.current.hash;
    expect(store.reload()).toEqual({ applied: true, hash: before, changed: false, previousHash: before });
    tmp.write('more.cedar', GET_TOO);
    const result = store.reload();
    expect(result).toMatchObject({ applied: true, changed: true, previousHash: before });
    expect(store.current.hash).not.toBe(before);
    expect(store.decide(query('x', 'jobs.GetJob'))).toMatchObject({
      effect: 'allow',
      policyIds: ['get'],
      policySetHash: store.current.hash,
    });
    rmSync(join(tmp.dir, 'more.cedar'));
    store.reload();
    expect(store.current.hash).toBe(before);
    expect(store.decide(query('x', 'jobs.GetJob')).effect).toBe('deny');
  });

  it('can be passed as the pipeline policy hook: decide works unbound from the store', () => {
    store.load();
    const hook: { decide(q: ReturnType<typeof query>): unknown } = store;
    expect(hook.decide(query('x', 'jobs.ListJobs'))).toMatchObject({ effect: 'allow' });
  });

  it('picks up a changed file while watching', async () => {
    store.load();
    const reloaded = nextReload();
    tmp.write('jobs.cedar', LIST_ONLY + GET_TOO);
    await expect(reloaded).resolves.toMatchObject({ applied: true, changed: true });
    expect(store.decide(query('x', 'jobs.GetJob')).effect).toBe('allow');
  });

  it('picks up a file an editor replaces by renaming a new one over it', async () => {
    store.load();
    const reloaded = nextReload();
    const temp = join(tmp.dir, '.jobs.cedar.swp');
    writeFileSync(temp, GET_TOO);
    renameSync(temp, join(tmp.dir, 'jobs.cedar'));
    await expect(reloaded).resolves.toMatchObject({ applied: true, changed: true });
    expect(store.decide(query('x', 'jobs.GetJob')).effect).toBe('allow');
    expect(store.decide(query('x', 'jobs.ListJobs')).effect).toBe('deny');
  });

  it('reports a bad file while watching and keeps deciding with the old set', async () => {
    store.load();
    const reloaded = nextReload();
    tmp.write('jobs.cedar', 'permit (principal, action, resource) when {');
    const result = await reloaded;
    expect(result).toMatchObject({ applied: false, errors: [expect.objectContaining({ line: 1 })] });
    expect(store.decide(query('x', 'jobs.ListJobs')).effect).toBe('allow');
  });
});
