import { lstatSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const GLOB_CHARS = /[*?[]/;

/** One glob segment (`*.ckpt`, `model-?.onnx`, `[ab]*`) as an anchored regular expression. */
export function segmentPattern(segment: string): RegExp {
  let re = '';
  for (let i = 0; i < segment.length; i++) {
    const c = segment[i]!;
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const end = segment.indexOf(']', i + 2);
      if (end < 0) re += '\\[';
      else {
        let body = segment.slice(i + 1, end);
        if (body.startsWith('!')) body = `^${body.slice(1)}`;
        re += `[${body.replace(/\\/g, '\\\\')}]`;
        i = end;
      }
    } else re += c.replace(/[.+^${}()|\\\]]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/**
 * The files under `base` that a declared output path matches, as paths relative to `base`, sorted.
 * A path without glob characters names one file (returned whether or not it exists, so the caller
 * reports a missing one precisely). Hidden entries match only a segment that starts with `.`, as in a
 * shell. The walk never follows symbolic links to directories; what it returns is checked again, with
 * every escape refused, when the file is imported.
 */
export function expandOutput(base: string, path: string): string[] {
  const segments = path.split('/');
  if (!segments.some((s) => GLOB_CHARS.test(s))) return [path];
  let found: string[] = [''];
  for (const [i, segment] of segments.entries()) {
    const last = i === segments.length - 1;
    const next: string[] = [];
    for (const prefix of found) {
      const dir = join(base, prefix);
      if (!GLOB_CHARS.test(segment)) {
        next.push(prefix ? `${prefix}/${segment}` : segment);
        continue;
      }
      let entries: string[];
      try {
        const st = lstatSync(dir);
        if (!st.isDirectory()) continue;
        entries = readdirSync(dir);
      } catch {
        continue;
      }
      const re = segmentPattern(segment);
      for (const e of entries) {
        if (e.startsWith('.') && !segment.startsWith('.')) continue;
        if (!re.test(e)) continue;
        const rel = prefix ? `${prefix}/${e}` : e;
        if (last) {
          const st = lstatSync(join(base, rel), { throwIfNoEntry: false });
          if (st?.isFile()) next.push(rel);
        } else next.push(rel);
      }
    }
    found = next;
  }
  return found.sort();
}
