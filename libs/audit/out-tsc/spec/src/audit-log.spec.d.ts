export {};
//# sourceMappingURL=audit-log.spec.d.ts.map