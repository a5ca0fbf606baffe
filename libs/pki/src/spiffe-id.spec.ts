import { DEFAULT_TRUST_DOMAIN, InvalidSpiffeIdError, SpiffeId } from './index';

describe('SpiffeId', () => {
  it.each([
    ['spiffe://aether.local/aurorad', 'aether.local', 'aurorad'],
    ['spiffe://aether.local/users/alice', 'aether.local', 'users/alice'],
    ['spiffe://example-org.test_1/Service.A-1_b/x..y', 'example-org.test_1', 'Service.A-1_b/x..y'],
    ['spiffe://td/...', 'td', '...'],
  ])('parses %s into trust domain and path', (uri, trustDomain, path) => {
    const id = SpiffeId.parse(uri);
    expect(id.trustDomain).toBe(trustDomain);
    expect(id.path).toBe(path);
    expect(id.toString()).toBe(uri);
    expect(JSON.stringify({ id })).toBe(JSON.stringify({ id: uri }));
  });

  it('accepts an ID of exactly 2048 characters', () => {
    const prefix = 'spiffe://aether.local/';
    const uri = prefix + 'a'.repeat(2048 - prefix.length);
    expect(SpiffeId.parse(uri).toString()).toBe(uri);
  });

  const bad: [string, string][] = [
    ['empty string', ''],
    ['another scheme', 'https://aether.local/x'],
    ['an uppercase scheme', 'SPIFFE://aether.local/x'],
    ['no authority marker', 'spiffe:aether.local/x'],
    ['only the scheme', 'spiffe://'],
    ['an empty trust domain', 'spiffe:///x'],
    ['no path', 'spiffe://aether.local'],
    ['a lone slash as path', 'spiffe://aether.local/'],
    ['an uppercase trust domain', 'spiffe://Aether.local/x'],
    ['a port', 'spiffe://aether.local:8443/x'],
    ['userinfo', 'spiffe://alice@aether.local/x'],
    ['a query', 'spiffe://aether.local/x?y=1'],
    ['a fragment', 'spiffe://aether.local/x#y'],
    ['an empty segment', 'spiffe://aether.local/a//b'],
    ['a trailing slash', 'spiffe://aether.local/a/'],
    ['a "." segment', 'spiffe://aether.local/./a'],
    ['a ".." segment', 'spiffe://aether.local/a/..'],
    ['percent-encoding', 'spiffe://aether.local/a%20b'],
    ['a space', 'spiffe://aether.local/a b'],
    ['non-ASCII', 'spiffe://aether.local/ä'],
    ['leading whitespace', ' spiffe://aether.local/x'],
    ['more than 2048 characters', `spiffe://aether.local/${'a'.repeat(2048)}`],
  ];
  it.each(bad)('rejects %s', (_what, input) => {
    let caught: unknown;
    try {
      SpiffeId.parse(input);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(InvalidSpiffeIdError);
    expect(caught).toBeInstanceOf(Error);
    expect((caught as InvalidSpiffeIdError).input).toBe(input);
  });

  it('builds an ID from trust domain and name with of()', () => {
    const id = SpiffeId.of(DEFAULT_TRUST_DOMAIN, 'users/alice');
    expect(id.toString()).toBe('spiffe://aether.local/users/alice');
    expect(id.path).toBe('users/alice');
    expect(id.equals('spiffe://aether.local/users/alice')).toBe(true);
    expect(id.equals(SpiffeId.of('aether.local', 'users/bob'))).toBe(false);
  });

  it('rejects a bad trust domain or name in of()', () => {
    expect(() => SpiffeId.of('Aether', 'x')).toThrow(InvalidSpiffeIdError);
    expect(() => SpiffeId.of('aether.local', '/x')).toThrow(InvalidSpiffeIdError);
    expect(() => SpiffeId.of('aether.local', '')).toThrow(InvalidSpiffeIdError);
  });
});
