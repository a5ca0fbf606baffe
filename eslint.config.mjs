// One lint configuration for the workspace: type-aware rules that catch real bugs (floating promises,
// misused promises), type-only imports kept separate, and no import cycles.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import { importX } from 'eslint-plugin-import-x';

export default tseslint.config(
  {
    ignores: [
      '**/dist/**',
      '**/out-tsc/**',
      '**/node_modules/**',
      'libs/proto/src/gen/**',
      '**/*.cjs',
      '**/*.mjs',
      '.nx/**',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    plugins: { 'import-x': importX },
    settings: { 'import-x/resolver': { node: true } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'import-x/no-cycle': 'error',
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: ['@aether/*/src/*', '@aether/*/dist/*'], message: 'import a package by its name' },
          ],
        },
      ],
    },
  },
  {
    // Plain CommonJS scripts that run on a bare Node with no build step (the reference trainer, which
    // runs inside the sandbox): no types to check them against.
    files: ['apps/cfcd/trainer/**/*.js'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: {
      ...tseslint.configs.disableTypeChecked.languageOptions,
      sourceType: 'commonjs',
      globals: Object.fromEntries(
        ['require', 'module', 'exports', 'process', 'Buffer', 'console', 'setImmediate', '__dirname'].map(
          (g) => [g, 'readonly'],
        ),
      ),
    },
    rules: { ...tseslint.configs.disableTypeChecked.rules, '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    files: ['**/*.spec.ts', '**/test/**/*.ts'],
    rules: {
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/unbound-method': 'off',
    },
  },
);
