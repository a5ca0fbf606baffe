import type { PolicyFileError } from './types';

/** Formats errors as `file:line:column: message`, one per line (the form editors and CI understand). */
export function formatPolicyErrors(errors: readonly PolicyFileError[]): string {
  return errors.map((e) => `${e.file}:${e.line}:${e.column}: ${e.message}`).join('\n');
}

/**
 * A policy set could not be loaded: a file does not parse, a policy does not validate against the schema,
 * two policies share an `@id`, or the directory lacks its schema. Nothing of the set is in force.
 */
export class PolicyLoadError extends Error {
  override readonly name = 'PolicyLoadError';

  constructor(
    /** Every problem found, with its file, line and column. */
    readonly errors: readonly PolicyFileError[],
    /** Hash of the rejected set (to tell it from the one in force). */
    readonly hash: string,
    options?: { cause?: unknown },
  ) {
    super(
      `policy set rejected (${errors.length} error${errors.length === 1 ? '' : 's'}):\n${formatPolicyErrors(errors)}`,
      options,
    );
  }
}
