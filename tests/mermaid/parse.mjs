// Parses Mermaid diagrams with Mermaid's own parser (the one mermaid.live and GitHub
// use), in Node with jsdom standing in for the browser DOM that mermaid's sanitizer
// needs. Usage: node parse.mjs FILE...; prints `ok FILE TYPE` or `FAIL FILE: error`
// per file and exits 1 when any fails. Installed by `npm ci` here (see .ci/run).
import { JSDOM } from 'jsdom';
import { readFileSync } from 'node:fs';

const dom = new JSDOM('<!doctype html><html><body></body></html>');
globalThis.window = dom.window;
globalThis.document = dom.window.document;
const { default: mermaid } = await import('mermaid');
mermaid.initialize({ startOnLoad: false });

let failed = 0;
for (const file of process.argv.slice(2)) {
  const text = readFileSync(file, 'utf8');
  try {
    const result = await mermaid.parse(text);
    console.log(`ok ${file} ${result.diagramType}`);
  } catch (error) {
    failed += 1;
    console.log(`FAIL ${file}: ${String(error?.message ?? error)}`);
  }
}
process.exit(failed ? 1 : 0);
