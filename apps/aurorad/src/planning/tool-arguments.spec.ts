import { artifactsV1, jobsV1, memoryV1, modelsV1 } from '@aether/proto';
import { TOOLS } from './plan';
import {
  TOOL_REQUEST_TYPES,
  ToolArgumentsError,
  checkToolArguments,
  encodeToolArguments,
  toolRequestSchema,
} from './tool-arguments';

/** Asymmetric matchers, typed as the strings they stand for. */
const matching = (pattern: RegExp): string => expect.stringMatching(pattern) as string;

describe('tool arguments', () => {
  it('maps every tool to a request message that exists in the protos', () => {
    for (const tool of TOOLS) expect(toolRequestSchema(tool).typeName).toBe(TOOL_REQUEST_TYPES[tool]);
  });

  it('encodes a SubmitJobRequest that the generated type decodes field for field', () => {
    const bytes = encodeToolArguments('jobs.run', {
      spec: {
        argv: ['python3', '-c', 'print(42)'],
        network: 'NETWORK_MODE_NONE',
        resources: { cpuMillicores: 1000, memoryBytes: '536870912', pidsMax: 256 },
        timeout: '300s',
        outputs: [{ path: 'stdout.txt', artifactType: 'REPORT', mediaType: 'text/plain' }],
        env: { LANG: 'C' },
      },
      idempotencyKey: 'intent:step',
    });
    const req = jobsV1.SubmitJobRequest.decode(bytes);
    expect(req.idempotencyKey).toBe('intent:step');
    expect(req.spec?.argv).toEqual(['python3', '-c', 'print(42)']);
    expect(req.spec?.network).toBe(jobsV1.NetworkMode.NETWORK_MODE_NONE);
    expect(Number(req.spec?.resources?.memoryBytes)).toBe(536870912);
    expect(req.spec?.resources?.cpuMillicores).toBe(1000);
    expect(req.spec?.resources?.pidsMax).toBe(256);
    expect(Number(req.spec?.timeout?.seconds)).toBe(300);
    expect(req.spec?.outputs[0]).toMatchObject({ path: 'stdout.txt', artifactType: 'REPORT' });
    expect(req.spec?.env).toEqual({ LANG: 'C' });
  });

  it('accepts camelCase and snake_case field names alike', () => {
    const camel = encodeToolArguments('memory.search', { query: 'x', pageSize: 3, highlightOpen: '<' });
    const snake = encodeToolArguments('memory.search', { query: 'x', page_size: 3, highlight_open: '<' });
    expect(Buffer.from(snake)).toEqual(Buffer.from(camel));
    expect(memoryV1.SearchRequest.decode(snake)).toMatchObject({
      query: 'x',
      pageSize: 3,
      highlightOpen: '<',
    });
  });

  it('accepts int64 as a number or as a decimal string', () => {
    for (const memoryBytes of [1073741824, '1073741824']) {
      const req = jobsV1.SubmitJobRequest.decode(
        encodeToolArguments('jobs.run', { spec: { argv: ['x'], resources: { memoryBytes } } }),
      );
      expect(Number(req.spec?.resources?.memoryBytes)).toBe(1073741824);
    }
  });

  it('refuses an unknown field, naming it and its path', () => {
    const problems = checkToolArguments(
      'jobs.run',
      { spec: { argv: ['x'], bogus: 1 } },
      'steps[0].arguments',
    );
    expect(problems).toHaveLength(1);
    expect(problems[0]!.path).toBe('steps[0].arguments.spec.bogus');
    expect(problems[0]!.message).toMatch(
      /^unknown field "bogus" in aether\.jobs\.v1\.JobSpec; known fields: argv, env, /,
    );
    expect(() => encodeToolArguments('jobs.run', { spec: { argv: ['x'], bogus: 1 } })).toThrow(
      /invalid arguments for jobs\.run \(aether\.jobs\.v1\.SubmitJobRequest\): spec\.bogus: unknown field "bogus"/,
    );
  });

  it('suggests the field a near miss meant', () => {
    const [problem] = checkToolArguments('jobs.run', { spec: { resources: { CPU_Millicores: 1 } } }, '');
    expect(problem!.message).toContain('(did you mean "cpuMillicores"?)');
  });

  it('reports every problem with the path of the value, not just the first', () => {
    const problems = checkToolArguments(
      'jobs.run',
      {
        spec: {
          argv: 'ls -l',
          network: 'NETWORK_MODE_MOON',
          resources: { memoryBytes: 1.5, cpuMillicores: '12' },
          timeout: 300,
          labels: { team: 7 },
          outputs: [{ path: 'a' }, { path: 'b', kind: 'x' }],
        },
      },
      'args',
    );
    expect(problems).toEqual([
      { path: 'args.spec.argv', message: 'expected an array whose elements are each a string, got "ls -l"' },
      {
        path: 'args.spec.network',
        message:
          'expected a value of enum aether.jobs.v1.NetworkMode (NETWORK_MODE_UNSPECIFIED, NETWORK_MODE_NONE, NETWORK_MODE_HOST), got "NETWORK_MODE_MOON"',
      },
      {
        path: 'args.spec.resources.memoryBytes',
        message: 'expected an int64 (an integer, as a number or a decimal string), got 1.5',
      },
      {
        path: 'args.spec.timeout',
        message:
          'expected a duration in seconds with an "s" suffix (google.protobuf.Duration), e.g. "300s" or "1.5s", got 300',
      },
      { path: 'args.spec.labels.team', message: 'expected a string, got 7' },
      {
        path: 'args.spec.outputs[1].kind',
        message: matching(/^unknown field "kind" in aether\.jobs\.v1\.OutputSpec/),
      },
    ]);
  });

  it('checks each element of a repeated field', () => {
    expect(checkToolArguments('jobs.run', { spec: { argv: ['ok', 3, null] } }, '')).toEqual([
      { path: 'spec.argv[1]', message: 'expected a string, got 3' },
      { path: 'spec.argv[2]', message: 'expected a string, got null' },
    ]);
  });

  it('refuses two members of a oneof', () => {
    expect(
      checkToolArguments('models.generate', { name: 'models/m', prompt: 'hi', chat: { messages: [] } }, ''),
    ).toEqual([
      { path: 'chat', message: 'only one of prompt, chat may be set (oneof input); got prompt and chat' },
    ]);
  });

  it('accepts well-known types in their JSON forms and any object in a Struct', () => {
    const bytes = encodeToolArguments('models.train', {
      spec: {
        template: 'reference-mlp',
        datasets: ['artifacts/01jd8x7k2m3n4p5q6r7s8t9v0w'],
        hyperparameters: { epochs: 3, layers: [64, 32], optimizer: { name: 'adam' } },
        resources: { timeout: '1.5s' },
      },
      labels: { 'aether.dev/purpose': 'training' },
    });
    const req = modelsV1.StartTrainingRequest.decode(bytes);
    expect(req.spec?.template).toBe('reference-mlp');
    expect(req.labels).toEqual({ 'aether.dev/purpose': 'training' });
    expect(checkToolArguments('models.train', { spec: { hyperparameters: 5 } }, '')).toEqual([
      { path: 'spec.hyperparameters', message: 'expected an object (google.protobuf.Struct), got 5' },
    ]);
  });

  it('names odd map keys unambiguously in paths', () => {
    expect(checkToolArguments('models.train', { labels: { 'a.b/c': 1 } }, '')).toEqual([
      { path: 'labels["a.b/c"]', message: 'expected a string, got 1' },
    ]);
  });

  it('accepts null as "not set" and refuses a non-object message', () => {
    expect(checkToolArguments('artifacts.get', { name: null }, '')).toEqual([]);
    expect(checkToolArguments('artifacts.register', { metadata: 'x' }, 'a')).toEqual([
      { path: 'a.metadata', message: 'expected an object (aether.artifacts.v1.ArtifactMetadata), got "x"' },
    ]);
    const req = artifactsV1.CreateArtifactRequest.decode(
      encodeToolArguments('artifacts.register', {
        source_path: '/work/outputs/x',
        metadata: { type: 'ARTIFACT_TYPE_REPORT' },
      }),
    );
    expect(req.sourcePath).toBe('/work/outputs/x');
  });

  it('throws a ToolArgumentsError carrying the tool and the problems', () => {
    try {
      encodeToolArguments('memory.add', { entry: { text: 5 } });
      throw new Error('expected a throw');
    } catch (err) {
      expect(err).toBeInstanceOf(ToolArgumentsError);
      const e = err as ToolArgumentsError;
      expect(e.tool).toBe('memory.add');
      expect(e.problems).toEqual([{ path: 'entry.text', message: 'expected a string, got 5' }]);
    }
  });
});
