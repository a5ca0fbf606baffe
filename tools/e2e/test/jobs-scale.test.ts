import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { AetherClient } from '@aether/client';
import { Stack } from '../src';
import { spec, stateName, submit, wait } from './jobs-helpers';

/** Everything a finished job could leave behind on the host. */
function leftovers(stack: Stack): Record<string, string[]> {
  let containers: { id: string }[];
  try {
    containers = (JSON.parse(
      execFileSync('runc', [`--root=${stack.jobsRuntimeRoot}`, 'list', '--format', 'json'], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
      }) || 'null',
    ) ?? []) as { id: string }[];
  } catch (err) {
    // `runc list` fails when a container's state directory disappears while it reads it (a removal in
    // progress): not settled yet.
    containers = [
      { id: `(runc list failed: ${String((err as { stderr?: unknown }).stderr ?? err).trim()})` },
    ];
  }
  const cgroups: string[] = [];
  for (const ctrl of readdirSync('/sys/fs/cgroup')) {
    const dir = join('/sys/fs/cgroup', ctrl, stack.jobsCgroupParent);
    if (existsSync(dir))
      cgroups.push(
        ...readdirSync(dir, { withFileTypes: true })
          .filter((d) => d.isDirectory())
          .map((d) => `${ctrl}/${d.name}`),
      );
  }
  const jobsDir = join(stack.dir, 'state', 'aetherd', 'jobs');
  const bundles = readdirSync(jobsDir).filter((d) => existsSync(join(jobsDir, d, 'bundle')));
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => l.includes(stack.dir));
  const monitors: string[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8');
      if (cmd.includes('conmon') && cmd.includes(stack.dir)) monitors.push(p);
    } catch {
      // Exited meanwhile.
    }
  }
  const exits = readdirSync(join(jobsDir, 'exits'));
  return { containers: containers.map((c) => c.id), cgroups, bundles, mounts, monitors, exits };
}

const NOTHING = { containers: [], cgroups: [], bundles: [], mounts: [], monitors: [], exits: [] };

/** aetherd records a job's exit before it removes the container; give the removal a moment to finish. */
async function settledLeftovers(stack: Stack): Promise<Record<string, string[]>> {
  const until = Date.now() + 15_000;
  for (;;) {
    const found = leftovers(stack);
    if (Object.values(found).every((l) => l.length === 0) || Date.now() > until) return found;
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('jobs at scale: nothing is left behind (runc, as root)', () => {
  let stack: Stack;
  let admin: AetherClient;

  beforeAll(async () => {
    stack = await new Stack().init();
    await stack.start('aetherd');
    admin = stack.client();
  }, 60_000);
  afterAll(async () => {
    admin.close();
    await stack.close();
  });

  it('runs 1,000 sequential short jobs and leaves no container, cgroup, mount, bundle or process', async () => {
    for (let i = 0; i < 1000; i++) {
      const job = await wait(admin, (await submit(admin, spec(['/bin/true']))).name);
      if (stateName(job.state) !== 'SUCCEEDED')
        throw new Error(`job ${i} ended ${stateName(job.state)}: ${job.failureReason}`);
    }
    expect(await settledLeftovers(stack)).toEqual(NOTHING);
  }, 600_000);

  it('runs 200 concurrent short jobs and leaves nothing behind', async () => {
    const jobs = await Promise.all(
      Array.from({ length: 200 }, (_, i) => submit(admin, spec(['/bin/sh', '-c', `echo job ${i}`]))),
    );
    const done = await Promise.all(jobs.map((j) => wait(admin, j.name, 120_000)));
    expect(done.map((j) => stateName(j.state))).toEqual(Array(200).fill('SUCCEEDED'));
    expect(await settledLeftovers(stack)).toEqual(NOTHING);
  }, 300_000);
});
