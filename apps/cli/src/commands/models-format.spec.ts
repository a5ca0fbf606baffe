import { status } from '@grpc/grpc-js';
import { RpcError } from '@aether/client';
import { modelsV1, timestampFromDate } from '@aether/proto';
import { UsageError } from '../units';
import {
  apiErrorNotes,
  artifactName,
  formatName,
  inferErrorNotes,
  modelDetail,
  modelListTable,
  modelName,
  parseFormat,
  parseModelId,
  parseModelState,
  signatureLine,
  signatureText,
} from './models-format';
import { buildTensor } from './tensor-format';

const { DataType, ModelFormat, ModelState, ModelCapability } = modelsV1;

const NOW = Date.parse('2026-11-21T10:00:00Z');
const at = (iso: string): ReturnType<typeof timestampFromDate> => timestampFromDate(new Date(iso));

const linear = (over: Partial<modelsV1.Model> = {}): modelsV1.Model =>
  modelsV1.Model.fromPartial({
    name: 'models/linear',
    id: 'linear',
    format: ModelFormat.MODEL_FORMAT_ONNX,
    artifact: 'artifacts/01jc7v0m4k3h2g1f0e9d8c7b6a',
    digest: 'sha256:abc',
    state: ModelState.MODEL_STATE_READY,
    capabilities: [ModelCapability.MODEL_CAPABILITY_INFER],
    labels: { demo: 'linear' },
    actor: 'spiffe://aether.local/admin',
    createTime: at('2026-11-21T09:58:00Z'),
    signature: {
      inputs: [{ name: 'x', dtype: DataType.DATA_TYPE_FLOAT32, shape: [-1n, 3n] }],
      outputs: [{ name: 'y', dtype: DataType.DATA_TYPE_FLOAT32, shape: [-1n, 2n] }],
    },
    ...over,
  });

const rpcError = (reason: string, message: string, metadata: Record<string, string> = {}): RpcError =>
  new RpcError(status.INVALID_ARGUMENT, reason, message, {
    metadata,
    fieldViolations: metadata['field'] ? [{ field: metadata['field'], description: message }] : [],
  });

describe('names', () => {
  it('takes models/<id> or a bare id and refuses what is not a model id', () => {
    expect(modelName('linear')).toBe('models/linear');
    expect(modelName('models/mlp-v2')).toBe('models/mlp-v2');
    expect(() => modelName('Linear')).toThrow(UsageError);
    expect(() => modelName('models/')).toThrow(/a model name \(models\/<id>\) or id is required/);
    expect(parseModelId('models/mlp')).toBe('mlp');
    expect(() => parseModelId('2fast')).toThrow(
      /must be 1-63 characters of a-z, 0-9 and -, starting with a letter/,
    );
    expect(artifactName('01jc7v0m4k3h2g1f0e9d8c7b6a')).toBe('artifacts/01jc7v0m4k3h2g1f0e9d8c7b6a');
  });

  it('parses --format onnx only, and --state by name', () => {
    expect(parseFormat('ONNX')).toBe(ModelFormat.MODEL_FORMAT_ONNX);
    expect(() => parseFormat('gguf')).toThrow(/only onnx/);
    expect(parseModelState('ready')).toBe(ModelState.MODEL_STATE_READY);
    expect(() => parseModelState('busy')).toThrow(/choose from unloaded, loading, ready, failed/);
    expect(formatName(ModelFormat.MODEL_FORMAT_OPENAI_COMPATIBLE_ENDPOINT)).toBe('endpoint');
  });
});

describe('signature rendering', () => {
  it('shows inputs and outputs as tables with dtypes and N for a dynamic batch', () => {
    expect(signatureText(linear().signature)).toBe(
      [
        'Inputs:',
        '  NAME  DTYPE    SHAPE',
        '  x     float32  [N, 3]',
        'Outputs:',
        '  NAME  DTYPE    SHAPE',
        '  y     float32  [N, 2]',
        '',
      ].join('\n'),
    );
    expect(signatureLine(linear().signature)).toBe('x: float32 [N, 3] -> y: float32 [N, 2]');
  });

  it('says when a model has no signature (an endpoint model)', () => {
    expect(signatureText(undefined)).toBe('Signature:  (none)\n');
    expect(signatureText({ inputs: [], outputs: [] })).toBe('Signature:  (none)\n');
    expect(signatureLine(undefined)).toBe('-');
  });

  it('shows a dynamic dimension after the first as ?', () => {
    const sig = {
      inputs: [{ name: 'ids', dtype: DataType.DATA_TYPE_INT64, shape: [-1n, -1n] }],
      outputs: [{ name: 'logits', dtype: DataType.DATA_TYPE_FLOAT32, shape: [-1n, -1n, 768n] }],
    };
    expect(signatureLine(sig)).toBe('ids: int64 [N, ?] -> logits: float32 [N, ?, 768]');
  });
});

describe('model views', () => {
  it('shows the detail of a model with its signature', () => {
    const text = modelDetail(linear(), NOW);
    expect(text).toMatch(/^Name:\s+models\/linear$/m);
    expect(text).toMatch(/^Format:\s+onnx$/m);
    expect(text).toMatch(/^State:\s+READY$/m);
    expect(text).toMatch(/^Capabilities:\s+infer$/m);
    expect(text).toMatch(/^Artifact:\s+artifacts\/01jc7v0m4k3h2g1f0e9d8c7b6a$/m);
    expect(text).toMatch(/^Labels:\s+demo=linear$/m);
    expect(text).toMatch(/^Created:\s+2026-11-21T09:58:00.000Z \(2m ago\)$/m);
    expect(text).toMatch(/^Last used:\s+never$/m);
    expect(text).toMatch(/^ {2}x {5}float32 {2}\[N, 3\]$/m);
    expect(text).not.toMatch(/Load error/);
    expect(
      modelDetail(linear({ state: ModelState.MODEL_STATE_FAILED, loadError: 'bad opset' }), NOW),
    ).toMatch(/^Load error:\s+bad opset$/m);
  });

  it('lists models a row each', () => {
    const t = modelListTable(
      [
        linear(),
        linear({ name: 'models/m2', id: 'm2', displayName: 'MLP', state: ModelState.MODEL_STATE_UNLOADED }),
      ],
      NOW,
    );
    const lines = t.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^ID\s+FORMAT\s+STATE\s+AGE\s+LAST USED\s+SIGNATURE\s+DISPLAY NAME$/);
    expect(lines[1]).toMatch(
      /^linear\s+onnx\s+READY\s+2m\s+never\s+x: float32 \[N, 3\] -> y: float32 \[N, 2\]\s+-$/,
    );
    expect(lines[2]).toMatch(/^m2\s+onnx\s+UNLOADED\s+.*\s+MLP$/);
  });
});

describe('error notes', () => {
  it('says what the model expects for the input an Infer error names, and what was sent', () => {
    const sent = [buildTensor('x', [[1, 2, 3]], DataType.DATA_TYPE_INT32)];
    const err = rpcError('TENSOR_DTYPE_MISMATCH', 'input "x": dtype DATA_TYPE_INT32 does not match', {
      input: 'x',
      field: 'inputs[0].dtype',
    });
    expect(inferErrorNotes(err, linear(), sent)).toEqual([
      'the model expects input x: float32 [N, 3]',
      'sent x: int32 [1, 3]',
    ]);
    // The tensor's own message names it: no field line repeating it.
    expect(apiErrorNotes(err)).toEqual([]);
    const unknown = rpcError('UNKNOWN_INPUT', 'input "z": no such input', { input: 'z' });
    expect(inferErrorNotes(unknown, linear(), [])).toEqual(["the model's inputs: x: float32 [N, 3]"]);
  });

  it('names the field and gives a remedy for the errors that have one', () => {
    expect(apiErrorNotes(rpcError('INVALID_FIELD', 'must be set', { field: 'model.artifact' }))).toEqual([
      'field: model.artifact',
    ]);
    expect(apiErrorNotes(new RpcError(status.NOT_FOUND, 'MODEL_NOT_FOUND', 'models/x not found'))).toEqual([
      'list the registered models: aether models ls',
    ]);
    expect(apiErrorNotes(new RpcError(status.ALREADY_EXISTS, 'MODEL_EXISTS', 'taken'))[0]).toMatch(
      /choose another --name/,
    );
    expect(
      apiErrorNotes(
        new RpcError(status.NOT_FOUND, 'ARTIFACT_NOT_FOUND', 'no', { metadata: { artifact: 'artifacts/a' } }),
      ),
    ).toEqual(['artifact: artifacts/a', 'list the artifacts: aether artifacts ls']);
    expect(apiErrorNotes(new RpcError(status.UNIMPLEMENTED, 'UNIMPLEMENTED', 'not yet'))).toEqual([
      'this cfcd does not serve this yet',
    ]);
  });
});
