// Generates a TypeScript client's types from OpenAPI documents with openapi-typescript, and
// type-checks the sample client against each with the TypeScript compiler.
// Usage: node openapi.mjs <document.json>...
// Prints one JSON line per document: {"document", "valid", "problems"}; exits 1 unless all hold.
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import openapiTS, { astToString } from "openapi-typescript";
import ts from "typescript";

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
let failed = false;
for (const path of documents) {
  const problems = [];
  const work = mkdtempSync(join(tmpdir(), "pipedesk-client-"));
  try {
    JSON.parse(readFileSync(path, "utf8")); // a document that is not JSON fails here, by name
    // A field with a default may be left out of a request: it stays optional.
    const ast = await openapiTS(pathToFileURL(path), { silent: true, defaultNonNullable: false });
    writeFileSync(join(work, "pipedesk-api.ts"), astToString(ast));
    copyFileSync(join(here, "sample-client.ts"), join(work, "sample-client.ts"));
    const program = ts.createProgram([join(work, "sample-client.ts")], options);
    for (const d of ts.getPreEmitDiagnostics(program)) {
      const text = ts.flattenDiagnosticMessageText(d.messageText, " ");
      const where = d.file
        ? `${d.file.fileName.slice(work.length + 1)}:${d.file.getLineAndCharacterOfPosition(d.start ?? 0).line + 1}`
        : "";
      problems.push(`TS${d.code} ${where}: ${text}`);
    }
  } catch (error) {
    problems.push(`openapi-typescript: ${error.message ?? error}`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  failed ||= problems.length > 0;
  console.log(JSON.stringify({ document: path, valid: problems.length === 0, problems }));
}
process.exit(failed ? 1 : 0);
