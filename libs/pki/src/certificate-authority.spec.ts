import { X509Certificate, createPrivateKey } from 'node:crypto';

import {
  createCertificateAuthority,
  describeCertificate,
  issueCertificate,
  SpiffeId,
  spiffeIdsFromCertificatePem,
} from './index';

const DAY = 24 * 60 * 60 * 1000;

describe('createCertificateAuthority', () => {
  it('creates a self-signed P-256 CA whose PKCS#8 key matches it', async () => {
    const ca = await createCertificateAuthority({ trustDomain: 'example.test', commonName: 'Test CA' });
    const cert = new X509Certificate(ca.certPem);
    expect(cert.ca).toBe(true);
    expect(cert.subject).toContain('CN=Test CA');
    expect(cert.verify(cert.publicKey)).toBe(true);
    expect(ca.keyPem.startsWith('-----BEGIN PRIVATE KEY-----\n')).toBe(true);
    const key = createPrivateKey(ca.keyPem);
    expect(key.asymmetricKeyType).toBe('ec');
    expect(key.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    expect(cert.checkPrivateKey(key)).toBe(true);
    expect(cert.subjectAltName).toBe('URI:spiffe://example.test');
  });

  it('defaults to about ten years of validity and honours an explicit window', async () => {
    const ca = await createCertificateAuthority({});
    const { notAfter } = describeCertificate(ca.certPem);
    expect(Math.round((notAfter.getTime() - Date.now()) / DAY)).toBe(3650);

    const notBefore = new Date('2030-01-01T00:00:00Z');
    const end = new Date('2031-01-01T00:00:00Z');
    const windowed = describeCertificate(
      (await createCertificateAuthority({ notBefore, notAfter: end })).certPem,
    );
    expect(windowed.notBefore).toEqual(notBefore);
    expect(windowed.notAfter).toEqual(end);
  });

  it('rejects an invalid trust domain or an empty window', async () => {
    await expect(createCertificateAuthority({ trustDomain: 'Aether.Local' })).rejects.toThrow(/trust domain/);
    const t = new Date();
    await expect(createCertificateAuthority({ notBefore: t, notAfter: t })).rejects.toThrow(/notAfter/);
  });
});

describe('issueCertificate', () => {
  let ca: Awaited<ReturnType<typeof createCertificateAuthority>>;
  beforeAll(async () => {
    ca = await createCertificateAuthority({});
  });

  it('issues a certificate that verifies against the CA and carries exactly the SANs given', async () => {
    const leaf = await issueCertificate(ca, {
      spiffeId: SpiffeId.of('aether.local', 'aetherd'),
      dnsNames: ['aetherd', 'localhost'],
      usage: 'both',
    });
    const cert = new X509Certificate(leaf.certPem);
    const caCert = new X509Certificate(ca.certPem);
    expect(cert.checkIssued(caCert)).toBe(true);
    expect(cert.verify(caCert.publicKey)).toBe(true);
    expect(cert.ca).toBe(false);
    expect(cert.subjectAltName).toBe('URI:spiffe://aether.local/aetherd, DNS:aetherd, DNS:localhost');
    expect(cert.keyUsage?.sort()).toEqual(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
    expect(cert.checkPrivateKey(createPrivateKey(leaf.keyPem))).toBe(true);
    expect(spiffeIdsFromCertificatePem(leaf.certPem).map(String)).toEqual(['spiffe://aether.local/aetherd']);
  });

  it('does not verify against a different CA', async () => {
    const other = await createCertificateAuthority({});
    const leaf = await issueCertificate(ca, { spiffeId: 'spiffe://aether.local/x', usage: 'client' });
    const cert = new X509Certificate(leaf.certPem);
    expect(cert.verify(new X509Certificate(other.certPem).publicKey)).toBe(false);
  });

  it.each([
    ['server', ['1.3.6.1.5.5.7.3.1']],
    ['client', ['1.3.6.1.5.5.7.3.2']],
  ] as const)('sets only the %s extended key usage when asked', async (usage, oids) => {
    const leaf = await issueCertificate(ca, { spiffeId: 'spiffe://aether.local/x', usage });
    expect(new X509Certificate(leaf.certPem).keyUsage).toEqual(oids);
  });

  it('issues a certificate with no URI SAN when no spiffeId is given', async () => {
    const leaf = await issueCertificate(ca, { commonName: 'anonymous', usage: 'client' });
    const cert = new X509Certificate(leaf.certPem);
    expect(cert.subjectAltName).toBeUndefined();
    expect(cert.subject).toContain('CN=anonymous');
    expect(spiffeIdsFromCertificatePem(leaf.certPem)).toEqual([]);
  });

  it('produces an already-expired certificate from an explicit past window', async () => {
    const leaf = await issueCertificate(ca, {
      spiffeId: 'spiffe://aether.local/old',
      usage: 'client',
      notBefore: new Date(Date.now() - 2 * DAY),
      notAfter: new Date(Date.now() - DAY),
    });
    const summary = describeCertificate(leaf.certPem);
    expect(summary.expired).toBe(true);
    expect(summary.notAfter.getTime()).toBeLessThan(Date.now());
    expect(new Date(new X509Certificate(leaf.certPem).validTo).getTime()).toBeLessThan(Date.now());
  });

  it('defaults to 825 days but never past the CA', async () => {
    const leaf = await issueCertificate(ca, { spiffeId: 'spiffe://aether.local/x', usage: 'server' });
    expect(Math.round((describeCertificate(leaf.certPem).notAfter.getTime() - Date.now()) / DAY)).toBe(825);

    const shortCa = await createCertificateAuthority({ validityDays: 30 });
    const capped = await issueCertificate(shortCa, { spiffeId: 'spiffe://aether.local/x', usage: 'server' });
    expect(describeCertificate(capped.certPem).notAfter).toEqual(
      describeCertificate(shortCa.certPem).notAfter,
    );
  });

  it('rejects an invalid SPIFFE ID, DNS name or usage', async () => {
    await expect(
      issueCertificate(ca, { spiffeId: 'spiffe://aether.local/', usage: 'client' }),
    ).rejects.toThrow(/Invalid SPIFFE ID/);
    await expect(issueCertificate(ca, { dnsNames: ['a b'], usage: 'client' })).rejects.toThrow(/DNS name/);
    await expect(issueCertificate(ca, { usage: 'peer' as unknown as 'client' })).rejects.toThrow(/usage/);
  });

  it('refuses to sign with a leaf or with a key that does not match the CA', async () => {
    const leaf = await issueCertificate(ca, { spiffeId: 'spiffe://aether.local/x', usage: 'both' });
    await expect(issueCertificate(leaf, { usage: 'client' })).rejects.toThrow(/cA=true/);
    const other = await createCertificateAuthority({});
    await expect(
      issueCertificate({ certPem: ca.certPem, keyPem: other.keyPem }, { usage: 'client' }),
    ).rejects.toThrow(/does not match/);
  });
});

describe('describeCertificate', () => {
  it('summarises subject, issuer, validity, identities and fingerprint', async () => {
    const ca = await createCertificateAuthority({});
    const leaf = await issueCertificate(ca, {
      spiffeId: 'spiffe://aether.local/aurorad',
      dnsNames: ['aurorad', 'localhost'],
      usage: 'both',
    });
    const summary = describeCertificate(leaf.certPem);
    expect(summary).toMatchObject({
      subject: 'CN=aurorad, O=Aether',
      issuer: 'CN=Aether Dev CA (aether.local), O=Aether',
      spiffeIds: ['spiffe://aether.local/aurorad'],
      dnsNames: ['aurorad', 'localhost'],
      expired: false,
      isCa: false,
      fingerprintSha256: new X509Certificate(leaf.certPem).fingerprint256,
    });
    expect(summary.fingerprintSha256).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    expect(summary.notBefore.getTime()).toBeLessThanOrEqual(Date.now());
    expect(describeCertificate(leaf.certPem, new Date(Date.now() + 1000 * DAY)).expired).toBe(true);
  });
});
