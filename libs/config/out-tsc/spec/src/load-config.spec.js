"use strict";
Object.defineProperty(exports, "__esModule", { value: true });
const node_fs_1 = require("node:fs");
const node_os_1 = require("node:os");
const node_path_1 = require("node:path");
const config_error_1 = require("./config-error");
const load_config_1 = require("./load-config");
const schemas_1 = require("./schemas");
const client_config_1 = require("./client-config");
const dir = (0, node_fs_1.mkdtempSync)((0, node_path_1.join)((0, node_os_1.tmpdir)(), 'aether-config-'));
const file = (name, text) => {
    const p = (0, node_path_1.join)(dir, name);
    (0, node_fs_1.writeFileSync)(p, text);
    return p;
};
const load = (over = {}) => (0, load_config_1.loadConfig)(schemas_1.serverConfigSchema, {
    defaults: (0, schemas_1.defaultServerConfig)('aetherd'),
    envPrefix: 'AETHERD',
    env: {},
    ...over,
});
function issuesOf(fn) {
    try {
        fn();
    }
    catch (err) {
        if (err instanceof config_error_1.ConfigError)
            return err.issues;
        throw err;
    }
    throw new Error('expected a ConfigError');
}
describe('loadConfig', () => {
    it('uses the packaged defaults when nothing else is given', () => {
        const c = load();
        expect(c.socket).toEqual({ path: '/run/aether/aetherd.sock', mode: '0660', group: 'aether' });
        expect(c.tls.mode).toBe('mtls');
    });
    it('layers file < environment < flags', () => {
        const f = file('layer.yaml', 'socket:\n  path: /tmp/file.sock\nlogLevel: debug\nshutdownGraceMs: 5\n');
        const c = load({
            file: f,
            env: { AETHERD_LOG_LEVEL: 'warn', AETHERD_SHUTDOWN_GRACE_MS: '7' },
            flags: { 'socket.path': '/tmp/flag.sock' },
        });
        expect(c.socket.path).toBe('/tmp/flag.sock');
        expect(c.logLevel).toBe('warn');
        expect(c.shutdownGraceMs).toBe(7);
        expect(c.socket.mode).toBe('0660');
    });
    it('names the field, the value problem and its source for a bad file value', () => {
        const f = file('bad.yaml', 'socket:\n  mode: "0666"\nlogLevel: loud\n');
        const issues = issuesOf(() => load({ file: f }));
        expect(issues).toEqual(expect.arrayContaining([
            expect.objectContaining({ path: 'socket.mode', source: `file ${f}` }),
            expect.objectContaining({ path: 'logLevel', source: `file ${f}` }),
        ]));
        expect(issues.find((i) => i.path === 'socket.mode')?.message).toMatch(/others/);
    });
    it('rejects unknown settings by name, catching typos', () => {
        const f = file('typo.yaml', 'socket:\n  pth: /x.sock\n');
        expect(issuesOf(() => load({ file: f }))).toEqual([
            { path: 'socket.pth', message: 'unknown setting', source: `file ${f}` },
        ]);
    });
    it('names the environment variable that holds a non-number', () => {
        const issues = issuesOf(() => load({ env: { AETHERD_MAX_MESSAGE_BYTES: 'lots' } }));
        expect(issues[0]).toMatchObject({ path: 'maxMessageBytes', source: 'env AETHERD_MAX_MESSAGE_BYTES' });
    });
    it('names the flag that carries a bad value', () => {
        const issues = issuesOf(() => load({ flags: { 'socket.path': 'relative.sock' }, flagNames: { 'socket.path': '--socket' } }));
        expect(issues[0]).toMatchObject({ path: 'socket.path', source: 'flag --socket' });
        expect(issues[0]?.message).toMatch(/absolute/);
    });
    it('reports malformed YAML and a missing required file clearly', () => {
        const f = file('broken.yaml', 'socket: [unclosed\n');
        expect(() => load({ file: f })).toThrow(/not valid YAML/);
        expect(() => load({ file: (0, node_path_1.join)(dir, 'absent.yaml'), fileRequired: true })).toThrow(/cannot read/);
        expect(load({ file: (0, node_path_1.join)(dir, 'absent.yaml') }).logLevel).toBe('info');
    });
    it('derives environment names from camelCase paths', () => {
        expect((0, load_config_1.envVarName)('AETHERD', 'tls.caFile')).toBe('AETHERD_TLS_CA_FILE');
    });
});
describe('loadClientConfig', () => {
    it('resolves relative paths against the config file directory', () => {
        const f = file('client.yaml', 'aetherd:\n  socket: run/aetherd.sock\n  caFile: pki/ca.crt\n');
        const c = (0, client_config_1.loadClientConfig)(f, {});
        expect(c.aetherd.socket).toBe((0, node_path_1.join)(dir, 'run/aetherd.sock'));
        expect(c.aetherd.caFile).toBe((0, node_path_1.join)(dir, 'pki/ca.crt'));
        expect(c.aetherd.serverId).toBe('spiffe://aether.local/aetherd');
    });
});
//# sourceMappingURL=load-config.spec.js.map