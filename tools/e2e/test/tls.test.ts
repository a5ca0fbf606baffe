import { spawnSync } from 'node:child_process';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { credentials, status } from '@grpc/grpc-js';
import { createCertificateAuthority, issueCertificate } from '@aether/pki';
import { healthV1 } from '@aether/proto';
import { createClient, type RpcError, unaryCall } from '@aether/rpc';
import { Stack, type DaemonProcess } from '../src';

const DAY = 86_400_000;

describe('who may connect', () => {
  let stack: Stack;
  let aetherd: DaemonProcess;
  beforeAll(async () => {
    stack = await new Stack({ socketGroup: 'daemon' }).init();
    aetherd = await stack.start('aetherd');
  });
  afterAll(() => stack.close());

  const writePair = (
    name: string,
    pair: { certPem: string; keyPem: string },
  ): { cert: string; key: string } => {
    const cert = join(stack.dir, `${name}.crt`);
    const key = join(stack.dir, `${name}.key`);
    writeFileSync(cert, pair.certPem);
    writeFileSync(key, pair.keyPem, { mode: 0o600 });
    return { cert, key };
  };

  const checkWith = async (cert: string, key: string): Promise<RpcError | undefined> => {
    const client = createClient(healthV1.HealthClient, {
      socket: stack.socket('aetherd'),
      serverId: 'spiffe://aether.local/aetherd',
      mode: 'mtls',
      caFile: stack.pki.caCertPath,
      certFile: cert,
      keyFile: key,
    });
    try {
      await unaryCall(client.check.bind(client), { service: '' }, { timeoutMs: 5_000 });
      return undefined;
    } catch (err) {
      return err as RpcError;
    } finally {
      client.close();
    }
  };

  const ca = (): { certPem: string; keyPem: string } => ({
    certPem: readFileSync(stack.pki.caCertPath, 'utf8'),
    keyPem: readFileSync(stack.pki.caKeyPath, 'utf8'),
  });

  const refusalLogged = (): Promise<unknown> =>
    aetherd.waitForLog((l) => String(l['msg']).startsWith('refused a client: TLS handshake failed'));

  it('refuses a client that presents no certificate, and logs it', async () => {
    aetherd.lines.length = 0;
    const client = new healthV1.HealthClient(
      `unix://${stack.socket('aetherd')}`,
      credentials.createSsl(readFileSync(stack.pki.caCertPath), null, null, {
        checkServerIdentity: () => undefined,
      }),
      { 'grpc.ssl_target_name_override': 'aetherd' },
    );
    const err = await unaryCall(client.check.bind(client), { service: '' }, { timeoutMs: 5_000 }).catch(
      (e: RpcError) => e,
    );
    client.close();
    expect(err).toMatchObject({ code: status.UNAVAILABLE });
    await refusalLogged();
  });

  it('refuses a certificate from another CA, and logs it', async () => {
    aetherd.lines.length = 0;
    const other = await createCertificateAuthority({ commonName: 'Somebody else' });
    const { cert, key } = writePair(
      'foreign',
      await issueCertificate(other, { spiffeId: 'spiffe://aether.local/admin', usage: 'client' }),
    );
    expect((await checkWith(cert, key))?.code).toBe(status.UNAVAILABLE);
    await refusalLogged();
  });

  it('refuses an expired certificate, and logs it', async () => {
    aetherd.lines.length = 0;
    const { cert, key } = writePair(
      'expired',
      await issueCertificate(ca(), {
        spiffeId: 'spiffe://aether.local/admin',
        usage: 'client',
        notBefore: new Date(Date.now() - 10 * DAY),
        notAfter: new Date(Date.now() - DAY),
      }),
    );
    expect((await checkWith(cert, key))?.code).toBe(status.UNAVAILABLE);
    await refusalLogged();
  });

  it('refuses a certificate without a SPIFFE ID with UNAUTHENTICATED', async () => {
    const { cert, key } = writePair(
      'nosan',
      await issueCertificate(ca(), { usage: 'client', commonName: 'anonymous' }),
    );
    const client = stack.client();
    client.config.aetherd = { ...client.config.aetherd, certFile: cert, keyFile: key };
    // Health sits outside the pipeline; an API method runs the identity check.
    const err = await client.call(client.jobs, 'getJob', { name: 'jobs/1' }).catch((e: RpcError) => e);
    client.close();
    expect(err).toMatchObject({ code: status.UNAUTHENTICATED, reason: 'CLIENT_IDENTITY_MISSING' });
  });

  it('refuses to talk to a server whose certificate carries another identity', async () => {
    const client = stack.client();
    client.config.aetherd = { ...client.config.aetherd, serverId: 'spiffe://aether.local/cfcd' };
    const report = await client.health('aetherd');
    client.close();
    expect(report.status).toBe('UNREACHABLE');
  });

  it('lets only the socket group connect: nobody in group daemon may, nobody in nogroup may not', () => {
    chmodSync(stack.dir, 0o755);
    chmodSync(join(stack.dir, 'run'), 0o755);
    const probe = `require('net').connect(${JSON.stringify(stack.socket('aetherd'))}).on('connect', () => { console.log('connected'); process.exit(0) }).on('error', (e) => { console.log(e.code); process.exit(0) })`;
    const as = (gid: string): string =>
      spawnSync(
        'setpriv',
        ['--reuid=nobody', `--regid=${gid}`, '--clear-groups', process.execPath, '-e', probe],
        {
          encoding: 'utf8',
        },
      ).stdout.trim();
    expect(as('daemon')).toBe('connected');
    expect(as('nogroup')).toBe('EACCES');
  });
});
