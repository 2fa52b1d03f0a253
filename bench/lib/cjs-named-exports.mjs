/**
 * Loaded with `node --import` by bench/run.ts. @azure/functions is a CommonJS bundle whose exports Node's ESM
 * loader cannot name (`import { HttpRequest } from '@azure/functions'` fails outside vitest, which has its own
 * interop). This resolve/load hook serves an ESM facade instead: the real module as default export plus each of
 * its properties as a named export.
 */
import { register } from 'node:module';

register('./cjs-named-exports-hooks.mjs', import.meta.url);
