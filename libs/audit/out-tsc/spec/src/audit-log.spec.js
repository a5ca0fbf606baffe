"use strict";
Object.defineProperty(exports, "__esModule", { value: true });
const node_crypto_1 = require("node:crypto");
const node_fs_1 = require("node:fs");
const node_os_1 = require("node:os");
const node_path_1 = require("node:path");
const audit_log_1 = require("./audit-log");
const read = (p) => (0, node_fs_1.readFileSync)(p, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
describe('AuditLog', () => {
    it('chains each record to the previous one by hash and numbers them', () => {
        const path = (0, node_path_1.join)((0, node_fs_1.mkdtempSync)((0, node_path_1.join)((0, node_os_1.tmpdir)(), 'audit-')), 'a.jsonl');
        const log = new audit_log_1.AuditLog({ path, daemon: 'aetherd' });
        log.append({ actor: 'spiffe://aether.local/admin', action: 'jobs.SubmitJob', outcome: 'OK' }, true);
        log.append({ actor: 'spiffe://aether.local/x', action: 'jobs.GetJob', outcome: 'PERMISSION_DENIED' }, true);
        log.close();
        const [a, b] = read(path);
        expect(a?.seq).toBe(1);
        expect(b?.seq).toBe(2);
        expect(b?.prev_hash).toBe(a?.hash);
        const { hash, ...body } = a;
        expect((0, node_crypto_1.createHash)('sha256').update(JSON.stringify(body)).digest('hex')).toBe(hash);
    });
    it('continues the chain after a restart', () => {
        const path = (0, node_path_1.join)((0, node_fs_1.mkdtempSync)((0, node_path_1.join)((0, node_os_1.tmpdir)(), 'audit-')), 'a.jsonl');
        new audit_log_1.AuditLog({ path, daemon: 'x' }).append({ actor: 'a', action: 'b' }, true);
        const second = new audit_log_1.AuditLog({ path, daemon: 'x' }).append({ actor: 'a', action: 'c' }, false);
        const [first] = read(path);
        expect(second.seq).toBe(2);
        expect(second.prev_hash).toBe(first?.hash);
    });
});
//# sourceMappingURL=audit-log.spec.js.map