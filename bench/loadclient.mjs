// Benchmark load client: many raw Engine.IO 4 / Socket.IO 5 WebSockets on /events in one
// Node.js process, cheap enough per message that the server, not this client, is measured.
//
// The first stdin line is the configuration (JSON; too big for argv with 10k tokens): url
// (ws://host:port), tokens (access_token_cookie values, socket i uses tokens[i % n]), count,
// concurrency (handshakes in flight), connect_timeout (s, whole connect phase),
// handshake_timeout (s, per socket), kitsu (true: each socket is a socket.io-client, as in
// Kitsu: polling handshake then WebSocket upgrade, its own reconnection), kitsu_client
// ("socketio": socket.io-client itself; "wire": the same bytes on net, far cheaper), source_addresses
// (N > 0: socket i binds 127.x.y.z number i % N, past one address's ephemeral ports).
// max_connections (wire tabs: connections open at once, under the open-files limit).
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
const DISCONNECT = Buffer.from("41/events,");
const PROBE_ANSWER = Buffer.from("3probe");
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

// An RFC 6455 client on net, shared by the raw sockets and the wire tabs: writes `head` (the
// upgrade request carrying `key`), checks the 101, then hands every complete text message
// to onMessage (after onOpen; a view of the shared read buffer: copy what is kept). onError(reason) for a
// refused or failed handshake or a socket error; onClose(code) once the connection is gone.
function webSocket({ localAddress, head, key, timeout, onOpen, onMessage, onError, onClose }) {
  const accept = createHash("sha1").update(key + ACCEPT_GUID).digest("base64");
  let pending = null; // bytes of a response head or frame that a read boundary cut (a copy)
  let fragments = null; // payloads of a fragmented text message so far
  let closeCode = 1006; // as `ws`: 1006 without a close frame, 1005 for one without a code
  const socket = net.connect({
    host: hostname,
    port: Number(port),
    localAddress,
    noDelay: true,
    onread: { buffer: readBuffer, callback: (n) => onRead(readBuffer.subarray(0, n)) },
  });
  socket.isOpen = false; // the 101 came and no close frame since
  let isUpgraded = false;
  const timer = timeout ? setTimeout(() => fail("timeout"), timeout * 1000) : null;
  const fail = (reason) => {
    onError(reason);
    socket.destroy();
  };
  socket.on("connect", () => socket.write(head));
  socket.on("error", (error) => onError(error.code || error.message));
  socket.on("close", () => {
    clearTimeout(timer);
    socket.isOpen = false;
    onClose(closeCode);
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
      fail(`http ${status}`);
      return null;
    }
    const match = /\r\nsec-websocket-accept:\s*(\S+)/i.exec(head);
    if (!match || match[1] !== accept) {
      fail("invalid Sec-WebSocket-Accept");
      return null;
    }
    // Frames are read uncompressed: a server taking the wire tabs' permessage-deflate offer
    // would be measured wrongly (neither server of the benchmark takes it).
    if (/\r\nsec-websocket-extensions:/i.test(head)) {
      fail("unsupported Sec-WebSocket-Extensions");
      return null;
    }
    clearTimeout(timer);
    isUpgraded = socket.isOpen = true;
    onOpen?.();
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
      if (fin && !fragments) return onMessage(payload);
      // Fragments are copied: the shared read buffer is overwritten by the next read.
      (fragments ??= []).push(Buffer.from(payload));
      if (fin) {
        const whole = Buffer.concat(fragments);
        fragments = null;
        onMessage(whole);
      }
    } else if (opcode === PING_FRAME) {
      socket.write(clientFrame(PONG_FRAME, payload));
    } else if (opcode === CLOSE) {
      closeCode = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
      socket.isOpen = false;
      socket.end(clientFrame(CLOSE, payload.subarray(0, 2)));
    }
  }
  return socket;
}

// One raw socket: resolves with null once joined to /events, or with the reason it failed.
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
    const socket = webSocket({
      localAddress: sourceAddress(i),
      head:
        "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n" +
        `Host: ${hostname}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n` +
        `Cookie: access_token_cookie=${config.tokens[i % config.tokens.length]}\r\n\r\n`,
      key,
      timeout: config.handshake_timeout,
      onMessage: message,
      onError: settle,
      onClose: (closeCode) => {
        settle(`closed ${closeCode}`);
        if (isJoined) {
          joined--;
          stats.disconnects[closeCode] = (stats.disconnects[closeCode] || 0) + 1;
        }
      },
    });
    sockets[i] = socket; // report() counts the sockets still open

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

// The Kitsu tab again, written straight on net ("wire"): the same requests in the same
// order as socket.io-client 4.8 / engine.io-client 6.6 under Node.js (xmlhttprequest-ssl for
// polling, `ws` for the upgrade), without their cost per tab, which made the load client, not
// the server, the bound of a storm. Each polling request is its own TCP connection with
// `Connection: close` and no local address (xmlhttprequest-ssl ignores it; the WebSocket
// takes it). Once the handshake's open packet is in: the POST of "40/events,", the WebSocket
// upgrade and the next GET poll start at once, in that order; "2probe", and on "3probe" the
// polling pauses (waits for the poll and POST in flight, which the server answers with a noop
// "6") before "5" goes on the WebSocket, and packets queued meanwhile follow it there.
const HOST = `${hostname}:${port}`;
const RECORD_SEPARATOR = 0x1e; // between the packets of a polling payload (Engine.IO 4)
const CONNECT_TIMEOUT = 20_000; // the Manager's `timeout`: the engine must be open by then
// The Manager's reconnection backoff (reconnectionDelay, reconnectionDelayMax,
// randomizationFactor; factor 2), as its backo2 computes it.
const RECONNECTION_DELAY = 1000;
const RECONNECTION_DELAY_MAX = 5000;
const RANDOMIZATION_FACTOR = 0.5;
const WS_EXTENSIONS = "permessage-deflate; client_max_window_bits"; // `ws`'s default offer

function backoffDelay(attempts) {
  let ms = RECONNECTION_DELAY * 2 ** attempts;
  const rand = Math.random();
  const deviation = Math.floor(rand * RANDOMIZATION_FACTOR * ms);
  ms = (Math.floor(rand * 10) & 1) === 0 ? ms - deviation : ms + deviation;
  return Math.min(ms, RECONNECTION_DELAY_MAX) | 0;
}

// engine.io-client's cache-busting `t` parameter.
const randomString = () => Date.now().toString(36).substring(3) + Math.random().toString(36).substring(2, 5);

// An HTTP response in `data` if complete: { status, body } (body a Buffer), else null.
// `ended`: the server closed, which ends a body without length or chunks.
function httpResponse(data, ended) {
  const end = data?.indexOf(HEADER_END) ?? -1;
  if (end < 0) return null;
  const head = data.toString("latin1", 0, end);
  const status = Number(head.slice(9, 12));
  let at = end + HEADER_END.length;
  if (/\r\ntransfer-encoding:[^\r]*chunked/i.test(head)) {
    const parts = [];
    for (;;) {
      const eol = data.indexOf("\r\n", at);
      if (eol < 0) return null;
      const size = parseInt(data.toString("latin1", at, eol), 16);
      if (size === 0) return data.indexOf(HEADER_END, eol) < 0 ? null : { status, body: Buffer.concat(parts) };
      if (!(size > 0) || data.length < eol + 2 + size + 2) return null;
      parts.push(data.subarray(eol + 2, eol + 2 + size));
      at = eol + 2 + size + 2;
    }
  }
  const length = /\r\ncontent-length:\s*(\d+)/i.exec(head);
  if (length) {
    const size = Number(length[1]);
    return data.length - at < size ? null : { status, body: data.subarray(at, at + size) };
  }
  return ended ? { status, body: data.subarray(at) } : null;
}

// One process holds every wire tab's connections under one open-files limit, which 10,000
// browsers would not share: past config.max_connections a new connection waits for one to
// close, rather than failing with EMFILE as if the server had refused it.
const maxConnections = config.max_connections || Infinity;
let connections = 0;
const waitingConnections = [];

// Runs open() once the budget allows; open() returns the connection's socket, or null when
// it is no longer wanted.
function budgeted(open) {
  if (connections >= maxConnections) return void waitingConnections.push(open);
  connections++;
  const release = () => {
    connections--;
    const next = waitingConnections.shift();
    if (next) budgeted(next);
  };
  const socket = open();
  if (socket) socket.once("close", release);
  else release();
}

// One polling request on a connection of its own, from `localAddress` (the kernel's choice if
// undefined): done(status, body) once, status 0 when the connection failed before a whole
// response (xmlhttprequest-ssl's status then). The request's cancel function stays in
// `requests` until it is answered.
function pollingRequest(path, cookie, localAddress, body, requests, done) {
  let socket = null;
  let finished = false;
  const cancel = () => {
    finished = true;
    socket?.destroy();
  };
  requests.add(cancel);
  const finish = (response) => {
    if (finished) return;
    finished = true;
    requests.delete(cancel);
    socket.end(); // Connection: close; Node.js' http client ends it once the response is in
    done(response ? response.status : 0, response ? response.body : null);
  };
  const common = `User-Agent: node-XMLHttpRequest\r\nAccept: */*\r\nCookie: ${cookie}\r\n`;
  const head =
    body === null
      ? `GET ${path} HTTP/1.1\r\n${common}Host: ${HOST}\r\nConnection: close\r\n\r\n`
      : `POST ${path} HTTP/1.1\r\n${common}Content-type: text/plain;charset=UTF-8\r\n` +
        `Host: ${HOST}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`;
  budgeted(() => {
    if (finished) return null;
    socket = net.connect({ host: hostname, port: Number(port), noDelay: true, localAddress });
    let received = null;
    socket.on("connect", () => socket.write(head));
    socket.on("data", (chunk) => {
      received = received ? Buffer.concat([received, chunk]) : chunk;
      const response = httpResponse(received, false);
      if (response) finish(response);
    });
    socket.on("end", () => finish(httpResponse(received, true)));
    socket.on("error", () => finish(null));
    socket.on("close", () => finish(null));
    return socket;
  });
}

// One Kitsu tab on the wire, with openKitsu's contract (resolves with null once joined; tab
// objects answer `connected` and `disconnect()` as a socket.io-client socket does).
function openKitsuWire(i, retries) {
  return new Promise((resolve) => {
    const cookie = `access_token_cookie=${config.tokens[i % config.tokens.length]}`;
    const tab = { connected: false, disconnect };
    sockets[i] = tab;
    let attempts = 0; // the backoff's, reset once an engine opens (as the Manager's)
    let stopped = false; // no reconnection: refused by the namespace, or disconnected here
    let reconnectTimer = null;
    let engine = null; // the current attempt's close(), while it lives
    let isUpgraded = false;
    const retried = (reason) => (retries[reason] = (retries[reason] || 0) + 1);
    attempt();

    function reconnect() {
      if (!stopped) reconnectTimer = setTimeout(attempt, backoffDelay(attempts++));
    }

    function disconnect() {
      stopped = true;
      clearTimeout(reconnectTimer);
      const wasJoined = tab.connected;
      if (wasJoined) lost("io client disconnect");
      engine?.(true, wasJoined);
    }

    // A joined tab lost its session (`reason` for the disconnects), or an attempt failed
    // before joining (`retry`, the reason openKitsu's connect_error gives).
    function lost(reason, retry) {
      if (tab.connected) {
        tab.connected = false;
        joined--;
        stats.disconnects[reason] = (stats.disconnects[reason] || 0) + 1;
      } else if (retry) {
        retried(retry);
      }
    }

    // One engine: polling handshake, namespace CONNECT, upgrade; then WebSocket only.
    function attempt() {
      const requests = new Set(); // cancel functions of the polling requests in flight
      let sid = null;
      let state = "opening"; // the polling transport: opening, open, pausing, paused, gone
      let polling = false; // a GET in flight
      let writing = false; // a POST in flight
      let queue = []; // packets to send (the engine's write buffer)
      let probe = null; // the WebSocket being upgraded to, then the transport
      let switched = false; // the WebSocket is the transport
      let pingTimer = null;
      const openTimer = setTimeout(() => fail("timeout", "timeout"), CONNECT_TIMEOUT);
      const path = () => `/socket.io/?EIO=4&transport=polling&t=${randomString()}${sid ? `&sid=${sid}` : ""}`;
      engine = close;
      get();

      // The engine is gone: `reason` for a joined tab's disconnect; `retry`, the message of
      // the connect_error socket.io-client emits for it before joining (openKitsu's labels:
      // "http <status>" for a failed GET, "xhr post error", "websocket error", "timeout";
      // none when the engine closed without an error); then reconnect unless stopped.
      function fail(reason, retry) {
        if (state === "gone") return;
        lost(reason, retry);
        close(false);
        reconnect();
      }

      // Ends this engine; `polite`: as socket.disconnect() does, say so on the transport
      // (after the namespace's DISCONNECT when `wasJoined`).
      function close(polite, wasJoined) {
        if (state === "gone") return;
        const wasOpen = state !== "opening";
        state = "gone";
        engine = null;
        clearTimeout(openTimer);
        clearTimeout(pingTimer);
        for (const cancel of requests) cancel();
        if (probe && !probe.destroyed) {
          if (polite && wasJoined && switched) probe.write(textFrame("41/events,"));
          if (polite && probe.isOpen) probe.end(clientFrame(CLOSE, Buffer.alloc(0)));
          else probe.destroy();
        }
        if (polite && wasOpen && !switched) {
          pollingRequest(path(), cookie, sourceAddress(i), wasJoined ? "41/events,\x1e1" : "1", new Set(), () => {});
        }
      }

      function get() {
        polling = true;
        pollingRequest(path(), cookie, sourceAddress(i), null, requests, (status, body) => {
          polling = false;
          if (state === "gone") return;
          if (status !== 200) return fail("transport error", `http ${status}`);
          payload(body);
          if (state === "open") get();
          else if (state === "pausing") paused();
        });
      }

      function flush() {
        if (switched) {
          for (const packet of queue) probe.write(textFrame(packet));
          queue = [];
        } else if (state === "open" && !writing && queue.length) {
          writing = true;
          const body = queue.join("\x1e");
          queue = [];
          pollingRequest(path(), cookie, sourceAddress(i), body, requests, (status) => {
            writing = false;
            if (state === "gone") return;
            if (status !== 200) return fail("transport error", "xhr post error");
            if (state === "pausing") paused();
            else flush();
          });
        }
      }

      function send(packet) {
        queue.push(packet);
        flush();
      }

      // The packets of a polling response, in order.
      function payload(body) {
        for (let at = 0; at <= body.length && state !== "gone"; ) {
          let end = body.indexOf(RECORD_SEPARATOR, at);
          if (end < 0) end = body.length;
          if (end > at) packet(body.subarray(at, end), false);
          at = end + 1;
        }
      }

      function packet(data, onWebSocket) {
        const kind = data[0];
        if (kind === MESSAGE) message(data);
        else if (kind === PING) {
          pingTimer?.refresh();
          send("3");
        } else if (kind === OPEN && state === "opening" && !onWebSocket) opened(JSON.parse(data.toString("utf8", 1)));
        else if (kind === 0x31 && !onWebSocket) fail("transport close"); // "1": closed by the server
      }

      function opened(handshake) {
        sid = handshake.sid;
        state = "open";
        attempts = 0;
        clearTimeout(openTimer);
        // engine.io-client's ping timeout: no ping within interval + timeout ends the engine.
        pingTimer = setTimeout(() => fail("ping timeout"), handshake.pingInterval + handshake.pingTimeout);
        send("40/events,");
        if (handshake.upgrades.includes("websocket")) upgrade();
      }

      function message(data) {
        if (tab.connected) {
          if (data.indexOf(EVENT) === 0) {
            perSocket[i]++;
            onEvent(data);
          } else if (data.indexOf(DISCONNECT) === 0) {
            // The server's disconnect: socket.io-client does not reconnect.
            stopped = true;
            lost("io server disconnect");
            close(false);
          }
        } else if (data.indexOf(CONNECT_ACK) === 0) {
          tab.connected = true;
          joined++;
          resolve(null);
        } else if (data.indexOf(CONNECT_ERROR) === 0) {
          // socket.io-client gives up on a namespace's refusal: no reconnection (the tab then
          // waits for the deadline, as openKitsu's does).
          retried(JSON.parse(data.toString("utf8", CONNECT_ERROR.length)).message);
          stopped = true;
          close(true);
        }
      }

      function upgrade() {
        const key = randomBytes(16).toString("base64");
        budgeted(() => {
          if (state === "gone") return null;
          probe = webSocket({
            localAddress: sourceAddress(i),
            head:
              `GET /socket.io/?EIO=4&transport=websocket&sid=${sid} HTTP/1.1\r\nCookie: ${cookie}\r\n` +
              `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${key}\r\nConnection: Upgrade\r\n` +
              `Upgrade: websocket\r\nSec-WebSocket-Extensions: ${WS_EXTENSIONS}\r\nHost: ${HOST}\r\n\r\n`,
            key,
            onOpen: () => probe.write(textFrame("2probe")),
            onMessage: (data) => {
              if (switched) packet(data, true);
              else if (data.equals(PROBE_ANSWER)) pause();
              else probeFailed();
            },
            onError: () => (switched ? fail("transport error", "websocket error") : probeFailed()),
            onClose: () => (switched ? fail("transport close") : probeFailed()),
          });
          return probe;
        });
      }

      // The upgrade failed: the engine stays on polling.
      function probeFailed() {
        if (state === "gone" || !probe) return;
        probe.destroy();
        probe = null;
        if (state === "pausing" || state === "paused") {
          state = "open";
          if (!polling) get();
          flush();
        }
      }

      // "3probe": the polling transport pauses once its GET and POST in flight are answered.
      function pause() {
        state = "pausing";
        paused();
      }

      function paused() {
        if (state !== "pausing" || polling || writing) return;
        state = "paused";
        probe.write(textFrame("5"));
        switched = true;
        if (!isUpgraded) upgraded++;
        isUpgraded = true;
        flush();
      }
    }
  });
}

// Answers a client should retry after a pause: the server's admission control (HTTP 503)
// and refusals that say so, as Kitsu's socket.io-client would reconnect.
const retryable = (reason) => reason === "http 503" || /try again later/.test(reason ?? "");

const openTab = config.kitsu_client === "wire" ? openKitsuWire : openKitsu;

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
        const reason = await Promise.race([openTab(i, retries), late]);
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
