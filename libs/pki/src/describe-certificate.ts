import { X509Certificate as NodeX509Certificate } from 'node:crypto';

import { dnsNamesFromSubjectAltName, spiffeIdsFromSubjectAltName } from './subject-alt-name';
import { x509 } from './x509';

/** Human-oriented facts about a certificate, for logs and the CLI. Dates JSON-encode as ISO strings. */
export interface CertificateSummary {
  /** Subject DN, e.g. `CN=aetherd, O=Aether`. */
  subject: string;
  /** Issuer DN. */
  issuer: string;
  /** Serial number, uppercase hex. */
  serialNumber: string;
  notBefore: Date;
  notAfter: Date;
  /** Valid SPIFFE IDs among the URI SANs. */
  spiffeIds: string[];
  /** DNS SANs. */
  dnsNames: string[];
  /** True when `notAfter` is before the time of the call (or the `now` given). */
  expired: boolean;
  /** True when basicConstraints says cA=true. */
  isCa: boolean;
  /** SHA-256 fingerprint of the DER, colon-separated uppercase hex as `openssl x509 -fingerprint` prints it. */
  fingerprintSha256: string;
}

/**
 * Summarise a PEM (or DER) certificate.
 *
 * @param now reference time for `expired`; defaults to the current time.
 * @throws when the input is not a parseable certificate.
 */
export function describeCertificate(pem: string | Uint8Array, now: Date = new Date()): CertificateSummary {
  const cert = new NodeX509Certificate(pem);
  // Node only exposes validity as locale-ish strings (Date getters arrive in Node 22);
  // read the exact times from the DER instead.
  const parsed = new x509.X509Certificate(cert.raw);
  return {
    subject: oneLineDn(cert.subject),
    issuer: oneLineDn(cert.issuer),
    serialNumber: cert.serialNumber.toUpperCase(),
    notBefore: parsed.notBefore,
    notAfter: parsed.notAfter,
    spiffeIds: spiffeIdsFromSubjectAltName(cert.subjectAltName).map((id) => id.toString()),
    dnsNames: dnsNamesFromSubjectAltName(cert.subjectAltName),
    expired: parsed.notAfter.getTime() < now.getTime(),
    isCa: cert.ca,
    fingerprintSha256: cert.fingerprint256,
  };
}

/** Node prints DNs one attribute per line; logs want a single line. */
function oneLineDn(dn: string): string {
  return dn
    .split('\n')
    .filter((part) => part.length > 0)
    .join(', ');
}
