import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { jobsV1 } from '@aether/proto';
import type { RpcError } from '@aether/rpc';
import type { AetherClient } from '@aether/client';
import { Stack } from '../src';
import { logs, run, spec, stateName, submit, wait, waitForOutput } from './jobs-helpers';

// GPU jobs on a host without a GPU: the NVIDIA device nodes are real character devices made with mknod
// (root, as in CI) with the driver's numbers, in a directory aetherd is configured to look in, and the
// "driver" is one file bound in read-only. What this shows is the wiring — policy, the nodes runc creates
// at /dev/nvidia…, the device cgroup, the driver bind — not a CUDA program on a real GPU, which still has
// to be shown on a GPU host.

const failure = (p: Promise<unknown>): Promise<RpcError> =>
  p.then(
    () => {
      throw new Error('expected the call to fail');
    },
    (e: RpcError) => e,
  );

const GPU = jobsV1.DeviceKind.DEVICE_KIND_NVIDIA_GPU;
const gpu = (over: Partial<jobsV1.Device> = {}): jobsV1.Device =>
  jobsV1.Device.fromPartial({ kind: GPU, ...over });

function mknod(dir: string, nodes: [string, number, number][]): void {
  for (const [name, major, minor] of nodes)
    execFileSync('mknod', [join(dir, name), 'c', String(major), String(minor)]);
}

describe('jobs: NVIDIA GPUs granted by policy (runc, as root, mknod-made nodes)', () => {
  const devDir = mkdtempSync(join(tmpdir(), 'aether-gpu-dev-'));
  const driverDir = mkdtempSync(join(tmpdir(), 'aether-gpu-driver-'));
  const driverFile = join(driverDir, 'libnvidia-fake.so.1');
  let stack: Stack;
  let cfcd: AetherClient;
  let aurorad: AetherClient;

  beforeAll(async () => {
    mknod(devDir, [
      ['nvidia0', 195, 0],
      ['nvidia1', 195, 1],
      ['nvidiactl', 195, 255],
      ['nvidia-uvm', 511, 0],
    ]);
    writeFileSync(driverFile, 'fake NVIDIA driver\n');
    // World-writable on the host: only the read-only bind keeps the job from writing it.
    chmodSync(driverFile, 0o666);
    chmodSync(driverDir, 0o755);
    stack = await new Stack({ jobs: { gpu: { deviceDir: devDir, driverPaths: [driverFile] } } }).init();
    await stack.start('aetherd');
    cfcd = stack.client('cfcd');
    aurorad = stack.client('aurorad');
  }, 60_000);
  afterAll(async () => {
    cfcd.close();
    aurorad.close();
    await stack.close();
    rmSync(devDir, { recursive: true, force: true });
    rmSync(driverDir, { recursive: true, force: true });
  });

  it('gives cfcd a GPU: its nodes at /dev/nvidia…, the driver read-only, and no other GPU', async () => {
    const script = [
      'ls -l /dev/nvidia0 /dev/nvidiactl /dev/nvidia-uvm',
      `cat ${driverFile}`,
      `if err=$( { echo x >> ${driverFile}; } 2>&1 ); then echo "driver writable"; else echo "driver not writable: $err"; fi`,
      'test -e /dev/nvidia1 && echo "nvidia1 visible" || echo "nvidia1 absent"',
      // cgroup v1: the job's device allowlist as the kernel holds it (v2 enforces it in eBPF, unreadable).
      'cat /sys/fs/cgroup/devices/devices.list 2>/dev/null || echo "no devices.list"',
    ].join('; ');
    const { job, out } = await run(cfcd, spec(['/bin/sh', '-c', script], { devices: [gpu()] }));
    expect(stateName(job.state)).toBe('SUCCEEDED');
    expect(job.actor).toBe('spiffe://aether.local/cfcd');
    // Left to aetherd, the lowest free GPU is chosen and recorded in the job's spec.
    expect(job.spec?.devices).toEqual([expect.objectContaining({ kind: GPU, index: 0 })]);
    expect(out).toMatch(/^c[rw-]{9}.* 195, +0 .*\/dev\/nvidia0$/m);
    expect(out).toMatch(/^c[rw-]{9}.* 195, +255 .*\/dev\/nvidiactl$/m);
    expect(out).toMatch(/^c[rw-]{9}.* 511, +0 .*\/dev\/nvidia-uvm$/m);
    expect(out).toContain('fake NVIDIA driver\n');
    expect(out).toMatch(/^driver not writable: .*Read-only file system$/m);
    expect(out).toContain('nvidia1 absent');
    if (existsSync('/sys/fs/cgroup/devices/devices.list')) {
      // cgroup v1: the kernel allows exactly this GPU's nodes, not the other GPU.
      for (const rule of ['c 195:0 rwm', 'c 195:255 rwm', 'c 511:0 rwm'])
        expect(out).toContain(`\n${rule}\n`);
      expect(out).not.toMatch(/^c 195:1 /m);
    } else {
      expect(out).toContain('no devices.list');
    }
  });

  it('gives the same job without the device neither the GPU nodes nor the driver', async () => {
    const script = `for p in /dev/nvidia0 /dev/nvidiactl /dev/nvidia-uvm ${driverFile}; do test -e $p && echo "$p present" || echo "$p absent"; done`;
    const { job, out } = await run(cfcd, spec(['/bin/sh', '-c', script]));
    expect(stateName(job.state)).toBe('SUCCEEDED');
    expect(out).toBe(
      ['/dev/nvidia0', '/dev/nvidiactl', '/dev/nvidia-uvm', driverFile].map((p) => `${p} absent\n`).join(''),
    );
  });

  it('denies aurorad a GPU, naming the policy', async () => {
    const err = await failure(submit(aurorad, spec(['/bin/true'], { devices: [gpu({ index: 0 })] })));
    expect(err).toMatchObject({ code: status.PERMISSION_DENIED, reason: 'POLICY_DENIED' });
    expect(err.metadata['policy']).toBe('aurorad-job-no-devices');
    expect(err.message).toContain('aurorad-job-no-devices');
    // The same job without the device is allowed.
    expect(stateName((await run(aurorad, spec(['/bin/true']))).job.state)).toBe('SUCCEEDED');
  });

  it('refuses a GPU whose node is missing, and one named by UUID, as GPU_UNAVAILABLE', async () => {
    const missing = await failure(submit(cfcd, spec(['/bin/true'], { devices: [gpu({ index: 5 })] })));
    expect(missing).toMatchObject({ code: status.FAILED_PRECONDITION, reason: 'GPU_UNAVAILABLE' });
    expect(missing.message).toContain(join(devDir, 'nvidia5'));
    expect(missing.metadata['missing']).toBe(join(devDir, 'nvidia5'));
    const uuid = 'GPU-8d2b6c4e-0f3a-4d2e-9a7b-1c2d3e4f5a6b';
    const byUuid = await failure(submit(cfcd, spec(['/bin/true'], { devices: [gpu({ path: uuid })] })));
    expect(byUuid).toMatchObject({ code: status.FAILED_PRECONDITION, reason: 'GPU_UNAVAILABLE' });
    expect(byUuid.message).toContain(uuid);
    expect(byUuid.message).toContain('nvidia-smi');
  });

  it('gives a second job nvidia1 while nvidia0 is held, refuses a third, and frees a GPU when its job ends', async () => {
    const first = await submit(
      cfcd,
      spec(['/bin/sh', '-c', 'echo holding; exec sleep 60'], { devices: [gpu()] }),
    );
    expect(first.spec?.devices[0]?.index).toBe(0);
    await waitForOutput(cfcd, first.name, 'holding');
    const script =
      'ls -l /dev/nvidia1; test -e /dev/nvidia0 && echo "nvidia0 visible" || echo "nvidia0 absent"; sleep 1';
    const second = await submit(cfcd, spec(['/bin/sh', '-c', script], { devices: [gpu()] }));
    expect(second.spec?.devices[0]?.index).toBe(1);
    // Both GPUs are held (the second from its submission on): a third is refused, naming the holders.
    const third = await failure(submit(cfcd, spec(['/bin/true'], { devices: [gpu()] })));
    expect(third).toMatchObject({ code: status.RESOURCE_EXHAUSTED, reason: 'GPUS_BUSY' });
    expect(third.message).toContain(`nvidia0: held by ${first.name}`);
    expect(third.message).toContain(`nvidia1: held by ${second.name}`);
    // A GPU named by index may still be shared.
    const shared = await run(cfcd, spec(['/bin/ls', '/dev/nvidia0'], { devices: [gpu({ index: 0 })] }));
    expect(stateName(shared.job.state)).toBe('SUCCEEDED');

    const done = await wait(cfcd, second.name);
    expect(stateName(done.state)).toBe('SUCCEEDED');
    const out = await logs(cfcd, second.name);
    expect(out).toMatch(/^c[rw-]{9}.* 195, +1 .*\/dev\/nvidia1$/m);
    expect(out).toContain('nvidia0 absent');

    await cfcd.call(cfcd.jobs, 'killJob', { name: first.name });
    expect(stateName((await wait(cfcd, first.name)).state)).toBe('KILLED');
    const again = await submit(cfcd, spec(['/bin/true'], { devices: [gpu()] }));
    expect(again.spec?.devices[0]?.index).toBe(0);
    expect(stateName((await wait(cfcd, again.name)).state)).toBe('SUCCEEDED');
  }, 60_000);

  it('still knows which GPU a running job holds after aetherd restarts', async () => {
    const holder = await submit(
      cfcd,
      spec(['/bin/sh', '-c', 'echo holding; exec sleep 60'], { devices: [gpu()] }),
    );
    expect(holder.spec?.devices[0]?.index).toBe(0);
    await waitForOutput(cfcd, holder.name, 'holding');
    await stack.stop('aetherd');
    await stack.start('aetherd');
    cfcd.close();
    cfcd = stack.client('cfcd');
    const next = await submit(cfcd, spec(['/bin/true'], { devices: [gpu()] }));
    expect(next.spec?.devices[0]?.index).toBe(1);
    expect(stateName((await wait(cfcd, next.name)).state)).toBe('SUCCEEDED');
    await cfcd.call(cfcd.jobs, 'killJob', { name: holder.name });
    expect(stateName((await wait(cfcd, holder.name)).state)).toBe('KILLED');
  }, 60_000);
});

describe('jobs: a GPU on a host without GPU nodes', () => {
  const emptyDir = mkdtempSync(join(tmpdir(), 'aether-gpu-none-'));
  let stack: Stack;
  let cfcd: AetherClient;

  beforeAll(async () => {
    stack = await new Stack({ jobs: { gpu: { deviceDir: emptyDir, driverPaths: [] } } }).init();
    await stack.start('aetherd');
    cfcd = stack.client('cfcd');
  }, 60_000);
  afterAll(async () => {
    cfcd.close();
    await stack.close();
    rmSync(emptyDir, { recursive: true, force: true });
  });

  it('refuses cfcd`s GPU job with FAILED_PRECONDITION / GPU_UNAVAILABLE naming the node', async () => {
    const any = await failure(submit(cfcd, spec(['/bin/true'], { devices: [gpu()] })));
    expect(any).toMatchObject({ code: status.FAILED_PRECONDITION, reason: 'GPU_UNAVAILABLE' });
    expect(any.message).toContain(emptyDir);
    expect(any.metadata['missing']).toBe(join(emptyDir, 'nvidia0'));
    const first = await failure(submit(cfcd, spec(['/bin/true'], { devices: [gpu({ index: 0 })] })));
    expect(first).toMatchObject({ code: status.FAILED_PRECONDITION, reason: 'GPU_UNAVAILABLE' });
    expect(first.message).toBe(`GPU device ${join(emptyDir, 'nvidia0')} is missing on this host`);
    // Nothing was recorded for the refused jobs; a job without a GPU still runs.
    const list = await cfcd.call(cfcd.jobs, 'listJobs', jobsV1.ListJobsRequest.fromPartial({}));
    expect(list.jobs).toEqual([]);
    expect(stateName((await run(cfcd, spec(['/bin/true']))).job.state)).toBe('SUCCEEDED');
  });
});
