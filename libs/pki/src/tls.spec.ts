import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';

import {
  createCertificateAuthority,
  issueCertificate,
  spiffeIdsFromSubjectAltName,
  type PemKeyPair,
} from './index';

/** What the server saw for one connection. */
type ServerOutcome =
  { accepted: true; authorizationError: string | undefined; spiffeIds: string[] } | { accepted: false };

const DAY = 86_400_000;

/**
 * A TLS server on a Unix socket that reports, per connection, whether the handshake completed
 * and which SPIFFE IDs the peer presented.
 */
class TestServer {
  private readonly server: tls.Server;
  private pending: ((outcome: ServerOutcome) => void) | undefined;

  constructor(
    readonly socketPath: string,
    serverPair: PemKeyPair,
    ca: PemKeyPair,
    rejectUnauthorized: boolean,
  ) {
    this.server = tls.createServer({
      key: serverPair.keyPem,
      cert: serverPair.certPem,
      ca: ca.certPem,
      requestCert: true,
      rejectUnauthorized,
    });
    this.server.on('secureConnection', (socket) => {
      const spiffeIds = spiffeIdsFromSubjectAltName(socket.getPeerCertificate().subjectaltname).map(String);
      const authorizationError =
        socket.authorizationError === null ? undefined : String(socket.authorizationError);
      this.pending?.({ accepted: true, authorizationError, spiffeIds });
      socket.end('hello');
    });
    // With rejectUnauthorized Node drops the connection without saying why; the event is enough.
    this.server.on('tlsClientError', () => this.pending?.({ accepted: false }));
  }

  listen(): Promise<void> {
    return new Promise((resolve) => this.server.listen(this.socketPath, resolve));
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  /** Connect with `client` credentials; resolve with the server's verdict and what the client read. */
  async connect(ca: PemKeyPair, client: PemKeyPair): Promise<{ server: ServerOutcome; received: string }> {
    const serverOutcome = new Promise<ServerOutcome>((resolve) => {
      this.pending = resolve;
    });
    const received = new Promise<string>((resolve) => {
      let data = '';
      const socket = tls.connect({
        path: this.socketPath,
        ca: ca.certPem,
        cert: client.certPem,
        key: client.keyPem,
        servername: 'aetherd', // the DNS SAN a client checks, as with ssl_target_name_override
      });
      socket.setEncoding('utf8');
      socket.on('data', (chunk: string) => (data += chunk));
      socket.on('error', () => undefined); // a rejected client just sees a reset: judged by `received`
      socket.on('close', () => resolve(data));
    });
    const [server, data] = await Promise.all([serverOutcome, received]);
    this.pending = undefined;
    return { server, received: data };
  }
}

/** Real mTLS over Unix sockets: proves OpenSSL accepts the certificates, keys and extensions as issued. */
describe('mTLS over a Unix socket with certificates from this library', () => {
  let dir: string;
  let ca: PemKeyPair;
  let otherCa: PemKeyPair;
  let strict: TestServer;
  let lenient: TestServer;
  let bad: Record<'otherCa' | 'expired' | 'serverOnly', PemKeyPair>;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'aether-pki-tls-'));
    ca = await createCertificateAuthority({});
    otherCa = await createCertificateAuthority({});
    const serverPair = await issueCertificate(ca, {
      spiffeId: 'spiffe://aether.local/aetherd',
      dnsNames: ['aetherd', 'localhost'],
      usage: 'both',
    });
    strict = new TestServer(join(dir, 'strict.sock'), serverPair, ca, true);
    lenient = new TestServer(join(dir, 'lenient.sock'), serverPair, ca, false);
    await Promise.all([strict.listen(), lenient.listen()]);

    const spiffeId = 'spiffe://aether.local/admin';
    bad = {
      otherCa: await issueCertificate(otherCa, { spiffeId, usage: 'client' }),
      expired: await issueCertificate(ca, {
        spiffeId,
        usage: 'client',
        notBefore: new Date(Date.now() - 2 * DAY),
        notAfter: new Date(Date.now() - DAY),
      }),
      serverOnly: await issueCertificate(ca, { spiffeId, usage: 'server' }),
    };
  });

  afterAll(async () => {
    await Promise.all([strict.close(), lenient.close()]);
    await rm(dir, { recursive: true, force: true });
  });

  it('accepts a client certificate issued by the same CA and exposes its SPIFFE ID', async () => {
    const client = await issueCertificate(ca, { spiffeId: 'spiffe://aether.local/admin', usage: 'client' });
    const result = await strict.connect(ca, client);
    expect(result.server).toEqual({
      accepted: true,
      authorizationError: undefined,
      spiffeIds: ['spiffe://aether.local/admin'],
    });
    expect(result.received).toBe('hello');
  });

  it('accepts a daemon certificate (usage both) as a client too', async () => {
    const client = await issueCertificate(ca, {
      spiffeId: 'spiffe://aether.local/aurorad',
      dnsNames: ['aurorad', 'localhost'],
      usage: 'both',
    });
    const result = await strict.connect(ca, client);
    expect(result.server).toMatchObject({ accepted: true, spiffeIds: ['spiffe://aether.local/aurorad'] });
  });

  it('rejects a client certificate issued by another CA', async () => {
    expect(await strict.connect(ca, bad.otherCa)).toEqual({ server: { accepted: false }, received: '' });
  });

  it('rejects an expired client certificate', async () => {
    expect(await strict.connect(ca, bad.expired)).toEqual({ server: { accepted: false }, received: '' });
  });

  it('rejects a server-only certificate used as a client certificate', async () => {
    expect(await strict.connect(ca, bad.serverOnly)).toEqual({ server: { accepted: false }, received: '' });
  });

  it.each([
    // Same default CA name, different key (as after a forced regeneration): OpenSSL finds our CA by
    // name and the signature check fails; with a different name it would not find an issuer at all.
    ['otherCa', /^(UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY)$/],
    ['expired', /^CERT_HAS_EXPIRED$/],
    ['serverOnly', /^INVALID_PURPOSE$/],
  ] as const)('rejects the %s certificate for the intended reason (%s)', async (which, code) => {
    const { server } = await lenient.connect(ca, bad[which]);
    expect(server.accepted && server.authorizationError).toMatch(code);
  });

  it('completes TLS for a CA-signed cert without URI SAN but yields no identity to authorize', async () => {
    const client = await issueCertificate(ca, { commonName: 'anonymous', usage: 'client' });
    const result = await strict.connect(ca, client);
    expect(result.server).toEqual({ accepted: true, authorizationError: undefined, spiffeIds: [] });
  });
});
