import { Command } from 'commander';
import { explain, formatPolicyErrors, PolicyEngine, queryFromArgs, validatePolicyDir } from '@aether/policy';

const DEFAULT_DIR = '/etc/aether/policy';
const collect = (v: string, acc: string[]): string[] => [...acc, v];

export function policyCommand(): Command {
  const policy = new Command('policy').description('validate policy files and explain decisions (Cedar)');
  policy
    .command('validate')
    .description('parse and validate every *.cedar file against the schema; exit 1 on any error')
    .argument('[dir]', 'policy directory', DEFAULT_DIR)
    .action((dir: string) => {
      const r = validatePolicyDir(dir);
      if (!r.ok) {
        process.stderr.write(`${formatPolicyErrors(r.errors)}\n`);
        process.exitCode = 1;
        return;
      }
      process.stdout.write(`ok: ${r.policyIds.length} policies, policy set ${r.hash}\n`);
    });
  policy
    .command('check')
    .description('explain the decision for one request: allow, deny or ask, which policies decided, and why')
    .requiredOption(
      '--principal <id>',
      'SPIFFE ID or path, e.g. aurorad or spiffe://aether.local/users/alice',
    )
    .requiredOption('--action <action>', 'e.g. jobs.SubmitJob')
    .option('--resource <type[:id]>', 'service, job, artifact or memory_entry', 'service')
    .option(
      '--attr <key=value>',
      'resource attribute, JSON if it parses (repeatable), e.g. network=host',
      collect,
      [],
    )
    .option('--intent <id>', 'intent id in the context')
    .option('--dir <dir>', 'policy directory', DEFAULT_DIR)
    .option('--json', 'print JSON')
    .action(
      (opts: {
        principal: string;
        action: string;
        resource: string;
        attr: string[];
        intent?: string;
        dir: string;
        json?: boolean;
      }) => {
        const engine = PolicyEngine.fromDirectory(opts.dir);
        const e = explain(
          engine,
          queryFromArgs({
            principal: opts.principal,
            action: opts.action,
            resource: opts.resource,
            attrs: opts.attr,
            ...(opts.intent ? { intentId: opts.intent } : {}),
          }),
        );
        if (opts.json) {
          process.stdout.write(`${JSON.stringify(e, null, 2)}\n`);
        } else {
          const lines = [
            `decision: ${e.decision.effect.toUpperCase()}`,
            `reason:   ${e.decision.reason}`,
            `policies: ${e.decision.policyIds.join(', ')}`,
            ...e.determining.map((p) => `  ${p.effect} ${p.id} (${p.file}:${p.line}:${p.column})`),
            ...e.errors.map((x) => `  error in ${x.policyId}: ${x.message}`),
            `policy set: ${e.policySetHash}`,
          ];
          process.stdout.write(`${lines.join('\n')}\n`);
        }
        if (e.decision.effect !== 'allow') process.exitCode = 2;
      },
    );
  return policy;
}
