// A lean load client for the resilience tests: many Socket.IO 5 / Engine.IO 4 sockets on the
// `ws` package (a dependency of socket.io-client), cheap enough to run thousands in one Node
// process. It behaves like Kitsu's socket.io-client where the tests depend on it:
// - "upgrade" transport: polling handshake (GET), Socket.IO CONNECT over polling (POST), then
//   the WebSocket upgrade with the session id (2probe / 3probe / 5), as Kitsu does; the
//   "websocket" transport connects directly as gazu can;
// - the access token goes in the `access_token_cookie` cookie of every request;
// - pings are answered; on a transport close or a failed attempt (HTTP 503, refused TCP
//   connect, no CONNECT answer within 20 s: socket.io-client's `timeout`) the socket
//   reconnects with socket.io-client's backoff (1 s doubling to 5 s, jitter 0.5); a
//   connect_error from the namespace (auth refused) is final, as in socket.io-client;
// - with several bases, a failed attempt moves on to the next base, as nginx's upstream
//   failover does once an instance refuses connections.
// Config (argv[2], JSON): bases, tokens, count, transport, reconnect (default true), rampMs.
// Commands on stdin (JSON lines): {"cmd": "stats"} prints one stats line on stdout,
// {"cmd": "drop"} aborts every connection from the client side (they reconnect: a storm),
// {"cmd": "reset"} zeroes the counters, {"cmd": "close"} closes everything and exits.
import { createRequire } from "node:module";
import http from "node:http";
import readline from "node:readline";

const require = createRequire(new URL("../js/package.json", import.meta.url));
const WebSocket = require("ws");

const config = JSON.parse(process.argv[2]);
const bases = config.bases;
const transport = config.transport ?? "upgrade";
const reconnect = config.reconnect ?? true;
const NAMESPACE = "/events";
const BACKOFF = { min: 1000, max: 5000, jitter: 0.5 };
const HTTP_TIMEOUT_MS = 15000;
const ATTEMPT_TIMEOUT_MS = 20000;

let stats;
function resetStats() {
  stats = {
    connects: 0,
    handshakeRefused: {}, // HTTP 503 body ("too_fast", "draining", ...) -> count
    invalidSession: 0,
    httpErrors: {}, // other HTTP status -> count
    netErrors: {}, // ECONNREFUSED, ECONNRESET, timeouts... -> count
    attemptTimeouts: {}, // phase an attempt was stuck in for 20 s -> count
    connectErrors: {}, // Socket.IO CONNECT_ERROR message -> count
    disconnects: {}, // reason -> count
    eioClose: 0, // Engine.IO CLOSE packets received (server-initiated close)
    events: {}, // event name -> count, all sockets
    outOfOrder: 0, // events whose payload index "i" is below the socket's next expected one
    gaps: 0, // events whose index skips some (the skipped ones were lost)
    latencies: [], // ms from the payload's "t" (publish time, epoch seconds) to receipt
    answerSeconds: [], // from the attempt's start to the namespace's answer (ack or error)
    firstDisconnectAt: null,
    lastDisconnectAt: null,
  };
}
resetStats();

const bump = (table, key) => (table[key] = (table[key] ?? 0) + 1);
const now = () => Date.now() / 1000;

function backoffDelay(attempts) {
  // socket.io-client's Backoff.duration()
  let ms = BACKOFF.min * Math.pow(2, attempts);
  const rand = Math.random();
  const deviation = Math.floor(rand * BACKOFF.jitter * ms);
  ms = (Math.floor(rand * 10) & 1) === 0 ? ms - deviation : ms + deviation;
  return Math.min(ms, BACKOFF.max);
}

function request(method, url, cookie, body) {
  return new Promise((resolve, reject) => {
    const headers = { Cookie: cookie, Connection: "close" };
    if (body !== undefined) headers["Content-Type"] = "text/plain;charset=UTF-8";
    const req = http.request(url, { method, headers, agent: false }, (res) => {
      let data = "";
      res.setEncoding("utf8");
      res.on("data", (chunk) => (data += chunk));
      res.on("end", () => resolve({ status: res.statusCode, body: data }));
      res.on("error", reject);
    });
    req.setTimeout(HTTP_TIMEOUT_MS, () => req.destroy(new Error("ETIMEDOUT")));
    req.on("error", reject);
    req.end(body);
  });
}

class LoadSocket {
  constructor(index) {
    this.index = index;
    this.cookie = `access_token_cookie=${config.tokens[index % config.tokens.length]}`;
    this.baseIndex = 0;
    this.attempts = 0;
    this.ws = null;
    this.connected = false;
    this.final = false; // refused by the namespace, or closed by the test
    this.expected = {}; // event name -> next payload index
    this.timer = null;
    this.deadline = null; // the current attempt's timeout
    this.attemptId = 0; // a late answer to an abandoned attempt is ignored
    this.phase = "backoff";
  }

  get base() {
    return bases[this.baseIndex];
  }

  open() {
    this.timer = null;
    this.startedAt = now();
    this.deadline = setTimeout(() => this.timedOut(), ATTEMPT_TIMEOUT_MS);
    const id = ++this.attemptId;
    this.attempt(id).catch((error) => {
      if (id === this.attemptId) this.failed(error.code ?? error.message);
    });
  }

  timedOut() {
    bump(stats.attemptTimeouts, this.phase);
    this.deadline = null;
    this.attemptId += 1;
    if (this.ws !== null) {
      this.ws.removeAllListeners();
      this.ws.on("error", () => {});
      this.ws.terminate();
      this.ws = null;
    }
    this.phase = "backoff";
    this.retry(true);
  }

  settle() {
    clearTimeout(this.deadline);
    this.deadline = null;
  }

  async attempt(id) {
    const query = `${this.base.replace(/^http/, "ws")}/socket.io/?EIO=4&transport=websocket`;
    if (transport === "websocket") {
      this.connectWebSocket(query, false);
      return;
    }
    const polling = `${this.base}/socket.io/?EIO=4&transport=polling`;
    this.phase = "handshake";
    const handshake = await request("GET", polling, this.cookie);
    if (id !== this.attemptId) return; // timed out meanwhile
    if (handshake.status !== 200) return this.refused(handshake);
    const sid = JSON.parse(handshake.body.slice(1)).sid;
    this.phase = "post";
    const posted = await request("POST", `${polling}&sid=${sid}`, this.cookie, `40${NAMESPACE},`);
    if (id !== this.attemptId) return;
    if (posted.status !== 200) return this.refused(posted);
    this.connectWebSocket(`${query}&sid=${sid}`, true);
  }

  connectWebSocket(url, probe) {
    const ws = new WebSocket(url, { headers: { Cookie: this.cookie }, perMessageDeflate: false });
    this.ws = ws;
    this.phase = "websocket";
    ws.on("open", () => {
      this.phase = probe ? "probe" : "connect";
      if (probe) ws.send("2probe");
    });
    ws.on("message", (data) => this.packet(data.toString()));
    ws.on("unexpected-response", (req, res) => {
      ws.removeAllListeners("close");
      ws.on("error", () => {});
      this.ws = null;
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk) => (body += chunk));
      res.on("end", () => {
        req.destroy();
        this.refused({ status: res.statusCode, body });
      });
    });
    ws.on("error", (error) => (this.lastError = error.code ?? error.message));
    ws.on("close", () => this.closed());
  }

  packet(text) {
    if (text === "2") return this.ws.send("3");
    if (text === "3probe") {
      this.phase = "connect";
      this.ws.send("5");
      return;
    }
    if (text[0] === "0") return this.ws.send(`40${NAMESPACE},`); // direct WebSocket handshake
    if (text === "1") {
      stats.eioClose += 1;
      this.closeReason = "transport close";
      return;
    }
    if (!text.startsWith(`4`)) return; // noop (6) and others
    const sio = text.slice(1);
    if (sio.startsWith(`0${NAMESPACE},`)) {
      this.settle();
      this.phase = "connected";
      this.connected = true;
      this.attempts = 0;
      stats.connects += 1;
      stats.answerSeconds.push(now() - this.startedAt);
    } else if (sio.startsWith(`4${NAMESPACE},`)) {
      this.settle();
      bump(stats.connectErrors, JSON.parse(sio.slice(NAMESPACE.length + 2)).message);
      stats.answerSeconds.push(now() - this.startedAt);
      this.final = true;
      this.ws.close();
    } else if (sio.startsWith(`1${NAMESPACE},`)) {
      this.closeReason = "io server disconnect";
      this.final = true;
    } else if (sio.startsWith(`2${NAMESPACE},`)) {
      this.event(JSON.parse(sio.slice(NAMESPACE.length + 2)));
    }
  }

  event([name, payload]) {
    bump(stats.events, name);
    if (payload === null || typeof payload !== "object") return;
    if (typeof payload.t === "number") stats.latencies.push(Date.now() - payload.t * 1000);
    if (typeof payload.i === "number") {
      const expected = this.expected[name] ?? 0;
      if (payload.i < expected) stats.outOfOrder += 1;
      else if (payload.i > expected) stats.gaps += 1;
      this.expected[name] = payload.i + 1;
    }
  }

  refused({ status, body }) {
    if (status === 503) bump(stats.handshakeRefused, body);
    else if (body.includes("Invalid session")) stats.invalidSession += 1;
    else bump(stats.httpErrors, status);
    this.retry(true);
  }

  failed(code) {
    bump(stats.netErrors, code);
    this.retry(true);
  }

  closed() {
    const wasConnected = this.connected;
    this.connected = false;
    this.ws = null;
    if (!wasConnected && !this.final) {
      bump(stats.netErrors, this.lastError ?? "closed before connect");
      return this.retry(true);
    }
    if (wasConnected) {
      bump(stats.disconnects, this.closeReason ?? "transport close");
      const at = now();
      stats.firstDisconnectAt ??= at;
      stats.lastDisconnectAt = at;
    }
    this.closeReason = undefined;
    this.retry(false);
  }

  retry(failedAttempt) {
    this.settle();
    this.phase = "backoff";
    if (this.final || !reconnect || this.timer !== null) return;
    if (failedAttempt) this.baseIndex = (this.baseIndex + 1) % bases.length;
    this.timer = setTimeout(() => this.open(), backoffDelay(this.attempts));
    this.attempts += 1;
  }

  drop() {
    if (this.ws !== null) this.ws.terminate();
  }

  close() {
    this.final = true;
    this.settle();
    clearTimeout(this.timer);
    if (this.ws !== null) this.ws.close();
  }
}

function quantile(sorted, q) {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : null;
}

function report(sockets) {
  const latencies = Float64Array.from(stats.latencies).sort();
  const answerSeconds = Float64Array.from(stats.answerSeconds).sort();
  const connectedByBase = {};
  const phases = {}; // where the sockets that are not connected are
  for (const socket of sockets) {
    if (socket.connected) bump(connectedByBase, socket.base);
    else bump(phases, socket.phase);
  }
  const { latencies: _l, answerSeconds: _a, ...counters } = stats;
  return {
    ...counters,
    type: "stats",
    sockets: sockets.length,
    connected: sockets.filter((socket) => socket.connected).length,
    connectedByBase,
    phases,
    latencyMs: { count: latencies.length, p50: quantile(latencies, 0.5), p99: quantile(latencies, 0.99) },
    answerSecondsMax: answerSeconds.length ? answerSeconds[answerSeconds.length - 1] : null,
  };
}

const sockets = Array.from({ length: config.count }, (_, i) => new LoadSocket(i));
// Open all at once, or one every rampMs (clients arriving over time).
sockets.forEach((socket, i) =>
  config.rampMs ? setTimeout(() => socket.open(), i * config.rampMs) : socket.open(),
);

const out = (message) => process.stdout.write(JSON.stringify(message) + "\n");
readline.createInterface({ input: process.stdin }).on("line", (line) => {
  const { cmd } = JSON.parse(line);
  if (cmd === "stats") out(report(sockets));
  else if (cmd === "drop") sockets.forEach((socket) => socket.drop());
  else if (cmd === "reset") resetStats();
  else if (cmd === "close") {
    sockets.forEach((socket) => socket.close());
    out({ type: "closed" });
    process.exit(0);
  }
});
process.stdin.on("end", () => process.exit(0));
