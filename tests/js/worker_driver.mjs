// Runs spark_assets/release/worker/worker.js against a fake R2 bucket for tests/test_release_lookup.py.
//   node worker_driver.mjs <worker.js> <fixture.json>
// The fixture: {"objects": {key: text}, "requests": [{"method", "url", "host", "at"?}], "resolves": [{"path", "query",
// "files"}], "decodes": [text], "hosts": [text], "compares": [[a, b]], "shard_lookups": [{"path", "shards"}]}.
// Prints one JSON document: each request's status, headers and body, the pure functions' answers, and the keys read.
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

globalThis.fetch = () => {
  throw new Error("the worker must not fetch");
};

const [workerPath, fixturePath] = process.argv.slice(2);
const worker = await import(pathToFileURL(workerPath).href);
const fixture = JSON.parse(readFileSync(fixturePath, "utf-8"));

const reads = [];
const SITES = {
  async get(key) {
    reads.push(["get", key]);
    if (!Object.prototype.hasOwnProperty.call(fixture.objects, key)) return null;
    const data = fixture.objects[key];
    return {
      body: new Blob([data]).stream(),
      size: data.length,
      httpEtag: '"fake"',
      text: async () => data,
      json: async () => JSON.parse(data),
    };
  },
  async head(key) {
    reads.push(["head", key]);
    if (!Object.prototype.hasOwnProperty.call(fixture.objects, key)) return null;
    return { size: fixture.objects[key].length, httpEtag: '"fake"' };
  },
};

const responses = [];
const realNow = Date.now;
for (const { method, url, host, at } of fixture.requests || []) {
  Date.now = at === undefined ? realNow : () => at; // "at": the request's clock, in ms
  const request = new Request(url, { method, headers: host ? { host } : {} });
  const response = await worker.default.fetch(request, { SITES }, { waitUntil() {} });
  responses.push({
    status: response.status,
    headers: Object.fromEntries(response.headers),
    body: await response.text(),
    pathname: new URL(request.url).pathname,
    host: request.headers.get("host"),
  });
}

const resolves = [];
for (const { path, query, files } of fixture.resolves || []) {
  const set = new Set(files);
  const asked = [];
  const found = await worker.resolve(path, (p) => (asked.push(p), set.has(p)), query);
  resolves.push({ ...found, asked });
}

console.log(
  JSON.stringify({
    responses,
    resolves,
    decodes: (fixture.decodes || []).map((text) => worker.percentDecode(text)),
    hosts: (fixture.hosts || []).map((host) => worker.domainFromHost(host)),
    compares: (fixture.compares || []).map(([a, b]) => worker.compareCodePoints(a, b)),
    shard_lookups: (fixture.shard_lookups || []).map(({ path, shards }) => worker.shardFor(path, shards)),
    reads,
  }),
);
