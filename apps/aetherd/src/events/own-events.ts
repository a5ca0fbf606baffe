import type { PolicyStore } from '@aether/policy';
import type { AetherServer } from '@aether/rpc';
import type { EventSink } from './event-hub';

/**
 * The events aetherd derives from its server and its policy: `request.denied` for every call refused
 * (PERMISSION_DENIED by policy, UNAUTHENTICATED for a bad certificate or token), `policy.reloaded` / `policy.reload_failed` for every reload, whatever asked for
 * it.
 */
export function watchForEvents(server: AetherServer, policy: PolicyStore, emit: EventSink): void {
  server.observe({
    callFinished: (call) => {
      if (call.outcome !== 'PERMISSION_DENIED' && call.outcome !== 'UNAUTHENTICATED') return;
      emit({
        type: 'request.denied',
        subject: call.resource.id ? `${call.resource.type}/${call.resource.id}` : call.resource.type,
        requestId: call.requestId,
        ...(call.intentId ? { intentId: call.intentId } : {}),
        ...(call.jobId ? { jobId: call.jobId } : {}),
        data: {
          method: call.action,
          code: call.outcome,
          principal: call.actor,
          policy_ids: call.decision.policyIds,
          reason: call.decision.reason,
          ...(call.decision.policySetHash ? { policy_set_hash: call.decision.policySetHash } : {}),
        },
      });
    },
  });
  policy.onReload((r) => {
    if (r.applied)
      emit({
        type: 'policy.reloaded',
        subject: 'policy',
        data: { policy_set_hash: r.hash, ...(r.previousHash ? { previous_hash: r.previousHash } : {}) },
      });
    else
      emit({
        type: 'policy.reload_failed',
        subject: 'policy',
        data: {
          rejected_hash: r.rejectedHash,
          ...(r.hash ? { policy_set_hash: r.hash } : {}),
          errors: r.errors.map((e) => `${e.file}:${e.line}:${e.column}: ${e.message}`),
        },
      });
  });
}
