export { DEFAULT_TRUST_DOMAIN, InvalidSpiffeIdError, SpiffeId } from './spiffe-id';
export { spiffeIdsFromCertificatePem, spiffeIdsFromSubjectAltName } from './subject-alt-name';
export {
  createCertificateAuthority,
  issueCertificate,
  type CreateCertificateAuthorityOptions,
  type IssueCertificateOptions,
  type PemKeyPair,
} from './certificate-authority';
export {
  DEFAULT_DEV_PKI_NAMES,
  initDevPki,
  issueClientCertificate,
  type DevPkiLayout,
  type InitDevPkiOptions,
  type IssueClientCertificateOptions,
} from './dev-pki';
export { describeCertificate, type CertificateSummary } from './describe-certificate';
