// Lint: typescript-eslint's type-checked rules over the programs and their shared code, and the import boundaries
// between them (the agent never imports the proxy; wire/ and lib/ import no program).
import tseslint from 'typescript-eslint';

const programs = ['agent', 'proxy', 'cli', 'images'];
const noImportOf = (folders, why) => ({
  'no-restricted-imports': [
    'error',
    { patterns: folders.map((f) => ({ group: [`**/${f}/**`, `**/${f}`], message: why })) },
  ],
});

export default tseslint.config(
  { ignores: ['dist/**', '.cove/**', 'node_modules/**', '**/*.mjs', '**/*.cjs'] },
  {
    files: ['**/*.ts'],
    extends: [tseslint.configs.recommendedTypeChecked],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      // Heavy modules (ws, node-pty, xterm, busboy, simple-git…) are required on first use so that an idle agent
      // never loads them; esbuild turns these requires into lazily evaluated wrappers.
      '@typescript-eslint/no-require-imports': 'off',
      // A leading underscore names what is unused on purpose (a rest sibling, a positional argument).
      // A variable set once, after closures that read it were made, stays `let`.
      'prefer-const': ['error', { ignoreReadBeforeAssign: true }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_', ignoreRestSiblings: true }],
    },
  },
  { files: ['agent/**/*.ts'], rules: noImportOf(['proxy'], 'the agent runs inside sandboxes: it never imports the proxy') },
  { files: ['wire/**/*.ts', 'lib/**/*.ts'], rules: noImportOf(programs, 'wire/ and lib/ are shared by the programs and import none of them') },
);
