// The committed schemas as a third-party validator sees them: ajv (draft 2020-12) in
// strict mode with ajv-formats. Every schema must compile (no unknown keywords or
// formats, no loose types); every shipped YAML file must validate against its kind's
// schema; every file of the schema corpus (tests/invalid/schema/) must be rejected and
// every file of the meaning and lifecycle corpora accepted, as tests/invalid/EXPECTED
// lists them. Run from the crate root: node tests/schema-check/check.mjs
import Ajv2020 from 'ajv/dist/2020.js';
import AjvDraft7 from 'ajv';
import addFormats from 'ajv-formats';
import yaml from 'js-yaml';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const ajv = new Ajv2020({ strict: true, allErrors: true });
addFormats(ajv);
// VS Code's hover text: an annotation, declared so strict mode knows it.
ajv.addKeyword({ keyword: 'markdownDescription', schemaType: 'string' });

// What an editor that knows only draft 7 (yaml-language-server) enforces: the same
// schemas read as draft 7, which must reject and accept the same files.
const draft7 = new AjvDraft7({ strict: false, allErrors: true, validateSchema: false });
addFormats(draft7);
const draft7Validators = {};

const kinds = ['workflow', 'lanes', 'prompts', 'test', 'lifecycle', 'roles', 'schedule', 'run-report'];
const validators = {};
let passed = 0;
let failed = 0;
const fail = (message) => {
  failed += 1;
  console.log(`FAIL ${message}`);
};

for (const kind of kinds) {
  try {
    const schema = JSON.parse(readFileSync(`schemas/${kind}.schema.json`, 'utf8'));
    validators[kind] = ajv.compile(schema);
    passed += 1;
    const asDraft7 = { ...schema };
    delete asDraft7.$schema;
    draft7Validators[kind] = draft7.compile(asDraft7);
  } catch (error) {
    fail(`schemas/${kind}.schema.json does not compile in strict mode: ${error.message}`);
  }
}

function yamlFiles(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...yamlFiles(path));
    else if (/\.ya?ml$/.test(name)) out.push(path);
  }
  return out;
}

function check(path, shouldPass) {
  let value;
  try {
    value = yaml.load(readFileSync(path, 'utf8'));
  } catch {
    return; // not YAML at all: the yaml corpus, runner's parser reports it
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return;
  // A layer that `extends` a base is checked against the schemas' overlay variant
  // (selected by `extends`); runner also checks the merged result.
  const kind = typeof value.kind === 'string' ? value.kind : 'workflow';
  const validate = validators[kind];
  if (!validate) {
    if (shouldPass) fail(`${path}: unknown kind ${kind}`);
    return;
  }
  for (const [dialect, validateWith, owner] of [
    ['2020-12', validate, ajv],
    ['draft 7', draft7Validators[kind], draft7],
  ]) {
    if (!validateWith) continue;
    const valid = validateWith(value);
    if (valid === shouldPass) {
      passed += 1;
    } else if (shouldPass) {
      fail(`${path} (${dialect}): rejected: ${owner.errorsText(validateWith.errors)}`);
    } else {
      fail(`${path} (${dialect}): accepted, but runner rejects it by schema`);
    }
  }
}

for (const dir of ['workflows', 'cron-prompts', 'examples']) {
  for (const path of yamlFiles(dir)) check(path, true);
}
for (const line of readFileSync('tests/invalid/EXPECTED', 'utf8').split('\n')) {
  const path = line.trim().split(/\s+/)[0];
  if (!path || path.startsWith('#')) continue;
  if (path.startsWith('tests/invalid/schema/')) check(path, false);
  else if (path.startsWith('tests/invalid/meaning/') || path.startsWith('tests/invalid/lifecycle/')) check(path, true);
}
console.log(`schema-check: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
