import { createInterface } from 'node:readline/promises';
import { Command } from 'commander';
import { type AetherClient, RpcError } from '@aether/client';
import { modelsV1, msFromDuration } from '@aether/proto';
import {
  arg,
  collectPages,
  collectPairs,
  EX_DETACHED,
  list,
  printJson,
  withClient,
} from '../command-support';
import { errorText, exitCodeForError, withAetherErrors } from '../errors';
import { formatDuration, parseCount, UsageError } from '../units';
import {
  apiErrorNotes,
  artifactName,
  capabilityName,
  inferErrorNotes,
  modelDetail,
  modelListTable,
  modelName,
  modelStateName,
  parseFormat,
  parseModelId,
  parseModelState,
} from './models-format';
import {
  buildTensor,
  dtypeName,
  parseDtypeArg,
  parseInputArg,
  parseShapeArg,
  specText,
  tensorValues,
  valuesJson,
  valuesText,
} from './tensor-format';

const { ModelFormat, ModelCapability } = modelsV1;

const modelJson = (m: modelsV1.Model): unknown => modelsV1.Model.toJSON(m);

/**
 * Runs `fn` with a client. An API error is printed as every command prints it (`aether: CODE: message
 * [REASON]`), then what the models API adds (the field, the input, what the model expects, a remedy);
 * the exit status is then 1.
 */
async function withModels(
  cmd: Command,
  fn: (c: AetherClient) => Promise<void>,
  moreNotes: (err: RpcError) => string[] = () => [],
): Promise<void> {
  try {
    await withClient(cmd, fn);
  } catch (err) {
    if (!(err instanceof RpcError)) throw err;
    const notes = [...apiErrorNotes(err), ...moreNotes(err)];
    process.stderr.write(`aether: ${errorText(err)}\n${notes.map((n) => `  ${n}\n`).join('')}`);
    process.exitCode = exitCodeForError(err);
  }
}

/** Asks a yes/no question on the terminal (stderr); only `y` or `yes` is yes. Ctrl-C exits 130. */
async function confirm(question: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  rl.on('SIGINT', () => {
    process.stderr.write('\n');
    process.exit(EX_DETACHED);
  });
  try {
    return /^y(es)?$/i.test((await rl.question(question)).trim());
  } finally {
    rl.close();
  }
}

interface RegisterOpts {
  name?: string;
  displayName?: string;
  label?: Record<string, string>;
  format: modelsV1.ModelFormat;
  json?: boolean;
}

function registerCommand(): Command {
  return new Command('register')
    .description('register an ONNX model stored as an artifact; cfcd loads it once and reads its signature')
    .argument(
      '<artifact>',
      'the model file: artifacts/<id> or <id> (uploaded with aether artifacts add --type model)',
    )
    .option(
      '--name <id>',
      `the model's id, e.g. mlp-v2 (default: generated); it is named models/<id>`,
      arg(parseModelId),
    )
    .option('--display-name <text>', 'a human-readable name')
    .option('--label <key=value>', 'label for selecting models later (repeatable)', collectPairs('label'))
    .option(
      '--format <format>',
      'how the model is stored: onnx (the default and only one)',
      arg(parseFormat),
      ModelFormat.MODEL_FORMAT_ONNX,
    )
    .option('--json', 'print the model as JSON')
    .addHelpText(
      'after',
      `
Prints the model with its signature: each input and output with its dtype and shape, where N is a
dynamic leading (batch) dimension and ? any other dynamic one.

Examples:
  $ aether models register 01jc7v0m4k3h2g1f0e9d8c7b6a --name linear
  $ aether models register artifacts/01jc7v0m4k3h2g1f0e9d8c7b6a --display-name "MLP, epoch 3" --label team=ml
  $ id=$(aether artifacts add model.onnx --type model) && aether models register "$id" --name mlp`,
    )
    .action(async (artifact: string, opts: RegisterOpts, cmd: Command) => {
      const request = modelsV1.RegisterModelRequest.fromPartial({
        model: {
          format: opts.format,
          artifact: artifactName(artifact),
          displayName: opts.displayName ?? '',
          labels: opts.label ?? {},
        },
        modelId: opts.name ?? '',
      });
      await withModels(cmd, async (c) => {
        const res = await c.call(c.models, 'registerModel', request, { timeoutMs: 120_000 });
        if (opts.json) printJson(modelJson(res.model!));
        else process.stdout.write(modelDetail(res.model!));
      });
    });
}

interface LsOpts {
  label?: string;
  state?: modelsV1.ModelState;
  artifact?: string;
  pageSize: number;
  pageToken?: string;
  allPages?: boolean;
  json?: boolean;
}

function lsCommand(): Command {
  return new Command('ls')
    .alias('list')
    .description('list registered models, newest first')
    .option('-l, --label <selector>', 'label selector: team=ml,env!=prod,gpu,!draft')
    .option(
      '--state <state>',
      'only models in this state: unloaded, loading, ready or failed',
      arg(parseModelState),
    )
    .option('--artifact <artifact>', 'only models from this artifact', arg(artifactName))
    .option(
      '--page-size <n>',
      'models per page (at most 1000)',
      arg((v) => parseCount(v, 'page-size', 1, 1000)),
      50,
    )
    .option('--page-token <token>', 'start at this page (the token a previous ls printed)')
    .option('--all-pages', 'keep fetching pages until every matching model is listed')
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      `
Columns: ID, FORMAT, STATE (READY: loaded; UNLOADED: loads on next use), AGE (since it was
registered), LAST USED, SIGNATURE (inputs -> outputs; N: a dynamic batch dimension), DISPLAY NAME.

Examples:
  $ aether models ls
  $ aether models ls -l team=ml --state ready
  $ aether models ls --all-pages --json | jq -r '.[].name'`,
    )
    .action(async (opts: LsOpts, cmd: Command) => {
      await withModels(cmd, async (c) => {
        const { items: models, nextPageToken: more } = await collectPages(opts.allPages, async (token) => {
          const res = await c.call(
            c.models,
            'listModels',
            modelsV1.ListModelsRequest.fromPartial({
              pageSize: opts.pageSize,
              pageToken: token || (opts.pageToken ?? ''),
              labelSelector: opts.label ?? '',
              state: opts.state ?? modelsV1.ModelState.MODEL_STATE_UNSPECIFIED,
              artifact: opts.artifact ?? '',
            }),
          );
          return { items: res.models, nextPageToken: res.nextPageToken };
        });
        if (opts.json) printJson(models.map(modelJson));
        else process.stdout.write(modelListTable(models));
        if (more && !opts.json)
          process.stderr.write(
            `more models match: add --page-token ${more} for the next page, or --all-pages\n`,
          );
      });
    });
}

function getCommand(): Command {
  return new Command('get')
    .description('show one model: format, state, artifact and digest, labels, and its signature')
    .argument('<model>', 'models/<id> or <id>')
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      `
Examples:
  $ aether models get linear
  $ aether models get models/linear --json | jq .signature`,
    )
    .action(async (model: string, opts: { json?: boolean }, cmd: Command) => {
      const name = modelName(model);
      await withModels(cmd, async (c) => {
        const res = await c.call(c.models, 'getModel', modelsV1.GetModelRequest.fromPartial({ name }));
        if (opts.json) printJson(modelJson(res.model!));
        else process.stdout.write(modelDetail(res.model!));
      });
    });
}

interface InferOpts {
  input?: [string, unknown][];
  shape?: [string, number[]][];
  dtype?: [string, modelsV1.DataType][];
  output?: string[];
  json?: boolean;
}

/** Each name once: a repeated `--input x=…` is a mistake, not an override. */
function byName<T>(pairs: readonly [string, T][] | undefined, option: string): Map<string, T> {
  const m = new Map<string, T>();
  for (const [k, v] of pairs ?? []) {
    if (m.has(k)) throw new UsageError(`${option} ${k} is given more than once`);
    m.set(k, v);
  }
  return m;
}

/**
 * The Infer inputs of the command line: each `--input` packed with its `--dtype` (default: the
 * model's) and its `--shape` (default: the nesting of its JSON). Usage errors for an input the model
 * does not have (without --dtype), one it needs and is not given, or a --shape/--dtype of no --input.
 */
export function inferInputs(model: modelsV1.Model, opts: InferOpts): modelsV1.Tensor[] {
  const inputs = byName(opts.input, '--input');
  const shapes = byName(opts.shape, '--shape');
  const dtypes = byName(opts.dtype, '--dtype');
  const specs = model.signature?.inputs ?? [];
  const expected = specs.length > 0 ? specs.map(specText).join(', ') : '(none known)';
  for (const [option, m] of [
    ['--shape', shapes],
    ['--dtype', dtypes],
  ] as const)
    for (const k of m.keys())
      if (!inputs.has(k))
        throw new UsageError(
          `${option} ${k} names no --input; the inputs given: ${[...inputs.keys()].join(', ') || '(none)'}`,
        );
  const missing = specs.filter((s) => !inputs.has(s.name));
  if (missing.length > 0)
    throw new UsageError(
      `${model.name} needs ${missing.map(specText).join(', ')}: give --input ${missing[0]!.name}=<JSON array> (the model's inputs: ${expected})`,
    );
  return [...inputs].map(([name, value]) => {
    const spec = specs.find((s) => s.name === name);
    const dtype = dtypes.get(name) ?? spec?.dtype;
    if (dtype === undefined)
      throw new UsageError(
        `${model.name} has no input ${name} (its inputs: ${expected}); to send it anyway give --dtype ${name}=<dtype>`,
      );
    return buildTensor(name, value, dtype, shapes.get(name));
  });
}

/** How long the runtime took: `0.42ms`, `12.3ms`, `1.5s`. */
const computeText = (d: modelsV1.InferResponse['computeTime']): string => {
  const ms = d ? msFromDuration(d) : 0;
  return ms < 10 ? `${ms.toFixed(2)}ms` : ms < 1000 ? `${ms.toFixed(1)}ms` : formatDuration(ms);
};

function inferCommand(): Command {
  return new Command('infer')
    .description('run an ONNX model on tensors given as JSON; prints each output as nested arrays')
    .argument('<model>', 'models/<id> or <id>')
    .option(
      '--input <name=json>',
      'an input tensor as JSON: nested arrays give the shape ([[0.5],[1.0]] is 2×1), or a flat array with --shape (repeatable)',
      list(parseInputArg),
    )
    .option(
      '--shape <name=dims>',
      "an input's shape, e.g. x=2,3 (one -1 is inferred): the --input is then read flat (repeatable)",
      list(parseShapeArg),
    )
    .option(
      '--dtype <name=dtype>',
      "an input's element type, e.g. x=int64 (default: the model's) (repeatable)",
      list(parseDtypeArg),
    )
    .option('--output <name>', 'return only this output (repeatable; default: all)', list(String))
    .option('--json', 'print {"model", "outputs": {name: {dtype, shape, values}}, "computeTimeMs"}')
    .addHelpText(
      'after',
      `
The model's signature (aether models get <model>) says which inputs it takes, their dtypes and
shapes (N: any batch size). Quote the JSON for the shell. Floats may be "NaN", "Infinity" and
"-Infinity"; 64-bit integers beyond 2^53 go as strings. A wrong dtype or shape is refused naming
the input and what the model expects (exit 1); a malformed --input is a usage error (exit 64).

Examples:
  $ aether models infer linear --input 'x=[[1, 2, 3], [-0.5, 0, 4]]'
  $ aether models infer linear --input 'x=[1, 2, 3, -0.5, 0, 4]' --shape x=2,3
  $ aether models infer classifier --input 'ids=[[101, 2023, 102]]' --dtype ids=int64 --output logits
  $ aether models infer linear --input 'x=[[1, 2, 3]]' --json | jq -c '.outputs.y.values'`,
    )
    .action(async (model: string, opts: InferOpts, cmd: Command) => {
      const name = modelName(model);
      if (!opts.input || opts.input.length === 0)
        throw new UsageError(
          `give the model's inputs: --input <name>=<JSON array>; see aether models get ${name.slice(7)}`,
        );
      let described: modelsV1.Model | undefined;
      let sent: modelsV1.Tensor[] = [];
      await withModels(
        cmd,
        async (c) => {
          described = (await c.call(c.models, 'getModel', modelsV1.GetModelRequest.fromPartial({ name })))
            .model!;
          if (!described.capabilities.includes(ModelCapability.MODEL_CAPABILITY_INFER))
            throw new UsageError(
              `${name} does not take tensors (it can: ${described.capabilities.map(capabilityName).join(', ') || 'nothing'})`,
            );
          sent = inferInputs(described, opts);
          const res = await c.call(
            c.models,
            'infer',
            modelsV1.InferRequest.fromPartial({ name, inputs: sent, outputNames: opts.output ?? [] }),
            { timeoutMs: 300_000 },
          );
          if (opts.json) {
            printJson({
              model: name,
              outputs: Object.fromEntries(
                res.outputs.map((t) => [
                  t.name,
                  {
                    dtype: dtypeName(t.dtype),
                    shape: t.shape.map(Number),
                    values: valuesJson(tensorValues(t), t.dtype),
                  },
                ]),
              ),
              computeTimeMs: res.computeTime ? msFromDuration(res.computeTime) : 0,
            });
            return;
          }
          const text = res.outputs.map(
            (t) =>
              `${t.name}: ${dtypeName(t.dtype)} [${t.shape.join(', ')}]\n${valuesText(tensorValues(t), t.dtype)}\n`,
          );
          process.stdout.write(`${text.join('\n')}\ncompute time: ${computeText(res.computeTime)}\n`);
        },
        (err) => inferErrorNotes(err, described, sent),
      );
    });
}

function unloadCommand(): Command {
  return new Command('unload')
    .description('unload a model from memory; it stays registered and loads again on next use')
    .argument('<model>', 'models/<id> or <id>')
    .option('--json', 'print the model as JSON')
    .addHelpText(
      'after',
      '\nRequests under way finish first. Unloading an unloaded model does nothing.\n\nExample:\n  $ aether models unload linear',
    )
    .action(async (model: string, opts: { json?: boolean }, cmd: Command) => {
      const name = modelName(model);
      await withModels(cmd, async (c) => {
        const res = await c.call(c.models, 'unloadModel', modelsV1.UnloadModelRequest.fromPartial({ name }));
        const m = res.model!;
        if (opts.json) printJson(modelJson(m));
        else process.stdout.write(`unloaded ${m.name} (now ${modelStateName(m.state)})\n`);
      });
    });
}

function rmCommand(): Command {
  return new Command('rm')
    .alias('delete')
    .description('unregister models (unloading them first); their artifacts are kept')
    .argument('<model...>', 'models/<id> or <id>, one or more')
    .option('-y, --yes', 'do not ask for confirmation')
    .addHelpText(
      'after',
      `
On a terminal it asks before deleting unless --yes; from a script (stdin not a terminal) it does not
ask. Each model is deleted on its own: a failure is reported and the rest still go (exit 1 if any
failed). The model files stay as artifacts (aether artifacts rm deletes those).

Examples:
  $ aether models rm linear
  $ aether models rm -y models/mlp-v1 models/mlp-v2`,
    )
    .action(async (models: string[], opts: { yes?: boolean }, cmd: Command) => {
      const names = models.map(modelName);
      if (!opts.yes && process.stdin.isTTY) {
        const ok = await confirm(
          `Delete ${names.join(', ')}? ${names.length === 1 ? 'Its artifact is' : 'Their artifacts are'} kept. [y/N] `,
        );
        if (!ok) {
          process.stderr.write('aether: nothing deleted\n');
          process.exitCode = 1;
          return;
        }
      }
      await withClient(cmd, async (c) => {
        for (const name of names) {
          try {
            await c.call(c.models, 'deleteModel', modelsV1.DeleteModelRequest.fromPartial({ name }));
            process.stdout.write(`deleted ${name}\n`);
          } catch (err) {
            process.stderr.write(`aether: ${name}: ${errorText(err)}\n`);
            process.exitCode = 1;
          }
        }
      });
    });
}

export function modelsCommand(): Command {
  const cmd = withAetherErrors(new Command('models'))
    .description('register ONNX models stored as artifacts on cfcd and run inference on them')
    .showHelpAfterError('(add --help for usage and examples)')
    .addHelpText(
      'after',
      `
A model is named models/<id>; every command takes the name or the bare id. Models load lazily on
first use and can be unloaded to free memory; training runs can register models (aether train).

Examples:
  $ aether artifacts add linear.onnx --type model
  $ aether models register <artifact id> --name linear
  $ aether models infer linear --input 'x=[[1, 2, 3]]'
  $ aether models ls
  $ aether models rm linear`,
    );
  for (const sub of [
    registerCommand(),
    lsCommand(),
    getCommand(),
    inferCommand(),
    unloadCommand(),
    rmCommand(),
  ])
    cmd.addCommand(withAetherErrors(sub.showHelpAfterError('(add --help for usage and examples)')));
  return cmd;
}
