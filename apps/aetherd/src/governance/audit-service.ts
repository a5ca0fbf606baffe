import { existsSync, readFileSync } from 'node:fs';
import { readAuditRecords, verifyAuditLog, type AuditFilter, type AuditRecord } from '@aether/audit';
import { governanceV1, type timestampV1 } from '@aether/proto';
import { serverStream, unary, Violations, type ServiceHandlers } from '@aether/rpc';

const EFFECTS: Record<string, governanceV1.PolicyEffect> = {
  allow: governanceV1.PolicyEffect.POLICY_EFFECT_ALLOW,
  deny: governanceV1.PolicyEffect.POLICY_EFFECT_DENY,
  ask: governanceV1.PolicyEffect.POLICY_EFFECT_ASK,
};

function toProto(r: AuditRecord): governanceV1.AuditRecord {
  const wall = r.ts.wall;
  const ms = Date.parse(wall);
  const nanos = Number(/\.(\d{9})Z$/.exec(wall)?.[1] ?? (ms % 1000) * 1e6);
  const time: timestampV1.Timestamp = { seconds: BigInt(Math.floor(ms / 1000)), nanos };
  return governanceV1.AuditRecord.fromPartial({
    sequence: BigInt(r.seq),
    time,
    monotonicNs: BigInt(r.ts.mono_ns),
    bootId: r.ts.boot_id ?? '',
    daemon: r.daemon,
    actor: r.actor,
    onBehalfOf: r.on_behalf_of ?? '',
    intentId: r.intent_id ?? '',
    jobId: r.job_id ?? '',
    action: r.action,
    resource: r.resource === null ? '' : JSON.stringify(r.resource),
    ...(r.decision
      ? {
          decision: {
            allowed: r.decision.allowed,
            effect: EFFECTS[r.decision.effect] ?? governanceV1.PolicyEffect.POLICY_EFFECT_UNSPECIFIED,
            policyIds: r.decision.policy_ids,
            reason: r.decision.reason,
            policySetHash: r.decision.policy_set_hash ?? '',
          },
        }
      : {}),
    tokenId: r.token_id ?? '',
    requestId: r.request_id ?? '',
    outcome: r.outcome ?? '',
    ...(r.provenance && typeof r.provenance === 'object' && !Array.isArray(r.provenance)
      ? { provenance: r.provenance }
      : {}),
    prevHash: r.prev_hash,
    hash: r.hash,
  });
}

function filterOf(f: governanceV1.AuditFilter | undefined): AuditFilter {
  return {
    ...(f?.intentId ? { intentId: f.intentId } : {}),
    ...(f?.jobId ? { jobId: f.jobId } : {}),
    ...(f?.actor ? { actor: f.actor } : {}),
    ...(f?.actionPrefix ? { action: `${f.actionPrefix}*` } : {}),
    ...(f?.deniedOnly ? { deniedOnly: true } : {}),
  };
}

/** AuditService: read, follow and verify this daemon's audit log. */
export function auditServiceHandlers(
  path: string,
  checkpoint?: { path: string; publicKeyFile: string },
): ServiceHandlers<typeof governanceV1.AuditServiceService> {
  return {
    listAuditRecords: unary<governanceV1.ListAuditRecordsRequest, governanceV1.ListAuditRecordsResponse>({
      validate: (req) => new Violations().page(req).throwIfAny(),
      handle: async (req) => {
        const size = req.pageSize || 100;
        const from = req.pageToken ? Number(req.pageToken) : Number(req.startSequence) || 1;
        const records: AuditRecord[] = [];
        let next = '';
        for await (const r of readAuditRecords(path, { filter: filterOf(req.filter), fromSeq: from })) {
          if (records.length === size) {
            next = String(r.seq);
            break;
          }
          records.push(r);
        }
        return { records: records.map(toProto), nextPageToken: next };
      },
    }),
    streamAuditRecords: serverStream<
      governanceV1.StreamAuditRecordsRequest,
      governanceV1.StreamAuditRecordsResponse
    >({
      handle: async (req, ctx, send) => {
        for await (const r of readAuditRecords(path, {
          filter: filterOf(req.filter),
          follow: req.follow,
          signal: ctx.signal,
          ...(req.startSequence ? { fromSeq: Number(req.startSequence) } : {}),
        })) {
          await send({ record: toProto(r) });
        }
      },
    }),
    verifyAuditLog: unary<governanceV1.VerifyAuditLogRequest, governanceV1.VerifyAuditLogResponse>({
      handle: async () => {
        const r = await verifyAuditLog(
          path,
          checkpoint && existsSync(checkpoint.path)
            ? { checkpointPath: checkpoint.path, publicKey: readFileSync(checkpoint.publicKeyFile) }
            : {},
        );
        return {
          valid: r.ok,
          recordsChecked: BigInt(r.records),
          files: r.files,
          firstBadSequence: BigInt(r.firstBad?.seq ?? 0),
          firstBadFile: r.firstBad?.file ?? '',
          firstBadLine: BigInt(r.firstBad?.line ?? 0),
          problem: r.firstBad ? `${r.firstBad.problem}: ${r.firstBad.message}` : '',
          headSequence: BigInt(r.head?.seq ?? 0),
          headHash: r.head?.hash ?? '',
          checkpointVerified: r.checkpoint?.signature === 'valid',
        };
      },
    }),
  };
}
