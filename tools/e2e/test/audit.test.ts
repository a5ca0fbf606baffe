import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { governanceV1, jobsV1 } from '@aether/proto';
import type { RpcError } from '@aether/rpc';
import { repoRoot, Stack } from '../src';

const cli = (...args: string[]): { status: number | null; stdout: string } => {
  const r = spawnSync(process.execPath, [join(repoRoot, 'apps', 'cli', 'dist', 'main.js'), ...args], {
    encoding: 'utf8',
  });
  return { status: r.status, stdout: r.stdout + r.stderr };
};

describe('the audit log of a real daemon', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await new Stack({ extraIdentities: ['stranger'] }).init();
    await stack.start('aetherd');
  });
  afterAll(() => stack.close());

  it('holds every call of a scripted session exactly once, with its fields, and verifies', async () => {
    const admin = stack.client();
    const stranger = stack.client('stranger');
    const calls: [string, Promise<unknown>][] = [
      [
        's-1',
        admin.call(
          admin.jobs,
          'getJob',
          { name: 'jobs/01aaaaaaaaaaaaaaaaaaaaaaaa' },
          { requestId: 's-1', intentId: 'i-1', jobId: 'j-1' },
        ),
      ],
      [
        's-2',
        admin.call(admin.jobs, 'listJobs', jobsV1.ListJobsRequest.fromPartial({}), { requestId: 's-2' }),
      ],
      [
        's-3',
        stranger.call(
          stranger.jobs,
          'getJob',
          { name: 'jobs/01bbbbbbbbbbbbbbbbbbbbbbbb' },
          { requestId: 's-3' },
        ),
      ],
      [
        's-4',
        admin.call(
          admin.tokens,
          'mintToken',
          { token: governanceV1.CapabilityToken.fromPartial({ actions: ['jobs.GetJob'] }) },
          { requestId: 's-4' },
        ),
      ],
    ];
    await Promise.allSettled(calls.map(([, p]) => p));
    admin.close();
    stranger.close();
    const records = readFileSync(stack.auditPath('aetherd'), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    for (const [id] of calls) expect(records.filter((r) => r['request_id'] === id)).toHaveLength(1);
    const byId = (id: string): Record<string, unknown> => records.find((r) => r['request_id'] === id)!;
    expect(byId('s-1')).toMatchObject({
      daemon: 'aetherd',
      actor: 'spiffe://aether.local/admin',
      action: 'jobs.GetJob',
      intent_id: 'i-1',
      job_id: 'j-1',
      outcome: 'NOT_FOUND',
      decision: { allowed: true, effect: 'allow', policy_ids: ['admins-all'] },
    });
    expect((byId('s-1')['ts'] as { wall: string }).wall).toMatch(/T\d\d:\d\d:\d\d\.\d{9}Z$/);
    expect(byId('s-3')).toMatchObject({ outcome: 'PERMISSION_DENIED', decision: { allowed: false } });
    expect(byId('s-4')).toMatchObject({ action: 'governance.MintToken', outcome: 'OK' });

    const verify = cli('audit', 'verify', stack.auditPath('aetherd'));
    expect(verify.status).toBe(0);
    expect(verify.stdout).toMatch(/^ok: \d+ records/);
    const denied = cli('audit', 'tail', stack.auditPath('aetherd'), '--denied');
    expect(denied.stdout).toContain('spiffe://aether.local/stranger');
    expect(denied.stdout).not.toContain('spiffe://aether.local/admin');
  });

  it('names the first bad record when a line is edited, deleted or reordered', () => {
    const lines = readFileSync(stack.auditPath('aetherd'), 'utf8').split('\n').filter(Boolean);
    expect(lines.length).toBeGreaterThanOrEqual(4);
    const dir = join(stack.dir, 'tampered');
    mkdirSync(dir);
    const variants: Record<string, string[]> = {
      edited: lines.map((l, i) => (i === 1 ? l.replace('"jobs.', '"xobs.') : l)),
      deleted: lines.filter((_, i) => i !== 1),
      reordered: [lines[0]!, lines[2]!, lines[1]!, ...lines.slice(3)],
    };
    for (const [name, content] of Object.entries(variants)) {
      const file = join(dir, `${name}.jsonl`);
      writeFileSync(file, `${content.join('\n')}\n`);
      const r = cli('audit', 'verify', file);
      expect(r.status).toBe(1);
      expect(r.stdout).toContain(`BAD: ${file}:2`);
    }
  });

  it('keeps a signed checkpoint of the head outside the log, which catches a truncated tail', async () => {
    const admin = stack.client();
    const res = await admin.call(admin.audit, 'verifyAuditLog', {});
    expect(res.valid).toBe(true);
    admin.close();
    // A clean stop writes a final checkpoint of the head.
    await stack.stop('aetherd');
    const stateAudit = join(stack.dir, 'state', 'aetherd', 'audit');
    const checkpoint = join(stateAudit, 'aetherd.checkpoint.json');
    const publicKey = join(stateAudit, 'aetherd-checkpoint.pub');
    const head = JSON.parse(readFileSync(checkpoint, 'utf8')) as { seq: number; signature: string };
    const lines = readFileSync(stack.auditPath('aetherd'), 'utf8').split('\n').filter(Boolean);
    expect(head.seq).toBe(lines.length);
    expect(head.signature).not.toBe('');
    const intact = cli(
      'audit',
      'verify',
      stack.auditPath('aetherd'),
      '--checkpoint',
      checkpoint,
      '--public-key',
      publicKey,
    );
    expect(intact.status).toBe(0);

    // Cutting the last two records leaves a perfectly chained log that only the checkpoint shows is short.
    const cut = join(stack.dir, 'cut.jsonl');
    writeFileSync(cut, `${lines.slice(0, -2).join('\n')}\n`);
    expect(cli('audit', 'verify', cut).status).toBe(0);
    const caught = cli('audit', 'verify', cut, '--checkpoint', checkpoint, '--public-key', publicKey);
    expect(caught.status).toBe(1);
    expect(caught.stdout).toMatch(/truncat/i);
    await stack.start('aetherd');
  });

  it('fails state-changing calls closed with UNAVAILABLE when the audit disk is full, and recovers', async () => {
    await stack.stop('aetherd');
    const tmpfs = join(stack.dir, 'audit-tmpfs');
    mkdirSync(tmpfs);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', tmpfs]);
    try {
      const cfg = readFileSync(stack.configPath('aetherd'), 'utf8').replace(
        stack.auditPath('aetherd'),
        join(tmpfs, 'aetherd.jsonl'),
      );
      // A new log starts a new chain: its checkpoint goes to a new file too (the old one vouches for
      // records this log does not have, and aetherd would rightly refuse to start on it).
      writeFileSync(
        stack.configPath('aetherd'),
        `${cfg}auditCheckpoint:\n  path: ${join(stack.dir, 'tmpfs-log.checkpoint.json')}\n`,
      );
      await stack.start('aetherd');
      // Fill the disk, leaving less than a record's worth.
      const filler = join(tmpfs, 'filler');
      spawnSync('dd', ['if=/dev/zero', `of=${filler}`, 'bs=1k', 'count=1024']);
      const admin = stack.client();
      const mint = (): Promise<RpcError> =>
        admin
          .call(admin.tokens, 'mintToken', {
            token: governanceV1.CapabilityToken.fromPartial({ actions: ['jobs.GetJob'] }),
          })
          .then(() => ({ code: status.OK }) as RpcError)
          .catch((e: RpcError) => e);
      let err = await mint();
      for (let i = 0; i < 20 && err.code === status.OK; i++) err = await mint();
      expect(err).toMatchObject({ code: status.UNAVAILABLE, reason: 'AUDIT_UNAVAILABLE' });
      expect(err.message).toMatch(/ENOSPC|no space/i);
      // The log on disk is still a valid chain: nothing half written.
      expect(cli('audit', 'verify', join(tmpfs, 'aetherd.jsonl')).status).toBe(0);
      spawnSync('rm', ['-f', filler]);
      let ok = await mint();
      for (let i = 0; i < 20 && ok.code !== status.OK; i++) {
        await new Promise((r) => setTimeout(r, 250));
        ok = await mint();
      }
      expect(ok.code).toBe(status.OK);
      admin.close();
      await stack.stop('aetherd');
    } finally {
      spawnSync('umount', ['-l', tmpfs]);
    }
  });
});
