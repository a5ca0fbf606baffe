import { X509Certificate, createPrivateKey } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { describeCertificate, initDevPki, issueClientCertificate, issueCertificate } from './index';

const mode = async (path: string): Promise<number> => (await stat(path)).mode & 0o777;

describe('initDevPki', () => {
  let dir: string;
  beforeEach(async () => {
    dir = join(await mkdtemp(join(tmpdir(), 'aether-pki-')), 'pki');
  });
  afterEach(async () => {
    await rm(join(dir, '..'), { recursive: true, force: true });
  });

  it('writes a CA and one cert per default name with the right modes', async () => {
    const layout = await initDevPki(dir);
    expect(Object.keys(layout.identities)).toEqual(['aetherd', 'aurorad', 'cfcd', 'admin']);
    expect((await readdir(dir)).sort()).toEqual(
      ['admin', 'aetherd', 'aurorad', 'ca', 'cfcd'].flatMap((n) => [`${n}.crt`, `${n}.key`]).sort(),
    );
    expect(await mode(dir)).toBe(0o700);
    expect(await mode(layout.caKeyPath)).toBe(0o600);
    expect(await mode(layout.caCertPath)).toBe(0o644);
    for (const { certPath, keyPath } of Object.values(layout.identities)) {
      expect(await mode(keyPath)).toBe(0o600);
      expect(await mode(certPath)).toBe(0o644);
    }
  });

  it('issues daemon certs for both usages with DNS SANs and admin a client cert, all loadable', async () => {
    const layout = await initDevPki(dir);
    const caCert = new X509Certificate(await readFile(layout.caCertPath));
    createPrivateKey(await readFile(layout.caKeyPath));
    for (const [name, identity] of Object.entries(layout.identities)) {
      const cert = new X509Certificate(await readFile(identity.certPath));
      expect(cert.checkIssued(caCert) && cert.verify(caCert.publicKey)).toBe(true);
      expect(cert.checkPrivateKey(createPrivateKey(await readFile(identity.keyPath)))).toBe(true);
      expect(identity.spiffeId).toBe(`spiffe://aether.local/${name}`);
      const summary = describeCertificate(cert.toString());
      expect(summary.spiffeIds).toEqual([identity.spiffeId]);
      if (name === 'admin') {
        expect(summary.dnsNames).toEqual([]);
        expect(cert.keyUsage).toEqual(['1.3.6.1.5.5.7.3.2']);
      } else {
        expect(summary.dnsNames).toEqual([name, 'localhost']);
        expect(cert.keyUsage?.sort()).toEqual(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
      }
    }
  });

  it('reuses everything on a second call and regenerates everything with force', async () => {
    const first = await initDevPki(dir);
    const snapshot = async (): Promise<Record<string, string>> =>
      Object.fromEntries(
        await Promise.all(
          (await readdir(dir)).map(async (f) => [f, await readFile(join(dir, f), 'utf8')] as const),
        ),
      );
    const before = await snapshot();
    const second = await initDevPki(dir);
    expect(second).toEqual(first);
    expect(await snapshot()).toEqual(before);

    await initDevPki(dir, { force: true });
    const after = await snapshot();
    for (const file of Object.keys(before)) expect(after[file]).not.toBe(before[file]);
  });

  it('reissues only a missing or broken leaf and keeps the CA', async () => {
    const layout = await initDevPki(dir);
    const caBefore = await readFile(layout.caCertPath, 'utf8');
    const aetherdBefore = await readFile(layout.identities['aetherd']!.certPath, 'utf8');
    await rm(layout.identities['admin']!.keyPath);
    await writeFile(layout.identities['cfcd']!.certPath, 'garbage');
    await initDevPki(dir);
    expect(await readFile(layout.caCertPath, 'utf8')).toBe(caBefore);
    expect(await readFile(layout.identities['aetherd']!.certPath, 'utf8')).toBe(aetherdBefore);
    const caCert = new X509Certificate(caBefore);
    for (const name of ['admin', 'cfcd']) {
      const cert = new X509Certificate(await readFile(layout.identities[name]!.certPath));
      expect(cert.checkIssued(caCert)).toBe(true);
      expect(cert.checkPrivateKey(createPrivateKey(await readFile(layout.identities[name]!.keyPath)))).toBe(
        true,
      );
    }
  });

  it('regenerates a leaf that has expired', async () => {
    const layout = await initDevPki(dir);
    const ca = {
      certPem: await readFile(layout.caCertPath, 'utf8'),
      keyPem: await readFile(layout.caKeyPath, 'utf8'),
    };
    const expired = await issueCertificate(ca, {
      spiffeId: layout.identities['admin']!.spiffeId,
      usage: 'client',
      notBefore: new Date(Date.now() - 2 * 86_400_000),
      notAfter: new Date(Date.now() - 86_400_000),
    });
    await writeFile(layout.identities['admin']!.certPath, expired.certPem);
    await writeFile(layout.identities['admin']!.keyPath, expired.keyPem);
    await initDevPki(dir);
    expect(describeCertificate(await readFile(layout.identities['admin']!.certPath, 'utf8')).expired).toBe(
      false,
    );
  });

  it('restores file modes on reuse', async () => {
    const layout = await initDevPki(dir);
    const { chmod } = await import('node:fs/promises');
    await chmod(layout.caKeyPath, 0o644);
    await chmod(dir, 0o755);
    await initDevPki(dir);
    expect(await mode(layout.caKeyPath)).toBe(0o600);
    expect(await mode(dir)).toBe(0o700);
  });

  it('regenerates everything when asked for a different trust domain', async () => {
    const first = await initDevPki(dir, { names: ['aetherd'] });
    const caBefore = await readFile(first.caCertPath, 'utf8');
    const second = await initDevPki(dir, { names: ['aetherd'], trustDomain: 'example.test' });
    expect(await readFile(second.caCertPath, 'utf8')).not.toBe(caBefore);
    expect(second.identities['aetherd']!.spiffeId).toBe('spiffe://example.test/aetherd');
  });

  it('makes the directory 0750 and owned by the group when a group is given', async () => {
    const gid = process.getgid!();
    await initDevPki(dir, { names: ['admin'], group: gid });
    const st = await stat(dir);
    expect(st.mode & 0o777).toBe(0o750);
    expect(st.gid).toBe(gid);
    expect(await mode(join(dir, 'admin.key'))).toBe(0o600);
  });

  it('agrees on one CA when called concurrently', async () => {
    const layouts = await Promise.all([initDevPki(dir), initDevPki(dir), initDevPki(dir)]);
    const ca = new X509Certificate(await readFile(layouts[0].caCertPath));
    for (const name of ['aetherd', 'aurorad', 'cfcd', 'admin']) {
      const cert = new X509Certificate(await readFile(join(dir, `${name}.crt`)));
      expect(cert.checkIssued(ca) && cert.verify(ca.publicKey)).toBe(true);
    }
    expect((await readdir(dir)).filter((f) => f.startsWith('.'))).toEqual([]);
  });

  it.each(['ca', '../x', 'a/b', '.hidden', ''])('rejects the identity name %j', async (name) => {
    await expect(initDevPki(dir, { names: [name] })).rejects.toThrow(/name/);
  });
});

describe('issueClientCertificate', () => {
  let dir: string;
  beforeEach(async () => {
    dir = join(await mkdtemp(join(tmpdir(), 'aether-pki-')), 'pki');
  });
  afterEach(async () => {
    await rm(join(dir, '..'), { recursive: true, force: true });
  });

  it('issues a users/<name> client cert signed by the CA in the directory', async () => {
    const layout = await initDevPki(dir, { trustDomain: 'example.test' });
    const alice = await issueClientCertificate(dir, 'alice');
    // Trust domain comes from the CA when not given.
    expect(alice.spiffeId).toBe('spiffe://example.test/users/alice');
    expect(alice.certPath).toBe(join(dir, 'user-alice.crt'));
    expect(await mode(alice.keyPath)).toBe(0o600);
    expect(await mode(alice.certPath)).toBe(0o644);
    const cert = new X509Certificate(await readFile(alice.certPath));
    expect(cert.checkIssued(new X509Certificate(await readFile(layout.caCertPath)))).toBe(true);
    expect(cert.keyUsage).toEqual(['1.3.6.1.5.5.7.3.2']);
    expect(cert.checkPrivateKey(createPrivateKey(await readFile(alice.keyPath)))).toBe(true);
    expect(describeCertificate(cert.toString()).spiffeIds).toEqual(['spiffe://example.test/users/alice']);
  });

  it('writes into outDir and does not clobber a daemon named like the user', async () => {
    const layout = await initDevPki(dir);
    const before = await readFile(layout.identities['aetherd']!.certPath, 'utf8');
    const out = join(dir, '..', 'out');
    const res = await issueClientCertificate(dir, 'aetherd', { outDir: out });
    expect(res.certPath).toBe(join(out, 'user-aetherd.crt'));
    await issueClientCertificate(dir, 'aetherd');
    expect(await readFile(layout.identities['aetherd']!.certPath, 'utf8')).toBe(before);
  });

  it('fails clearly when the directory has no CA', async () => {
    await expect(issueClientCertificate(dir, 'alice')).rejects.toThrow(/ENOENT/);
  });
});
