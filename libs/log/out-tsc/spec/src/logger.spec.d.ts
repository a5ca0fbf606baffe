export {};
//# sourceMappingURL=logger.spec.d.ts.map