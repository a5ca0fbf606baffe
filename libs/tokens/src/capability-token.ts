import { randomUUID, generateKeyPairSync, createPublicKey, type KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { errors as joseErrors, importPKCS8, importSPKI, jwtVerify, SignJWT, type JWTPayload } from 'jose';

/** Limits a token places on jobs, on top of what the caller's identity may already do. */
export interface TokenConstraints {
  network?: 'none' | 'host';
  maxCpuMillicores?: number;
  maxMemoryBytes?: number;
  maxPidsMax?: number;
  maxTimeoutSeconds?: number;
  allowDevices?: boolean;
  allowMounts?: boolean;
}

/** What a verified capability token says. */
export interface CapabilityClaims {
  /** Token id (JWT `jti`), recorded in every audit record of a call that carried it. */
  id: string;
  /** The SPIFFE ID that may present the token; anyone else presenting it is refused. */
  subject: string;
  /** Daemons that accept it, e.g. ['aetherd']. */
  audience: string[];
  /** The intent the token is scoped to; calls for another intent are refused by policy. */
  intentId?: string;
  /** Actions the token covers, e.g. ['jobs.SubmitJob', 'jobs.GetJob']. */
  actions: string[];
  constraints: TokenConstraints;
  /** Who the work is done for (e.g. the approving human), when not the subject itself. */
  onBehalfOf?: string;
  /** The SPIFFE ID of the daemon that minted it. */
  issuer: string;
  issuedAt: Date;
  expiresAt: Date;
}

export type MintInput = Omit<CapabilityClaims, 'id' | 'issuer' | 'issuedAt' | 'expiresAt'> & {
  ttlSeconds: number;
};

/** Tokens are short-lived by design: an hour at most. */
export const MAX_TOKEN_TTL_SECONDS = 3600;

export type TokenErrorReason =
  | 'TOKEN_MALFORMED'
  | 'TOKEN_INVALID_SIGNATURE'
  | 'TOKEN_EXPIRED'
  | 'TOKEN_NOT_YET_VALID'
  | 'TOKEN_WRONG_AUDIENCE'
  | 'TOKEN_WRONG_ISSUER'
  | 'TOKEN_SUBJECT_MISMATCH'
  | 'TOKEN_REVOKED';

/** Why a token was refused; `reason` is stable and becomes the ErrorInfo reason. */
export class TokenError extends Error {
  override readonly name = 'TokenError';
  constructor(
    readonly reason: TokenErrorReason,
    message: string,
    readonly tokenId?: string,
  ) {
    super(message);
  }
}

const ALG = 'EdDSA';
const CLAIMS_KEY = 'aether';

interface AetherClaimSet {
  intent?: string;
  actions: string[];
  constraints: TokenConstraints;
  obo?: string;
}

/**
 * Mints capability tokens: JWTs signed with Ed25519 (jose), scoped to a subject, an audience, an
 * intent, a set of actions and job constraints, and short-lived.
 */
export class TokenSigner {
  private constructor(
    private readonly key: KeyObject,
    readonly issuer: string,
    /** SPKI PEM of the verification key, for the daemons that verify. */
    readonly publicKeyPem: string,
  ) {}

  /** Loads the signing key, creating it (PKCS#8 PEM, 0600) on first use. */
  static async fromKeyFile(path: string, issuer: string): Promise<TokenSigner> {
    if (!existsSync(path)) {
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      const { privateKey } = generateKeyPairSync('ed25519');
      const tmp = `${path}.tmp-${process.pid}`;
      writeFileSync(tmp, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
      renameSync(tmp, path);
    }
    const pem = readFileSync(path, 'utf8');
    const key = await importPKCS8<KeyObject>(pem, ALG);
    const publicKeyPem = createPublicKey(key).export({ type: 'spki', format: 'pem' }).toString();
    return new TokenSigner(key, issuer, publicKeyPem);
  }

  /** A verifier for this signer's own tokens. */
  verifier(): Promise<TokenVerifier> {
    return TokenVerifier.fromPublicKeyPem(this.publicKeyPem, this.issuer);
  }

  /** Writes the public key where verifying daemons read it (atomically, world-readable). */
  publishPublicKey(path: string): void {
    mkdirSync(dirname(path), { recursive: true });
    const tmp = `${path}.tmp-${process.pid}`;
    writeFileSync(tmp, this.publicKeyPem, { mode: 0o644 });
    renameSync(tmp, path);
  }

  async mint(input: MintInput, now = new Date()): Promise<{ token: string; claims: CapabilityClaims }> {
    if (!(input.ttlSeconds > 0 && input.ttlSeconds <= MAX_TOKEN_TTL_SECONDS)) {
      throw new RangeError(`ttl must be between 1 and ${MAX_TOKEN_TTL_SECONDS} seconds`);
    }
    const issuedAt = new Date(Math.floor(now.getTime() / 1000) * 1000);
    const claims: CapabilityClaims = {
      id: randomUUID(),
      subject: input.subject,
      audience: input.audience,
      actions: input.actions,
      constraints: input.constraints,
      issuer: this.issuer,
      issuedAt,
      expiresAt: new Date(issuedAt.getTime() + input.ttlSeconds * 1000),
      ...(input.intentId ? { intentId: input.intentId } : {}),
      ...(input.onBehalfOf ? { onBehalfOf: input.onBehalfOf } : {}),
    };
    const body: AetherClaimSet = {
      actions: claims.actions,
      constraints: claims.constraints,
      ...(claims.intentId ? { intent: claims.intentId } : {}),
      ...(claims.onBehalfOf ? { obo: claims.onBehalfOf } : {}),
    };
    const token = await new SignJWT({ [CLAIMS_KEY]: body })
      .setProtectedHeader({ alg: ALG, typ: 'aether-capability+jwt' })
      .setJti(claims.id)
      .setSubject(claims.subject)
      .setAudience(claims.audience)
      .setIssuer(claims.issuer)
      .setIssuedAt(Math.floor(issuedAt.getTime() / 1000))
      .setExpirationTime(Math.floor(claims.expiresAt.getTime() / 1000))
      .sign(this.key);
    return { token, claims };
  }
}

/** Verifies capability tokens with the issuer's public key. */
export class TokenVerifier {
  private constructor(
    private readonly key: KeyObject,
    private readonly issuer: string,
  ) {}

  static async fromPublicKeyPem(pem: string, issuer: string): Promise<TokenVerifier> {
    return new TokenVerifier(await importSPKI<KeyObject>(pem, ALG), issuer);
  }

  static async fromPublicKeyFile(path: string, issuer: string): Promise<TokenVerifier> {
    return TokenVerifier.fromPublicKeyPem(readFileSync(path, 'utf8'), issuer);
  }

  /**
   * Checks signature, issuer, audience, validity window, revocation and that the presenter is the
   * token's subject. Throws TokenError with a stable reason.
   */
  async verify(
    token: string,
    opts: { audience: string; presenter: string; isRevoked?: (id: string) => boolean; now?: Date },
  ): Promise<CapabilityClaims> {
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.key, {
        algorithms: [ALG],
        issuer: this.issuer,
        audience: opts.audience,
        ...(opts.now ? { currentDate: opts.now } : {}),
      }));
    } catch (err) {
      throw mapJoseError(err, opts.audience);
    }
    const body = payload[CLAIMS_KEY] as Partial<AetherClaimSet> | undefined;
    if (
      !payload.jti ||
      !payload.sub ||
      !payload.exp ||
      !payload.iat ||
      !body ||
      !Array.isArray(body.actions)
    ) {
      throw new TokenError('TOKEN_MALFORMED', 'capability token lacks required claims');
    }
    if (payload.sub !== opts.presenter) {
      throw new TokenError(
        'TOKEN_SUBJECT_MISMATCH',
        `capability token was issued to ${payload.sub}, not to ${opts.presenter}`,
        payload.jti,
      );
    }
    if (opts.isRevoked?.(payload.jti)) {
      throw new TokenError('TOKEN_REVOKED', `capability token ${payload.jti} has been revoked`, payload.jti);
    }
    return {
      id: payload.jti,
      subject: payload.sub,
      audience: Array.isArray(payload.aud) ? payload.aud : [payload.aud ?? ''],
      actions: body.actions.map(String),
      constraints: body.constraints ?? {},
      issuer: payload.iss ?? '',
      issuedAt: new Date(payload.iat * 1000),
      expiresAt: new Date(payload.exp * 1000),
      ...(body.intent ? { intentId: body.intent } : {}),
      ...(body.obo ? { onBehalfOf: body.obo } : {}),
    };
  }
}

function mapJoseError(err: unknown, audience: string): TokenError {
  if (err instanceof joseErrors.JWTExpired)
    return new TokenError('TOKEN_EXPIRED', 'capability token has expired');
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) {
    return new TokenError('TOKEN_INVALID_SIGNATURE', 'capability token signature does not verify');
  }
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    if (err.claim === 'aud') {
      return new TokenError('TOKEN_WRONG_AUDIENCE', `capability token is not meant for ${audience}`);
    }
    if (err.claim === 'iss')
      return new TokenError('TOKEN_WRONG_ISSUER', 'capability token has the wrong issuer');
    if (err.claim === 'nbf' || err.claim === 'iat') {
      return new TokenError('TOKEN_NOT_YET_VALID', 'capability token is not valid yet');
    }
    return new TokenError('TOKEN_MALFORMED', `capability token claim ${err.claim} is invalid: ${err.reason}`);
  }
  return new TokenError('TOKEN_MALFORMED', `capability token is malformed: ${(err as Error).message}`);
}
