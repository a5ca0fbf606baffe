import { X509Certificate } from 'node:crypto';

import { SpiffeId } from './spiffe-id';

/** One `TYPE:value` entry of a Node `subjectaltname` string. @internal */
export interface AltNameEntry {
  type: string;
  value: string;
}

/**
 * Split Node's `subjectaltname` string (`"DNS:a, URI:spiffe://td/x"`) into entries.
 *
 * Why a tokenizer rather than `split(', ')`: since the CVE-2021-44532 fix, Node
 * prints any value containing `,`, quotes, backslashes or control characters as
 * a JSON string literal (`URI:"a, URI:b"`), precisely so that a crafted SAN
 * cannot smuggle in a fake extra entry. Splitting naively would undo that.
 *
 * @internal
 */
export function parseSubjectAltName(subjectaltname: string): AltNameEntry[] {
  const entries: AltNameEntry[] = [];
  const s = subjectaltname;
  let i = 0;
  while (i < s.length) {
    const colon = s.indexOf(':', i);
    if (colon === -1) break; // trailing garbage: nothing more we can read safely
    const type = s.slice(i, colon).trim();
    let j = colon + 1;
    let value: string;
    if (s[j] === '"') {
      // JSON string literal: find the closing quote that is not escaped.
      let k = j + 1;
      while (k < s.length && s[k] !== '"') k += s[k] === '\\' ? 2 : 1;
      try {
        value = JSON.parse(s.slice(j, k + 1)) as string;
      } catch {
        break; // malformed quoting: stop rather than guess
      }
      j = k + 1;
      const sep = s.indexOf(', ', j);
      j = sep === -1 ? s.length : sep;
    } else {
      const sep = s.indexOf(', ', j);
      const end = sep === -1 ? s.length : sep;
      value = s.slice(j, end);
      j = end;
    }
    entries.push({ type, value });
    i = j + 2; // skip ", "
  }
  return entries;
}

/**
 * Extract the valid SPIFFE IDs from a certificate's subject alternative names.
 *
 * Accepts Node's `subjectaltname` string as found on `tls.PeerCertificate` and
 * `crypto.X509Certificate` (e.g. `"DNS:aetherd, URI:spiffe://aether.local/aetherd"`),
 * or, for convenience, a PEM certificate. URI SANs that are not valid SPIFFE IDs
 * are skipped, not thrown on, because a peer's certificate is untrusted input.
 * Callers that need exactly one identity (X.509-SVID rule) should check the length.
 *
 * @returns the IDs in certificate order; `[]` when there are none or the input is undefined/empty.
 */
export function spiffeIdsFromSubjectAltName(subjectaltname: string | undefined): SpiffeId[] {
  if (subjectaltname === undefined || subjectaltname.length === 0) return [];
  if (subjectaltname.trimStart().startsWith('-----BEGIN')) return spiffeIdsFromCertificatePem(subjectaltname);
  const ids: SpiffeId[] = [];
  for (const { type, value } of parseSubjectAltName(subjectaltname)) {
    if (type !== 'URI' || !value.startsWith('spiffe://')) continue;
    try {
      ids.push(SpiffeId.parse(value));
    } catch {
      // Invalid SPIFFE URI in an untrusted cert: ignore it, it grants nothing.
    }
  }
  return ids;
}

/**
 * Extract the valid SPIFFE IDs from a certificate's URI SANs.
 *
 * @param pem the certificate as PEM, or DER bytes (e.g. `tls.PeerCertificate.raw`).
 * @returns `[]` when the certificate has no SPIFFE URI SAN.
 * @throws when the input is not a parseable certificate.
 */
export function spiffeIdsFromCertificatePem(pem: string | Uint8Array): SpiffeId[] {
  return spiffeIdsFromSubjectAltName(new X509Certificate(pem).subjectAltName);
}

/** DNS SANs of a Node `subjectaltname` string. @internal */
export function dnsNamesFromSubjectAltName(subjectaltname: string | undefined): string[] {
  if (subjectaltname === undefined) return [];
  return parseSubjectAltName(subjectaltname)
    .filter((e) => e.type === 'DNS')
    .map((e) => e.value);
}
