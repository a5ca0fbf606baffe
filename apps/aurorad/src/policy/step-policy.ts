import type { PolicyPrincipal, PolicyQuery, PolicyResource, Decision } from '@aether/policy';
import { intentsV1, jobPolicyResource, jobsV1, modelsV1 } from '@aether/proto';
import { containsStepReference } from '../planning/plan-schema';
import { encodeToolArguments, withoutSkipped } from '../planning/tool-arguments';
import type { Json, JsonObject, PlannedStep, ToolName } from '../planning/plan';

const { PolicyEffect } = intentsV1;

/** The RPC a tool makes that policy decides on, and on which daemon. */
export interface StepAccess {
  daemon: 'aetherd' | 'cfcd';
  /** Cedar action, `<api>.<Method>`. */
  action: string;
  resource: PolicyResource;
}

/** The arguments with every value that still holds a `${steps…}` reference left out (unknown until run time). */
export function withoutReferences(value: Json): Json {
  return withoutSkipped(value, containsStepReference);
}

/** What a `jobs.run` step gets when its plan leaves a limit unset (inside aurorad's policy bounds). */
export const JOB_DEFAULTS = { cpuMillicores: 1000, memoryBytes: 536_870_912, pidsMax: 256, timeout: '300s' };

/**
 * A `jobs.run` step's arguments with every unset limit filled in, so that what policy checks here is
 * exactly what aetherd receives (aetherd would otherwise apply its own defaults, unseen by this check).
 */
export function withJobDefaults(tool: string, args: JsonObject): JsonObject {
  if (tool !== 'jobs.run') return args;
  const spec = { ...((args['spec'] ?? {}) as JsonObject) };
  const resources = { ...((spec['resources'] ?? {}) as JsonObject) };
  const unset = (v: Json | undefined): boolean => v === undefined || v === null || v === 0 || v === '0';
  if (unset(resources['cpuMillicores']) && unset(resources['cpu_millicores']))
    resources['cpuMillicores'] = JOB_DEFAULTS.cpuMillicores;
  if (unset(resources['memoryBytes']) && unset(resources['memory_bytes']))
    resources['memoryBytes'] = JOB_DEFAULTS.memoryBytes;
  if (unset(resources['pidsMax']) && unset(resources['pids_max']))
    resources['pidsMax'] = JOB_DEFAULTS.pidsMax;
  if (spec['timeout'] === undefined || spec['timeout'] === null) spec['timeout'] = JOB_DEFAULTS.timeout;
  spec['resources'] = resources;
  return { ...args, spec };
}

/**
 * What each tool asks of which daemon, with the resource exactly as that daemon's pipeline will
 * present it to policy (for `jobs.run`: the job's network, mounts, devices and limits, via the same
 * `jobPolicyResource` aetherd uses). Resources that exist only at run time (a job to wait for, an
 * artifact an earlier step makes) are checked as the type with no id, as a policy on the type sees them.
 */
export function stepAccess(tool: ToolName, args: JsonObject): StepAccess {
  const known = withoutReferences(args) as JsonObject;
  switch (tool) {
    case 'jobs.run': {
      const req = jobsV1.SubmitJobRequest.decode(encodeToolArguments(tool, known));
      return {
        daemon: 'aetherd',
        action: 'jobs.SubmitJob',
        resource: jobPolicyResource(req.spec ?? jobsV1.JobSpec.fromPartial({})),
      };
    }
    case 'jobs.wait':
      return { daemon: 'aetherd', action: 'jobs.WaitJob', resource: { type: 'job', id: '' } };
    case 'artifacts.register': {
      const type = (known['metadata'] as JsonObject | undefined)?.['type'];
      return {
        daemon: 'aetherd',
        action: 'artifacts.CreateArtifact',
        resource: {
          type: 'artifact',
          id: 'new',
          attributes: {
            type: typeof type === 'string' ? type.replace(/^ARTIFACT_TYPE_/, '').toLowerCase() : 'other',
          },
        },
      };
    }
    case 'artifacts.get':
      return { daemon: 'aetherd', action: 'artifacts.GetArtifact', resource: { type: 'artifact', id: '' } };
    case 'memory.add': {
      const tags = ((known['entry'] as JsonObject | undefined)?.['tags'] ?? []) as Json[];
      return {
        daemon: 'aetherd',
        action: 'memory.AddEntry',
        resource: {
          type: 'memory_entry',
          id: 'new',
          attributes: { tags: [...new Set(tags.filter((t): t is string => typeof t === 'string'))] },
        },
      };
    }
    case 'memory.search':
      return { daemon: 'aetherd', action: 'memory.Search', resource: { type: 'service', id: 'memory' } };
    case 'models.infer':
      return { daemon: 'cfcd', action: 'models.Infer', resource: { type: 'service', id: 'models' } };
    case 'models.generate':
      return { daemon: 'cfcd', action: 'models.Generate', resource: { type: 'service', id: 'models' } };
    case 'models.train': {
      // cfcd presents StartTraining as the job it would submit; aurorad knows the run's resources and
      // GPUs but not the template's defaults (unset limits read as 0 here).
      const r = modelsV1.StartTrainingRequest.decode(encodeToolArguments(tool, known)).spec?.resources;
      const job = jobsV1.JobSpec.fromPartial({
        resources: {
          cpuMillicores: r?.cpuMillicores ?? 0,
          memoryBytes: r?.memoryBytes ?? 0n,
          pidsMax: r?.pidsMax ?? 0,
        },
        ...(r?.timeout ? { timeout: r.timeout } : {}),
        devices: Array.from({ length: r?.gpuCount ?? 0 }, () => ({
          kind: jobsV1.DeviceKind.DEVICE_KIND_NVIDIA_GPU,
        })),
      });
      return {
        daemon: 'cfcd',
        action: 'models.StartTraining',
        resource: { ...jobPolicyResource(job), id: 'new' },
      };
    }
  }
}

/** What a capability token minted for an approved step allows: this action, with this job's bounds. */
export function approvalConstraints(tool: ToolName, access: StepAccess): Record<string, Json> {
  if (tool !== 'jobs.run') return {};
  const a = access.resource.attributes ?? {};
  return {
    network: a['network'] === 'host' ? 'host' : 'none',
    max_cpu_millicores: a['cpuMillicores'] as number,
    max_memory_bytes: a['memoryBytes'] as number,
    max_pids: a['pidsMax'] as number,
    max_timeout_seconds: a['timeoutSeconds'] as number,
    allow_devices: false,
    allow_mounts: false,
  };
}

function toEffect(e: Decision['effect']): intentsV1.PolicyEffect {
  return e === 'allow'
    ? PolicyEffect.POLICY_EFFECT_ALLOW
    : e === 'ask'
      ? PolicyEffect.POLICY_EFFECT_ASK
      : PolicyEffect.POLICY_EFFECT_DENY;
}

/**
 * Checks plan steps with the same policy files aetherd enforces, as the identity aurorad acts with,
 * before anything runs. A step whose arguments cannot even be read as its tool's request is denied
 * here with the reason (nothing runs on a plan aurorad could not check).
 */
export class StepPolicy {
  constructor(
    private readonly engine: { decide(q: PolicyQuery): Decision },
    readonly principal: PolicyPrincipal,
  ) {}

  /** What a stored step asks of which daemon (for minting the token of an approved step). */
  access(step: { tool: string; arguments?: { [key: string]: unknown } | undefined }): StepAccess {
    return stepAccess(step.tool as ToolName, (step.arguments ?? {}) as JsonObject);
  }

  check(intentId: string, step: PlannedStep): { decision: intentsV1.PolicyDecision; access?: StepAccess } {
    let access: StepAccess;
    try {
      access = stepAccess(step.tool, step.arguments);
    } catch (err) {
      return {
        decision: intentsV1.PolicyDecision.fromPartial({
          effect: PolicyEffect.POLICY_EFFECT_DENY,
          policyIds: ['invalid-arguments'],
          reason: `the step's arguments cannot be checked: ${(err as Error).message}`,
          principal: this.principal.id,
        }),
      };
    }
    const d = this.engine.decide({
      principal: this.principal,
      action: access.action,
      resource: access.resource,
      context: { requestId: `${intentId}:${step.id}`, intentId },
    });
    return {
      access,
      decision: intentsV1.PolicyDecision.fromPartial({
        effect: toEffect(d.effect),
        policyIds: d.policyIds,
        reason: d.reason,
        policySetHash: d.policySetHash ?? '',
        action: access.action,
        principal: this.principal.id,
      }),
    };
  }
}
