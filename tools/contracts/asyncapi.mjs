// Validates AsyncAPI documents with the AsyncAPI project's own parser, and checks that every
// event type listed in a file (one a line) is a message of each.
// Usage: node asyncapi.mjs <event-types.txt> <document.json>...
// Prints one JSON line per document: {"document", "valid", "problems"}; exits 1 unless all hold.
import { readFileSync } from "node:fs";
import { Parser, DiagnosticSeverity } from "@asyncapi/parser";

const [typesFile, ...documents] = process.argv.slice(2);
if (!typesFile || documents.length === 0) {
  console.error("usage: node asyncapi.mjs <event-types.txt> <document.json>...");
  process.exit(2);
}
const expected = readFileSync(typesFile, "utf8").split("\n").map((l) => l.trim()).filter(Boolean);
const parser = new Parser();
let failed = false;
for (const path of documents) {
  const problems = [];
  const { document, diagnostics } = await parser.parse(readFileSync(path, "utf8"), { source: path });
  for (const d of diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error)) {
    problems.push(`${d.code}: ${d.message} at ${d.path.join(".")}`);
  }
  if (document) {
    const published = new Set(document.allMessages().all().map((message) => message.name()));
    for (const type of expected) {
      if (!published.has(type)) problems.push(`no message for event type ${type}`);
    }
  } else if (problems.length === 0) {
    problems.push("the parser returned no document");
  }
  failed ||= problems.length > 0;
  console.log(JSON.stringify({ document: path, valid: problems.length === 0, problems }));
}
process.exit(failed ? 1 : 0);
