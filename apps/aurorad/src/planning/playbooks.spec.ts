import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jobsV1, memoryV1, modelsV1 } from '@aether/proto';
import type { PlanDraft, PlanProblem } from './plan';
import { containsStepReference } from './plan-schema';
import {
  PlaybookLoadError,
  PlaybookSet,
  expandPlaybook,
  loadPlaybooks,
  parsePlaybook,
  type Playbook,
  type PlaybookProblem,
} from './playbooks';
import { encodeToolArguments } from './tool-arguments';

/** Asymmetric matchers, typed as the strings they stand for. */
const matching = (pattern: RegExp): string => expect.stringMatching(pattern) as string;
const containing = (text: string): string => expect.stringContaining(text) as string;

const SHIPPED = join(__dirname, '..', '..', '..', '..', 'deploy', 'aurora', 'playbooks');
const DATASET = 'artifacts/01jd8x7k2m3n4p5q6r7s8t9v0w';
const MODEL_ARTIFACT = 'artifacts/01jd8x7k2m3n4p5q6r7s8t9v0x';

let tmp: string;
beforeEach(() => {
  tmp = mkdtempSync(join(tmpdir(), 'playbooks-'));
});
afterEach(() => {
  rmSync(tmp, { recursive: true, force: true });
});

/** Writes files into a fresh directory under the test's temp dir and returns the directory. */
function dirWith(files: Record<string, string>, name = 'pb'): string {
  const dir = join(tmp, name);
  mkdirSync(dir, { recursive: true });
  for (const [file, text] of Object.entries(files)) writeFileSync(join(dir, file), text);
  return dir;
}

function loadProblems(dirs: string[]): PlaybookProblem[] {
  try {
    loadPlaybooks(dirs);
  } catch (err) {
    if (err instanceof PlaybookLoadError) return [...err.problems];
    throw err;
  }
  throw new Error('expected the playbooks to be refused');
}

function parsed(text: string): Playbook {
  const result = parsePlaybook(text, 'test.yaml');
  if (!result.playbook) throw new Error(`unexpected problems: ${JSON.stringify(result.problems)}`);
  return result.playbook;
}

function parseProblems(text: string): { path: string; message: string }[] {
  return parsePlaybook(text, 'test.yaml').problems.map(({ path, message }) => ({ path, message }));
}

function expanded(pb: Playbook, params: Record<string, unknown>): PlanDraft {
  const result = expandPlaybook(pb, params);
  if (!result.ok) throw new Error(`unexpected problems: ${JSON.stringify(result.problems)}`);
  return result.draft;
}

function expansionProblems(pb: Playbook, params: Record<string, unknown>): PlanProblem[] {
  const result = expandPlaybook(pb, params);
  if (result.ok) throw new Error('expected the expansion to be refused');
  return result.problems;
}

const RUN = `
name: run-it
description: Run a command
match:
  text:
    - 'run (?<command>.+)'
parameters:
  command: { type: argv, required: true, description: the command line }
  timeout_seconds: { type: integer, default: 300, minimum: 1, maximum: 86400 }
  label: { type: string, pattern: '[a-z]+', max_length: 8 }
  network: { type: string, enum: [NETWORK_MODE_NONE, NETWORK_MODE_HOST], default: NETWORK_MODE_NONE }
  verbose: { type: boolean, default: false }
  tags: { type: strings, default: [] }
steps:
  - id: run
    description: 'Run \${params.command} for \${params.timeout_seconds}s'
    tool: jobs.run
    arguments:
      spec:
        argv: ['/bin/sh', '-c', 'exec "$@"', 'sh', '\${params.command}']
        network: '\${params.network}'
        timeout: '\${params.timeout_seconds}s'
        labels: { label: '\${params.label}' }
        stopSignal: 'SIG\${params.label}'
    outputs: [job, exit_code]
`;

describe('the shipped playbooks', () => {
  const set = new PlaybookSet(loadPlaybooks([SHIPPED]));

  it('all load', () => {
    expect(set.list().map((p) => p.name)).toEqual([
      'ask-memory',
      'evaluate-model',
      'remember',
      'run-and-record',
      'run-command',
      'train-and-report',
    ]);
  });

  it.each([
    ['run-command', `run python3 -c 'print(42)'`],
    ['run-command', 'execute ls -l /work'],
    ['run-and-record', `run python3 -c 'print(42)' and record the output`],
    ['run-and-record', 'Run uname -a and record it'],
    ['remember', 'remember that the staging database moves on Friday'],
    ['remember', 'note: retrain after the data refresh'],
    ['ask-memory', 'What do we know about node.js?'],
    ['ask-memory', 'what do you know about the training data'],
    ['train-and-report', `train reference-mlp on ${DATASET}`],
    ['evaluate-model', `evaluate ${MODEL_ARTIFACT} on ${DATASET}`],
  ])('%s matches %j and expands to a valid plan', (name, text) => {
    const match = set.match(text);
    expect(match?.playbook.name).toBe(name);
    const draft = expanded(match!.playbook, match!.captures);
    expect(draft.playbook).toBe(name);
    expect(draft.steps.length).toBeGreaterThan(0);
    // Steps without run-time references encode as their real requests.
    for (const step of draft.steps)
      if (!JSON.stringify(step.arguments).includes('${steps.'))
        expect(encodeToolArguments(step.tool, step.arguments).length).toBeGreaterThan(0);
  });

  it('each answers its structured goal', () => {
    const goals: Record<string, Record<string, unknown>> = {
      'run-command': { command: ['python3', '-c', 'print(42)'] },
      'run-and-record': { command: 'echo hi', title: 'greeting' },
      remember: { note: 'the demo works' },
      'ask-memory': { topic: 'demo' },
      'train-and-report': { model: 'reference-mlp', dataset: DATASET, gpu_count: 1 },
      'evaluate-model': { model: MODEL_ARTIFACT, dataset: DATASET },
    };
    for (const pb of set.list()) expect(expanded(pb, goals[pb.name]!).playbook).toBe(pb.name);
  });

  it('run-command makes one sandboxed job with typed resources', () => {
    const { playbook, captures } = set.match(`run python3 -c 'print(42)'`)!;
    const [step] = expanded(playbook, captures).steps;
    expect(step).toEqual({
      id: 'run',
      description: 'Run python3 -c print(42)',
      tool: 'jobs.run',
      arguments: {
        spec: {
          argv: ['python3', '-c', 'print(42)'],
          network: 'NETWORK_MODE_NONE',
          resources: { cpuMillicores: 1000, memoryBytes: 536870912, pidsMax: 256 },
          timeout: '300s',
        },
      },
      dependsOn: [],
      outputs: ['job', 'exit_code', 'state', 'stdout'],
    });
    const req = jobsV1.SubmitJobRequest.decode(encodeToolArguments('jobs.run', step!.arguments));
    expect(Number(req.spec?.timeout?.seconds)).toBe(300);
    expect(req.spec?.network).toBe(jobsV1.NetworkMode.NETWORK_MODE_NONE);
  });

  it('run-command takes a long timeout and host network from a structured goal, within its bounds', () => {
    const pb = set.get('run-command')!;
    const [step] = expanded(pb, {
      command: 'sleep 1',
      timeout_seconds: 7200,
      network: 'NETWORK_MODE_HOST',
    }).steps;
    expect(step!.arguments).toMatchObject({ spec: { timeout: '7200s', network: 'NETWORK_MODE_HOST' } });
    expect(expansionProblems(pb, { command: 'sleep 1', timeout_seconds: 90000 })).toEqual([
      { path: 'parameters.timeout_seconds', message: 'must be at most 86400; got 90000' },
    ]);
    expect(expansionProblems(pb, { command: 'sleep 1', network: 'host' })[0]!.path).toBe(
      'parameters.network',
    );
  });

  it('run-command refuses shell syntax in the text', () => {
    const { playbook, captures } = set.match('run ls /work | wc -l')!;
    expect(expansionProblems(playbook, captures)).toEqual([
      {
        path: 'parameters.command',
        message:
          'shell operator "|" after "ls /work" (word 3) is not supported: the command is run directly, not by a shell; quote it to pass it as an argument',
      },
    ]);
  });

  it('run-and-record wins over run-command and passes the words to a fixed script, never to the shell', () => {
    const match = set.match(`run python3 -c 'print("a; b")' and record the output`)!;
    expect(match.playbook.name).toBe('run-and-record');
    const draft = expanded(match.playbook, match.captures);
    expect(draft.steps.map((s) => [s.id, s.tool, s.dependsOn])).toEqual([
      ['run', 'jobs.run', []],
      ['artifact', 'artifacts.get', ['run']],
      ['note', 'memory.add', ['run', 'artifact']],
      ['recall', 'memory.search', ['note', 'run']],
    ]);
    const run = draft.steps[0]!.arguments as { spec: { argv: string[]; outputs: unknown[] } };
    expect(run.spec.argv.slice(0, 2)).toEqual(['/bin/sh', '-c']);
    expect(run.spec.argv.slice(3)).toEqual(['sh', 'python3', '-c', 'print("a; b")']);
    expect(run.spec.outputs).toEqual([
      { path: 'stdout.txt', artifactType: 'REPORT', mediaType: 'text/plain' },
    ]);
    const note = draft.steps[2]!.arguments as { entry: { text: string; tags: string[]; title: string } };
    expect(note.entry.text).toMatch(
      /^Ran python3 -c print\("a; b"\) in the sandbox: exit code \$\{steps\.run\.outputs\.exit_code\}\./,
    );
    expect(note.entry.tags).toEqual(['intent', 'command-output']);
    expect(note.entry.title).toBe('command output');
    const recall = draft.steps[3]!.arguments as { query: string; tags: string[] };
    expect(recall).toMatchObject({
      query: 'sandbox AND "${steps.run.outputs.job}"',
      tags: ['command-output'],
    });
    // The note carries the words the recall query searches for.
    expect(note.entry.text).toContain('sandbox');
    expect(note.entry.text).toContain('${steps.run.outputs.job}');
  });

  it('ask-memory searches the topic as one phrase and refuses a topic with a double quote', () => {
    const { playbook, captures } = set.match('what do we know about C++ and node.js ?')!;
    expect(captures).toEqual({ topic: 'C++ and node.js' });
    const [step] = expanded(playbook, captures).steps;
    expect(
      memoryV1.SearchRequest.decode(encodeToolArguments('memory.search', step!.arguments)),
    ).toMatchObject({
      query: '"C++ and node.js"',
      pageSize: 5,
    });
    const quoted = set.match('what do we know about "x"?')!;
    expect(expansionProblems(quoted.playbook, quoted.captures)[0]!.path).toBe('parameters.topic');
  });

  it('remember writes a tagged note', () => {
    const { playbook, captures } = set.match('remember that the demo works')!;
    const [step] = expanded(playbook, captures).steps;
    expect(step!.arguments).toEqual({
      entry: { title: '', text: 'the demo works', tags: ['note'], kind: 'ENTRY_KIND_NOTE' },
    });
  });

  it('train-and-report trains with the named template and reports the run', () => {
    const { playbook, captures } = set.match(`train reference-mlp on ${DATASET}`)!;
    const [train, report] = expanded(playbook, captures).steps;
    const req = modelsV1.StartTrainingRequest.decode(encodeToolArguments('models.train', train!.arguments));
    expect(req.spec).toMatchObject({ template: 'reference-mlp', datasets: [DATASET], registerModel: true });
    expect(report!.dependsOn).toEqual(['train']);
    expect(JSON.stringify(report!.arguments)).toContain('${steps.train.outputs.run}');
    expect((report!.arguments as { entry: { tags: string[] } }).entry.tags).toEqual(['training-report']);
    expect(expansionProblems(playbook, { model: 'reference-mlp', dataset: 'my data' })).toEqual([
      { path: 'parameters.dataset', message: '"my data" does not match the pattern artifacts/[0-9a-z]{26}' },
    ]);
  });

  it('evaluate-model runs the evaluation template on both artifacts and reports it', () => {
    const { playbook, captures } = set.match(`evaluate the model ${MODEL_ARTIFACT} on dataset ${DATASET}`)!;
    const [evaluate, report] = expanded(playbook, captures).steps;
    const req = modelsV1.StartTrainingRequest.decode(
      encodeToolArguments('models.train', evaluate!.arguments),
    );
    expect(req.spec).toMatchObject({
      template: 'evaluate',
      datasets: [DATASET, MODEL_ARTIFACT],
      registerModel: false,
    });
    expect(req.spec?.hyperparameters).toEqual({ model: MODEL_ARTIFACT, dataset: DATASET });
    expect((report!.arguments as { entry: { tags: string[] } }).entry.tags).toEqual(['evaluation-report']);
  });
});

describe('loadPlaybooks', () => {
  it('loads every *.yaml and *.yml file of each directory and ignores other files', () => {
    const a = dirWith({ 'a.yaml': RUN, 'README.md': '# not a playbook' }, 'a');
    const b = dirWith({ 'b.yml': RUN.replace('name: run-it', 'name: run-that') }, 'b');
    const playbooks = loadPlaybooks([a, b]);
    expect(playbooks.map((p) => [p.name, p.file])).toEqual([
      ['run-it', join(a, 'a.yaml')],
      ['run-that', join(b, 'b.yml')],
    ]);
  });

  it('refuses a directory that does not exist, naming it', () => {
    const missing = join(tmp, 'nope');
    expect(loadProblems([missing])).toEqual([
      { file: missing, path: '', message: 'the playbook directory does not exist' },
    ]);
  });

  it('lists every problem of every file, each with its file and path, one per line in the message', () => {
    const dir = dirWith({
      'a.yaml': RUN.replace('tool: jobs.run', 'tool: jobs.exec'),
      'b.yaml': 'name: [unclosed',
      'c.yaml': RUN,
      'd.yaml': RUN,
    });
    const problems = loadProblems([dir]);
    expect(problems).toEqual([
      {
        file: join(dir, 'a.yaml'),
        path: 'steps[0].tool',
        message: matching(/^unknown tool "jobs.exec"; known tools: jobs.run, /),
      },
      { file: join(dir, 'b.yaml'), path: '', message: matching(/^invalid YAML: .*line 1/) },
      {
        file: join(dir, 'd.yaml'),
        path: 'name',
        message: `playbook "run-it" is already defined in ${join(dir, 'c.yaml')}`,
      },
    ]);
    expect(() => loadPlaybooks([dir])).toThrow(PlaybookLoadError);
    let message = '';
    try {
      loadPlaybooks([dir]);
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message.split('\n')).toEqual([
      'cannot load playbooks (3 problems):',
      containing(`${join(dir, 'a.yaml')}: steps[0].tool: unknown tool "jobs.exec"`),
      containing(`${join(dir, 'b.yaml')}: invalid YAML`),
      `${join(dir, 'd.yaml')}: name: playbook "run-it" is already defined in ${join(dir, 'c.yaml')}`,
    ]);
  });
});

describe('parsePlaybook', () => {
  it('compiles a valid playbook', () => {
    const pb = parsed(RUN);
    expect(pb).toMatchObject({
      name: 'run-it',
      priority: 0,
      file: 'test.yaml',
      textPatterns: ['run (?<command>.+)'],
    });
    expect(pb.parameters['timeout_seconds']).toEqual({
      type: 'integer',
      required: false,
      default: 300,
      description: '',
      minimum: 1,
      maximum: 86400,
    });
  });

  it('refuses schema violations with their paths', () => {
    expect(
      parseProblems(`
name: Bad Name
description: x
extra: 1
parameters:
  Bad-Param: { type: string }
  x: { type: text }
steps:
  - id: a
    tool: memory.add
    arguments: {}
`),
    ).toEqual([
      { path: 'name', message: 'must be 1-128 characters of [a-z0-9._-]' },
      { path: 'parameters["Bad-Param"]', message: 'invalid key: a parameter name is [a-z_][a-z0-9_]*' },
      {
        path: 'parameters.x.type',
        message: 'must be one of string, integer, number, boolean, argv, strings',
      },
      { path: 'steps[0].description', message: 'expected string, received undefined' },
      { path: 'extra', message: 'unknown key "extra"' },
    ]);
    expect(parseProblems('- just a list')).toEqual([
      { path: '', message: 'expected object, received array' },
    ]);
  });

  it('checks regexes: they compile, their groups are parameters, and they capture every required parameter', () => {
    expect(
      parseProblems(`
name: x
description: x
match:
  text: ['run (?<command>.+', 'go (?<cmd>.+)']
parameters:
  command: { type: argv, required: true }
steps:
  - { id: a, description: a, tool: jobs.run, arguments: { spec: { argv: '\${params.command}' } } }
`),
    ).toEqual([
      { path: 'match.text[0]', message: matching(/^invalid regular expression: /) },
      {
        path: 'match.text[1]',
        message: 'named group "cmd" is not a declared parameter; parameters: command',
      },
      {
        path: 'match.text[1]',
        message: 'does not capture the required parameter "command" (add a group (?<command>…))',
      },
    ]);
  });

  it('checks parameter specs and their defaults', () => {
    expect(
      parseProblems(`
name: x
description: x
parameters:
  a: { type: string, minimum: 1 }
  b: { type: integer, default: 5, maximum: 3 }
  c: { type: integer, enum: [1, 1.5] }
  d: { type: string, pattern: '(' }
  e: { type: string, required: true, default: 'x' }
  f: { type: boolean, max_length: 3 }
  g: { type: argv, default: 'ls | wc' }
steps:
  - { id: a, description: a, tool: memory.search, arguments: { query: x } }
`),
    ).toEqual([
      { path: 'parameters.a.minimum', message: 'only integer and number parameters have bounds, not string' },
      { path: 'parameters.b.default', message: 'must be at most 3; got 5' },
      { path: 'parameters.c.enum[1]', message: '1.5 is not an integer' },
      { path: 'parameters.d.pattern', message: matching(/^invalid regular expression: /) },
      {
        path: 'parameters.e.default',
        message: 'a required parameter cannot have a default (drop required or default)',
      },
      {
        path: 'parameters.f.max_length',
        message: 'only string, argv and strings parameters have a max_length, not boolean',
      },
      { path: 'parameters.g.default', message: matching(/^shell operator "\|" after "ls"/) },
    ]);
  });

  it('refuses templates naming undeclared parameters, malformed ones and templates in keys', () => {
    expect(
      parseProblems(`
name: x
description: 'x'
parameters:
  topic: { type: string, required: true }
steps:
  - id: a
    description: 'About \${params.subject}'
    tool: memory.search
    arguments:
      query: '\${params.Topic} \${params.topic'
      '\${params.topic}': x
`),
    ).toEqual([
      {
        path: 'steps[0].description',
        message: 'template "${params.subject}" names an undeclared parameter; parameters: topic',
      },
      { path: 'steps[0].arguments.query', message: 'unterminated template "${params." (missing "}")' },
      {
        path: 'steps[0].arguments.query',
        message: 'malformed template "${params.Topic}"; write ${params.<name>}',
      },
      {
        path: 'steps[0].arguments["${params.topic}"]',
        message: 'a key cannot hold a template; only values can',
      },
      {
        path: 'steps[0].arguments["${params.topic}"]',
        message: matching(/^unknown field "\$\{params.topic\}" in aether.memory.v1.SearchRequest/),
      },
    ]);
  });

  it('checks the steps as a plan: dependencies, outputs, references and argument fields', () => {
    expect(
      parseProblems(`
name: x
description: x
steps:
  - id: run
    description: run
    tool: jobs.run
    arguments: { spec: { argv: [x], cpu: 1 } }
    outputs: [job, result]
  - id: note
    description: note
    tool: memory.add
    depends_on: [run, later]
    arguments: { entry: { text: 'exit \${steps.run.outputs.exit_code}' } }
`),
    ).toEqual([
      { path: 'steps[0].outputs[1]', message: matching(/^jobs.run has no output "result"/) },
      {
        path: 'steps[0].arguments.spec.cpu',
        message: matching(/^unknown field "cpu" in aether.jobs.v1.JobSpec/),
      },
      { path: 'steps[1].depends_on[1]', message: 'unknown step "later"; steps: run, note' },
      {
        path: 'steps[1].arguments.entry.text',
        message:
          '${steps.run.outputs.exit_code}: step "run" does not declare output "exit_code" (its outputs: job, result)',
      },
    ]);
  });

  it('catches, by a trial expansion, a template whose type the field cannot take', () => {
    expect(
      parseProblems(`
name: x
description: x
parameters:
  size: { type: string, default: big }
steps:
  - { id: a, description: a, tool: jobs.run, arguments: { spec: { argv: [x], resources: { memoryBytes: '\${params.size}' } } } }
`),
    ).toEqual([
      {
        path: 'steps[0].arguments.spec.resources.memoryBytes',
        message:
          'expected an int64 (an integer, as a number or a decimal string), got "big" (in a trial expansion with each parameter\'s default, or a sample value of its type)',
      },
    ]);
  });
});

describe('PlaybookSet', () => {
  const pb = (name: string, pattern: string, priority = 0): Playbook =>
    parsed(`
name: ${name}
description: ${name}
priority: ${priority}
match:
  text: ['${pattern}']
parameters:
  rest: { type: string }
steps:
  - { id: a, description: a, tool: memory.search, arguments: { query: x } }
`);

  it('matches the whole trimmed text case-insensitively and returns trimmed named captures', () => {
    const set = new PlaybookSet([pb('remember', 'remember (?:that )?(?<rest>.+)')]);
    expect(set.match('  Remember THAT  the sky is blue \n')).toEqual({
      playbook: set.get('remember'),
      captures: { rest: 'the sky is blue' },
    });
    expect(set.match('please remember x')).toBeUndefined();
    expect(set.match('remember line one\nline two')?.captures).toEqual({ rest: 'line one\nline two' });
  });

  it('leaves out groups that did not take part', () => {
    const set = new PlaybookSet([pb('opt', 'go(?: (?<rest>.+))?')]);
    expect(set.match('go')?.captures).toEqual({});
  });

  it('tries higher priority first, then names in order', () => {
    const set = new PlaybookSet([
      pb('b-run', 'run (?<rest>.+)'),
      pb('a-run', 'run (?<rest>.+)'),
      pb('record', 'run (?<rest>.+) and record it', 10),
    ]);
    expect(set.match('run ls and record it')?.playbook.name).toBe('record');
    expect(set.match('run ls')?.playbook.name).toBe('a-run');
    expect(set.list().map((p) => p.name)).toEqual(['a-run', 'b-run', 'record']);
    expect(set.get('b-run')?.name).toBe('b-run');
    expect(set.get('nope')).toBeUndefined();
  });

  it('refuses two playbooks with one name', () => {
    expect(() => new PlaybookSet([pb('x', 'a'), pb('x', 'b')])).toThrow('duplicate playbook name "x"');
  });
});

describe('expandPlaybook', () => {
  const pb = parsed(RUN);

  it('substitutes typed values: exact templates keep their type, argv splices, text interpolates', () => {
    const draft = expanded(pb, { command: `python3 -c 'print(1)'`, timeout_seconds: '60', label: 'abc' });
    expect(draft).toEqual({
      playbook: 'run-it',
      steps: [
        {
          id: 'run',
          description: 'Run python3 -c print(1) for 60s',
          tool: 'jobs.run',
          arguments: {
            spec: {
              argv: ['/bin/sh', '-c', 'exec "$@"', 'sh', 'python3', '-c', 'print(1)'],
              network: 'NETWORK_MODE_NONE',
              timeout: '60s',
              labels: { label: 'abc' },
              stopSignal: 'SIGabc',
            },
          },
          dependsOn: [],
          outputs: ['job', 'exit_code'],
        },
      ],
    });
  });

  it('omits an exact template of an absent optional parameter and interpolates it as ""', () => {
    const [step] = expanded(pb, { command: ['ls'] }).steps;
    expect(step!.arguments).toEqual({
      spec: {
        argv: ['/bin/sh', '-c', 'exec "$@"', 'sh', 'ls'],
        network: 'NETWORK_MODE_NONE',
        timeout: '300s',
        labels: {},
        stopSignal: 'SIG',
      },
    });
  });

  it('keeps an exact template of an integer a number and of an argv an array', () => {
    const typed = parsed(`
name: typed
description: typed
parameters:
  command: { type: argv, required: true }
  pids: { type: integer, default: 64 }
  weight: { type: number, default: 1.5 }
  flag: { type: boolean, default: true }
  tags: { type: strings, default: [a, b] }
steps:
  - id: a
    description: 'tags \${params.tags}, flag \${params.flag}'
    tool: jobs.run
    arguments: { spec: { argv: '\${params.command}', resources: { pidsMax: '\${params.pids}' } } }
  - id: b
    description: b
    tool: models.train
    arguments: { spec: { hyperparameters: { w: '\${params.weight}', on: '\${params.flag}', tags: '\${params.tags}' } } }
`);
    const draft = expanded(typed, { command: 'echo hi', pids: '128' });
    expect(draft.steps[0]!.description).toBe('tags a b, flag true');
    expect(draft.steps[0]!.arguments).toEqual({
      spec: { argv: ['echo', 'hi'], resources: { pidsMax: 128 } },
    });
    expect(draft.steps[1]!.arguments).toEqual({
      spec: { hyperparameters: { w: 1.5, on: true, tags: ['a', 'b'] } },
    });
  });

  it('converts captured text to the declared types', () => {
    const typed = parsed(`
name: typed
description: typed
parameters:
  n: { type: integer }
  x: { type: number }
  b: { type: boolean }
  s: { type: strings }
steps:
  - { id: a, description: a, tool: models.train, arguments: { spec: { hyperparameters: { n: '\${params.n}', x: '\${params.x}', b: '\${params.b}', s: '\${params.s}' } } } }
`);
    const draft = expanded(typed, { n: ' 42 ', x: '2.5e1', b: 'Yes', s: 'a, b,,c' });
    expect(draft.steps[0]!.arguments).toEqual({
      spec: { hyperparameters: { n: 42, x: 25, b: true, s: ['a', 'b', 'c'] } },
    });
    expect(expansionProblems(typed, { n: '4.2', x: 'many', b: 'maybe', s: 3 })).toEqual([
      { path: 'parameters.n', message: 'expected an integer; got "4.2"' },
      { path: 'parameters.x', message: 'expected a number; got "many"' },
      { path: 'parameters.b', message: 'expected a boolean (true/false, yes/no); got "maybe"' },
      { path: 'parameters.s', message: 'expected an array of strings (or a comma-separated string); got 3' },
    ]);
  });

  it('checks parameters against their specs, with paths parameters.<name>', () => {
    expect(
      expansionProblems(pb, {
        timeout_seconds: 0,
        label: 'ABC',
        network: 'NETWORK_MODE_MOON',
        verbose: 1,
        extra: true,
      }),
    ).toEqual([
      {
        path: 'parameters.extra',
        message: 'unknown parameter; known: command, timeout_seconds, label, network, verbose, tags',
      },
      { path: 'parameters.command', message: 'missing required parameter (the command line)' },
      { path: 'parameters.timeout_seconds', message: 'must be at least 1; got 0' },
      { path: 'parameters.label', message: '"ABC" does not match the pattern [a-z]+' },
      {
        path: 'parameters.network',
        message: 'must be one of "NETWORK_MODE_NONE", "NETWORK_MODE_HOST"; got "NETWORK_MODE_MOON"',
      },
      { path: 'parameters.verbose', message: 'expected a boolean (true/false, yes/no); got 1' },
    ]);
    expect(expansionProblems(pb, { command: 'x', label: 'abcdefghij' })).toEqual([
      { path: 'parameters.label', message: 'is 10 characters long; at most 8' },
    ]);
    expect(expansionProblems(pb, { command: [] })).toEqual([
      { path: 'parameters.command', message: 'the command is empty' },
    ]);
  });

  it('treats null as not given, so the default applies', () => {
    const [step] = expanded(pb, { command: 'ls', timeout_seconds: null }).steps;
    expect(step!.arguments).toMatchObject({ spec: { timeout: '300s' } });
  });

  it('validates the expanded plan strictly, with the paths of the step arguments', () => {
    const loose = parsed(`
name: loose
description: loose
parameters:
  mode: { type: string, default: NETWORK_MODE_NONE }
steps:
  - { id: a, description: a, tool: jobs.run, arguments: { spec: { argv: [x], network: '\${params.mode}' } } }
`);
    expect(expansionProblems(loose, { mode: 'fast' })).toEqual([
      {
        path: 'steps[0].arguments.spec.network',
        message:
          'expected a value of enum aether.jobs.v1.NetworkMode (NETWORK_MODE_UNSPECIFIED, NETWORK_MODE_NONE, NETWORK_MODE_HOST), got "fast"',
      },
    ]);
  });

  it('leaves step references for the runner', () => {
    const refs = parsed(`
name: refs
description: refs
parameters:
  title: { type: string, default: t }
steps:
  - { id: run, description: r, tool: jobs.run, arguments: { spec: { argv: [x] } }, outputs: [job] }
  - id: note
    description: n
    tool: memory.add
    depends_on: [run]
    arguments: { entry: { title: '\${params.title}', text: 'job \${steps.run.outputs.job}', references: ['\${steps.run.outputs.job}'] } }
`);
    const [, note] = expanded(refs, {}).steps;
    expect(note!.arguments).toEqual({
      entry: { title: 't', text: 'job ${steps.run.outputs.job}', references: ['${steps.run.outputs.job}'] },
    });
    expect(containsStepReference('job ${steps.run.outputs.job}')).toBe(true);
  });
});
