import { Command } from 'commander';
import { AetherClient, type RpcError } from '@aether/client';
import { dateFromTimestamp, durationFromMs, governanceV1 } from '@aether/proto';
import { table } from '../output';

const client = (cmd: Command): AetherClient =>
  AetherClient.fromConfig(cmd.optsWithGlobals<{ config: string }>().config);

function parseDuration(text: string): number {
  const m = /^(\d+)(s|m|h)?$/.exec(text);
  if (!m) throw new Error(`--ttl must be like 600, 90s, 10m or 1h; got "${text}"`);
  return Number(m[1]) * { s: 1, m: 60, h: 3600 }[(m[2] ?? 's') as 's' | 'm' | 'h'] * 1000;
}

function parseConstraint(pair: string, acc: Record<string, unknown>): Record<string, unknown> {
  const i = pair.indexOf('=');
  if (i <= 0) throw new Error(`--constraint must be key=value, got "${pair}"`);
  const key = pair.slice(0, i);
  const raw = pair.slice(i + 1);
  acc[key] = raw === 'true' ? true : raw === 'false' ? false : /^\d+$/.test(raw) ? Number(raw) : raw;
  return acc;
}

function row(t: governanceV1.CapabilityToken): string[] {
  const state = t.revoked
    ? 'revoked'
    : t.expireTime && dateFromTimestamp(t.expireTime) < new Date()
      ? 'expired'
      : 'active';
  return [
    t.id,
    t.subject,
    t.actions.join(','),
    t.intentId || '-',
    t.expireTime ? dateFromTimestamp(t.expireTime).toISOString() : '-',
    state,
  ];
}

export function tokenCommand(): Command {
  const token = new Command('token').description(
    'capability tokens: short-lived, narrowing grants (seed §3.2)',
  );
  token
    .command('mint')
    .description('mint a token; prints the token string on stdout (keep it secret)')
    .requiredOption('--action <action...>', 'actions it allows, e.g. jobs.SubmitJob jobs.GetJob')
    .option('--subject <spiffe-id>', 'who may present it (default: you)')
    .option('--audience <daemon...>', 'daemons that accept it (default: aetherd)')
    .option('--intent <id>', 'the intent it is scoped to')
    .option(
      '--constraint <key=value>',
      'e.g. network=none, max_cpu_millicores=2000 (repeatable)',
      parseConstraint,
      {},
    )
    .option('--ttl <duration>', 'lifetime: 600, 90s, 10m, 1h (at most 1h)', '10m')
    .option('--json', 'print the token and its claims as JSON')
    .action(
      async (
        opts: {
          action: string[];
          subject?: string;
          audience?: string[];
          intent?: string;
          constraint: Record<string, unknown>;
          ttl: string;
          json?: boolean;
        },
        cmd: Command,
      ) => {
        const c = client(cmd);
        try {
          const res = await c.call(c.tokens, 'mintToken', {
            token: governanceV1.CapabilityToken.fromPartial({
              subject: opts.subject ?? '',
              audience: opts.audience ?? [],
              intentId: opts.intent ?? '',
              actions: opts.action,
              constraints: opts.constraint,
            }),
            ttl: durationFromMs(parseDuration(opts.ttl)),
          });
          if (opts.json) {
            process.stdout.write(
              `${JSON.stringify({ token: res.tokenString, claims: governanceV1.CapabilityToken.toJSON(res.token!) }, null, 2)}\n`,
            );
          } else {
            process.stdout.write(`${res.tokenString}\n`);
            process.stderr.write(`minted ${res.token?.name} for ${res.token?.subject}\n`);
          }
        } finally {
          c.close();
        }
      },
    );
  token
    .command('ls')
    .description('list tokens you minted or hold (admins: all)')
    .option('--all', 'include expired and revoked tokens')
    .option('--intent <id>', 'only tokens for this intent')
    .option('--json', 'print JSON')
    .action(async (opts: { all?: boolean; intent?: string; json?: boolean }, cmd: Command) => {
      const c = client(cmd);
      try {
        const res = await c.call(
          c.tokens,
          'listTokens',
          governanceV1.ListTokensRequest.fromPartial({
            includeInactive: opts.all ?? false,
            intentId: opts.intent ?? '',
          }),
        );
        if (opts.json) {
          process.stdout.write(
            `${JSON.stringify(
              res.tokens.map((t) => governanceV1.CapabilityToken.toJSON(t)),
              null,
              2,
            )}\n`,
          );
        } else {
          process.stdout.write(
            table(['ID', 'SUBJECT', 'ACTIONS', 'INTENT', 'EXPIRES', 'STATE'], res.tokens.map(row)),
          );
        }
      } finally {
        c.close();
      }
    });
  token
    .command('revoke')
    .description('revoke a token by id; aetherd refuses it from then on')
    .argument('<id>', 'token id (or tokens/<id>)')
    .option('--reason <text>', 'why', 'revoked by operator')
    .action(async (id: string, opts: { reason: string }, cmd: Command) => {
      const c = client(cmd);
      try {
        const res = await c.call(c.tokens, 'revokeToken', {
          name: id.startsWith('tokens/') ? id : `tokens/${id}`,
          reason: opts.reason,
        });
        process.stdout.write(`revoked ${res.token?.name}\n`);
      } catch (err) {
        throw new Error((err as RpcError).message);
      } finally {
        c.close();
      }
    });
  return token;
}
