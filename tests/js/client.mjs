// Drives Kitsu's socket.io-client for the Python tests: one JSON object per line on stdout
// for what the client sees, one JSON command per line on stdin for what it should send.
// Configured as Kitsu's vue-websocket-next does: io(url + '/events') with default options,
// so it starts with HTTP long-polling and upgrades to WebSocket; the browser's cookie is
// given as a header because Node has no cookie jar.
import { io } from "socket.io-client";
import readline from "node:readline";

const config = JSON.parse(process.argv[2]);
const out = (message) => process.stdout.write(JSON.stringify(message) + "\n");

const options = { reconnection: config.reconnection ?? false };
if (config.cookie) options.extraHeaders = { Cookie: config.cookie };
if (config.authorization) {
  options.extraHeaders = { ...(options.extraHeaders || {}), Authorization: config.authorization };
}
if (config.auth) options.auth = config.auth;
if (config.transports) options.transports = config.transports;

const socket = io(config.url + (config.namespace ?? "/events"), options);

socket.io.on("open", () => {
  out({ type: "open", transport: socket.io.engine.transport.name });
  socket.io.engine.once("upgrade", (transport) => out({ type: "upgrade", transport: transport.name }));
});
socket.on("connect", () => out({ type: "connect", transport: socket.io.engine.transport.name }));
socket.on("connect_error", (error) => out({ type: "connect_error", message: error.message }));
socket.on("disconnect", (reason) => out({ type: "disconnect", reason }));
socket.io.on("reconnect", () => out({ type: "reconnect" }));
socket.onAny((event, ...args) => out({ type: "event", event, args, raw: JSON.stringify(args) }));

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  const command = JSON.parse(line);
  if (command.emit) {
    socket.emit(command.emit, ...command.args, ...(command.ack ? [(...reply) => out({ type: "ack", id: command.ack, reply })] : []));
  } else if (command.close) {
    socket.close();
    out({ type: "closed" });
  } else if (command.connect) {
    socket.connect();
  }
});
process.stdin.on("end", () => { socket.close(); process.exit(0); });
