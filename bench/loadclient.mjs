// Benchmark load client: many raw Engine.IO 4 / Socket.IO 5 WebSockets on /events in one
// Node.js process, cheap enough per message that the server, not this client, is measured.
//
// The first stdin line is the configuration (JSON; too big for argv with 10k tokens): url
// (ws://host:port), tokens (access_token_cookie values, socket i uses tokens[i % n]), count,
// concurrency (handshakes in flight), connect_timeout (s, whole connect phase),
// handshake_timeout (s, per socket), kitsu (true: each socket is a socket.io-client, as in
// Kitsu: polling handshake then WebSocket upgrade, its own reconnection), source_addresses
// (N > 0: socket i binds 127.x.y.z number i % N, past one address's ephemeral ports).
// Then one JSON command per line: {"cmd":"reset"} | {"cmd":"wait","per_socket":K,"timeout":s}
// | {"cmd":"report","events":E} | {"cmd":"close"}. stdout: one JSON reply per line, plus
// {"type":"connected",...} once the connect phase ends.
import { createRequire } from "node:module";
import readline from "node:readline";
import { performance } from "node:perf_hooks";

// `ws` is installed for the end-to-end tests (a dependency of socket.io-client).
const require = createRequire(new URL("../tests/js/package.json", import.meta.url));
const WebSocket = require("ws");
const { io } = require("socket.io-client");

const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const config = JSON.parse((await lines.next()).value);
const out = (message) => process.stdout.write(JSON.stringify(message) + "\n");
const wallSeconds = () => (performance.timeOrigin + performance.now()) / 1000;

const OPEN = 0x30; // "0": Engine.IO open
const PING = 0x32; // "2"
const MESSAGE = 0x34; // "4"
const CONNECT_ACK = Buffer.from("40/events,");
const CONNECT_ERROR = Buffer.from("44/events,");
// Only the benchmark's own event: tests running meanwhile may publish on the same channel.
const EVENT = Buffer.from('42/events,["bench:fanout"');
const TIME_KEY = Buffer.from('"t":');
const SEQUENCE_KEY = Buffer.from('"n":');
const MAX_EVENTS = 1 << 16; // deliveries are counted per event sequence number below this
// Latency histogram: bucket i holds latencies in [e^(i/100), e^((i+1)/100)) microseconds,
// i.e. 1% resolution from 1 µs to over seven hours in 2,400 buckets; merged exactly in Python.
const BUCKETS_PER_E = 100;
const BUCKET_COUNT = 2400;

const count = config.count;
const sockets = new Array(count).fill(null);
const perSocket = new Uint32Array(count);
const perEvent = new Uint32Array(MAX_EVENTS);
let joined = 0;
let upgraded = 0; // kitsu sockets that moved from polling to WebSocket
let stats;
let waiter = null;

function resetStats() {
  perSocket.fill(0);
  perEvent.fill(0);
  stats = {
    received: 0,
    histogram: new Uint32Array(BUCKET_COUNT),
    max_latency: 0,
    first_receive: null,
    last_receive: null,
    disconnects: {},
  };
}

function onEvent(data) {
  const at = data.lastIndexOf(TIME_KEY);
  const published = parseFloat(data.toString("latin1", at + TIME_KEY.length));
  const sequenceAt = data.lastIndexOf(SEQUENCE_KEY, at);
  const sequence = parseInt(data.toString("latin1", sequenceAt + SEQUENCE_KEY.length, at), 10);
  record(published, sequence);
}

function record(published, sequence) {
  const now = wallSeconds();
  if (sequence < MAX_EVENTS) perEvent[sequence]++;
  const latency = now - published;
  const micros = Math.max(1, latency * 1e6);
  stats.histogram[Math.min(BUCKET_COUNT - 1, Math.floor(Math.log(micros) * BUCKETS_PER_E))]++;
  if (latency > stats.max_latency) stats.max_latency = latency;
  if (stats.first_receive === null) stats.first_receive = now;
  stats.last_receive = now;
  stats.received++;
  if (waiter && stats.received >= waiter.target) finishWait(true);
}

function finishWait(complete) {
  clearTimeout(waiter.timer);
  waiter = null;
  out({ type: "waited", complete, received: stats.received });
}

// Source address of socket i: 127.0.0.0/8 minus 127.0.0.0/16, one of config.source_addresses.
function sourceAddress(i) {
  if (!config.source_addresses) return undefined;
  const n = i % config.source_addresses;
  return `127.${1 + (n >> 16)}.${(n >> 8) & 255}.${n & 255}`;
}

// One Kitsu tab: socket.io-client with its defaults (polling handshake, then upgrade to
// WebSocket; reconnection with backoff), the cookie on every request as a browser sends it.
// Resolves with null once joined to /events; each refused attempt is counted as a retry, and
// the socket keeps trying until the connect phase's deadline.
function openKitsu(i, retries) {
  return new Promise((resolve) => {
    const socket = io(`${config.url.replace(/^ws/, "http")}/events`, {
      forceNew: true,
      extraHeaders: { Cookie: `access_token_cookie=${config.tokens[i % config.tokens.length]}` },
      // socket.io-client's own connect timeout (20 s), as in Kitsu: not handshake_timeout.
      localAddress: sourceAddress(i),
    });
    sockets[i] = socket;
    let isJoined = false;
    socket.on("connect", () => {
      if (!isJoined) joined++;
      isJoined = true;
      resolve(null);
    });
    // The engine is replaced on each reconnection: count one upgrade per tab.
    let isUpgraded = false;
    socket.io.on("open", () =>
      socket.io.engine.once("upgrade", () => {
        if (!isUpgraded) upgraded++;
        isUpgraded = true;
      }),
    );
    socket.on("connect_error", (error) => {
      const reason = error.message.startsWith("xhr poll error") ? `http ${error.description}` : error.message;
      retries[reason] = (retries[reason] || 0) + 1;
    });
    socket.on("bench:fanout", (payload) => {
      perSocket[i]++;
      record(payload.t, payload.n);
    });
    socket.on("disconnect", (reason) => {
      if (isJoined) {
        isJoined = false;
        joined--;
        stats.disconnects[reason] = (stats.disconnects[reason] || 0) + 1;
      }
    });
  });
}

// One socket: resolves with null once joined to /events, or with the reason it failed.
function open(i) {
  return new Promise((resolve) => {
    let done = false;
    let isJoined = false;
    const settle = (reason) => {
      if (!done) {
        done = true;
        resolve(reason);
      }
    };
    const ws = new WebSocket(`${config.url}/socket.io/?EIO=4&transport=websocket`, {
      headers: { Cookie: `access_token_cookie=${config.tokens[i % config.tokens.length]}` },
      perMessageDeflate: false,
      skipUTF8Validation: true,
      handshakeTimeout: config.handshake_timeout * 1000,
      localAddress: sourceAddress(i),
    });
    sockets[i] = ws;
    ws.on("message", (data) => {
      const kind = data[0];
      if (kind === MESSAGE) {
        if (isJoined) {
          if (data.indexOf(EVENT) === 0) {
            perSocket[i]++;
            onEvent(data);
          }
        } else if (data.indexOf(CONNECT_ACK) === 0) {
          isJoined = true;
          joined++;
          settle(null);
        } else if (data.indexOf(CONNECT_ERROR) === 0) {
          settle(`refused: ${data.toString("utf8", CONNECT_ERROR.length)}`);
          ws.terminate();
        }
      } else if (kind === PING) {
        ws.send("3");
      } else if (kind === OPEN) {
        ws.send("40/events,");
      }
    });
    ws.on("unexpected-response", (request, response) => {
      settle(`http ${response.statusCode}`);
      request.destroy();
    });
    ws.on("error", (error) => settle(error.message.startsWith("Opening handshake") ? "timeout" : error.code || error.message));
    ws.on("close", (code) => {
      settle(`closed ${code}`);
      if (isJoined) {
        joined--;
        stats.disconnects[code] = (stats.disconnects[code] || 0) + 1;
      }
    });
  });
}

// Answers a client should retry after a pause: the server's admission control (HTTP 503)
// and refusals that say so, as Kitsu's socket.io-client would reconnect.
const retryable = (reason) => reason === "http 503" || /try again later/.test(reason ?? "");

async function connectAll() {
  const deadline = Date.now() + config.connect_timeout * 1000;
  const failures = {};
  const retries = {};
  let next = 0;
  async function lane() {
    while (next < count && Date.now() < deadline) {
      const i = next++;
      if (config.kitsu) {
        const late = new Promise((resume) => setTimeout(resume, deadline - Date.now(), "not connected by the deadline"));
        const reason = await Promise.race([openKitsu(i, retries), late]);
        if (reason !== null) failures[reason] = (failures[reason] || 0) + 1;
        continue;
      }
      let reason = await open(i);
      for (let pause = 50; retryable(reason) && Date.now() + pause < deadline; ) {
        retries[reason] = (retries[reason] || 0) + 1;
        await new Promise((resume) => setTimeout(resume, pause));
        pause = Math.min(pause * 2, 1000);
        reason = await open(i);
      }
      if (reason !== null) failures[reason] = (failures[reason] || 0) + 1;
    }
  }
  const started = wallSeconds();
  await Promise.all(Array.from({ length: Math.min(config.concurrency, count) }, lane));
  // Tabs still trying at the deadline stop, so that the sockets measured next stay the same.
  if (config.kitsu) for (const socket of sockets) if (socket && !socket.connected) socket.disconnect();
  const notTried = count - next;
  if (notTried > 0) failures["not attempted before the deadline"] = notTried;
  out({ type: "connected", joined, upgraded, failures, retries, seconds: wallSeconds() - started });
}

// Events of 0..events-1 that fewer than all joined sockets received, as [sequence, count].
function shortEvents(events) {
  const short = [];
  for (let n = 0; n < Math.min(events, MAX_EVENTS); n++) if (perEvent[n] < joined) short.push([n, perEvent[n]]);
  return short;
}

function report(events) {
  const histogram = [];
  stats.histogram.forEach((n, bucket) => n && histogram.push([bucket, n]));
  let minPerSocket = Infinity;
  let maxPerSocket = 0;
  sockets.forEach((ws, i) => {
    if (ws && (config.kitsu ? ws.connected : ws.readyState === WebSocket.OPEN)) {
      minPerSocket = Math.min(minPerSocket, perSocket[i]);
      maxPerSocket = Math.max(maxPerSocket, perSocket[i]);
    }
  });
  out({
    type: "report",
    joined,
    received: stats.received,
    histogram,
    buckets_per_e: BUCKETS_PER_E,
    max_latency: stats.max_latency,
    first_receive: stats.first_receive,
    last_receive: stats.last_receive,
    min_per_socket: joined ? minPerSocket : 0,
    max_per_socket: maxPerSocket,
    disconnects: stats.disconnects,
    short_events: shortEvents(events),
  });
}

function closeAll() {
  for (const ws of sockets) if (ws) config.kitsu ? ws.disconnect() : ws.terminate();
  out({ type: "closed" });
  process.exit(0);
}

function handle(command) {
  if (command.cmd === "reset") {
    resetStats();
    out({ type: "reset" });
  } else if (command.cmd === "wait") {
    waiter = { target: command.per_socket * joined };
    if (stats.received >= waiter.target) finishWait(true);
    else waiter.timer = setTimeout(() => finishWait(false), command.timeout * 1000);
  } else if (command.cmd === "report") {
    report(command.events);
  } else if (command.cmd === "close") {
    closeAll();
  }
}

resetStats();
connectAll();
for await (const line of lines) handle(JSON.parse(line));
closeAll(); // stdin closed: the driver is gone
