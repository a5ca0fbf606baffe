import { jobsV1 } from './index';
import { jobPolicyResource } from './policy-resources';
import { durationFromMs } from './well-known';

describe('jobPolicyResource', () => {
  it('describes a job to policy by its network, mounts, devices, limits and profile', () => {
    const spec = jobsV1.JobSpec.fromPartial({
      argv: ['/bin/true'],
      network: jobsV1.NetworkMode.NETWORK_MODE_HOST,
      mounts: [
        { hostPath: '/data', readOnly: true },
        { hostPath: '/scratch', readOnly: false },
      ],
      devices: [
        { kind: jobsV1.DeviceKind.DEVICE_KIND_NVIDIA_GPU, index: 1 },
        { kind: jobsV1.DeviceKind.DEVICE_KIND_NVIDIA_GPU },
        { kind: jobsV1.DeviceKind.DEVICE_KIND_CHAR_DEVICE, path: '/dev/fuse' },
      ],
      resources: { cpuMillicores: 1500, memoryBytes: 2n ** 31n, pidsMax: 64 },
      timeout: durationFromMs(7_200_500),
      sandboxProfile: 'unsandboxed',
    });
    expect(jobPolicyResource(spec)).toEqual({
      type: 'job',
      id: '',
      attributes: {
        network: 'host',
        mounts: [
          { hostPath: '/data', readOnly: true },
          { hostPath: '/scratch', readOnly: false },
        ],
        devices: ['nvidia.com/gpu=1', 'nvidia.com/gpu=all', '/dev/fuse'],
        cpuMillicores: 1500,
        memoryBytes: 2 ** 31,
        pidsMax: 64,
        timeoutSeconds: 7201,
        profile: 'unsandboxed',
      },
    });
  });

  it('reads a missing timeout as unbounded and missing limits as zero, so no bound is passed by omission', () => {
    const attrs = jobPolicyResource(jobsV1.JobSpec.fromPartial({ argv: ['/bin/true'] })).attributes;
    expect(attrs).toMatchObject({
      network: 'none',
      cpuMillicores: 0,
      memoryBytes: 0,
      pidsMax: 0,
      timeoutSeconds: Number.MAX_SAFE_INTEGER,
      profile: '',
    });
  });
});
