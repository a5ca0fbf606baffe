import { availableParallelism, totalmem } from 'node:os';
import { jobsV1, msFromDuration } from '@aether/proto';
import type { ResourceRef } from '@aether/rpc';

/** What a job gets when its spec leaves a limit unset (seed §4.3: half the CPUs, half the memory). */
export interface JobDefaults {
  cpuMillicores: number;
  memoryBytes: number;
  pidsMax: number;
  timeoutSeconds: number;
}

export function hostJobDefaults(): JobDefaults {
  return {
    cpuMillicores: Math.floor((availableParallelism() * 1000) / 2),
    memoryBytes: Math.floor(totalmem() / 2),
    pidsMax: 1024,
    timeoutSeconds: 3600,
  };
}

function deviceName(d: jobsV1.Device): string {
  switch (d.kind) {
    case jobsV1.DeviceKind.DEVICE_KIND_NVIDIA_GPU:
      return `nvidia.com/gpu=${d.index ?? 'all'}`;
    default:
      return d.path || `device-kind-${d.kind}`;
  }
}

/**
 * The job as policy sees it: the limits it will really run with (defaults filled in, so leaving a
 * field unset can never slip past a bound), its network, mounts and devices.
 */
export function jobPolicyResource(spec: jobsV1.JobSpec | undefined, defaults: JobDefaults): ResourceRef {
  const r = spec?.resources;
  return {
    type: 'job',
    id: '',
    attributes: {
      network: spec?.network === jobsV1.NetworkMode.NETWORK_MODE_HOST ? 'host' : 'none',
      mounts: (spec?.mounts ?? []).map((m) => ({ hostPath: m.hostPath, readOnly: m.readOnly ?? true })),
      devices: (spec?.devices ?? []).map(deviceName),
      cpuMillicores: r?.cpuMillicores || defaults.cpuMillicores,
      memoryBytes: r?.memoryBytes ? Number(r.memoryBytes) : defaults.memoryBytes,
      pidsMax: r?.pidsMax || defaults.pidsMax,
      timeoutSeconds: spec?.timeout
        ? Math.ceil(msFromDuration(spec.timeout) / 1000)
        : defaults.timeoutSeconds,
      profile: spec?.sandboxProfile ?? '',
    },
  };
}
