import { findStepReferences } from '../planning/plan-schema';
import type { Json, JsonObject } from '../planning/plan';

/**
 * Replaces `${steps.<id>.outputs.<name>}` in every string of a step's arguments with the output of the
 * earlier step. A string that is exactly one reference takes the output's own type (a list of digests
 * stays a list); inside longer text the output is written as text (JSON for lists and objects).
 */
export function resolveReferences(
  args: JsonObject,
  lookup: (stepId: string, output: string) => Json,
): JsonObject {
  const visit = (v: Json): Json => {
    if (typeof v === 'string') {
      let out = v;
      for (const ref of findStepReferences(v)) {
        if (ref.stepId === undefined || ref.output === undefined) continue;
        const value = lookup(ref.stepId, ref.output);
        if (ref.text === v) return value;
        const text = typeof value === 'string' ? value : JSON.stringify(value);
        out = out.replace(ref.text, () => text); // a function: `$&` in the output stays as it is
      }
      return out;
    }
    if (Array.isArray(v)) return v.map(visit);
    if (v && typeof v === 'object')
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, visit(x)]));
    return v;
  };
  return visit(args) as JsonObject;
}
