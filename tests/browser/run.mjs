// What the browser drivers (rig.mjs, attacker.mjs) do alike: read the
// CONFIG.json named on the command line, log with the run's time, print
// one JSON result exactly once, bound the whole run by the config's
// timeoutSeconds, and close the browser (and anything else registered) on
// the way out, itself bounded to 5 s.

import { readFileSync } from 'node:fs';

// The flags every headless Chromium of the drivers runs with: no sandbox
// (root in a container), no GPU, and nothing of its own on the network
// (QUIC, background fetches, updates, sync) beside what a page does.
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// `name` prefixes the log lines; `result` is the object printed at exit.
export function start(name, result) {
  const cfg = JSON.parse(readFileSync(process.argv[2], 'utf8'));
  const t0 = Date.now();
  const run = {
    cfg,
    t0,
    result,
    browser: undefined,
    // Closed before exit (e.g. a local HTTP server).
    closers: [],
    log: (...a) => console.error(`[${name} ${((Date.now() - t0) / 1000).toFixed(1)}s]`, ...a),
    printed: false,
    finish(code) {
      if (!run.printed) {
        run.printed = true;
        process.stdout.write(JSON.stringify(run.result) + '\n');
      }
      for (const c of run.closers) c();
      const close = run.browser ? run.browser.close().catch(() => {}) : Promise.resolve();
      Promise.race([close, sleep(5000)]).then(() => process.exit(code));
    },
  };
  const overall = setTimeout(() => {
    run.result.error = `timed out after ${cfg.timeoutSeconds} s`;
    run.log(run.result.error);
    run.finish(1);
  }, cfg.timeoutSeconds * 1000);
  overall.unref();
  return run;
}
