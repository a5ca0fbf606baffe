import type { Json, JsonObject } from '../planning/plan';

const WHOLE = /^\$\{steps\.([a-z0-9_-]+)\.outputs\.([a-z0-9_]+)\}$/;
const ANY = /\$\{steps\.([a-z0-9_-]+)\.outputs\.([a-z0-9_]+)\}/g;

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
      const whole = WHOLE.exec(v);
      if (whole) return lookup(whole[1]!, whole[2]!);
      return v.replace(ANY, (_m, step: string, out: string) => {
        const value = lookup(step, out);
        return typeof value === 'string' ? value : JSON.stringify(value);
      });
    }
    if (Array.isArray(v)) return v.map(visit);
    if (v && typeof v === 'object')
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, visit(x)]));
    return v;
  };
  return visit(args) as JsonObject;
}
