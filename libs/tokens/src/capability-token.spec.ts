import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TokenError, TokenSigner, TokenVerifier, type MintInput } from './capability-token';
import { TokenRegistry } from './token-registry';

const dir = mkdtempSync(join(tmpdir(), 'aether-tokens-'));
const ISSUER = 'spiffe://aether.local/aetherd';
const AURORAD = 'spiffe://aether.local/aurorad';
const input: MintInput = {
  subject: AURORAD,
  audience: ['aetherd'],
  intentId: 'intent-1',
  actions: ['jobs.SubmitJob'],
  constraints: { network: 'none', maxCpuMillicores: 2000 },
  ttlSeconds: 600,
};

async function reasonOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    if (err instanceof TokenError) return err.reason;
    throw err;
  }
  return 'accepted';
}

describe('capability tokens', () => {
  let signer: TokenSigner;
  let verifier: TokenVerifier;
  beforeAll(async () => {
    signer = await TokenSigner.fromKeyFile(join(dir, 'signing.key'), ISSUER);
    verifier = await TokenVerifier.fromPublicKeyPem(signer.publicKeyPem, ISSUER);
  });

  it('creates the signing key once, private to its owner', async () => {
    expect(statSync(join(dir, 'signing.key')).mode & 0o777).toBe(0o600);
    const again = await TokenSigner.fromKeyFile(join(dir, 'signing.key'), ISSUER);
    expect(again.publicKeyPem).toBe(signer.publicKeyPem);
  });

  it('round-trips every claim through an EdDSA-signed JWT', async () => {
    const { token, claims } = await signer.mint({ ...input, onBehalfOf: 'spiffe://aether.local/admin' });
    expect(token.split('.')).toHaveLength(3);
    const verified = await verifier.verify(token, { audience: 'aetherd', presenter: AURORAD });
    expect(verified).toEqual(claims);
    expect(verified).toMatchObject({ intentId: 'intent-1', onBehalfOf: 'spiffe://aether.local/admin' });
    expect(verified.expiresAt.getTime() - verified.issuedAt.getTime()).toBe(600_000);
  });

  it('refuses an expired token', async () => {
    const { token } = await signer.mint({ ...input, ttlSeconds: 1 }, new Date(Date.now() - 10_000));
    expect(await reasonOf(verifier.verify(token, { audience: 'aetherd', presenter: AURORAD }))).toBe(
      'TOKEN_EXPIRED',
    );
  });

  it('refuses a tampered token', async () => {
    const { token } = await signer.mint(input);
    const [h, p, s] = token.split('.');
    const claims = JSON.parse(Buffer.from(p!, 'base64url').toString()) as { aether: { actions: string[] } };
    claims.aether.actions.push('jobs.DeleteJob');
    const forged = `${h}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${s}`;
    expect(await reasonOf(verifier.verify(forged, { audience: 'aetherd', presenter: AURORAD }))).toBe(
      'TOKEN_INVALID_SIGNATURE',
    );
  });

  it('refuses a token signed by another key', async () => {
    const other = await TokenSigner.fromKeyFile(join(dir, 'other.key'), ISSUER);
    const { token } = await other.mint(input);
    expect(await reasonOf(verifier.verify(token, { audience: 'aetherd', presenter: AURORAD }))).toBe(
      'TOKEN_INVALID_SIGNATURE',
    );
  });

  it('refuses a token meant for another daemon or presented by someone else', async () => {
    const { token } = await signer.mint(input);
    expect(await reasonOf(verifier.verify(token, { audience: 'cfcd', presenter: AURORAD }))).toBe(
      'TOKEN_WRONG_AUDIENCE',
    );
    expect(
      await reasonOf(
        verifier.verify(token, { audience: 'aetherd', presenter: 'spiffe://aether.local/cfcd' }),
      ),
    ).toBe('TOKEN_SUBJECT_MISMATCH');
  });

  it('refuses garbage and over-long lifetimes', async () => {
    expect(await reasonOf(verifier.verify('not-a-jwt', { audience: 'aetherd', presenter: AURORAD }))).toBe(
      'TOKEN_MALFORMED',
    );
    await expect(signer.mint({ ...input, ttlSeconds: 86_400 })).rejects.toThrow(/ttl/);
  });

  it('refuses a revoked token by id, and the revocation survives a restart', async () => {
    const path = join(dir, 'registry.jsonl');
    const registry = TokenRegistry.open(path);
    const { token, claims } = await signer.mint(input);
    registry.recordMinted(claims, 'spiffe://aether.local/admin');
    const isRevoked = (id: string): boolean => registry.isRevoked(id);
    expect(
      await reasonOf(verifier.verify(token, { audience: 'aetherd', presenter: AURORAD, isRevoked })),
    ).toBe('accepted');
    registry.revoke(claims.id, 'plan cancelled', 'spiffe://aether.local/admin');
    const reopened = TokenRegistry.open(path);
    expect(
      await reasonOf(
        verifier.verify(token, {
          audience: 'aetherd',
          presenter: AURORAD,
          isRevoked: (id) => reopened.isRevoked(id),
        }),
      ),
    ).toBe('TOKEN_REVOKED');
    expect(reopened.get(claims.id)?.revoked?.reason).toBe('plan cancelled');
    expect(reopened.list({ subject: AURORAD })).toHaveLength(0);
    expect(reopened.list({ subject: AURORAD, includeInactive: true })).toHaveLength(1);
  });
});
