import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { AetherClient, DAEMONS, type HealthReport } from '@aether/client';
import { describeHost, probeHost, type Feature, type HostFacts, type RuntimeName } from '@aether/sandbox';
import { errorText, withAetherErrors } from '../errors';
import { UsageError } from '../units';

const RUNTIMES: readonly RuntimeName[] = ['runc', 'crun'];

/** `✓ name  detail` lines with the details aligned. */
function checklist(rows: { ok: boolean; name: string; detail: string }[]): string {
  const w = Math.max(0, ...rows.map((r) => r.name.length));
  return rows.map((r) => `  ${r.ok ? '✓' : '✗'} ${r.name.padEnd(w)}  ${r.detail}`.trimEnd() + '\n').join('');
}

/** Runs the host probe in a scratch directory of its own, removed afterwards whatever happens. */
async function probe(runtime: RuntimeName): Promise<HostFacts> {
  const dir = mkdtempSync(join(tmpdir(), 'aether-doctor-'));
  try {
    return await probeHost({
      runtime,
      runtimeRoot: join(dir, 'runtime'),
      scratchDir: join(dir, 'scratch'),
      runTestContainer: true,
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function doctorCommand(): Command {
  return withAetherErrors(new Command('doctor'))
    .description(
      'check that this host can run jobs (runtime, conmon, cgroups, seccomp …) and that the daemons answer',
    )
    .option('--runtime <name>', `OCI runtime to check (${RUNTIMES.join(', ')})`, 'runc')
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      `
Run it on the machine where aetherd runs jobs, as the user aetherd runs as (usually root): it starts
a minimal test container with the runtime, as aetherd does at start-up. Then it asks each daemon of
the client configuration whether it is serving; a daemon that is down is reported, not an error.

Exit status: 0 when the runtime and conmon work (jobs can run here), 1 otherwise.

Examples:
  $ sudo aether doctor
  $ aether doctor --runtime crun --json | jq '.features[] | select(.available | not)'`,
    )
    .action(async (opts: { runtime: string; json?: boolean }, cmd: Command) => {
      if (!(RUNTIMES as readonly string[]).includes(opts.runtime))
        throw new UsageError(`--runtime must be one of ${RUNTIMES.join(', ')}, got "${opts.runtime}"`);
      const configPath = cmd.optsWithGlobals<{ config: string }>().config;
      const facts = await probe(opts.runtime as RuntimeName);
      const features: Feature[] = describeHost(facts);
      let daemons: HealthReport[] = [];
      let configError: string | undefined;
      try {
        const c = AetherClient.fromConfig(configPath);
        try {
          daemons = await Promise.all(DAEMONS.map((d) => c.health(d)));
        } finally {
          c.close();
        }
      } catch (err) {
        configError = errorText(err);
      }
      const ok = facts.runtime.working && facts.monitor.working;
      if (opts.json) {
        process.stdout.write(
          `${JSON.stringify({ ok, features, host: facts, daemons, ...(configError ? { configError } : {}) }, null, 2)}\n`,
        );
      } else {
        let out =
          'This host (runs the jobs):\n' + checklist(features.map((f) => ({ ok: f.available, ...f })));
        out += `Daemons (${configPath}):\n`;
        out += configError
          ? `  ✗ cannot read the client configuration: ${configError}\n`
          : checklist(
              daemons.map((r) => ({
                ok: r.status === 'SERVING',
                name: r.daemon,
                detail: `${r.status} ${r.socket}${r.error ? `: ${r.error}` : ` (${r.latencyMs.toFixed(1)}ms)`}`,
              })),
            );
        out += ok
          ? `\nJobs can run on this host (${facts.runtime.name} ${facts.runtime.version}, conmon ${facts.monitor.version}).\n`
          : `\nJobs cannot run on this host: ${[facts.runtime.error, facts.monitor.error].filter(Boolean).join('; ')}\n`;
        process.stdout.write(out);
      }
      if (!ok) process.exitCode = 1;
    });
}
