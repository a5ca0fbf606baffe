import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { ConfigError, type ConfigIssue } from './config-error';

type Plain = Record<string, unknown>;

/** The layers of a configuration, lowest precedence first: defaults < file < environment < flags. */
export interface ConfigSources<T> {
  defaults: T;
  /** A YAML (or JSON) file; a missing file is an error only when `fileRequired`. */
  file?: string | undefined;
  fileRequired?: boolean;
  /** Environment variables are `<envPrefix>_<PATH>`, e.g. AETHERD_SOCKET_PATH for `socket.path`. */
  envPrefix?: string;
  env?: NodeJS.ProcessEnv;
  /** Values from command-line flags, already keyed by dotted path, e.g. {'socket.path': '/x.sock'}. */
  flags?: Record<string, unknown>;
  /** How each flag is spelled on the command line, for messages: {'socket.path': '--socket'}. */
  flagNames?: Record<string, string>;
}

const isPlain = (v: unknown): v is Plain => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Every leaf path of an object, e.g. ['socket.path', 'socket.mode', 'logLevel']. */
export function leafPaths(value: Plain, prefix = ''): string[] {
  return Object.entries(value).flatMap(([k, v]) =>
    isPlain(v) ? leafPaths(v, `${prefix}${k}.`) : [`${prefix}${k}`],
  );
}

/** `socket.maxMessageBytes` under prefix AETHERD → `AETHERD_SOCKET_MAX_MESSAGE_BYTES`. */
export function envVarName(prefix: string, path: string): string {
  return `${prefix}_${path
    .split('.')
    .map((p) => p.replace(/([a-z0-9])([A-Z])/g, '$1_$2'))
    .join('_')
    .toUpperCase()}`;
}

function getPath(obj: Plain, path: string): unknown {
  return path.split('.').reduce<unknown>((o, k) => (isPlain(o) ? o[k] : undefined), obj);
}

function setPath(obj: Plain, path: string, value: unknown): void {
  const keys = path.split('.');
  let cur = obj;
  for (const k of keys.slice(0, -1)) {
    if (!isPlain(cur[k])) cur[k] = {};
    cur = cur[k] as Plain;
  }
  cur[keys[keys.length - 1] as string] = value;
}

function deepMerge(base: Plain, over: Plain): Plain {
  const out: Plain = { ...base };
  for (const [k, v] of Object.entries(over)) {
    out[k] = isPlain(v) && isPlain(out[k]) ? deepMerge(out[k], v) : v;
  }
  return out;
}

/** Turns an environment string into the type of the default at that path. */
function fromEnv(raw: string, like: unknown): { value: unknown } | { error: string } {
  if (typeof like === 'number') {
    const n = Number(raw);
    return raw.trim() !== '' && Number.isFinite(n) ? { value: n } : { error: `"${raw}" is not a number` };
  }
  if (typeof like === 'boolean') {
    if (/^(1|true|yes|on)$/i.test(raw)) return { value: true };
    if (/^(0|false|no|off)$/i.test(raw)) return { value: false };
    return { error: `"${raw}" is not a boolean (true/false)` };
  }
  if (Array.isArray(like)) return { value: raw.split(',').filter(Boolean) };
  return { value: raw };
}

/**
 * Reads, merges and validates configuration. Every problem is reported at once, each with the dotted
 * path of the value and the layer it came from, so an operator can fix a file in one pass.
 */
export function loadConfig<S extends z.ZodType>(schema: S, sources: ConfigSources<z.infer<S>>): z.infer<S> {
  const origin = new Map<string, string>();
  const defaults = sources.defaults as Plain;
  for (const p of leafPaths(defaults)) origin.set(p, 'default');
  let merged: Plain = structuredClone(defaults);
  const issues: ConfigIssue[] = [];

  if (sources.file) {
    let text: string | undefined;
    try {
      text = readFileSync(sources.file, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' || sources.fileRequired) {
        throw new ConfigError(
          [{ path: '', message: `cannot read: ${(err as Error).message}`, source: `file ${sources.file}` }],
          { cause: err },
        );
      }
    }
    if (text !== undefined) {
      let parsed: unknown;
      try {
        parsed = parseYaml(text);
      } catch (err) {
        throw new ConfigError(
          [
            {
              path: '',
              message: `not valid YAML: ${(err as Error).message}`,
              source: `file ${sources.file}`,
            },
          ],
          { cause: err },
        );
      }
      if (parsed !== null && parsed !== undefined) {
        if (!isPlain(parsed)) {
          throw new ConfigError([{ path: '', message: 'must be a mapping', source: `file ${sources.file}` }]);
        }
        merged = deepMerge(merged, parsed);
        for (const p of leafPaths(parsed)) origin.set(p, `file ${sources.file}`);
      }
    }
  }

  if (sources.envPrefix) {
    const env = sources.env ?? process.env;
    for (const p of leafPaths(defaults)) {
      const name = envVarName(sources.envPrefix, p);
      const raw = env[name];
      if (raw === undefined) continue;
      const converted = fromEnv(raw, getPath(defaults, p));
      if ('error' in converted) {
        issues.push({ path: p, message: converted.error, source: `env ${name}` });
        continue;
      }
      setPath(merged, p, converted.value);
      origin.set(p, `env ${name}`);
    }
  }

  for (const [p, v] of Object.entries(sources.flags ?? {})) {
    if (v === undefined) continue;
    setPath(merged, p, v);
    origin.set(p, `flag ${sources.flagNames?.[p] ?? p}`);
  }

  const result = schema.safeParse(merged);
  if (!result.success) {
    for (const issue of result.error.issues) {
      const path = issue.path.join('.');
      const keys =
        issue.code === 'unrecognized_keys' ? issue.keys.map((k) => (path ? `${path}.${k}` : k)) : [path];
      for (const key of keys) {
        const source = origin.get(key) ?? (sources.file ? `file ${sources.file}` : 'default');
        const message = issue.code === 'unrecognized_keys' ? 'unknown setting' : issue.message;
        issues.push({ path: key, message, source });
      }
    }
  }
  if (issues.length > 0) throw new ConfigError(issues);
  return result.data as z.infer<S>;
}
