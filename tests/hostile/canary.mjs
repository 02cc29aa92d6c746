// The canary of the hostile-client suite: Kitsu's socket.io-client (io(url + "/events"),
// polling then the WebSocket upgrade) in its own Node process, so that the attacks run by
// the Python test process cannot delay its reading. Each event named config.event carries
// {i, t}: i its sequence number, t the publisher's wall clock (seconds) just before the
// publish; the canary notes Date.now() - t on arrival, so the latency measured is
// publish -> Redis -> zou-events -> WebSocket -> client, all on this machine's clock.
// Commands on stdin (one JSON object per line): {"cmd": "stats"} prints one line with the
// deliveries ({"i": [...], "ms": [...]}), disconnects and connect errors since the last
// reset, and the socket's id; {"cmd": "reset"} clears them; {"cmd": "close"} exits.
import { createRequire } from "node:module";
import readline from "node:readline";

const require = createRequire(new URL("../js/package.json", import.meta.url));
const { io } = require("socket.io-client");

const config = JSON.parse(process.argv[2]);
const out = (message) => process.stdout.write(JSON.stringify(message) + "\n");

let indices = [];
let latencies = [];
const disconnects = [];
const errors = [];
let connected = false;

const socket = io(config.url + "/events", {
  auth: { token: config.token },
  forceNew: true,
  reconnection: true,
});
socket.on("connect", () => {
  connected = true;
  out({ type: "connect", sid: socket.id, transport: socket.io.engine.transport.name });
});
socket.on("disconnect", (reason) => {
  connected = false;
  disconnects.push(reason);
});
socket.on("connect_error", (error) =>
  errors.push(`${error.message} ${error.description?.message ?? error.description ?? ""} ${error.context?.status ?? ""}`),
);
socket.on(config.event, (payload) => {
  latencies.push(Date.now() - payload.t * 1000);
  indices.push(payload.i);
});
socket.io.on("open", () => {
  socket.io.engine.once("upgrade", (t) => out({ type: "upgrade", transport: t.name }));
});

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  const { cmd } = JSON.parse(line);
  if (cmd === "stats") {
    out({
      type: "stats",
      i: indices,
      ms: latencies,
      sid: socket.id ?? null,
      connected,
      transport: socket.io.engine?.transport?.name ?? null,
      disconnects,
      errors,
    });
  } else if (cmd === "reset") {
    indices = [];
    latencies = [];
    disconnects.length = 0;
    errors.length = 0;
    out({ type: "reset" });
  } else if (cmd === "close") {
    socket.close();
    process.exit(0);
  }
});
process.stdin.on("end", () => process.exit(0));
