// Lint rules: typescript-eslint's recommended set, plus the Env door: code that must also run
// inside the deterministic simulator may not reach time, randomness, timers, sockets, threads
// or storage except through the injected Env (only runtime/node/ and sim/ implement it;
// edge/listeners/ holds the production socket adapters the simulator replaces).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const envDoorFiles = ['runtime/*.ts', 'actors/**/*.ts', 'edge/**/*.ts', 'core/**/*.ts'];

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'data/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.js', '**/*.mjs'],
    languageOptions: {
      globals: { process: 'readonly', console: 'readonly', URL: 'readonly', Buffer: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly' },
    },
  },
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-non-null-assertion': 'off',
      'no-empty': ['error', { allowEmptyCatch: true }],
    },
  },
  {
    files: envDoorFiles,
    ignores: ['edge/listeners/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: ['net', 'node:net', 'worker_threads', 'node:worker_threads', 'lmdb', 'node:fs', 'fs', 'node:perf_hooks'].map((name) => ({
            name,
            message: 'Actor code reaches the world only through the Env door (runtime/Env.ts).',
          })),
          patterns: [{ group: ['@nats-io/*'], message: 'Use the Env transport, not NATS directly.' }],
        },
      ],
      'no-restricted-properties': [
        'error',
        { object: 'Date', property: 'now', message: 'Use ctx.env.clock.' },
        { object: 'Math', property: 'random', message: 'Use ctx.env.random.' },
        { object: 'performance', property: 'now', message: 'Use ctx.env.clock.' },
      ],
      'no-restricted-globals': [
        'error',
        ...['setTimeout', 'setInterval', 'setImmediate', 'clearTimeout', 'clearInterval', 'performance'].map((name) => ({
          name,
          message: 'Use ctx.env.timers / ctx.env.clock (the Env door).',
        })),
      ],
    },
  },
);
