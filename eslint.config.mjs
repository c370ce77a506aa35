// ESLint flat config: typescript-eslint's type-checked recommended rules over src/ and test/ (typed through
// tsconfig.eslint.json, which adds test/ to the build's tsconfig), the untyped recommended rules over the
// plain JS (bench/, scripts/, bin/, web-monitor/, test fixtures). Run by `npm test` and `npm run lint`.
import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'native/build/', 'node_modules/', 'tmp/'] },
  js.configs.recommended,
  {
    files: ['**/*.ts'],
    extends: [tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      parserOptions: { project: './tsconfig.eslint.json', tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // Shapes and lists go into error messages as "1,2,3" on purpose.
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true, allowBoolean: true, allowNullish: true, allowArray: true }],
      // async without await keeps a uniform Promise-returning signature (command handlers, loader interfaces),
      // and turns a synchronous throw into a rejection the caller already handles.
      '@typescript-eslint/require-await': 'off',
      // A leading underscore marks a binding that is there for its position (omitted by rest, unused parameter).
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', ignoreRestSiblings: true }],
    },
  },
  {
    files: ['**/*.js', '**/*.mjs', '**/*.cjs'],
    languageOptions: { globals: { ...globals.node } },
  },
  {
    files: ['web-monitor/**/*.js'],
    languageOptions: { globals: { ...globals.browser } },
  },
  {
    files: ['**/*.cjs'],
    languageOptions: { sourceType: 'commonjs' },
  },
);
