import type { Command } from 'commander';
import { RpcError } from '@aether/client';
import { EX_USAGE, UsageError } from './units';

/**
 * What `aether` prints after `aether: ` for a failure: `<CODE>: message` for an API error (with the
 * reason when it says more than the code, e.g. `PERMISSION_DENIED: … [POLICY_DENIED]`), else the message.
 */
export function errorText(err: unknown): string {
  if (err instanceof RpcError) {
    const reason = err.reason && err.reason !== err.codeName ? ` [${err.reason}]` : '';
    return `${err.codeName}: ${err.message}${reason}`;
  }
  return err instanceof Error ? err.message : String(err);
}

/** The exit status for a failure: 64 for a usage error, 1 for everything else. */
export function exitCodeForError(err: unknown): number {
  return err instanceof UsageError ? EX_USAGE : 1;
}

/** Commander's own usage errors read like ours: `aether: option '--x' argument 'y' is invalid. …`. */
export function withAetherErrors<C extends Command>(cmd: C): C {
  cmd.configureOutput({ outputError: (str, write) => write(str.replace(/^error: /, 'aether: ')) });
  return cmd;
}
