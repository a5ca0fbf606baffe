"use strict";
Object.defineProperty(exports, "__esModule", { value: true });
const node_stream_1 = require("node:stream");
const logger_1 = require("./logger");
function capture() {
    const chunks = [];
    const stream = new node_stream_1.Writable({
        write(chunk, _enc, cb) {
            chunks.push(chunk.toString());
            cb();
        },
    });
    return {
        stream,
        lines: () => chunks
            .join('')
            .split('\n')
            .filter(Boolean)
            .map((l) => JSON.parse(l)),
    };
}
describe('createLogger', () => {
    it('writes one JSON object per line with the service name and a textual level', () => {
        const out = capture();
        const log = (0, logger_1.createLogger)({ service: 'aetherd', destination: out.stream });
        log.info({ requestId: 'r1' }, 'started');
        const [line] = out.lines();
        expect(line).toMatchObject({ service: 'aetherd', level: 'info', requestId: 'r1', msg: 'started' });
        expect(typeof line?.['time']).toBe('string');
    });
    it('redacts secrets wherever they appear in a logged object', () => {
        const out = capture();
        const log = (0, logger_1.createLogger)({ service: 'x', destination: out.stream });
        log.info({ authorization: 'Bearer abc', call: { token: 't', keyPem: 'k' } }, 'call');
        const text = JSON.stringify(out.lines());
        expect(text).not.toContain('Bearer abc');
        expect(text).not.toContain('"t"');
        expect(text).toContain('[redacted]');
    });
    it('carries correlation ids on child loggers', () => {
        const out = capture();
        (0, logger_1.createLogger)({ service: 'x', destination: out.stream }).child({ intentId: 'i-1' }).warn('careful');
        expect(out.lines()[0]).toMatchObject({ intentId: 'i-1', level: 'warn' });
    });
});
//# sourceMappingURL=logger.spec.js.map