// eslint (flat config): the recommended rules over the browser modules, the rep's service
// worker, and the Node scripts that drive Chromium in the tests and benchmarks.
import js from '@eslint/js';
import globals from 'globals';

export default [
  { ignores: ['node_modules/', '.venv/', '.state/', 'bench/out/', '**/vendor/'] },
  js.configs.recommended,
  {
    files: ['console/static/**/*.js', 'ar_viewer/static/**/*.js', 'calendars/static/**/*.js', 'phone/static/**/*.js', 'automation/static/**/*.js'],
    languageOptions: { ecmaVersion: 2022, sourceType: 'module', globals: { ...globals.browser } },
  },
  {
    files: ['engage/static/widget.js'],
    languageOptions: { ecmaVersion: 2022, sourceType: 'script', globals: { ...globals.browser } },
  },
  {
    files: ['engage/static/inbox.js'],
    languageOptions: { ecmaVersion: 2022, sourceType: 'module', globals: { ...globals.browser } },
  },
  {
    // runs in the audio worklet's scope, not the page's
    files: ['console/static/capture-worklet.js'],
    languageOptions: { globals: { AudioWorkletProcessor: 'readonly', registerProcessor: 'readonly' } },
  },
  {
    files: ['console/static/rep/sw.js'],
    languageOptions: { sourceType: 'script', globals: { ...globals.serviceworker } },
  },
  {
    files: ['**/*.cjs'],
    languageOptions: { ecmaVersion: 2022, sourceType: 'commonjs', globals: { ...globals.node } },
  },
  {
    // page.evaluate() bodies run in the browser
    files: ['tests/**/*.cjs', 'bench/*.cjs'],
    languageOptions: { globals: { ...globals.browser, ...globals.node } },
  },
  { rules: { 'no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }] } },
];
