// Evaluates one flag of a flagd flag file with the real flagd evaluator
// (@openfeature/flagd-core) and prints the resolution as one JSON line.
//
//   node eval.mjs FILE KEY boolean|string|number|object
//
// Install its dependencies first: npm ci --prefix actions/flag/testdata/flagd
import { readFileSync } from "node:fs";
import { FlagdCore } from "@openfeature/flagd-core";

const [file, key, type] = process.argv.slice(2);
const core = new FlagdCore();
core.setConfigurations(readFileSync(file, "utf8"));
const resolve = {
  boolean: () => core.resolveBooleanEvaluation(key, false, {}),
  string: () => core.resolveStringEvaluation(key, "", {}),
  number: () => core.resolveNumberEvaluation(key, 0, {}),
  object: () => core.resolveObjectEvaluation(key, {}, {}),
}[type];
if (!resolve) {
  console.error(`unknown type ${type}`);
  process.exit(2);
}
let details;
try {
  details = resolve();
} catch (err) {
  details = { errorCode: err.code ?? "THROWN", errorMessage: String(err.message ?? err) };
}
const { value, variant, reason, errorCode, errorMessage } = details;
console.log(JSON.stringify({ value, variant, reason, errorCode, errorMessage }));
