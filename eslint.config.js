// Lint for what formatting cannot show: the doors between the rooms of src/ (which module may
// spawn processes, speak HTTP, serve, or lock) and a few rules that catch bugs. No style rules:
// formatting is Prettier's (npm run format).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const DOORS = {
  child_process: {
    names: ['child_process', 'node:child_process'],
    message:
      'processes are spawned only in src/git/ (git), src/sign/ (ssh-keygen) and the hook runner (src/replica/hooks.ts)',
  },
  got: { names: ['got'], message: 'HTTP downloads go through src/transfer/, the one door where got lives' },
  lock: { names: ['proper-lockfile'], message: 'take locks with acquireLock() from src/lock/lock.ts' },
  s3: {
    names: ['@aws-sdk/client-s3'],
    message: 'the S3 SDK lives in src/store/ (S3Store), the one door to object storage',
  },
};
const IO = {
  names: [
    'fs',
    'node:fs',
    'fs/promises',
    'node:fs/promises',
    'net',
    'node:net',
    'http',
    'node:http',
    'https',
    'node:https',
    'dgram',
    'node:dgram',
  ],
  message: 'src/replica/plan/ holds pure planners: they are told what is on disk and on the network, they never look',
};

/** no-restricted-imports for every door except those in `open`. */
function doors(open = [], extra = []) {
  const closed = Object.entries(DOORS)
    .filter(([name]) => !open.includes(name))
    .map(([, d]) => d);
  const paths = [...closed, ...extra].flatMap((d) => d.names.map((name) => ({ name, message: d.message })));
  return { 'no-restricted-imports': ['error', { paths }] };
}

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'bundles/', '.demo/', 'bench/results/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      // Style and house habits, not bugs: left to the reader (and Prettier).
      'no-control-regex': 'off', // matching control characters is how untrusted text is checked
      // `import { z }` makes esbuild bundle every zod locale (0.5 MB each command parses at start)
      'no-restricted-syntax': [
        'error',
        {
          selector: "ImportDeclaration[source.value='zod'] > ImportSpecifier[imported.name='z']",
          message: "import * as z from 'zod': the named import drags in every locale",
        },
      ],
      'no-useless-escape': 'off',
      'no-useless-assignment': 'off',
      'prefer-const': 'off',
      '@typescript-eslint/no-this-alias': 'off',
      'no-empty': ['error', { allowEmptyCatch: true }],
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { args: 'none', caughtErrors: 'none', ignoreRestSiblings: true }],
    },
  },
  {
    files: ['**/*.{js,mjs}'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly' } },
  },
  { files: ['src/**/*.ts'], rules: doors() },
  { files: ['src/git/**/*.ts', 'src/sign/**/*.ts', 'src/replica/hooks.ts'], rules: doors(['child_process']) },
  { files: ['src/transfer/**/*.ts'], rules: doors(['got']) },
  { files: ['src/lock/**/*.ts'], rules: doors(['lock']) },
  { files: ['src/store/**/*.ts'], rules: doors(['s3']) },
  { files: ['src/replica/plan/**/*.ts'], rules: doors([], [IO]) },
);
