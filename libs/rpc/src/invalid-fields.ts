import { status as Status } from '@grpc/grpc-js';
import { RpcError, type FieldViolation } from './errors';

/**
 * INVALID_ARGUMENT with every violation, the first bad field in ErrorInfo metadata (`field`), and a reason
 * (`INVALID_FIELD` unless a more specific one applies, e.g. `EVENT_TOO_LARGE`).
 */
export function invalidFields(violations: readonly FieldViolation[], reason = 'INVALID_FIELD'): RpcError {
  return new RpcError(
    Status.INVALID_ARGUMENT,
    reason,
    violations.map((v) => `${v.field}: ${v.description}`).join('; '),
    { metadata: { field: violations[0]?.field ?? '' }, fieldViolations: violations },
  );
}
