import { DeviceKind, NetworkMode, type Device, type JobSpec } from './gen/aether/jobs/v1/jobs';
import { msFromDuration } from './well-known';

/**
 * A resource as the policy engine is asked about it: structurally the `ResourceRef` of `@aether/rpc` and
 * the `PolicyResource` of `@aether/policy` (this package depends on neither).
 */
export interface PolicyResourceShape {
  type: string;
  id: string;
  attributes: Record<string, unknown>;
}

function deviceName(d: Device): string {
  switch (d.kind) {
    case DeviceKind.DEVICE_KIND_NVIDIA_GPU:
      return `nvidia.com/gpu=${d.index ?? 'all'}`;
    default:
      return d.path || `device-kind-${d.kind}`;
  }
}

/**
 * The job as policy sees it for `jobs.SubmitJob`: its network, mounts, devices, limits and profile. aetherd
 * checks the spec after applying its defaults (so leaving a field unset can never slip past a bound);
 * aurorad computes the same resource to pre-check a plan step against the same policy.
 */
export function jobPolicyResource(spec: JobSpec): PolicyResourceShape {
  const r = spec.resources;
  return {
    type: 'job',
    id: '',
    attributes: {
      network: spec.network === NetworkMode.NETWORK_MODE_HOST ? 'host' : 'none',
      mounts: spec.mounts.map((m) => ({ hostPath: m.hostPath, readOnly: m.readOnly ?? true })),
      devices: spec.devices.map(deviceName),
      cpuMillicores: r?.cpuMillicores ?? 0,
      memoryBytes: Number(r?.memoryBytes ?? 0n),
      pidsMax: r?.pidsMax ?? 0,
      // No runtime limit reads as "unbounded" to a policy bound.
      timeoutSeconds: spec.timeout ? Math.ceil(msFromDuration(spec.timeout) / 1000) : Number.MAX_SAFE_INTEGER,
      profile: spec.sandboxProfile,
    },
  };
}
