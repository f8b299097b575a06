// Token ids from the page's WordPiece, for a test to compare with the Python tokenizer:
//   node node_tokenize.mjs tokenizer.json MAX_LENGTH < texts.jsonl > ids.jsonl
// (one JSON string per input line, one JSON array of ids per output line)
import { readFileSync } from "node:fs";
import { WordPiece } from "./page/wordpiece.mjs";

const [tokenizerPath, maxLength] = process.argv.slice(2);
const tokenizer = new WordPiece(JSON.parse(readFileSync(tokenizerPath, "utf8")), Number(maxLength));
const lines = readFileSync(0, "utf8").split("\n").filter((line) => line.length);
process.stdout.write(lines.map((line) => JSON.stringify(tokenizer.encode(JSON.parse(line)))).join("\n") + "\n");
