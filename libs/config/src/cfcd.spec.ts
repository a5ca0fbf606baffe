import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cfcdConfigSchema, defaultCfcdConfig, type CfcdConfig } from './cfcd';
import { ConfigError } from './config-error';
import { loadConfig } from './load-config';

const dir = mkdtempSync(join(tmpdir(), 'aether-cfcd-config-'));
const load = (yaml: string): CfcdConfig => {
  const file = join(dir, 'cfcd.yaml');
  writeFileSync(file, yaml);
  return loadConfig(cfcdConfigSchema, { defaults: defaultCfcdConfig(), file, envPrefix: 'CFCD', env: {} });
};
const issuesOf = (yaml: string): { path: string; message: string }[] => {
  try {
    load(yaml);
  } catch (err) {
    if (err instanceof ConfigError) return err.issues.map(({ path, message }) => ({ path, message }));
    throw err;
  }
  throw new Error('expected a ConfigError');
};

describe('cfcd configuration', () => {
  it('serves no models until endpoints are configured', () => {
    expect(defaultCfcdConfig().cfcd.generation.endpoints).toEqual({});
    expect(load('').cfcd.generation.endpoints).toEqual({});
  });

  it('fills in an endpoint’s defaults: no key, 60 s timeout, 512 tokens, generation and embeddings', () => {
    const c = load(`
cfcd:
  generation:
    endpoints:
      planner:
        baseUrl: http://127.0.0.1:8080/v1
        model: qwen2.5-1.5b-instruct
`);
    expect(c.cfcd.generation.endpoints).toEqual({
      planner: {
        baseUrl: 'http://127.0.0.1:8080/v1',
        model: 'qwen2.5-1.5b-instruct',
        apiKeyFile: '',
        timeoutMs: 60_000,
        maxTokens: 512,
        kind: 'both',
      },
    });
  });

  it('names the path of every bad endpoint setting', () => {
    const issues = issuesOf(`
cfcd:
  generation:
    endpoints:
      Bad_Id:
        baseUrl: http://127.0.0.1:8080/v1
        model: m
      planner:
        baseUrl: ftp://user:secret@example.com/v1?x=1
        model: ''
        kind: chatty
        timeoutMs: 5
        apiKeyFile: relative/key
        extra: 1
`);
    const byPath = (p: string): string[] => issues.filter((i) => i.path === p).map((i) => i.message);
    expect(JSON.stringify(issues)).not.toContain('secret');
    expect(byPath('cfcd.generation.endpoints.Bad_Id')).toEqual([
      '"Bad_Id" is not a model id: 1-63 characters of [a-z0-9-], starting with a letter',
    ]);
    expect(byPath('cfcd.generation.endpoints.planner.baseUrl')).toEqual([
      'must be an http:// or https:// URL such as http://127.0.0.1:8080/v1 (its scheme is "ftp")',
      'must not carry credentials; put the key in apiKeyFile',
      'must not have a query or fragment',
    ]);
    expect(byPath('cfcd.generation.endpoints.planner.model')).toHaveLength(1);
    expect(byPath('cfcd.generation.endpoints.planner.kind').join()).toMatch(/chat.*embedding.*both/);
    expect(byPath('cfcd.generation.endpoints.planner.timeoutMs')).toHaveLength(1);
    expect(byPath('cfcd.generation.endpoints.planner.apiKeyFile').join()).toMatch(/absolute path/);
    expect(byPath('cfcd.generation.endpoints.planner.extra')).toEqual(['unknown setting']);
  });

  it('says what a URL should look like when it is not one', () => {
    expect(issuesOf('cfcd: {generation: {endpoints: {m: {baseUrl: "localhost 8080", model: x}}}}')).toEqual([
      {
        path: 'cfcd.generation.endpoints.m.baseUrl',
        message: '"localhost 8080" is not a URL such as http://127.0.0.1:8080/v1',
      },
    ]);
  });

  it('keeps at most 4 models loaded unless told otherwise', () => {
    expect(defaultCfcdConfig().cfcd.inference).toEqual({ maxLoadedModels: 4 });
    expect(load('').cfcd.inference).toEqual({ maxLoadedModels: 4 });
    expect(load('cfcd: {inference: {maxLoadedModels: 16}}').cfcd.inference).toEqual({ maxLoadedModels: 16 });
    expect(load('cfcd: {generation: {endpoints: {}}}').cfcd.inference).toEqual({ maxLoadedModels: 4 });
  });

  it('refuses a cache that holds no model', () => {
    expect(issuesOf('cfcd: {inference: {maxLoadedModels: 0}}')).toEqual([
      { path: 'cfcd.inference.maxLoadedModels', message: expect.stringContaining('>=1') as unknown },
    ]);
  });
});
