// ESLint flat config: typescript-eslint's type-checked recommended rules over src/ and test/ (typed through
// tsconfig.eslint.json, which adds test/ to the build's tsconfig), the untyped recommended rules over the
// plain JS (bench/, scripts/, bin/, web-monitor/, test fixtures). Run by `npm test` and `npm run lint`.
import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'native/build/', 'node_modules/', 'tmp/', '.gpu-probe/'] },
  js.configs.recommended,
  {
    files: ['**/*.ts'],
    extends: [tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      parserOptions: { project: './tsconfig.eslint.json', tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // Shapes and lists go into error messages as "1,2,3" on purpose.
      '@typescript-eslint/restrict-template-expressions': [
        'error',
        { allowNumber: true, allowBoolean: true, allowNullish: true, allowArray: true },
      ],
      // `tf.add(a, b) as tf.Tensor4D` is tfjs's own idiom for an op's generic result; the rule would have it
      // written `tf.add<tf.Tensor4D>(a, b)` (and `tf.zeros<tf.Rank.R4>(…)`), which reads worse.
      '@typescript-eslint/no-unnecessary-type-assertion': [
        'error',
        { typesToIgnore: ['tf.Tensor', 'tf.Tensor[]', 'tf.Scalar', 'tf.Tensor1D', 'tf.Tensor4D', 'tf.Tensor4D[]'] },
      ],
      // async without await keeps a uniform Promise-returning signature (command handlers, loader interfaces),
      // and turns a synchronous throw into a rejection the caller already handles.
      '@typescript-eslint/require-await': 'off',
      // Passing on a reason caught from another promise, unchanged, is fine.
      '@typescript-eslint/prefer-promise-reject-errors': ['error', { allowThrowingUnknown: true }],
      // A leading underscore marks a binding that is there for its position (omitted by rest, unused parameter).
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', ignoreRestSiblings: true }],
    },
  },
  {
    files: ['test/**/*.ts'],
    rules: {
      // Tests read JSON back from files, sockets and the CLI and assert its shape with expect(); typing every
      // JSON.parse would add nothing. no-unsafe-call and no-unsafe-argument stay on: they catch imports that
      // do not resolve (a test once iterated an `undefined` imported under a stale path).
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      // Tests compare methods by identity (patched prototypes, registered kernels), never call them unbound.
      '@typescript-eslint/unbound-method': 'off',
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
