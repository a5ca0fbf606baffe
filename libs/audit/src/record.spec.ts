import { createHash } from 'node:crypto';
import {
  GENESIS_HASH,
  bodyJson,
  canonicalJson,
  canonicalRecordBody,
  computeRecordHash,
  prepareEntry,
  sha256Hex,
  type AuditRecord,
} from './record';

const ts = { wall: '2026-11-21T04:54:12.123456789Z', mono_ns: '123', boot_id: 'b' };

function makeLine(seq: number, prev: string, json: string): string {
  const body = bodyJson(seq, json, prev);
  return body.slice(0, -1) + ',"hash":"' + sha256Hex(body) + '"}';
}

describe('record format', () => {
  it('writes every member in a fixed order with null for absent optional values', () => {
    const { json } = prepareEntry({ actor: 'a', action: 'job.exited' }, 'aetherd', ts);
    const rec = JSON.parse(makeLine(1, GENESIS_HASH, json)) as AuditRecord;
    expect(Object.keys(rec)).toEqual([
      'seq',
      'ts',
      'daemon',
      'actor',
      'on_behalf_of',
      'intent_id',
      'job_id',
      'action',
      'resource',
      'decision',
      'token_id',
      'request_id',
      'outcome',
      'error',
      'provenance',
      'prev_hash',
      'hash',
    ]);
    expect(rec).toMatchObject({ on_behalf_of: null, decision: null, resource: null, provenance: null });
  });

  it('hashes the line with its hash member removed, which equals the hash of the re-serialised record', () => {
    const { json } = prepareEntry(
      {
        actor: 'spiffe://aether.local/aurorad',
        action: 'jobs.SubmitJob',
        resource: { type: 'job', id: 'jobs/1', attributes: { b: 1, a: 'ü', 10: true, 9: null } },
        decision: { effect: 'deny', policyIds: ['default-deny'], reason: 'no policy', tokenId: 'tok' },
        provenance: { inputs: ['mem://x'], citations: [{ url: 'https://e', at: 3 }] },
      },
      'aetherd',
      ts,
    );
    const line = makeLine(7, 'f'.repeat(64), json);
    const rec = JSON.parse(line) as AuditRecord;
    const byBytes = createHash('sha256')
      .update(line.replace(/,"hash":"[0-9a-f]{64}"\}$/, '}'))
      .digest('hex');
    expect(byBytes).toBe(rec.hash);
    expect(computeRecordHash(rec)).toBe(rec.hash);
    expect(canonicalRecordBody(rec) + '').toBe(line.replace(/,"hash":"[0-9a-f]{64}"\}$/, '}'));
    expect(rec.decision).toEqual({
      allowed: false,
      effect: 'deny',
      policy_ids: ['default-deny'],
      reason: 'no policy',
      policy_set_hash: null,
    });
    expect(rec.token_id).toBe('tok');
  });

  it('canonicalises free JSON with sorted keys, omitted undefined members and no cycles', () => {
    expect(canonicalJson({ b: 1, a: [undefined, 2n, NaN], 10: 'x', 9: 'y', u: undefined })).toBe(
      '{"10":"x","9":"y","a":[null,"2",null],"b":1}',
    );
    expect(canonicalJson(new Date(0))).toBe('"1970-01-01T00:00:00.000Z"');
    const cyc: Record<string, unknown> = {};
    cyc['self'] = cyc;
    expect(() => canonicalJson(cyc)).toThrow(TypeError);
    const text = canonicalJson({ z: { y: [1, { x: 'é' }] }, a: 0.1 });
    expect(canonicalJson(JSON.parse(text))).toBe(text);
  });

  it('refuses an entry without an actor or an action', () => {
    expect(() => prepareEntry({ actor: '', action: 'x' }, 'd', ts)).toThrow(/actor/);
    expect(() => prepareEntry({ actor: 'a', action: '' }, 'd', ts)).toThrow(/action/);
  });
});
