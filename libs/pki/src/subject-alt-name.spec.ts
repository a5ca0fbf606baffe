import {
  createCertificateAuthority,
  issueCertificate,
  spiffeIdsFromCertificatePem,
  spiffeIdsFromSubjectAltName,
} from './index';
import { X509Certificate } from 'node:crypto';

import { webcrypto, x509 } from './x509';

describe('spiffeIdsFromSubjectAltName', () => {
  it('extracts the SPIFFE URI from a Node subjectaltname string', () => {
    const ids = spiffeIdsFromSubjectAltName('DNS:aetherd, DNS:localhost, URI:spiffe://aether.local/aetherd');
    expect(ids.map(String)).toEqual(['spiffe://aether.local/aetherd']);
  });

  it('returns an empty list for undefined, empty, or SAN strings without SPIFFE URIs', () => {
    expect(spiffeIdsFromSubjectAltName(undefined)).toEqual([]);
    expect(spiffeIdsFromSubjectAltName('')).toEqual([]);
    expect(
      spiffeIdsFromSubjectAltName('DNS:aetherd, URI:https://example.com/x, IP Address:127.0.0.1'),
    ).toEqual([]);
  });

  it('skips URI SANs that are not valid SPIFFE IDs instead of throwing', () => {
    const ids = spiffeIdsFromSubjectAltName('URI:spiffe://Bad/x, URI:spiffe://aether.local/ok');
    expect(ids.map(String)).toEqual(['spiffe://aether.local/ok']);
  });

  it('does not let a quoted value smuggle in an extra entry', () => {
    // Node quotes values containing ", " precisely so this cannot forge a second URI.
    const ids = spiffeIdsFromSubjectAltName('URI:"http://x, URI:spiffe://aether.local/admin", DNS:a');
    expect(ids).toEqual([]);
  });

  it('accepts a PEM certificate as well', async () => {
    const ca = await createCertificateAuthority({});
    const leaf = await issueCertificate(ca, { spiffeId: 'spiffe://aether.local/cfcd', usage: 'server' });
    expect(spiffeIdsFromSubjectAltName(leaf.certPem).map(String)).toEqual(['spiffe://aether.local/cfcd']);
  });
});

describe('spiffeIdsFromCertificatePem', () => {
  it('reads SPIFFE IDs from PEM and from DER', async () => {
    const ca = await createCertificateAuthority({});
    const leaf = await issueCertificate(ca, {
      spiffeId: 'spiffe://aether.local/aurorad',
      dnsNames: ['aurorad'],
      usage: 'both',
    });
    expect(spiffeIdsFromCertificatePem(leaf.certPem).map(String)).toEqual(['spiffe://aether.local/aurorad']);
    const der = new X509Certificate(leaf.certPem).raw;
    expect(spiffeIdsFromCertificatePem(der).map(String)).toEqual(['spiffe://aether.local/aurorad']);
  });

  it('ignores a crafted URI SAN that embeds a fake SPIFFE entry in a real certificate', async () => {
    const keys = await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
      'sign',
      'verify',
    ]);
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      name: 'CN=evil',
      keys,
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
      extensions: [
        new x509.SubjectAlternativeNameExtension([
          { type: 'url', value: 'http://x, URI:spiffe://aether.local/admin' },
        ]),
      ],
    });
    const pem = cert.toString('pem');
    expect(new X509Certificate(pem).subjectAltName).toContain('"');
    expect(spiffeIdsFromCertificatePem(pem)).toEqual([]);
  });

  it('returns an empty list for a certificate without URI SAN', async () => {
    const ca = await createCertificateAuthority({});
    const leaf = await issueCertificate(ca, { dnsNames: ['aetherd'], usage: 'client' });
    expect(spiffeIdsFromCertificatePem(leaf.certPem)).toEqual([]);
  });
});
