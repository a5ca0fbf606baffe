import { X509Certificate as NodeX509Certificate, createPrivateKey, randomBytes } from 'node:crypto';

import { DEFAULT_TRUST_DOMAIN, SpiffeId, trustDomainProblem } from './spiffe-id';
import { webcrypto, x509 } from './x509';

/** A PEM certificate and its PKCS#8 PEM private key (`-----BEGIN PRIVATE KEY-----`). */
export interface PemKeyPair {
  certPem: string;
  keyPem: string;
}

/** Options for {@link createCertificateAuthority}. */
export interface CreateCertificateAuthorityOptions {
  /** Trust domain the CA issues for; recorded as the CA's URI SAN `spiffe://<td>`. Default `aether.local`. */
  trustDomain?: string;
  /** Subject CN. Default `Aether Dev CA (<trust domain>)`. */
  commonName?: string;
  /** Lifetime in days from `notBefore` when `notAfter` is not given. Default 3650. */
  validityDays?: number;
  /** Start of validity. Default one minute ago. */
  notBefore?: Date;
  /** End of validity; overrides `validityDays`. */
  notAfter?: Date;
}

/** Options for {@link issueCertificate}. */
export interface IssueCertificateOptions {
  /** URI SAN. Omitted => no URI SAN at all (for testing that such peers are refused). */
  spiffeId?: SpiffeId | string;
  /** DNS SANs, e.g. `['aetherd', 'localhost']`, so clients using a target-name override can verify. */
  dnsNames?: string[];
  /** Subject CN. Default: the SPIFFE path, else the first DNS name, else `aether`. */
  commonName?: string;
  /** Extended key usage: `server` => serverAuth, `client` => clientAuth, `both` => both. */
  usage: 'server' | 'client' | 'both';
  /** Lifetime in days from `notBefore` when `notAfter` is not given. Default 825, capped at the CA's notAfter. */
  validityDays?: number;
  /** Start of validity. Default one minute ago. */
  notBefore?: Date;
  /** End of validity, used as given (may be in the past, e.g. to test expiry handling). */
  notAfter?: Date;
}

const DAY_MS = 24 * 60 * 60 * 1000;
/**
 * Default backdating of notBefore: X.509 times have one-second resolution and a cert
 * used in the same second it was minted must not look "not yet valid".
 */
const BACKDATE_MS = 60 * 1000;
const DNS_NAME_RE = /^(\*\.)?[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.?$/;

type EcCurve = 'P-256' | 'P-384';
const NODE_CURVE_TO_WEB: Readonly<Record<string, EcCurve>> = {
  prime256v1: 'P-256',
  'P-256': 'P-256',
  secp384r1: 'P-384',
  'P-384': 'P-384',
};
const HASH_FOR_CURVE: Readonly<Record<EcCurve, string>> = { 'P-256': 'SHA-256', 'P-384': 'SHA-384' };

/**
 * Create a self-signed ECDSA P-256 root CA for a SPIFFE trust domain.
 *
 * The CA carries basicConstraints cA=true with pathLen 0 (it only signs leaves)
 * and keyUsage keyCertSign|cRLSign, both critical, plus the trust domain as URI SAN
 * so tools can tell which trust domain a CA file belongs to.
 */
export async function createCertificateAuthority(
  opts: CreateCertificateAuthorityOptions = {},
): Promise<PemKeyPair> {
  const trustDomain = opts.trustDomain ?? DEFAULT_TRUST_DOMAIN;
  const problem = trustDomainProblem(trustDomain);
  if (problem !== undefined) {
    throw new RangeError(`Invalid trust domain ${JSON.stringify(trustDomain)}: ${problem}`);
  }
  const { notBefore, notAfter } = validityWindow(opts, 3650);

  const keys = await generateEcKeyPair();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerialNumber(),
    name: [{ CN: [opts.commonName ?? `Aether Dev CA (${trustDomain})`] }, { O: ['Aether'] }],
    notBefore,
    notAfter,
    keys,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: `spiffe://${trustDomain}` }]),
    ],
  });
  return { certPem: certToPem(cert), keyPem: await privateKeyToPem(keys.privateKey) };
}

/**
 * Issue an ECDSA P-256 leaf certificate signed by `ca`.
 *
 * The leaf has basicConstraints cA=false and keyUsage digitalSignature (both critical),
 * the requested extendedKeyUsage, SKI/AKI, and exactly the SANs asked for.
 *
 * @throws when `ca` is not a CA certificate, its key does not match it, or options are invalid.
 */
export async function issueCertificate(ca: PemKeyPair, opts: IssueCertificateOptions): Promise<PemKeyPair> {
  const usages = extendedKeyUsages(opts.usage);
  const spiffeId =
    opts.spiffeId === undefined
      ? undefined
      : typeof opts.spiffeId === 'string'
        ? SpiffeId.parse(opts.spiffeId)
        : opts.spiffeId;
  const dnsNames = opts.dnsNames ?? [];
  for (const name of dnsNames) {
    if (!DNS_NAME_RE.test(name)) throw new RangeError(`Invalid DNS name ${JSON.stringify(name)}`);
  }

  const { caCert, caKey, hash } = await loadCa(ca);
  const { notBefore, notAfter } = validityWindow(opts, 825, caCert.notAfter);

  const sans: { type: 'url' | 'dns'; value: string }[] = [];
  if (spiffeId !== undefined) sans.push({ type: 'url', value: spiffeId.toString() });
  for (const name of dnsNames) sans.push({ type: 'dns', value: name });

  const caSki = caCert.getExtension(x509.SubjectKeyIdentifierExtension);
  const keys = await generateEcKeyPair();
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    new x509.ExtendedKeyUsageExtension(usages, false),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    // AKI must equal the CA's SKI for chain builders that match on key IDs.
    caSki !== null
      ? new x509.AuthorityKeyIdentifierExtension(caSki.keyId)
      : await x509.AuthorityKeyIdentifierExtension.create(caCert.publicKey),
  ];
  if (sans.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(sans, false));

  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerialNumber(),
    subject: [{ CN: [opts.commonName ?? spiffeId?.path ?? dnsNames[0] ?? 'aether'] }, { O: ['Aether'] }],
    // Reuse the CA's encoded subject so issuer matching is byte-exact.
    issuer: caCert.subjectName,
    notBefore,
    notAfter,
    publicKey: keys.publicKey,
    signingKey: caKey,
    signingAlgorithm: { name: 'ECDSA', hash },
    extensions,
  });
  return { certPem: certToPem(cert), keyPem: await privateKeyToPem(keys.privateKey) };
}

/**
 * The trust domain a CA certificate was created for (its `spiffe://<td>` URI SAN), if any.
 * @internal
 */
export function trustDomainOfCertificateAuthority(certPem: string): string | undefined {
  const cert = new x509.X509Certificate(certPem);
  const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
  for (const name of san?.names.items ?? []) {
    if (name.type !== 'url' || !name.value.startsWith('spiffe://')) continue;
    const td = name.value.slice('spiffe://'.length).replace(/\/$/, '');
    if (trustDomainProblem(td) === undefined) return td;
  }
  return undefined;
}

async function loadCa(
  ca: PemKeyPair,
): Promise<{ caCert: x509.X509Certificate; caKey: webcrypto.CryptoKey; hash: string }> {
  const nodeCert = new NodeX509Certificate(ca.certPem);
  if (!nodeCert.ca) throw new Error('CA certificate does not have basicConstraints cA=true');
  const nodeKey = createPrivateKey(ca.keyPem);
  // Catch swapped/mismatched files here rather than as an opaque TLS failure later.
  if (!nodeCert.checkPrivateKey(nodeKey)) throw new Error('CA private key does not match the CA certificate');
  const curve =
    nodeKey.asymmetricKeyType === 'ec'
      ? NODE_CURVE_TO_WEB[nodeKey.asymmetricKeyDetails?.namedCurve ?? '']
      : undefined;
  if (curve === undefined) throw new Error('CA key must be an ECDSA P-256 or P-384 key');
  const der = nodeKey.export({ type: 'pkcs8', format: 'der' });
  const caKey = await webcrypto.subtle.importKey('pkcs8', der, { name: 'ECDSA', namedCurve: curve }, false, [
    'sign',
  ]);
  return { caCert: new x509.X509Certificate(ca.certPem), caKey, hash: HASH_FOR_CURVE[curve] };
}

function extendedKeyUsages(usage: IssueCertificateOptions['usage']): string[] {
  switch (usage) {
    case 'server':
      return [x509.ExtendedKeyUsage.serverAuth];
    case 'client':
      return [x509.ExtendedKeyUsage.clientAuth];
    case 'both':
      return [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth];
    default:
      throw new RangeError(`usage must be 'server', 'client' or 'both', got ${JSON.stringify(usage)}`);
  }
}

function validityWindow(
  opts: { validityDays?: number; notBefore?: Date; notAfter?: Date },
  defaultDays: number,
  capAt?: Date,
): { notBefore: Date; notAfter: Date } {
  const days = opts.validityDays ?? defaultDays;
  if (!Number.isFinite(days) || days <= 0) throw new RangeError(`validityDays must be > 0, got ${days}`);
  const notBefore = opts.notBefore ?? new Date(Date.now() - BACKDATE_MS);
  let notAfter = opts.notAfter;
  if (notAfter === undefined) {
    notAfter = new Date(notBefore.getTime() + days * DAY_MS);
    // A leaf outliving its CA is useless; only cap the default, never an explicit window.
    if (capAt !== undefined && notAfter > capAt) notAfter = capAt;
  }
  if (Number.isNaN(notBefore.getTime()) || Number.isNaN(notAfter.getTime())) {
    throw new RangeError('notBefore/notAfter must be valid dates');
  }
  if (notAfter.getTime() <= notBefore.getTime()) throw new RangeError('notAfter must be after notBefore');
  return { notBefore, notAfter };
}

function generateEcKeyPair(): Promise<webcrypto.CryptoKeyPair> {
  return webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
}

/** 128 random bits as a positive, minimally encoded DER INTEGER (RFC 5280: positive, at most 20 octets). */
function randomSerialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = ((bytes[0] ?? 0) & 0x7f) | 0x40;
  return bytes.toString('hex');
}

function certToPem(cert: x509.X509Certificate): string {
  const pem = cert.toString('pem').replace(/\r\n/g, '\n');
  return pem.endsWith('\n') ? pem : `${pem}\n`;
}

async function privateKeyToPem(key: webcrypto.CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  // Round-trip through Node so the PEM is exactly what OpenSSL/BoringSSL write and read.
  return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }).export({
    type: 'pkcs8',
    format: 'pem',
  }) as string;
}
