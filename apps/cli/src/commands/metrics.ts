import { Command } from 'commander';
import { type AetherClient, DAEMONS, type DaemonName } from '@aether/client';
import { metricsV1 } from '@aether/proto';
import { createClient } from '@aether/rpc';
import { arg, printJson, withClient } from '../command-support';
import { withAetherErrors } from '../errors';
import { type MetricsSection, metricsText, parseSections } from '../metrics-format';
import { UsageError } from '../units';

function parseDaemon(v: string): DaemonName {
  if (!(DAEMONS as readonly string[]).includes(v))
    throw new UsageError(`daemon "${v}" must be one of ${DAEMONS.join(', ')}`);
  return v as DaemonName;
}

/** Runs `fn` with the metrics client of one daemon (aetherd's is the SDK's; the others are made here). */
export async function withMetricsOf<T>(
  c: AetherClient,
  daemon: DaemonName,
  fn: (m: metricsV1.MetricsServiceClient) => Promise<T>,
): Promise<T> {
  if (daemon === 'aetherd') return fn(c.metrics);
  const m = createClient(metricsV1.MetricsServiceClient, c.config[daemon]);
  try {
    return await fn(m);
  } finally {
    m.close();
  }
}

interface MetricsOpts {
  daemon: DaemonName;
  section?: MetricsSection[];
  json?: boolean;
  prometheus?: boolean;
}

export function metricsCommand(): Command {
  return withAetherErrors(new Command('metrics'))
    .description('show what a daemon is doing: jobs, RPCs, policy, audit, stores, events, process, host')
    .option('--daemon <name>', `which daemon: ${DAEMONS.join(', ')}`, arg(parseDaemon), 'aetherd')
    .option(
      '--section <sections>',
      'only these sections, comma-separated: jobs,rpc,policy,audit,artifacts,memory,events,process,host',
      arg(parseSections),
    )
    .option('--json', 'print the snapshot as JSON')
    .option('--prometheus', 'print the Prometheus text exposition format, as a scraper would read it')
    .showHelpAfterError('(add --help for usage and examples)')
    .addHelpText(
      'after',
      `
Counters count since the daemon started; latencies are estimated from histograms (p50, p99). A
section the daemon does not have (jobs on cfcd) is left out. The RPC table shows the most called
methods; --json has all of them with their buckets.

Examples:
  $ aether metrics
  $ aether metrics --section jobs,rpc
  $ aether metrics --daemon aurorad --section policy,process
  $ aether metrics --json | jq '.rpc.methods[] | select(.errorsTotal != "0")'
  $ aether metrics --prometheus > aetherd.prom`,
    )
    .action(async (opts: MetricsOpts, cmd: Command) => {
      if (opts.prometheus && (opts.json || opts.section))
        throw new UsageError(
          '--prometheus prints every metric as text: it does not mix with --json or --section',
        );
      await withClient(cmd, (c) =>
        withMetricsOf(c, opts.daemon, async (m) => {
          if (opts.prometheus) {
            const res = await c.call(
              m,
              'getPrometheusMetrics',
              metricsV1.GetPrometheusMetricsRequest.fromPartial({}),
            );
            process.stdout.write(res.text);
            return;
          }
          const res = await c.call(
            m,
            'getMetrics',
            metricsV1.GetMetricsRequest.fromPartial(opts.section ? { readMask: opts.section } : {}),
          );
          if (opts.json) printJson(metricsV1.GetMetricsResponse.toJSON(res));
          else process.stdout.write(metricsText(res));
        }),
      );
    });
}
