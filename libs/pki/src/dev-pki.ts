import { X509Certificate as NodeX509Certificate, createPrivateKey } from 'node:crypto';
import { chmod, chown, mkdir, open, readFile, stat, unlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { syncDirectory, writeFileAtomic } from './atomic-write';
import {
  createCertificateAuthority,
  issueCertificate,
  trustDomainOfCertificateAuthority,
  type IssueCertificateOptions,
  type PemKeyPair,
} from './certificate-authority';
import { DEFAULT_TRUST_DOMAIN, SpiffeId, trustDomainProblem } from './spiffe-id';
import { dnsNamesFromSubjectAltName, spiffeIdsFromSubjectAltName } from './subject-alt-name';
import { x509 } from './x509';

/** Identities {@link initDevPki} creates when no `names` are given. */
export const DEFAULT_DEV_PKI_NAMES: readonly string[] = ['aetherd', 'aurorad', 'cfcd', 'admin'];

/** Daemons: they both serve and call each other, and C-core clients check a DNS name. */
const SERVICE_NAMES: ReadonlySet<string> = new Set(['aetherd', 'aurorad', 'cfcd']);

/** Where {@link initDevPki} put things. All paths are absolute. */
export interface DevPkiLayout {
  dir: string;
  caCertPath: string;
  caKeyPath: string;
  /** Keyed by name, e.g. `identities.aetherd.spiffeId === 'spiffe://aether.local/aetherd'`. */
  identities: Record<string, { certPath: string; keyPath: string; spiffeId: string }>;
}

/** Options for {@link initDevPki}. */
export interface InitDevPkiOptions {
  /** Default `aether.local`. A directory made for another trust domain is regenerated. */
  trustDomain?: string;
  /** Identity names; default `['aetherd', 'aurorad', 'cfcd', 'admin']`. */
  names?: string[];
  /** Regenerate the CA and every certificate even if the existing ones are fine. */
  force?: boolean;
  /**
   * Group (gid or name from /etc/group) that may enter the directory and read the certificates:
   * the directory becomes 0750 and everything is chgrp'd to it. Keys stay 0600.
   */
  group?: number | string;
}

/** Options for {@link issueClientCertificate}. */
export interface IssueClientCertificateOptions {
  /** Default: the trust domain recorded in the CA, else `aether.local`. */
  trustDomain?: string;
  /** Where to write `user-<name>.crt`/`.key`; default the PKI directory. */
  outDir?: string;
}

const CA_CERT_FILE = 'ca.crt';
const CA_KEY_FILE = 'ca.key';
const KEY_MODE = 0o600;
const CERT_MODE = 0o644;
/** Reuse nothing that expires sooner than this, so a fresh init never hands out a cert about to die. */
const RENEW_BEFORE_MS = 7 * 24 * 60 * 60 * 1000;
const NAME_RE = /^[A-Za-z0-9_-][A-Za-z0-9._-]*$/;
const LOCK_FILE = '.init.lock';
const LOCK_STALE_MS = 60_000;
const LOCK_TIMEOUT_MS = 30_000;

/**
 * Create, or reuse when already complete and valid, a development CA and one certificate per
 * name in `dir`: `ca.crt`, `ca.key`, `<name>.crt`, `<name>.key`.
 *
 * `aetherd`, `aurorad` and `cfcd` get usage `both` and DNS SANs `[name, 'localhost']`; any other
 * name (e.g. `admin`) gets a client certificate. Every identity is `spiffe://<td>/<name>`.
 *
 * Reuse rules: if the CA is missing, mismatched with its key, for another trust domain or near
 * expiry, everything is regenerated; otherwise only the leaves that are missing or no longer
 * match what would be issued are. Keys are 0600, certificates 0644, the directory 0700 (0750 with
 * `group`); modes are re-applied on reuse. Files are written atomically and concurrent callers
 * (e.g. daemons starting in parallel) serialise on a lock file, so they agree on one CA.
 */
export async function initDevPki(dir: string, opts: InitDevPkiOptions = {}): Promise<DevPkiLayout> {
  const absDir = resolve(dir);
  const trustDomain = checkedTrustDomain(opts.trustDomain ?? DEFAULT_TRUST_DOMAIN);
  const names = opts.names ?? [...DEFAULT_DEV_PKI_NAMES];
  const seen = new Set<string>();
  for (const name of names) {
    checkName(name);
    if (seen.has(name)) throw new RangeError(`Duplicate identity name ${JSON.stringify(name)}`);
    seen.add(name);
  }
  const gid = opts.group === undefined ? undefined : await resolveGid(opts.group);

  await mkdir(absDir, { recursive: true, mode: 0o700 });
  // mkdir does not touch an existing directory and its mode is umask-filtered; set it exactly.
  await chmod(absDir, gid === undefined ? 0o700 : 0o750);
  if (gid !== undefined) await chown(absDir, -1, gid);

  const layout: DevPkiLayout = {
    dir: absDir,
    caCertPath: join(absDir, CA_CERT_FILE),
    caKeyPath: join(absDir, CA_KEY_FILE),
    identities: {},
  };

  await withLock(join(absDir, LOCK_FILE), async () => {
    const now = Date.now();
    let ca =
      opts.force === true
        ? undefined
        : await loadValidCa(layout.caCertPath, layout.caKeyPath, trustDomain, now);
    const caIsNew = ca === undefined;
    if (ca === undefined) {
      ca = await createCertificateAuthority({ trustDomain });
      // Key first: a crash in between leaves a key/cert mismatch, which the next run detects.
      await writeFileAtomic(layout.caKeyPath, ca.keyPem, KEY_MODE, gid);
      await writeFileAtomic(layout.caCertPath, ca.certPem, CERT_MODE, gid);
    } else {
      await applyModes(layout.caKeyPath, layout.caCertPath, gid);
    }

    for (const name of names) {
      const certPath = join(absDir, `${name}.crt`);
      const keyPath = join(absDir, `${name}.key`);
      const spiffeId = SpiffeId.of(trustDomain, name).toString();
      const service = SERVICE_NAMES.has(name);
      const wanted: IssueCertificateOptions = service
        ? { spiffeId, usage: 'both', dnsNames: [name, 'localhost'] }
        : { spiffeId, usage: 'client' };

      if (!caIsNew && (await isValidLeaf(certPath, keyPath, ca, wanted, now))) {
        await applyModes(keyPath, certPath, gid);
      } else {
        const leaf = await issueCertificate(ca, wanted);
        await writeFileAtomic(keyPath, leaf.keyPem, KEY_MODE, gid);
        await writeFileAtomic(certPath, leaf.certPem, CERT_MODE, gid);
      }
      layout.identities[name] = { certPath, keyPath, spiffeId };
    }
    await syncDirectory(absDir);
  });
  return layout;
}

/**
 * Issue one more client certificate, signed by the CA in `dir`, for user `name`:
 * identity `spiffe://<td>/users/<name>`, files `user-<name>.crt` and `user-<name>.key`
 * (the `user-` prefix keeps a user called e.g. `aetherd` from overwriting a daemon's files).
 * An existing certificate for the same user is replaced.
 *
 * @throws when `dir` holds no valid CA or `name` is not a single `[A-Za-z0-9._-]` segment.
 */
export async function issueClientCertificate(
  dir: string,
  name: string,
  opts: IssueClientCertificateOptions = {},
): Promise<{ certPath: string; keyPath: string; spiffeId: string }> {
  checkName(name);
  const absDir = resolve(dir);
  const ca: PemKeyPair = {
    certPem: await readFile(join(absDir, CA_CERT_FILE), 'utf8'),
    keyPem: await readFile(join(absDir, CA_KEY_FILE), 'utf8'),
  };
  const trustDomain = checkedTrustDomain(
    opts.trustDomain ?? trustDomainOfCertificateAuthority(ca.certPem) ?? DEFAULT_TRUST_DOMAIN,
  );
  const spiffeId = SpiffeId.of(trustDomain, `users/${name}`).toString();

  const outDir = resolve(opts.outDir ?? absDir);
  await mkdir(outDir, { recursive: true, mode: 0o700 });
  const certPath = join(outDir, `user-${name}.crt`);
  const keyPath = join(outDir, `user-${name}.key`);
  const leaf = await issueCertificate(ca, { spiffeId, usage: 'client' });
  await writeFileAtomic(keyPath, leaf.keyPem, KEY_MODE);
  await writeFileAtomic(certPath, leaf.certPem, CERT_MODE);
  await syncDirectory(outDir);
  return { certPath, keyPath, spiffeId };
}

function checkedTrustDomain(trustDomain: string): string {
  const problem = trustDomainProblem(trustDomain);
  if (problem !== undefined)
    throw new RangeError(`Invalid trust domain ${JSON.stringify(trustDomain)}: ${problem}`);
  return trustDomain;
}

/** Names become both file names and SPIFFE path segments, so they must be safe as either. */
function checkName(name: string): void {
  if (!NAME_RE.test(name) || name === '..') {
    throw new RangeError(
      `Invalid identity name ${JSON.stringify(name)}: use letters, digits, ".", "-", "_", not starting with "."`,
    );
  }
  if (name === 'ca') throw new RangeError('Identity name "ca" is reserved for the CA files');
}

async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

async function loadValidCa(
  certPath: string,
  keyPath: string,
  trustDomain: string,
  now: number,
): Promise<PemKeyPair | undefined> {
  const certPem = await readIfExists(certPath);
  const keyPem = await readIfExists(keyPath);
  if (certPem === undefined || keyPem === undefined) return undefined;
  try {
    const cert = new NodeX509Certificate(certPem);
    if (!cert.ca || !cert.checkPrivateKey(createPrivateKey(keyPem))) return undefined;
    if (!cert.verify(cert.publicKey)) return undefined;
    if (!validAt(cert, now)) return undefined;
    if (trustDomainOfCertificateAuthority(certPem) !== trustDomain) return undefined;
    return { certPem, keyPem };
  } catch {
    return undefined; // unparseable: regenerate
  }
}

async function isValidLeaf(
  certPath: string,
  keyPath: string,
  ca: PemKeyPair,
  wanted: IssueCertificateOptions,
  now: number,
): Promise<boolean> {
  const certPem = await readIfExists(certPath);
  const keyPem = await readIfExists(keyPath);
  if (certPem === undefined || keyPem === undefined) return false;
  try {
    const cert = new NodeX509Certificate(certPem);
    const caCert = new NodeX509Certificate(ca.certPem);
    if (!cert.checkIssued(caCert) || !cert.verify(caCert.publicKey)) return false;
    if (!cert.checkPrivateKey(createPrivateKey(keyPem))) return false;
    if (!validAt(cert, now)) return false;
    const ids = spiffeIdsFromSubjectAltName(cert.subjectAltName).map((id) => id.toString());
    if (ids.length !== 1 || ids[0] !== String(wanted.spiffeId)) return false;
    const dns = dnsNamesFromSubjectAltName(cert.subjectAltName);
    if (!sameSet(dns, wanted.dnsNames ?? [])) return false;
    const eku = cert.keyUsage ?? [];
    const wantServer = wanted.usage !== 'client';
    const wantClient = wanted.usage !== 'server';
    return (
      eku.includes('1.3.6.1.5.5.7.3.1') === wantServer && eku.includes('1.3.6.1.5.5.7.3.2') === wantClient
    );
  } catch {
    return false;
  }
}

function validAt(cert: NodeX509Certificate, now: number): boolean {
  // Node 20 exposes validity only as display strings; read the exact times from the DER.
  const parsed = new x509.X509Certificate(cert.raw);
  return parsed.notBefore.getTime() <= now && parsed.notAfter.getTime() - RENEW_BEFORE_MS > now;
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x) => b.includes(x));
}

async function applyModes(keyPath: string, certPath: string, gid: number | undefined): Promise<void> {
  await chmod(keyPath, KEY_MODE);
  await chmod(certPath, CERT_MODE);
  if (gid !== undefined) {
    await chown(keyPath, -1, gid);
    await chown(certPath, -1, gid);
  }
}

async function resolveGid(group: number | string): Promise<number> {
  if (typeof group === 'number') {
    if (!Number.isInteger(group) || group < 0) throw new RangeError(`Invalid gid ${group}`);
    return group;
  }
  if (/^\d+$/.test(group)) return Number(group);
  // Read /etc/group directly: Node has no getgrnam and spawning `getent` is not worth it for dev PKI.
  const groups = await readFile('/etc/group', 'utf8');
  for (const line of groups.split('\n')) {
    const [name, , gid] = line.split(':');
    if (name === group && gid !== undefined && /^\d+$/.test(gid)) return Number(gid);
  }
  throw new Error(`Unknown group ${JSON.stringify(group)}`);
}

/**
 * Run `fn` holding an exclusive lock file. A lock older than LOCK_STALE_MS is assumed to belong
 * to a crashed process (generation takes milliseconds) and is broken.
 */
async function withLock<T>(lockPath: string, fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + LOCK_TIMEOUT_MS;
  for (;;) {
    try {
      const fh = await open(lockPath, 'wx', 0o600);
      try {
        await fh.writeFile(`${process.pid}\n`);
      } finally {
        await fh.close();
      }
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const age = await stat(lockPath).then(
        (s) => Date.now() - s.mtimeMs,
        () => 0, // vanished between open and stat: just retry
      );
      if (age > LOCK_STALE_MS) {
        await unlink(lockPath).catch(() => undefined);
        continue;
      }
      if (Date.now() > deadline) throw new Error(`Timed out waiting for PKI lock ${lockPath}`);
      await sleep(25 + Math.floor(Math.random() * 50));
    }
  }
  try {
    return await fn();
  } finally {
    await unlink(lockPath).catch(() => undefined);
  }
}
