import { jobsV1, msFromDuration } from '@aether/proto';
import type { ResourceRef } from '@aether/rpc';

function deviceName(d: jobsV1.Device): string {
  switch (d.kind) {
    case jobsV1.DeviceKind.DEVICE_KIND_NVIDIA_GPU:
      return `nvidia.com/gpu=${d.index ?? 'all'}`;
    default:
      return d.path || `device-kind-${d.kind}`;
  }
}

/**
 * The job as policy sees it: the limits it will really run with (the spec after `withDefaults`, so
 * leaving a field unset can never slip past a bound), its network, mounts, devices and profile.
 */
export function jobPolicyResource(spec: jobsV1.JobSpec): ResourceRef {
  const r = spec.resources;
  return {
    type: 'job',
    id: '',
    attributes: {
      network: spec.network === jobsV1.NetworkMode.NETWORK_MODE_HOST ? 'host' : 'none',
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
