import { existsSync } from 'node:fs';
import { join } from 'node:path';
import Ajv2020, { type ValidateFunction } from 'ajv/dist/2020';
import type { TrainingTemplateConfig } from '@aether/config';
import { durationFromMs, jobsV1, type modelsV1 } from '@aether/proto';

export type JsonObject = Record<string, unknown>;
import { invalidFields } from '@aether/rpc';

/** Label keys cfcd puts on a run's job and on the artifacts of its outputs. */
export const RUN_LABEL = 'aether.training-run';
export const OUTPUT_LABEL = 'aether.training-output';

/** Where the files a template names as `builtin:<file>` are: the trainer bundle cfcd's build ships. */
export function builtinFile(file: string): string {
  const candidates = [
    join(__dirname, '..', 'trainer', file), // dist/training → dist/trainer (built, packaged)
    join(__dirname, '..', '..', 'dist', 'trainer', file), // src/training under ts-jest
  ];
  return candidates.find((c) => existsSync(c)) ?? candidates[0]!;
}

/** A configured template, ready to use: its hyperparameter validator and host file paths resolved. */
export interface Template {
  name: string;
  config: TrainingTemplateConfig;
  /** File key → host path. */
  files: Record<string, string>;
  validate?: ValidateFunction;
}

export class TrainingTemplates {
  private readonly byName = new Map<string, Template>();

  constructor(configs: Record<string, TrainingTemplateConfig>) {
    const ajv = new Ajv2020({ allErrors: true, strict: false });
    for (const [name, config] of Object.entries(configs)) {
      const files = Object.fromEntries(
        Object.entries(config.files).map(([k, f]) => [
          k,
          f.startsWith('builtin:') ? builtinFile(f.slice('builtin:'.length)) : f,
        ]),
      );
      let validate: ValidateFunction | undefined;
      if (config.hyperparameters) {
        try {
          validate = ajv.compile(config.hyperparameters);
        } catch (err) {
          throw new Error(
            `cfcd.training.templates.${name}.hyperparameters: not a valid JSON Schema: ${(err as Error).message}`,
          );
        }
      }
      this.byName.set(name, { name, config, files, ...(validate ? { validate } : {}) });
    }
  }

  get(name: string): Template | undefined {
    return this.byName.get(name);
  }

  names(): string[] {
    return [...this.byName.keys()].sort();
  }

  /** Template files missing on this host (a template naming one cannot start). */
  missingFiles(): string[] {
    return [...this.byName.values()].flatMap((t) => Object.values(t.files).filter((f) => !existsSync(f)));
  }

  toProto(t: Template): modelsV1.TrainingTemplate {
    const r = t.config.resources;
    return {
      name: `trainingTemplates/${t.name}`,
      description: t.config.description,
      argv: t.config.argv,
      ...(t.config.hyperparameters ? { hyperparametersSchema: t.config.hyperparameters } : {}),
      defaultResources: {
        cpuMillicores: r.cpuMillicores,
        memoryBytes: BigInt(r.memoryBytes),
        gpuCount: 0,
        pidsMax: r.pidsMax,
        ...(r.timeoutSeconds > 0 ? { timeout: durationFromMs(r.timeoutSeconds * 1000) } : {}),
      },
    };
  }
}

/** Validates hyperparameters against the template's schema; INVALID_ARGUMENT naming each problem. */
export function checkHyperparameters(t: Template, hp: JsonObject): void {
  const size = Buffer.byteLength(JSON.stringify(hp));
  if (size > 64 * 1024)
    throw invalidFields([{ field: 'spec.hyperparameters', description: `is ${size} bytes; at most 65536` }]);
  if (!t.validate || t.validate(hp)) return;
  throw invalidFields(
    (t.validate.errors ?? []).map((e) => ({
      field: `spec.hyperparameters${e.instancePath.replaceAll('/', '.')}`,
      description:
        e.keyword === 'additionalProperties'
          ? `"${String((e.params as { additionalProperty?: string }).additionalProperty)}" is not a hyperparameter of template ${t.name}`
          : `${e.message ?? 'is invalid'} (template ${t.name})`,
    })),
  );
}

const INPUT_DIR = '/work/inputs';
const OUTPUT_DIR = '/work/outputs';
const artifactId = (name: string): string => name.slice('artifacts/'.length);

/**
 * The job that runs a training run: the template's argv with its placeholders filled, the datasets and
 * the template's files bound read-only as input artifacts, the hyperparameters in `$AETHER_HPARAMS` and
 * `/work/hparams.json`, the template's outputs declared (labelled with the run), the resources asked
 * for or the template's, GPUs as NVIDIA devices.
 */
export function trainingJobSpec(
  t: Template,
  spec: modelsV1.TrainingSpec,
  hp: JsonObject,
  fileArtifacts: Record<string, string>,
  run: { id: string; labels: Record<string, string>; intentId: string },
): jobsV1.JobSpec {
  const fill = (arg: string): string =>
    arg
      .replace(/\{file:([^}]+)\}/g, (_, key: string) => `${INPUT_DIR}/${artifactId(fileArtifacts[key]!)}`)
      .replaceAll('{outputs}', OUTPUT_DIR);
  const argv = t.config.argv.flatMap((arg) =>
    arg === '{datasets}' ? spec.datasets.map((d) => `${INPUT_DIR}/${artifactId(d)}`) : [fill(arg)],
  );
  const r = spec.resources;
  const d = t.config.resources;
  const asked = r?.timeout ? Number(r.timeout.seconds) * 1000 + Math.floor(r.timeout.nanos / 1e6) : 0;
  const timeoutMs = asked > 0 ? asked : d.timeoutSeconds * 1000;
  const gpus = r?.gpuCount ?? 0;
  return jobsV1.JobSpec.fromPartial({
    // The hyperparameters file is written by a fixed shell line that never interpolates them; the
    // trainer then replaces the shell (same pid, same signals).
    argv: [
      '/bin/sh',
      '-c',
      'printf "%s" "$AETHER_HPARAMS" > /work/hparams.json && exec "$@"',
      'trainer',
      ...argv,
    ],
    env: { ...t.config.env, AETHER_HPARAMS: JSON.stringify(hp), AETHER_TRAINING_RUN: run.id },
    resources: {
      cpuMillicores: r?.cpuMillicores || d.cpuMillicores,
      memoryBytes: r?.memoryBytes || BigInt(d.memoryBytes),
      pidsMax: r?.pidsMax || d.pidsMax,
    },
    ...(timeoutMs > 0 ? { timeout: durationFromMs(timeoutMs) } : {}),
    devices: Array.from({ length: gpus }, () => ({
      kind: jobsV1.DeviceKind.DEVICE_KIND_NVIDIA_GPU,
      path: '',
    })),
    labels: { ...run.labels, [RUN_LABEL]: run.id },
    intentId: run.intentId,
    inputArtifacts: [...spec.datasets, ...Object.values(fileArtifacts)],
    outputs: t.config.outputs.map((o) => ({
      path: o.path,
      artifactType: o.type,
      mediaType: o.path.endsWith('.onnx') ? 'application/onnx' : '',
      labels: { [RUN_LABEL]: run.id, [OUTPUT_LABEL]: o.path },
      optional: o.optional,
    })),
  });
}
