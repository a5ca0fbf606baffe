export {};
//# sourceMappingURL=load-config.spec.d.ts.map