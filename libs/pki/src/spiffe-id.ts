/** Trust domain used when callers do not pick one. */
export const DEFAULT_TRUST_DOMAIN = 'aether.local';

const SCHEME = 'spiffe://';
/** SPIFFE caps the whole ID at 2048 bytes; all allowed characters are ASCII, so chars == bytes. */
const MAX_LENGTH = 2048;
const TRUST_DOMAIN_RE = /^[a-z0-9._-]+$/;
const SEGMENT_RE = /^[A-Za-z0-9._-]+$/;

/** Thrown by {@link SpiffeId.parse} and {@link SpiffeId.of} for anything that is not a valid SPIFFE ID. */
export class InvalidSpiffeIdError extends Error {
  /** The rejected input, verbatim (the message may truncate it). */
  readonly input: string;

  constructor(input: string, reason: string) {
    const shown = input.length > 120 ? `${input.slice(0, 120)}…` : input;
    super(`Invalid SPIFFE ID ${JSON.stringify(shown)}: ${reason}`);
    this.name = 'InvalidSpiffeIdError';
    this.input = input;
  }
}

/** Why `trustDomain` is not a valid trust domain name, or undefined when it is. */
export function trustDomainProblem(trustDomain: string): string | undefined {
  if (trustDomain.length === 0) return 'trust domain is empty';
  if (!TRUST_DOMAIN_RE.test(trustDomain)) {
    return 'trust domain may only contain lowercase letters, digits, ".", "-" and "_" (no port, userinfo or uppercase)';
  }
  return undefined;
}

/**
 * A validated SPIFFE ID, `spiffe://<trust-domain>/<path>`.
 *
 * Rules follow the SPIFFE ID spec, made stricter where the spec allows
 * something Aether never uses: the path must be non-empty (workload IDs only,
 * no bare trust-domain IDs). Instances are immutable; compare with {@link equals}
 * or by {@link toString}.
 */
export class SpiffeId {
  /** Trust domain, e.g. `aether.local`. */
  readonly trustDomain: string;
  /** Path without its leading slash, e.g. `aurorad` or `users/alice`. */
  readonly path: string;

  private constructor(trustDomain: string, path: string) {
    this.trustDomain = trustDomain;
    this.path = path;
  }

  /**
   * Parse and validate a SPIFFE ID URI.
   *
   * @throws InvalidSpiffeIdError for anything but `spiffe://<trust-domain>/<path>` with a lowercase
   *   trust domain of `[a-z0-9._-]`, one or more path segments of `[A-Za-z0-9._-]` (not `.` or `..`),
   *   no query, fragment, port or userinfo, at most 2048 characters.
   */
  static parse(uri: string): SpiffeId {
    if (typeof uri !== 'string') throw new InvalidSpiffeIdError(String(uri), 'not a string');
    if (uri.length === 0) throw new InvalidSpiffeIdError(uri, 'empty');
    if (uri.length > MAX_LENGTH) throw new InvalidSpiffeIdError(uri, `longer than ${MAX_LENGTH} characters`);
    // Scheme must be exactly lowercase: SPIFFE IDs are compared as strings, so no normalisation.
    if (!uri.startsWith(SCHEME)) throw new InvalidSpiffeIdError(uri, 'scheme must be "spiffe://"');
    const rest = uri.slice(SCHEME.length);
    // Reject these up front so the message names the real problem rather than "bad character".
    if (rest.includes('?')) throw new InvalidSpiffeIdError(uri, 'query is not allowed');
    if (rest.includes('#')) throw new InvalidSpiffeIdError(uri, 'fragment is not allowed');

    const slash = rest.indexOf('/');
    const trustDomain = slash === -1 ? rest : rest.slice(0, slash);
    if (trustDomain.includes('@')) throw new InvalidSpiffeIdError(uri, 'userinfo is not allowed');
    if (trustDomain.includes(':')) throw new InvalidSpiffeIdError(uri, 'port is not allowed');
    const tdProblem = trustDomainProblem(trustDomain);
    if (tdProblem !== undefined) throw new InvalidSpiffeIdError(uri, tdProblem);

    if (slash === -1 || slash === rest.length - 1) throw new InvalidSpiffeIdError(uri, 'path is empty');
    const path = rest.slice(slash + 1);
    for (const segment of path.split('/')) {
      if (segment.length === 0) {
        throw new InvalidSpiffeIdError(uri, 'path has an empty segment (double or trailing slash)');
      }
      if (segment === '.' || segment === '..') {
        throw new InvalidSpiffeIdError(uri, 'path segments "." and ".." are not allowed');
      }
      if (!SEGMENT_RE.test(segment)) {
        throw new InvalidSpiffeIdError(
          uri,
          'path segments may only contain letters, digits, ".", "-" and "_"',
        );
      }
    }
    return new SpiffeId(trustDomain, path);
  }

  /**
   * Build and validate `spiffe://<trustDomain>/<name>`. `name` is the path without a leading slash
   * and may have several segments, e.g. `users/alice`.
   *
   * @throws InvalidSpiffeIdError when the result is not a valid SPIFFE ID.
   */
  static of(trustDomain: string, name: string): SpiffeId {
    return SpiffeId.parse(`${SCHEME}${trustDomain}/${name}`);
  }

  /** True when both IDs are the same string (SPIFFE IDs are case-sensitive in the path). */
  equals(other: SpiffeId | string): boolean {
    return this.toString() === (typeof other === 'string' ? other : other.toString());
  }

  /** The URI form, `spiffe://<trust-domain>/<path>`. */
  toString(): string {
    return `${SCHEME}${this.trustDomain}/${this.path}`;
  }

  /** Serialises as the URI string, so IDs log and JSON-encode readably. */
  toJSON(): string {
    return this.toString();
  }
}
