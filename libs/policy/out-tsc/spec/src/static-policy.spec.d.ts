export {};
//# sourceMappingURL=static-policy.spec.d.ts.map