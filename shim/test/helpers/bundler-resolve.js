// Module hooks that resolve the way the bundlers these packages are written
// for do (webpack, rollup, tsc's "bundler" resolution): @jitsi/rtcstats,
// @jitsi/js-utils and @observertc/client-monitor-js publish ES modules whose
// relative imports have no file extension ('./events', '../schema/ClientSample')
// and name directories ('@jitsi/js-utils/browser-detection'), and the @jitsi
// packages do not declare "type": "module". Node's own ESM resolver refuses
// all three; a bundler accepts them. Only files under node_modules are
// touched: the shim and the tests resolve as node does.
//
// Registered with `module.register()` (see registerBundlerResolve()).
import { createRequire, register } from 'node:module';
import { fileURLToPath } from 'node:url';

export function registerBundlerResolve() {
  register('./bundler-resolve.js', import.meta.url);
}

const RETRY = ['.js', '/index.js'];

export async function resolve(specifier, context, next) {
  try {
    return await next(specifier, context);
  } catch (e) {
    const fromDeps = context.parentURL?.includes('/node_modules/');
    if (!fromDeps || !['ERR_MODULE_NOT_FOUND', 'ERR_UNSUPPORTED_DIR_IMPORT'].includes(e.code)) throw e;
    for (const suffix of RETRY) {
      try {
        return await next(specifier + suffix, context);
      } catch {
        // try the next suffix
      }
    }
    throw e;
  }
}

// ES module syntax in a .js file of a package without "type": "module"
// (@jitsi/rtcstats, @jitsi/js-utils): loaded as a module, as a bundler would.
const ESM_WITHOUT_TYPE = ['/node_modules/@jitsi/rtcstats/', '/node_modules/@jitsi/js-utils/'];

// CommonJS modules whose exports node cannot list for a named import
// (`module.exports = { getLogger: function … }`): @jitsi/logger. Served as a
// module that re-exports every property, the interop a bundler provides.
const CJS_NAMED_EXPORTS = ['/node_modules/@jitsi/logger/'];

export async function load(url, context, next) {
  if (url.startsWith('file:') && CJS_NAMED_EXPORTS.some((p) => url.includes(p))) {
    const file = fileURLToPath(url);
    const names = Object.keys(createRequire(file)(file)).filter((k) => /^[A-Za-z_$][\w$]*$/.test(k) && k !== 'default');
    const source = [
      "import { createRequire } from 'node:module';",
      `const m = createRequire(${JSON.stringify(url)})(${JSON.stringify(file)});`,
      'export default m;',
      ...names.map((k) => `export const ${k} = m[${JSON.stringify(k)}];`),
    ].join('\n');
    return { format: 'module', source, shortCircuit: true };
  }
  if (url.endsWith('.js') && ESM_WITHOUT_TYPE.some((p) => url.includes(p))) {
    return next(url, { ...context, format: 'module' });
  }
  return next(url, context);
}
