import { Command } from 'commander';
import { readAuditRecords, verifyAuditLog, type AuditRecord } from '@aether/audit';

const DEFAULT_LOG = '/var/log/aether/aetherd.jsonl';

function line(r: AuditRecord): string {
  const d = r.decision;
  const decision = d ? `${d.effect}${d.policy_ids?.length ? `(${d.policy_ids.join(',')})` : ''}` : '-';
  return [
    r.ts.wall,
    `#${r.seq}`,
    r.actor,
    r.action,
    decision,
    r.outcome ?? '-',
    r.intent_id ?? '',
    r.job_id ?? '',
  ]
    .join('  ')
    .trimEnd();
}

export function auditCommand(): Command {
  const audit = new Command('audit').description('verify and read the hash-chained audit log');
  audit
    .command('verify')
    .description('check the whole chain across rotated files; names the first bad record (exit 1)')
    .argument('[file]', 'active audit log', DEFAULT_LOG)
    .option('--checkpoint <file>', 'signed checkpoint of the head, to catch a truncated tail')
    .option('--public-key <file>', "checkpoint signer's public key (PEM)")
    .option('--json', 'print JSON')
    .action(async (file: string, opts: { checkpoint?: string; publicKey?: string; json?: boolean }) => {
      const { readFileSync } = await import('node:fs');
      const r = await verifyAuditLog(file, {
        ...(opts.checkpoint ? { checkpointPath: opts.checkpoint } : {}),
        ...(opts.publicKey ? { publicKey: readFileSync(opts.publicKey) } : {}),
      });
      if (opts.json) process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
      else if (r.ok) {
        process.stdout.write(
          `ok: ${r.records} records in ${r.files.length} file(s), head #${r.head?.seq ?? 0} ${r.head?.hash ?? ''}\n`,
        );
        for (const w of r.warnings) process.stdout.write(`warning: ${w}\n`);
      } else {
        const b = r.firstBad!;
        process.stdout.write(
          `BAD: ${b.file}:${b.line}${b.seq !== undefined ? ` (seq ${b.seq})` : ''}: ${b.problem}: ${b.message}\n` +
            `${r.records} records before it are intact\n`,
        );
      }
      if (!r.ok) process.exitCode = 1;
    });
  audit
    .command('tail')
    .description('print audit records, oldest first; -f keeps following')
    .argument('[file]', 'active audit log', DEFAULT_LOG)
    .option('-f, --follow', 'keep printing new records')
    .option('--intent <id>', 'only this intent')
    .option('--job <id>', 'only this job')
    .option('--actor <spiffe-id>', 'only this actor')
    .option('--action <action>', 'exact action or prefix with *, e.g. jobs.*')
    .option('--denied', 'only denied (or not yet approved) actions')
    .option('--json', 'print the raw JSON lines')
    .action(
      async (
        file: string,
        opts: {
          follow?: boolean;
          intent?: string;
          job?: string;
          actor?: string;
          action?: string;
          denied?: boolean;
          json?: boolean;
        },
      ) => {
        const controller = new AbortController();
        process.once('SIGINT', () => controller.abort());
        const print = (r: AuditRecord): void => {
          process.stdout.write(`${opts.json ? JSON.stringify(r) : line(r)}\n`);
        };
        const filter = {
          ...(opts.intent ? { intentId: opts.intent } : {}),
          ...(opts.job ? { jobId: opts.job } : {}),
          ...(opts.actor ? { actor: opts.actor } : {}),
          ...(opts.action ? { action: opts.action } : {}),
          ...(opts.denied ? { deniedOnly: true } : {}),
        };
        for await (const r of readAuditRecords(file, {
          filter,
          follow: opts.follow ?? false,
          signal: controller.signal,
        })) {
          print(r);
        }
      },
    );
  return audit;
}
