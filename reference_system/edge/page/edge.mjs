// Runs the job the test serves at /job.json and posts what it measured to /report:
//   cold start  model download, ONNX Runtime Web's WebAssembly fetch + compile and session
//               set-up, and the first prediction, each timed apart;
//   warm-up     `warmup` predictions, untimed;
//   results     one batch-1 prediction per text: its label (for the agreement gate) and its
//               latency, performance.now() around tokenise + run + argmax.
// Every failure is posted as {kind: "error"}: the test fails with it instead of waiting.
import * as ort from "/ort/ort.wasm.min.mjs";
import { WordPiece } from "/page/wordpiece.mjs";

function post(message) {
  return fetch("/report", { method: "POST", body: JSON.stringify(message), keepalive: true });
}

function fail(error) {
  const text = error && error.stack ? `${error}\n${error.stack}` : String(error);
  document.getElementById("status").textContent = `error: ${text}`;
  post({ kind: "error", error: text });
}
window.addEventListener("error", (event) => fail(event.error ?? event.message));
window.addEventListener("unhandledrejection", (event) => fail(event.reason));

function feeds(tokenizer, text, names) {
  const ids = tokenizer.encode(text);
  const n = ids.length;
  const tensor = (values) => new ort.Tensor("int64", BigInt64Array.from(values, BigInt), [1, n]);
  const all = {
    input_ids: tensor(ids),
    attention_mask: tensor(ids.map(() => 1)),
    token_type_ids: tensor(ids.map(() => 0)),
  };
  return Object.fromEntries(names.map((name) => [name, all[name]]));
}

async function predict(session, tokenizer, text) {
  const output = await session.run(feeds(tokenizer, text, session.inputNames));
  const logits = output[session.outputNames[0]].data;
  return logits[1] > logits[0] ? 1 : 0; // argmax, ties to 0 as numpy's argmax
}

async function main() {
  const job = await (await fetch("/job.json")).json();
  await post({ kind: "hello", userAgent: navigator.userAgent, crossOriginIsolated });
  ort.env.wasm.wasmPaths = "/ort/";
  ort.env.wasm.numThreads = job.threads;
  ort.env.wasm.proxy = false;

  const t0 = performance.now();
  const model = new Uint8Array(await (await fetch(job.model)).arrayBuffer());
  const t1 = performance.now();
  const tokenizer = new WordPiece(await (await fetch(job.tokenizer)).json(), job.max_length);
  const t2 = performance.now();
  const session = await ort.InferenceSession.create(model, {
    executionProviders: ["wasm"],
    graphOptimizationLevel: "all",
  });
  const t3 = performance.now();
  const first = await predict(session, tokenizer, job.texts[0]);
  const t4 = performance.now();
  await post({
    kind: "cold_start",
    model_bytes: model.byteLength,
    page_ms: t0, // navigation start -> this script running (page, ORT's JavaScript)
    model_fetch_ms: t1 - t0,
    tokenizer_ms: t2 - t1,
    session_ms: t3 - t2, // WebAssembly fetch + compile, graph load and optimisation
    first_prediction_ms: t4 - t3,
    first_label: first,
    total_ms: t4, // navigation start -> first label
  });

  document.getElementById("status").textContent = "warm-up";
  const texts = job.texts;
  for (let i = 0; i < job.warmup; i++) await predict(session, tokenizer, texts[i % texts.length]);
  document.getElementById("status").textContent = "measuring";
  const labels = [];
  const latencies = [];
  const start = performance.now();
  for (const text of texts) {
    const before = performance.now();
    labels.push(await predict(session, tokenizer, text));
    latencies.push(performance.now() - before);
  }
  const wall_ms = performance.now() - start;
  await post({ kind: "results", labels, latencies_ms: latencies, wall_ms });
  document.getElementById("status").textContent = "done";
}

main().catch(fail);
