import type { PeerCertificate } from 'node:tls';
import { SpiffeId, spiffeIdsFromSubjectAltName } from '@aether/pki';
import { UnauthenticatedError } from './errors';

/** Who is calling, as established by the transport. Handlers get it; it never comes from a request field. */
export interface Principal {
  /** The SPIFFE ID from the client certificate, e.g. spiffe://aether.local/aurorad. */
  id: string;
  trustDomain: string;
  /** The path of the SPIFFE ID, e.g. `aurorad` or `users/alice`. */
  name: string;
  /** `certificate` for mTLS; `socket` when the daemon runs in insecure-plaintext mode. */
  authenticatedBy: 'certificate' | 'socket';
}

interface HasAuthContext {
  getAuthContext?: () => { sslPeerCertificate?: PeerCertificate; transportSecurityType?: string } | null;
}

/**
 * Reads the caller's identity from the TLS peer certificate. The TLS layer has already checked the
 * chain and validity; here the certificate must also carry exactly one SPIFFE ID in our trust domain.
 */
export function principalFromCall(call: HasAuthContext, trustDomain: string): Principal {
  const cert = call.getAuthContext?.()?.sslPeerCertificate;
  if (!cert || Object.keys(cert).length === 0) {
    throw new UnauthenticatedError('no client certificate was presented', 'CLIENT_CERTIFICATE_REQUIRED');
  }
  const ids = spiffeIdsFromSubjectAltName(cert.subjectaltname);
  if (ids.length !== 1) {
    throw new UnauthenticatedError(
      ids.length === 0
        ? 'client certificate carries no SPIFFE ID (URI SAN spiffe://…)'
        : 'client certificate carries more than one SPIFFE ID',
      'CLIENT_IDENTITY_MISSING',
    );
  }
  const id = ids[0]!;
  if (id.trustDomain !== trustDomain) {
    throw new UnauthenticatedError(
      `client identity ${id.toString()} is outside trust domain ${trustDomain}`,
      'FOREIGN_TRUST_DOMAIN',
    );
  }
  return { id: id.toString(), trustDomain: id.trustDomain, name: id.path, authenticatedBy: 'certificate' };
}

/** In insecure-plaintext mode the socket's permissions are the only check; the caller is anonymous. */
export function socketPrincipal(trustDomain: string): Principal {
  return {
    id: `spiffe://${trustDomain}/local-socket`,
    trustDomain,
    name: 'local-socket',
    authenticatedBy: 'socket',
  };
}

/**
 * The principal a SPIFFE ID names when it is not the caller of this connection but one the caller vouches
 * for (e.g. the human on whose behalf a capability token was minted), so policy can be asked about it.
 * Throws InvalidSpiffeIdError for a malformed ID and UnauthenticatedError for one outside `trustDomain`.
 */
export function principalFromSpiffeId(spiffeId: string, trustDomain: string): Principal {
  const id = SpiffeId.parse(spiffeId);
  if (id.trustDomain !== trustDomain) {
    throw new UnauthenticatedError(
      `identity ${id.toString()} is outside trust domain ${trustDomain}`,
      'FOREIGN_TRUST_DOMAIN',
    );
  }
  return { id: id.toString(), trustDomain: id.trustDomain, name: id.path, authenticatedBy: 'certificate' };
}
