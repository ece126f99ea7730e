// Generates a TypeScript client's types from OpenAPI documents with openapi-typescript, and
// type-checks the sample client against each with the TypeScript compiler (one program for all).
// Usage: node openapi.mjs <document.json>...
// Prints one JSON line per document: {"document", "valid", "problems"}; exits 1 unless all hold.
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import openapiTS, { astToString } from "openapi-typescript";

// TypeScript is CommonJS: required, not imported, so Node need not scan its 9 MB for exports.
const ts = createRequire(import.meta.url)("typescript");

const here = dirname(fileURLToPath(import.meta.url));
const documents = process.argv.slice(2);
if (documents.length === 0) {
  console.error("usage: node openapi.mjs <document.json>...");
  process.exit(2);
}
const options = {
  strict: true,
  noEmit: true,
  target: ts.ScriptTarget.ES2022,
  module: ts.ModuleKind.ES2022,
  moduleResolution: ts.ModuleResolutionKind.Bundler,
  lib: ["lib.es2022.d.ts", "lib.dom.d.ts"],
  skipLibCheck: true, // the standard library's declarations are not ours to check
  types: [],
};
// Each document's client in a folder of its own; all of them type-checked in one program, so
// the standard library is read and checked once, not once a document.
const work = mkdtempSync(join(tmpdir(), "pipedesk-client-"));
const checks = documents.map((path, index) => ({ path, folder: join(work, String(index)), problems: [] }));
const roots = [];
try {
  for (const check of checks) {
    try {
      JSON.parse(readFileSync(check.path, "utf8")); // a document that is not JSON fails here, by name
      // A field with a default may be left out of a request: it stays optional.
      const ast = await openapiTS(pathToFileURL(check.path), { silent: true, defaultNonNullable: false });
      mkdirSync(check.folder);
      writeFileSync(join(check.folder, "pipedesk-api.ts"), astToString(ast));
      copyFileSync(join(here, "sample-client.ts"), join(check.folder, "sample-client.ts"));
      roots.push(join(check.folder, "sample-client.ts"));
    } catch (error) {
      check.problems.push(`openapi-typescript: ${error.message ?? error}`);
    }
  }
  const program = ts.createProgram(roots, options);
  for (const d of ts.getPreEmitDiagnostics(program)) {
    const text = ts.flattenDiagnosticMessageText(d.messageText, " ");
    const owner = d.file && checks.find((check) => d.file.fileName.startsWith(check.folder + "/"));
    const where = owner
      ? `${d.file.fileName.slice(owner.folder.length + 1)}:${d.file.getLineAndCharacterOfPosition(d.start ?? 0).line + 1}`
      : d.file?.fileName ?? "";
    // A problem outside every client's folder (the options, the standard library) is each one's.
    for (const check of owner ? [owner] : checks) check.problems.push(`TS${d.code} ${where}: ${text}`);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
for (const { path, problems } of checks) {
  console.log(JSON.stringify({ document: path, valid: problems.length === 0, problems }));
}
process.exit(checks.some((check) => check.problems.length > 0) ? 1 : 0);
