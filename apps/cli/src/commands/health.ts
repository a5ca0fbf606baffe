import { Command } from 'commander';
import { AetherClient, DAEMONS, type DaemonName, type HealthReport } from '@aether/client';
import { table } from '../output';

export function healthCommand(): Command {
  return new Command('health')
    .description('show whether each daemon is serving (exit 1 if any is not)')
    .argument('[daemons...]', `which daemons (${DAEMONS.join(', ')})`, [...DAEMONS])
    .option('--json', 'print JSON instead of a table')
    .option('--wait <seconds>', 'keep asking until all are serving or this many seconds pass', '0')
    .action(async (daemons: string[], opts: { json?: boolean; wait: string }, cmd: Command) => {
      const unknown = daemons.filter((d) => !(DAEMONS as readonly string[]).includes(d));
      if (unknown.length)
        throw new Error(`unknown daemon ${unknown.join(', ')}; choose from ${DAEMONS.join(', ')}`);
      const waitMs = Number(opts.wait) * 1000;
      if (!Number.isFinite(waitMs) || waitMs < 0)
        throw new Error(`--wait must be a number of seconds, got "${opts.wait}"`);
      const client = AetherClient.fromConfig(cmd.optsWithGlobals<{ config: string }>().config);
      const until = Date.now() + waitMs;
      let reports: HealthReport[];
      for (;;) {
        reports = await Promise.all((daemons as DaemonName[]).map((d) => client.health(d)));
        if (reports.every((r) => r.status === 'SERVING') || Date.now() >= until) break;
        await new Promise((r) => setTimeout(r, 250));
      }
      client.close();
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(reports, null, 2)}\n`);
      } else {
        process.stdout.write(
          table(
            ['DAEMON', 'STATUS', 'LATENCY', 'SOCKET', 'ERROR'],
            reports.map((r) => [r.daemon, r.status, `${r.latencyMs.toFixed(1)}ms`, r.socket, r.error ?? '']),
          ),
        );
      }
      if (!reports.every((r) => r.status === 'SERVING')) process.exitCode = 1;
    });
}
