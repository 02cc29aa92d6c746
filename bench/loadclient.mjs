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
import { createHash, randomBytes, randomFillSync } from "node:crypto";
import { createRequire } from "node:module";
import net from "node:net";
import readline from "node:readline";
import { performance } from "node:perf_hooks";

// socket.io-client is installed for the end-to-end tests; only the Kitsu tabs use it.
const require = createRequire(new URL("../tests/js/package.json", import.meta.url));
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

// The raw sockets speak RFC 6455 themselves on net: `ws` cost about 11 µs per message, so
// the client read an event's 1,000th copy later than a fast server wrote it, and measured
// itself. What is left per message: one read callback and a header decoded in place.
const { hostname, port } = new URL(config.url);
const ACCEPT_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const HEADER_END = Buffer.from("\r\n\r\n");
const TEXT = 0x1;
const CONTINUATION = 0x0;
const CLOSE = 0x8;
const PING_FRAME = 0x9;
const PONG_FRAME = 0xa;
// Every read of every raw socket lands in this one buffer and is consumed before the callback
// returns (Node.js' `onread`): no allocation per read, and only a frame cut by a read boundary
// is copied.
const readBuffer = Buffer.allocUnsafe(1 << 16);

// A complete, masked client frame (clients must mask: RFC 6455 5.3). Only short payloads are
// sent ("3", "40/events,", a pong's or close's echo: control payloads are at most 125 bytes).
function clientFrame(opcode, payload) {
  const frame = Buffer.allocUnsafe(6 + payload.length);
  frame[0] = 0x80 | opcode; // FIN
  frame[1] = 0x80 | payload.length;
  randomFillSync(frame, 2, 4);
  for (let k = 0; k < payload.length; k++) frame[6 + k] = payload[k] ^ frame[2 + (k & 3)];
  return frame;
}
const textFrame = (text) => clientFrame(TEXT, Buffer.from(text));

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
    const key = randomBytes(16).toString("base64");
    const accept = createHash("sha1").update(key + ACCEPT_GUID).digest("base64");
    let isUpgraded = false;
    let pending = null; // bytes of a response head or frame that a read boundary cut (a copy)
    let fragments = null; // payloads of a fragmented text message so far
    let closeCode = 1006; // as `ws`: 1006 without a close frame, 1005 for one without a code
    const socket = net.connect({
      host: hostname,
      port: Number(port),
      localAddress: sourceAddress(i),
      noDelay: true,
      onread: { buffer: readBuffer, callback: (n) => onRead(readBuffer.subarray(0, n)) },
    });
    socket.isOpen = false; // report() counts the sockets still upgraded
    sockets[i] = socket;
    const timer = setTimeout(() => {
      settle("timeout");
      socket.destroy();
    }, config.handshake_timeout * 1000);
    socket.on("connect", () =>
      socket.write(
        "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n" +
          `Host: ${hostname}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n` +
          `Cookie: access_token_cookie=${config.tokens[i % config.tokens.length]}\r\n\r\n`,
      ),
    );
    socket.on("error", (error) => settle(error.code || error.message));
    socket.on("close", () => {
      clearTimeout(timer);
      socket.isOpen = false;
      settle(`closed ${closeCode}`);
      if (isJoined) {
        joined--;
        stats.disconnects[closeCode] = (stats.disconnects[closeCode] || 0) + 1;
      }
    });

    function onRead(chunk) {
      // `chunk` is the shared buffer: whatever is kept past this call must be copied.
      let data = chunk;
      if (pending) {
        data = Buffer.concat([pending, chunk]);
        pending = null;
      }
      const rest = isUpgraded ? data : handshake(data);
      if (rest && rest.length) frames(rest);
    }

    // The 101 answer: returns the bytes after its head (frames), or null.
    function handshake(data) {
      const end = data.indexOf(HEADER_END);
      if (end < 0) {
        pending = Buffer.from(data);
        return null;
      }
      const head = data.toString("latin1", 0, end);
      const status = Number(head.slice(9, 12)); // "HTTP/1.1 101 Switching Protocols"
      if (status !== 101) {
        settle(`http ${status}`);
        socket.destroy();
        return null;
      }
      const match = /\r\nsec-websocket-accept:\s*(\S+)/i.exec(head);
      if (!match || match[1] !== accept) {
        settle("invalid Sec-WebSocket-Accept");
        socket.destroy();
        return null;
      }
      clearTimeout(timer);
      isUpgraded = socket.isOpen = true;
      return data.subarray(end + HEADER_END.length);
    }

    // Every complete server frame in `data`; a cut one is kept for the next read.
    function frames(data) {
      let at = 0;
      while (data.length - at >= 2) {
        const opcode = data[at] & 0x0f;
        const fin = data[at] & 0x80;
        let length = data[at + 1] & 0x7f;
        let start = at + 2;
        if (data[at + 1] & 0x80) {
          // Servers never mask (RFC 6455 5.1): a protocol error, as `ws` would close with.
          closeCode = 1002;
          socket.destroy();
          return;
        }
        if (length === 126) {
          if (data.length < start + 2) break;
          length = data.readUInt16BE(start);
          start += 2;
        } else if (length === 127) {
          if (data.length < start + 8) break;
          length = data.readUInt32BE(start) * 2 ** 32 + data.readUInt32BE(start + 4);
          start += 8;
        }
        const end = start + length;
        if (data.length < end) break;
        frame(opcode, fin, data.subarray(start, end));
        at = end;
        if (socket.destroyed) return;
      }
      if (at < data.length) pending = Buffer.from(data.subarray(at));
    }

    function frame(opcode, fin, payload) {
      if (opcode === TEXT || opcode === CONTINUATION) {
        if (fin && !fragments) return message(payload);
        // Fragments are copied: the shared read buffer is overwritten by the next read.
        (fragments ??= []).push(Buffer.from(payload));
        if (fin) {
          const whole = Buffer.concat(fragments);
          fragments = null;
          message(whole);
        }
      } else if (opcode === PING_FRAME) {
        socket.write(clientFrame(PONG_FRAME, payload));
      } else if (opcode === CLOSE) {
        closeCode = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
        socket.isOpen = false;
        socket.end(clientFrame(CLOSE, payload.subarray(0, 2)));
      }
    }

    // One Engine.IO packet, as `ws` handed it over before.
    function message(data) {
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
          socket.destroy();
        }
      } else if (kind === PING) {
        socket.write(textFrame("3"));
      } else if (kind === OPEN) {
        socket.write(textFrame("40/events,"));
      }
    }
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
    if (ws && (config.kitsu ? ws.connected : ws.isOpen)) {
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
  for (const ws of sockets) if (ws) config.kitsu ? ws.disconnect() : ws.destroy();
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
