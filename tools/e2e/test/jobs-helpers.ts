import { durationFromMs, jobsV1 } from '@aether/proto';
import type { AetherClient } from '@aether/client';
import { serverStreamCall } from '@aether/rpc';

export const MiB = 1024 * 1024;
export const { JobState } = jobsV1;

export function spec(
  argv: string[],
  over: Partial<jobsV1.JobSpec> = {},
  res: Partial<jobsV1.Resources> = {},
): jobsV1.JobSpec {
  return jobsV1.JobSpec.fromPartial({
    argv,
    resources: { cpuMillicores: 1000, memoryBytes: BigInt(256 * MiB), pidsMax: 256, ...res },
    timeout: durationFromMs(120_000),
    ...over,
  });
}

export async function submit(c: AetherClient, s: jobsV1.JobSpec, idempotencyKey = ''): Promise<jobsV1.Job> {
  const res = await c.call(c.jobs, 'submitJob', { spec: s, idempotencyKey });
  return res.job!;
}

export async function wait(c: AetherClient, name: string, timeoutMs = 60_000): Promise<jobsV1.Job> {
  const res = await c.call(
    c.jobs,
    'waitJob',
    { name, waitTimeout: durationFromMs(timeoutMs) },
    { timeoutMs: timeoutMs + 5_000 },
  );
  if (!res.terminal)
    throw new Error(`${name} still ${jobsV1.jobStateToJSON(res.job!.state)} after ${timeoutMs} ms`);
  return res.job!;
}

/** Submits, waits for the end, returns the job and its stdout+stderr. */
export async function run(
  c: AetherClient,
  s: jobsV1.JobSpec,
  timeoutMs = 60_000,
): Promise<{ job: jobsV1.Job; out: string }> {
  const job = await wait(c, (await submit(c, s)).name, timeoutMs);
  return { job, out: await logs(c, job.name) };
}

export async function logs(
  c: AetherClient,
  name: string,
  req: Partial<jobsV1.StreamJobLogsRequest> = {},
): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const m of serverStreamCall(
    c.jobs.streamJobLogs.bind(c.jobs),
    jobsV1.StreamJobLogsRequest.fromPartial({ name, ...req }),
  ))
    chunks.push(m.data);
  return Buffer.concat(chunks).toString();
}

/** Polls the job's log until `text` appears (the job is ready for what the test does next). */
export async function waitForOutput(
  c: AetherClient,
  name: string,
  text: string,
  timeoutMs = 20_000,
): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if ((await logs(c, name)).includes(text)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(
    `${name}: ${JSON.stringify(text)} did not appear in ${timeoutMs} ms; log: ${await logs(c, name)}`,
  );
}

export const stateName = (s: jobsV1.JobState): string => jobsV1.jobStateToJSON(s).replace('JOB_STATE_', '');

/** Waits until aetherd has removed a finished job's container, cgroup and bundle (it records the exit first). */
export async function cleanedUp(c: AetherClient, name: string, timeoutMs = 10_000): Promise<jobsV1.Job> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const job = (await c.call(c.jobs, 'getJob', { name })).job!;
    if (
      job.events.some(
        (e) =>
          e.type === jobsV1.JobEventType.JOB_EVENT_TYPE_CLEANED_UP &&
          !e.message.startsWith('cleanup incomplete'),
      )
    )
      return job;
    if (Date.now() > until) throw new Error(`${name} was not cleaned up in ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
