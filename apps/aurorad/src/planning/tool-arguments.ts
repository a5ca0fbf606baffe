/**
 * Strict checking and encoding of a step's arguments: the JSON form of the tool's RPC request, read with
 * the descriptors of the real protos so that a misspelt or unknown field is an error naming it, instead
 * of being dropped silently (which is what decoding with the generated ts-proto types would do).
 */
import {
  createFileRegistry,
  fromBinary,
  fromJson,
  toBinary,
  ScalarType,
  type DescField,
  type DescMessage,
  type FileRegistry,
} from '@bufbuild/protobuf';
import { FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import { descriptorSet } from '@aether/proto';
import { fieldPath, indexPath, type Json, type JsonObject, type PlanProblem, type ToolName } from './plan';

/** The fully qualified request message of the RPC each tool calls (see intents.proto's file comment). */
export const TOOL_REQUEST_TYPES: Record<ToolName, string> = {
  'jobs.run': 'aether.jobs.v1.SubmitJobRequest',
  'jobs.wait': 'aether.jobs.v1.WaitJobRequest',
  'artifacts.register': 'aether.artifacts.v1.CreateArtifactRequest',
  'artifacts.get': 'aether.artifacts.v1.GetArtifactRequest',
  'memory.add': 'aether.memory.v1.AddEntryRequest',
  'memory.search': 'aether.memory.v1.SearchRequest',
  'models.infer': 'aether.models.v1.InferRequest',
  'models.train': 'aether.models.v1.StartTrainingRequest',
  'models.generate': 'aether.models.v1.GenerateRequest',
};

/** A step's arguments do not form a valid request for its tool; `problems` says where and why. */
export class ToolArgumentsError extends Error {
  override readonly name = 'ToolArgumentsError';

  constructor(
    readonly tool: ToolName,
    /** Every problem found, with its path inside the arguments (e.g. `spec.resources.cpuMillicores`). */
    readonly problems: readonly PlanProblem[],
  ) {
    super(
      `invalid arguments for ${tool} (${TOOL_REQUEST_TYPES[tool]}): ${problems
        .map((p) => (p.path ? `${p.path}: ${p.message}` : p.message))
        .join('; ')}`,
    );
  }
}

let registry: FileRegistry | undefined;

/** The registry of every Aether proto, built once from the descriptor set @aether/proto ships. */
function protoRegistry(): FileRegistry {
  registry ??= createFileRegistry(fromBinary(FileDescriptorSetSchema, descriptorSet()));
  return registry;
}

/** The request message descriptor of a tool. */
export function toolRequestSchema(tool: ToolName): DescMessage {
  const typeName = TOOL_REQUEST_TYPES[tool];
  const schema = protoRegistry().getMessage(typeName);
  if (!schema)
    throw new Error(`the descriptor set has no message ${typeName} (tool ${tool}); rebuild @aether/proto`);
  return schema;
}

/**
 * Checks `args` against the tool's request message and returns every problem, each at `path` plus the
 * field's path. Field names may be the JSON (camelCase) or proto (snake_case) spelling; values follow
 * the proto3 JSON mapping (int64 as a number or a decimal string, enums by name, Duration as `"300s"`).
 */
export function checkToolArguments(tool: ToolName, args: JsonObject, path: string): PlanProblem[] {
  return checkArguments(tool, args, path, () => false);
}

/**
 * As {@link checkToolArguments}, but values for which `skip` is true (object fields or array elements)
 * are left out of the check, as if absent: plan validation uses it for values that hold references
 * resolved only when the step runs. Paths keep the values' original positions.
 */
export function checkArguments(
  tool: ToolName,
  args: JsonObject,
  path: string,
  skip: (value: Json) => boolean,
): PlanProblem[] {
  const schema = toolRequestSchema(tool);
  const problems: PlanProblem[] = [];
  checkMessage(schema, args, path, skip, problems);
  if (problems.length > 0) return problems;
  // Anything the walk above does not model (it should be nothing) is still caught by the real decoder.
  try {
    fromJson(schema, withoutSkipped(args, skip));
  } catch (err) {
    problems.push({ path, message: decoderDetail(err) });
  }
  return problems;
}

/**
 * Encodes `args` as the tool's request in protobuf binary form, for the caller to decode with the
 * generated type (e.g. `jobsV1.SubmitJobRequest.decode(bytes)`). Throws {@link ToolArgumentsError}.
 */
export function encodeToolArguments(tool: ToolName, args: JsonObject): Uint8Array {
  const problems = checkToolArguments(tool, args, '');
  if (problems.length > 0) throw new ToolArgumentsError(tool, problems);
  const schema = toolRequestSchema(tool);
  return toBinary(schema, fromJson(schema, args));
}

// ---- the walk ------------------------------------------------------------------------------------------

function isObject(value: Json | undefined): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Well-known types have special JSON forms (Duration `"1s"`, Struct any object); the decoder checks them. */
function isWellKnown(message: DescMessage): boolean {
  return message.file.name.startsWith('google/protobuf/');
}

function checkMessage(
  message: DescMessage,
  value: Json,
  path: string,
  skip: (value: Json) => boolean,
  problems: PlanProblem[],
): void {
  if (!isObject(value)) {
    problems.push({ path, message: `expected an object (${message.typeName}), got ${show(value)}` });
    return;
  }
  const seen = new Map<DescField, string>();
  for (const [key, fieldValue] of Object.entries(value)) {
    const at = fieldPath(path, key);
    const field = message.fields.find((f) => f.jsonName === key || f.name === key);
    if (!field) {
      problems.push({ path: at, message: unknownFieldMessage(message, key) });
      continue;
    }
    const other = seen.get(field);
    if (other !== undefined) {
      problems.push({ path: at, message: `field given twice, as "${other}" and "${key}"` });
      continue;
    }
    seen.set(field, key);
    if (fieldValue === null || skip(fieldValue)) continue;
    checkField(message, field, key, fieldValue, at, skip, problems);
  }
  for (const oneof of message.oneofs) {
    const set = oneof.fields.flatMap((f) => {
      const key = seen.get(f);
      return key !== undefined && value[key] !== null && !skip(value[key]!) ? [key] : [];
    });
    if (set.length > 1)
      problems.push({
        path: fieldPath(path, set[1]!),
        message: `only one of ${oneof.fields.map((f) => f.jsonName).join(', ')} may be set (oneof ${oneof.name}); got ${set.join(' and ')}`,
      });
  }
}

function checkField(
  parent: DescMessage,
  field: DescField,
  key: string,
  value: Json,
  path: string,
  skip: (value: Json) => boolean,
  problems: PlanProblem[],
): void {
  switch (field.fieldKind) {
    case 'message':
      if (isWellKnown(field.message)) checkByDecoder(parent, field, key, value, path, problems);
      else checkMessage(field.message, value, path, skip, problems);
      return;
    case 'scalar':
    case 'enum':
      checkByDecoder(parent, field, key, value, path, problems);
      return;
    case 'list': {
      if (!Array.isArray(value)) {
        problems.push({
          path,
          message: `expected an array whose elements are each ${elementForm(field)}, got ${show(value)}`,
        });
        return;
      }
      value.forEach((element, i) => {
        if (skip(element)) return;
        const at = indexPath(path, i);
        if (field.listKind === 'message' && !isWellKnown(field.message))
          checkMessage(field.message, element, at, skip, problems);
        else checkByDecoder(parent, field, key, [element], at, problems);
      });
      return;
    }
    case 'map': {
      if (!isObject(value)) {
        problems.push({
          path,
          message: `expected an object whose values are each ${elementForm(field)}, got ${show(value)}`,
        });
        return;
      }
      for (const [k, element] of Object.entries(value)) {
        if (skip(element)) continue;
        const at = fieldPath(path, k);
        if (field.mapKind === 'message' && !isWellKnown(field.message))
          checkMessage(field.message, element, at, skip, problems);
        else checkByDecoder(parent, field, key, { [k]: element }, at, problems);
      }
      return;
    }
  }
}

/**
 * Lets the real decoder judge one field's value (given alone, in its parent message), so that scalars,
 * enums and well-known types follow exactly the proto3 JSON rules it implements; its terse message is
 * replaced by one that says what form was expected.
 */
function checkByDecoder(
  parent: DescMessage,
  field: DescField,
  key: string,
  value: Json,
  path: string,
  problems: PlanProblem[],
): void {
  try {
    fromJson(parent, { [key]: value });
  } catch (err) {
    const element =
      field.fieldKind === 'list'
        ? (value as Json[])[0]!
        : field.fieldKind === 'map'
          ? Object.values(value as JsonObject)[0]!
          : value;
    const detail = decoderDetail(err);
    // A map key the key type rejects (e.g. "x" for an int32 key) is the one case the form does not explain.
    const badKey = field.fieldKind === 'map' && /\bkey\b/.test(detail);
    problems.push({ path, message: badKey ? detail : `${expectedForm(field)}, got ${show(element)}` });
  }
}

function unknownFieldMessage(message: DescMessage, key: string): string {
  const known = message.fields.map((f) => f.jsonName);
  const folded = key.toLowerCase().replace(/_/g, '');
  const near = message.fields.find((f) => f.name.replace(/_/g, '') === folded);
  return `unknown field "${key}" in ${message.typeName}${near ? ` (did you mean "${near.jsonName}"?)` : ''}; known fields: ${known.join(', ')}`;
}

function expectedForm(field: DescField): string {
  if (field.fieldKind === 'scalar' || field.fieldKind === 'enum' || field.fieldKind === 'message')
    return `expected ${singleForm(field)}`;
  return `expected ${elementForm(field)}`;
}

/** How a value of the field's element type is written in JSON, for messages. */
function elementForm(field: DescField): string {
  switch (field.fieldKind) {
    case 'list':
      return field.listKind === 'message'
        ? messageForm(field.message)
        : field.listKind === 'enum'
          ? enumForm(
              field.enum.typeName,
              field.enum.values.map((v) => v.name),
            )
          : scalarForm(field.scalar);
    case 'map':
      return field.mapKind === 'message'
        ? messageForm(field.message)
        : field.mapKind === 'enum'
          ? enumForm(
              field.enum.typeName,
              field.enum.values.map((v) => v.name),
            )
          : scalarForm(field.scalar);
    default:
      return singleForm(field);
  }
}

function singleForm(field: DescField): string {
  if (field.fieldKind === 'scalar') return scalarForm(field.scalar);
  if (field.fieldKind === 'enum')
    return enumForm(
      field.enum.typeName,
      field.enum.values.map((v) => v.name),
    );
  if (field.fieldKind === 'message') return messageForm(field.message);
  return elementForm(field);
}

function enumForm(typeName: string, names: readonly string[]): string {
  return `a value of enum ${typeName} (${names.join(', ')})`;
}

function messageForm(message: DescMessage): string {
  switch (message.typeName) {
    case 'google.protobuf.Duration':
      return 'a duration in seconds with an "s" suffix (google.protobuf.Duration), e.g. "300s" or "1.5s"';
    case 'google.protobuf.Timestamp':
      return 'an RFC 3339 time (google.protobuf.Timestamp), e.g. "2025-01-01T00:00:00Z"';
    case 'google.protobuf.Struct':
      return 'an object (google.protobuf.Struct)';
    case 'google.protobuf.FieldMask':
      return 'comma-separated camelCase field paths (google.protobuf.FieldMask), e.g. "title,text"';
    default:
      return `an object (${message.typeName})`;
  }
}

function scalarForm(scalar: ScalarType): string {
  switch (scalar) {
    case ScalarType.STRING:
      return 'a string';
    case ScalarType.BOOL:
      return 'true or false';
    case ScalarType.BYTES:
      return 'base64-encoded bytes (a string)';
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return 'a number (or "NaN", "Infinity", "-Infinity")';
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return 'an int64 (an integer, as a number or a decimal string)';
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return 'a uint64 (a non-negative integer, as a number or a decimal string)';
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return 'a uint32 (a non-negative integer below 2^32)';
    default:
      return 'an int32 (an integer from -2^31 to 2^31-1)';
  }
}

/** The decoder's message without its `cannot decode field x.y.Z from JSON:` preamble. */
function decoderDetail(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.replace(/^cannot decode (?:field|message|enum|oneof|map key) \S+ from JSON:?\s*/, '');
}

function show(value: Json | undefined): string {
  const text = JSON.stringify(value) ?? typeof value;
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** A copy of `value` without the object fields and array elements `skip` selects. */
export function withoutSkipped(value: Json, skip: (value: Json) => boolean): Json {
  if (Array.isArray(value)) return value.filter((v) => !skip(v)).map((v) => withoutSkipped(v, skip));
  if (isObject(value)) {
    const out: JsonObject = {};
    for (const [k, v] of Object.entries(value)) if (!skip(v)) out[k] = withoutSkipped(v, skip);
    return out;
  }
  return value;
}
