// Pure helpers of `aether models`: names, parsers of the command line, and the text views of a model
// (its signature, the detail of `get`, the rows of `ls`, what an Infer error adds).
import type { RpcError } from '@aether/client';
import { MODEL_ID_PATTERN } from '@aether/config';
import { dateFromTimestamp, modelsV1 } from '@aether/proto';
import { fields, table } from '../output';
import { formatAge, resourceName, truncate, UsageError } from '../units';
import { dtypeName, shapeText, specText } from './tensor-format';

const { ModelFormat } = modelsV1;

const ID_RULE = '1-63 characters of a-z, 0-9 and -, starting with a letter';

/** `models/<id>` from either that or a bare id; the id must be a valid model id. */
export function modelName(nameOrId: string): string {
  const name = resourceName('models', nameOrId, 'a model');
  const id = name.slice('models/'.length);
  if (!MODEL_ID_PATTERN.test(id))
    throw new UsageError(`"${nameOrId}" is not a model: give models/<id> or the bare id (${ID_RULE})`);
  return name;
}

/** The id for `register --name`: `mlp` or `models/mlp`. */
export function parseModelId(text: string): string {
  const id = text.trim().replace(/^models\//, '');
  if (!MODEL_ID_PATTERN.test(id)) throw new UsageError(`model id "${text}" must be ${ID_RULE}, e.g. mlp-v2`);
  return id;
}

/** `artifacts/<id>` from either that or a bare id. */
export const artifactName = (nameOrId: string): string => resourceName('artifacts', nameOrId, 'an artifact');

/** The model id: the part of `models/<id>` after the slash. */
export const modelIdOf = (m: Pick<modelsV1.Model, 'id' | 'name'>): string =>
  m.id || m.name.replace(/^models\//, '');

/** `READY` from MODEL_STATE_READY. */
export const modelStateName = (s: modelsV1.ModelState): string =>
  modelsV1.modelStateToJSON(s).replace(/^MODEL_STATE_/, '');

/** `onnx`, `endpoint`. */
export function formatName(f: modelsV1.ModelFormat): string {
  if (f === ModelFormat.MODEL_FORMAT_OPENAI_COMPATIBLE_ENDPOINT) return 'endpoint';
  return modelsV1
    .modelFormatToJSON(f)
    .replace(/^MODEL_FORMAT_/, '')
    .toLowerCase();
}

/** `--format onnx`: the one format a model registered from an artifact can have. */
export function parseFormat(text: string): modelsV1.ModelFormat {
  if (text.trim().toLowerCase() === 'onnx') return ModelFormat.MODEL_FORMAT_ONNX;
  throw new UsageError(
    `format "${text}" cannot be registered from an artifact: only onnx (endpoint models are configured in cfcd)`,
  );
}

/** `--state ready`: one state of a model. */
export function parseModelState(text: string): modelsV1.ModelState {
  const s = modelsV1.modelStateFromJSON(
    `MODEL_STATE_${text
      .trim()
      .toUpperCase()
      .replace(/^MODEL_STATE_/, '')}`,
  );
  if (s === modelsV1.ModelState.UNRECOGNIZED || s === modelsV1.ModelState.MODEL_STATE_UNSPECIFIED)
    throw new UsageError(`unknown model state "${text}"; choose from unloaded, loading, ready, failed`);
  return s;
}

/** `infer`, `generate`, `embed`. */
export const capabilityName = (c: modelsV1.ModelCapability): string =>
  modelsV1
    .modelCapabilityToJSON(c)
    .replace(/^MODEL_CAPABILITY_/, '')
    .toLowerCase();

/** Every line of `text` two spaces in. */
const indent = (text: string): string =>
  text
    .trimEnd()
    .split('\n')
    .map((l) => `  ${l}`)
    .join('\n')
    .concat('\n');

const pairs = (labels: Record<string, string>): string | undefined => {
  const e = Object.entries(labels);
  return e.length > 0 ? e.map(([k, v]) => `${k}=${v}`).join(', ') : undefined;
};

/**
 * A signature as a table, one row per tensor:
 *
 *   Inputs:
 *     NAME  DTYPE    SHAPE
 *     x     float32  [N, 3]
 */
export function signatureText(sig: modelsV1.ModelSignature | undefined): string {
  if (!sig || (sig.inputs.length === 0 && sig.outputs.length === 0)) return 'Signature:  (none)\n';
  const part = (title: string, specs: readonly modelsV1.TensorSpec[]): string => {
    if (specs.length === 0) return `${title}:\n  (none)\n`;
    const t = table(
      ['NAME', 'DTYPE', 'SHAPE'],
      specs.map((s) => [s.name, dtypeName(s.dtype), shapeText(s.shape)]),
    );
    return `${title}:\n${indent(t)}`;
  };
  return `${part('Inputs', sig.inputs)}${part('Outputs', sig.outputs)}`;
}

/** One line for a signature: `x: float32 [N, 3] -> y: float32 [N, 2]`. */
export function signatureLine(sig: modelsV1.ModelSignature | undefined): string {
  if (!sig || (sig.inputs.length === 0 && sig.outputs.length === 0)) return '-';
  return `${sig.inputs.map(specText).join(', ')} -> ${sig.outputs.map(specText).join(', ')}`;
}

const when = (t: modelsV1.Model['createTime'], now: number): string | undefined => {
  if (!t) return undefined;
  const d = dateFromTimestamp(t);
  return `${d.toISOString()} (${formatAge(now - d.getTime())} ago)`;
};

/** The human view of one model: `aether models get` and `register`. */
export function modelDetail(m: modelsV1.Model, now = Date.now()): string {
  const head = fields([
    ['Name', m.name],
    ['Display name', m.displayName || undefined],
    ['Format', formatName(m.format)],
    ['State', modelStateName(m.state)],
    ['Load error', m.loadError || undefined],
    ['Capabilities', m.capabilities.length > 0 ? m.capabilities.map(capabilityName).join(', ') : undefined],
    ['Artifact', m.artifact || undefined],
    ['Digest', m.digest || undefined],
    [
      'Endpoint',
      m.endpoint
        ? `${m.endpoint.baseUrl}${m.endpoint.remoteModel ? ` (${m.endpoint.remoteModel})` : ''}`
        : undefined,
    ],
    ['Training run', m.trainingRun || undefined],
    ['Labels', pairs(m.labels)],
    ['Actor', m.actor || undefined],
    ['Created', when(m.createTime, now) ?? '-'],
    ['Last used', when(m.lastUsedTime, now) ?? 'never'],
  ]);
  return `${head}\n${signatureText(m.signature)}`;
}

/** The columns of `aether models ls`. */
export const MODEL_LIST_HEADERS = ['ID', 'FORMAT', 'STATE', 'AGE', 'LAST USED', 'SIGNATURE', 'DISPLAY NAME'];

/** One row of `aether models ls`. */
export function modelListRow(m: modelsV1.Model, now = Date.now()): string[] {
  const age = (t: modelsV1.Model['createTime']): string =>
    t ? formatAge(now - dateFromTimestamp(t).getTime()) : '-';
  return [
    modelIdOf(m),
    formatName(m.format),
    modelStateName(m.state),
    age(m.createTime),
    m.lastUsedTime ? age(m.lastUsedTime) : 'never',
    truncate(signatureLine(m.signature), 60),
    truncate(m.displayName || '-', 40),
  ];
}

/** The `aether models ls` table. */
export const modelListTable = (models: readonly modelsV1.Model[], now = Date.now()): string =>
  table(
    MODEL_LIST_HEADERS,
    models.map((m) => modelListRow(m, now)),
  );

/**
 * What an error of the models API says beyond `CODE: message [REASON]`: the field it names, the
 * artifact, the deciding policies, and what to do for the errors that have a remedy. One line each.
 */
export function apiErrorNotes(err: RpcError): string[] {
  const notes: string[] = [];
  const md = err.metadata;
  // A tensor's violation repeats the message (it names the input); others name a field worth showing.
  if (!md['input'] && !md['output']) {
    if (md['field']) notes.push(`field: ${md['field']}`);
    for (const v of err.fieldViolations)
      if (!err.message.includes(v.description)) notes.push(`field ${v.field}: ${v.description}`);
  }
  if (md['artifact']) notes.push(`artifact: ${md['artifact']}`);
  if (md['policy_ids']) notes.push(`policies: ${md['policy_ids']}`);
  const remedy: Record<string, string> = {
    MODEL_NOT_FOUND: 'list the registered models: aether models ls',
    MODEL_EXISTS: 'choose another --name, or delete the model first: aether models rm <id>',
    ARTIFACT_NOT_FOUND: 'list the artifacts: aether artifacts ls',
    ARTIFACT_TYPE_UNSUPPORTED: 'upload the file as a model: aether artifacts add model.onnx --type model',
    TEMPLATE_NOT_FOUND: 'list the configured templates: aether train templates',
    TRAINING_RUN_NOT_FOUND: 'list the training runs: aether train ls',
    IDEMPOTENCY_KEY_REUSED: 'this --idempotency-key was used for a different request; choose another key',
    GPU_UNAVAILABLE: 'fewer GPUs are free than asked for; ask for fewer (--gpus) or try again later',
    JOB_QUEUE_FULL: 'aetherd has as many jobs queued as it may; try again when some have ended',
  };
  const r = remedy[err.reason];
  if (r) notes.push(r);
  else if (err.codeName === 'UNIMPLEMENTED') notes.push('this cfcd does not serve this yet');
  return notes;
}

/**
 * What an Infer error adds beyond `CODE: message [REASON]`: for an input (or output) it names, what the
 * model expects there and what was sent, so that a wrong dtype or shape is plain at a glance.
 */
export function inferErrorNotes(
  err: RpcError,
  model: modelsV1.Model | undefined,
  sent: readonly modelsV1.Tensor[],
): string[] {
  const notes: string[] = [];
  const sig = model?.signature;
  const input = err.metadata['input'];
  const output = err.metadata['output'];
  if (input) {
    const spec = sig?.inputs.find((s) => s.name === input);
    const t = sent.find((s) => s.name === input);
    if (spec) notes.push(`the model expects input ${specText(spec)}`);
    if (t) notes.push(`sent ${t.name}: ${dtypeName(t.dtype)} [${t.shape.join(', ')}]`);
    if (!spec && sig) notes.push(`the model's inputs: ${sig.inputs.map(specText).join(', ')}`);
  }
  if (output && sig) notes.push(`the model's outputs: ${sig.outputs.map(specText).join(', ')}`);
  return notes;
}
