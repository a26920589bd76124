// Spark Factory's site server on Cloudflare: one Worker in front of the R2 bucket (binding `SITES`) that serves every
// released site. It follows spark_assets/release/layout.py (the keys, the manifest and the pointer) and
// spark_assets/release/lookup.py (how a URL finds its file) exactly: tests/test_release_lookup.py runs both over the
// same table. No dependencies: the Workers runtime and Node 18+ both run it.
//
//   GET/HEAD https://<domain>/<path>: the pointer sites/<domain>/live.json names the live release's manifest, the
//   manifest (or the one shard holding the path) names the file's sha256, content type and cache policy, and the
//   body is sites/<domain>/objects/<sha256>.

export const SHORT = "public, max-age=300";
export const NO_CACHE = "no-cache";
export const NOT_FOUND_PAGE = "404.html";
export const PLAIN_TEXT = "text/plain; charset=utf-8";

// the pointer is re-read after this long, so a new release is live everywhere within it
export const POINTER_TTL_MS = 30_000;
const POINTER_CACHE_MAX = 1000;
// manifests and shards are immutable: kept by key until evicted (oldest first) by count or by their JSON's size
const DOCUMENT_CACHE_MAX = 32;
const DOCUMENT_CACHE_MAX_CHARS = 32 * 1024 * 1024;

export function sitePrefix(domain) {
  return `sites/${domain.toLowerCase()}/`;
}

export function objectKey(domain, sha256) {
  return `${sitePrefix(domain)}objects/${sha256}`;
}

export function pointerKey(domain) {
  return `${sitePrefix(domain)}live.json`;
}

// --- the pure rules (lookup.py) ---------------------------------------------------------------------------------

const HEX = /^[0-9a-fA-F]{2}$/;
const UTF8 = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });

// Python's urllib.parse.unquote: %XX sequences (ASCII runs only) become bytes decoded as UTF-8 with U+FFFD for
// invalid bytes; a `%` not followed by two hex digits and every non-ASCII character stay as they are.
export function percentDecode(text) {
  if (!text.includes("%")) return text;
  let out = "";
  let bytes = [];
  const flush = () => {
    if (bytes.length) out += UTF8.decode(new Uint8Array(bytes));
    bytes = [];
  };
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code > 0x7f) {
      flush();
      out += text[i];
    } else if (code === 0x25 && HEX.test(text.slice(i + 1, i + 3))) {
      bytes.push(parseInt(text.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      bytes.push(code);
    }
  }
  flush();
  return out;
}

export function refused(decoded) {
  if (!decoded.startsWith("/") || decoded.includes("\\") || decoded.includes("\u0000")) return true;
  const segments = decoded.slice(1).split("/");
  if (segments.some((segment) => segment === "." || segment === "..")) return true;
  return segments.slice(0, -1).some((segment) => segment === "");
}

// {status, path, location} for a GET of `urlPath` (still percent-encoded); `has(path)` may return a promise.
export async function resolve(urlPath, has, query = null) {
  const decoded = percentDecode(urlPath);
  if (!refused(decoded)) {
    let relative = decoded.slice(1);
    if (relative === "" || relative.endsWith("/")) {
      relative += "index.html";
      if (await has(relative)) return { status: 200, path: relative, location: null };
    } else if (await has(relative)) {
      return { status: 200, path: relative, location: null };
    } else if (await has(relative + "/index.html")) {
      return { status: 301, path: null, location: urlPath + "/" + (query ? `?${query}` : "") };
    }
  }
  return { status: 404, path: (await has(NOT_FOUND_PAGE)) ? NOT_FOUND_PAGE : null, location: null };
}

const DNS_NAME = /^[a-z0-9.-]+$/;

// the site a Host header names (lookup.domain_from_host)
export function domainFromHost(host) {
  host = host.trim().toLowerCase();
  if (host.includes(":")) {
    const colon = host.lastIndexOf(":");
    const port = host.slice(colon + 1);
    if (!/^[0-9]+$/.test(port)) return null;
    host = host.slice(0, colon);
  }
  if (host.endsWith(".")) host = host.slice(0, -1);
  if (host.startsWith("www.")) host = host.slice(4);
  if (!host || host.length > 253 || host.startsWith(".") || host.includes("..")) return null;
  return DNS_NAME.test(host) ? host : null;
}

// Python's str order (code points), which JS's `<` (UTF-16 code units) is not for characters beyond U+FFFF
export function compareCodePoints(a, b) {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    if (x >= 0xd800 && y >= 0xd800) {
      x = x >= 0xe000 ? x - 0x800 : x + 0x2000;
      y = y >= 0xe000 ? y - 0x800 : y + 0x2000;
    }
    return x < y ? -1 : 1;
  }
  return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
}

// layout.shard_for: the shard whose [first, last] holds `path`, or null
export function shardFor(path, shards) {
  let low = 0;
  let high = shards.length - 1;
  while (low <= high) {
    const middle = (low + high) >> 1;
    const shard = shards[middle];
    if (compareCodePoints(path, shard.first) < 0) high = middle - 1;
    else if (compareCodePoints(path, shard.last) > 0) low = middle + 1;
    else return shard;
  }
  return null;
}

const own = (object, key) => object != null && Object.prototype.hasOwnProperty.call(object, key);

// lookup.ManifestView: a manifest's files, loading (through `loadShard(key)`, cached by the caller) only the shard
// that holds a path
export class ManifestView {
  constructor(document, loadShard) {
    this.document = document;
    this.loadShard = loadShard;
    this.shards = new Map();
  }

  async entry(path) {
    const files = this.document.files || {};
    if (own(files, path)) return files[path];
    const shard = shardFor(path, this.document.shards || []);
    if (shard === null) return null;
    if (!this.shards.has(shard.key)) this.shards.set(shard.key, await this.loadShard(shard.key));
    const shardFiles = this.shards.get(shard.key).files || {};
    return own(shardFiles, path) ? shardFiles[path] : null;
  }
}

// lookup.response_headers
export function responseHeaders(entry, status, location = null) {
  if (status === 301) return { Location: location || "/", "Cache-Control": SHORT };
  const contentType = entry ? entry.content_type : PLAIN_TEXT;
  if (status === 200 && entry) return { "Content-Type": contentType, "Cache-Control": entry.cache_control };
  return { "Content-Type": contentType, "Cache-Control": NO_CACHE };
}

// --- the bucket -------------------------------------------------------------------------------------------------

const pointers = new Map(); // domain -> {at, pointer (null: no release)}
const documents = new Map(); // key -> {document, chars}; insertion order is use order
let documentChars = 0;

export function clearCaches() {
  pointers.clear();
  documents.clear();
  documentChars = 0;
}

async function readPointer(env, domain, now) {
  const cached = pointers.get(domain);
  if (cached && now - cached.at < POINTER_TTL_MS) return cached.pointer;
  const object = await env.SITES.get(pointerKey(domain));
  const pointer = object === null ? null : await object.json();
  pointers.delete(domain);
  pointers.set(domain, { at: now, pointer });
  if (pointers.size > POINTER_CACHE_MAX) pointers.delete(pointers.keys().next().value);
  return pointer;
}

// an immutable JSON document (a manifest or a shard), null when the bucket has none
async function readDocument(env, key) {
  const cached = documents.get(key);
  if (cached) {
    documents.delete(key);
    documents.set(key, cached);
    return cached.document;
  }
  const object = await env.SITES.get(key);
  if (object === null) return null;
  const text = await object.text();
  const document = JSON.parse(text);
  documents.set(key, { document, chars: text.length });
  documentChars += text.length;
  while (documents.size > 1 && (documents.size > DOCUMENT_CACHE_MAX || documentChars > DOCUMENT_CACHE_MAX_CHARS)) {
    const [oldest, value] = documents.entries().next().value;
    documents.delete(oldest);
    documentChars -= value.chars;
  }
  return document;
}

function text(status, body, head, extra = {}) {
  const headers = { "Content-Type": PLAIN_TEXT, "Cache-Control": NO_CACHE, ...extra };
  return new Response(head ? null : body, { status, headers });
}

export default {
  async fetch(request, env, ctx) {
    const head = request.method === "HEAD";
    if (request.method !== "GET" && !head) {
      return text(405, "method not allowed\n", false, { Allow: "GET, HEAD" });
    }
    const url = new URL(request.url);
    const domain = domainFromHost(request.headers.get("host") || url.host);
    const pointer = domain === null ? null : await readPointer(env, domain, Date.now());
    if (pointer === null || typeof pointer.manifest !== "string" || !pointer.manifest.startsWith(sitePrefix(domain))) {
      return text(404, "site not released\n", head);
    }
    const manifest = await readDocument(env, pointer.manifest);
    if (manifest === null) return text(500, "release manifest missing\n", head);
    const view = new ManifestView(manifest, async (key) => {
      const shard = await readDocument(env, key);
      if (shard === null) throw new Error(`release shard missing: ${key}`);
      return shard;
    });
    const found = await resolve(url.pathname, async (path) => (await view.entry(path)) !== null, url.search.slice(1));
    if (found.status === 301) {
      return new Response(null, { status: 301, headers: responseHeaders(null, 301, found.location) });
    }
    const entry = found.path === null ? null : await view.entry(found.path);
    const headers = responseHeaders(entry, found.status);
    if (entry === null) return text(found.status, "not found\n", head, headers);
    const key = objectKey(domain, entry.sha256);
    const object = head ? await env.SITES.head(key) : await env.SITES.get(key);
    if (object === null) return text(500, "release object missing\n", head);
    return new Response(head ? null : object.body, { status: found.status, headers });
  },
};
