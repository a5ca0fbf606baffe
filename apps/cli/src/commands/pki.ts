import { homedir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { DEFAULT_TRUST_DOMAIN, describeCertificate, initDevPki, issueClientCertificate } from '@aether/pki';
import { readFileSync } from 'node:fs';
import { table } from '../output';

const defaultDir = (): string =>
  process.getuid?.() === 0 ? '/etc/aether/pki' : join(homedir(), '.aether', 'pki');

export function pkiCommand(): Command {
  const pki = new Command('pki').description(
    'create and inspect the certificates that identify daemons and users',
  );
  pki
    .command('init')
    .description('create a CA and certificates for aetherd, aurorad, cfcd and an admin client (keys 0600)')
    .option('--dir <dir>', 'where to write them', defaultDir())
    .option('--trust-domain <domain>', 'SPIFFE trust domain', DEFAULT_TRUST_DOMAIN)
    .option('--force', 'replace existing certificates and keys')
    .action(async (opts: { dir: string; trustDomain: string; force?: boolean }) => {
      const layout = await initDevPki(opts.dir, {
        trustDomain: opts.trustDomain,
        force: opts.force ?? false,
      });
      process.stdout.write(
        table(
          ['NAME', 'SPIFFE ID', 'CERTIFICATE', 'KEY'],
          Object.entries(layout.identities).map(([n, i]) => [n, i.spiffeId, i.certPath, i.keyPath]),
        ) + `CA: ${layout.caCertPath}\n`,
      );
    });
  pki
    .command('issue')
    .description('issue a client certificate for a user (spiffe://<domain>/users/<name>)')
    .argument('<name>', 'user name')
    .option('--dir <dir>', 'the CA directory', defaultDir())
    .option('--out <dir>', 'where to write <name>.crt and <name>.key (default: the CA directory)')
    .option('--trust-domain <domain>', 'SPIFFE trust domain', DEFAULT_TRUST_DOMAIN)
    .action(async (name: string, opts: { dir: string; out?: string; trustDomain: string }) => {
      const issued = await issueClientCertificate(opts.dir, name, {
        trustDomain: opts.trustDomain,
        ...(opts.out ? { outDir: opts.out } : {}),
      });
      process.stdout.write(
        `${issued.spiffeId}\n  certificate: ${issued.certPath}\n  key:         ${issued.keyPath}\n`,
      );
    });
  pki
    .command('show')
    .description('describe a certificate: identity, validity, issuer')
    .argument('<file>', 'PEM certificate')
    .action((file: string) => {
      const d = describeCertificate(readFileSync(file, 'utf8'));
      process.stdout.write(`${JSON.stringify(d, null, 2)}\n`);
    });
  return pki;
}
