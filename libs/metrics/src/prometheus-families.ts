import {
  createFileRegistry,
  fromBinary,
  ScalarType,
  type DescField,
  type DescMessage,
} from '@bufbuild/protobuf';
import { FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import { descriptorSet } from '@aether/proto';

/** One series: its labels and current value. */
export interface Sample {
  labels: Record<string, string>;
  value: number;
}

/** A metric family as Prometheus exposes it: one name, help, type and label names, several series. */
export interface Family {
  name: string;
  help: string;
  type: 'gauge' | 'counter';
  labelNames: string[];
  samples: Sample[];
}

const RESPONSE = 'aether.metrics.v1.GetMetricsResponse';
const LATENCY_HISTOGRAM = 'aether.metrics.v1.LatencyHistogram';
const SECONDS_TYPES = new Set(['google.protobuf.Timestamp', 'google.protobuf.Duration']);

type Step = (value: Record<string, unknown>, out: Family[]) => void;

let response: DescMessage | undefined;
const plans = new Map<string, Step[]>();

/** The contract's GetMetricsResponse, read from the descriptor image (with its comments). */
function responseMessage(): DescMessage {
  if (!response) {
    const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, descriptorSet()));
    const message = registry.getMessage(RESPONSE);
    if (!message) throw new Error(`${RESPONSE} is missing from the descriptor image`);
    response = message;
  }
  return response;
}

/** The top-level fields of GetMetricsResponse, by their proto names (`jobs`, `rpc`, …, `time`). */
export function responseFieldNames(): string[] {
  return responseMessage().fields.map((f) => f.name);
}

/**
 * The Prometheus families of one section of the typed snapshot (`jobs`, `audit`, …), named and typed
 * from the contract itself, so a section added to the contract needs no exposition code:
 *
 * - a number `x` of section `s` is `aether_s_x` (just `aether_s` when `x` is `s`): a counter when its name
 *   ends in `_total` (the contract's counters), a gauge otherwise;
 * - a map `x_by_k` is `aether_s_x` with label `k` (`jobs_by_state` → `aether_jobs{state}`);
 * - a Timestamp or Duration `x` is the gauge `aether_s_x_seconds`;
 * - the section's strings are labels of one gauge `aether_s_info` whose value is 1;
 * - LatencyHistograms are left out: they are prom-client Histograms already (see LatencyRecorder), and
 *   so are lists (RPC methods export themselves, see RpcMetrics);
 * - a nested message recurses with its field name in the prefix.
 *
 * Help texts are the first sentence of the field's comment in the contract.
 */
export function sectionFamilies(section: string, value: object): Family[] {
  let steps = plans.get(section);
  if (!steps) {
    const field = responseMessage().fields.find((f) => f.name === section);
    if (!field?.message) throw new Error(`GetMetricsResponse has no section "${section}"`);
    steps = planMessage(field.message, `aether_${section}`, section);
    plans.set(section, steps);
  }
  const out: Family[] = [];
  for (const step of steps) step(value as Record<string, unknown>, out);
  return out;
}

function planMessage(message: DescMessage, prefix: string, owner: string): Step[] {
  const steps: Step[] = [];
  const strings: DescField[] = [];
  const nameOf = (field: string): string => (field === owner ? prefix : `${prefix}_${field}`);
  for (const field of message.fields) {
    const key = field.localName;
    const help = helpOf(field);
    switch (field.fieldKind) {
      case 'scalar': {
        if (field.scalar === ScalarType.STRING || field.scalar === ScalarType.BYTES) {
          strings.push(field);
          break;
        }
        const name = nameOf(field.name);
        const type = field.name.endsWith('_total') ? 'counter' : 'gauge';
        steps.push((v, out) =>
          out.push({ name, help, type, labelNames: [], samples: [{ labels: {}, value: toNumber(v[key]) }] }),
        );
        break;
      }
      case 'map': {
        if (field.mapKind !== 'scalar' || field.scalar === ScalarType.STRING) break;
        const by = /^(.+)_by_([a-z0-9_]+)$/.exec(field.name);
        const base = by?.[1] ?? field.name;
        const label = by?.[2] ?? 'key';
        const name = nameOf(base);
        const type = base.endsWith('_total') ? 'counter' : 'gauge';
        steps.push((v, out) => {
          const map = (v[key] ?? {}) as Record<string, unknown>;
          const samples = Object.keys(map)
            .sort()
            .map((k) => ({ labels: { [label]: k }, value: toNumber(map[k]) }));
          out.push({ name, help, type, labelNames: [label], samples });
        });
        break;
      }
      case 'message': {
        const typeName = field.message.typeName;
        if (typeName === LATENCY_HISTOGRAM) break;
        if (SECONDS_TYPES.has(typeName)) {
          const name = `${nameOf(field.name)}_seconds`;
          steps.push((v, out) => {
            const t = v[key] as { seconds?: unknown; nanos?: unknown } | undefined;
            if (!t) return;
            const value = toNumber(t.seconds) + toNumber(t.nanos) / 1e9;
            out.push({ name, help, type: 'gauge', labelNames: [], samples: [{ labels: {}, value }] });
          });
          break;
        }
        const nested = planMessage(field.message, nameOf(field.name), field.name);
        steps.push((v, out) => {
          const inner = v[key] as Record<string, unknown> | undefined;
          if (inner) for (const step of nested) step(inner, out);
        });
        break;
      }
      default:
        // Lists and enums have no generic exposition.
        break;
    }
  }
  if (strings.length > 0) {
    const name = `${prefix}_info`;
    const labelNames = strings.map((f) => f.name);
    const help = `Always 1; the labels are ${strings.map((f) => `${f.name} (${helpOf(f)})`).join(', ')}`;
    steps.push((v, out) => {
      const labels: Record<string, string> = {};
      for (const f of strings) {
        const raw = v[f.localName];
        labels[f.name] = typeof raw === 'string' ? raw : '';
      }
      out.push({ name, help, type: 'gauge', labelNames, samples: [{ labels, value: 1 }] });
    });
  }
  return steps;
}

function toNumber(v: unknown): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  if (typeof v === 'boolean') return v ? 1 : 0;
  return 0;
}

/** The first sentence of a field's leading comment in the contract, on one line. */
function helpOf(field: DescField): string {
  const path = pathOf(field);
  const location = field.parent.file.proto.sourceCodeInfo?.location.find(
    (l) => l.path.length === path.length && l.path.every((p, i) => p === path[i]),
  );
  const text = (location?.leadingComments ?? '').replace(/\s+/g, ' ').trim();
  // A sentence ends at a period before a capital letter or the end (not at `e.g.`).
  const sentence = /^.*?\.(?=\s+[A-Z]|$)/.exec(text)?.[0] ?? text;
  return sentence || `${field.parent.typeName}.${field.name}`;
}

/** The source-info path of a field: message_type (4) / nested_type (3) indexes, then field (2). */
function pathOf(field: DescField): number[] {
  const messagePath = (m: DescMessage): number[] =>
    m.parent
      ? [...messagePath(m.parent), 3, m.parent.proto.nestedType.indexOf(m.proto)]
      : [4, m.file.proto.messageType.indexOf(m.proto)];
  return [...messagePath(field.parent), 2, field.parent.proto.field.indexOf(field.proto)];
}
