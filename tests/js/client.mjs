// Drives Kitsu's socket.io-client for the Python tests: one JSON object per line on stdout
// for what the client sees, one JSON command per line on stdin for what it should send.
// Configured as Kitsu's vue-websocket-next does: io(url + '/events') with default options,
// so it starts with HTTP long-polling and upgrades to WebSocket; the browser's cookie is
// given as a header because Node has no cookie jar. With "count", it runs that many
// sockets and tags every line with the socket's index "i"; with "summary", events are
// reported by name and payload field "i" only (for high-volume tests). The command
// {"cookie": "..."} replaces a socket's cookie for its next requests, as a browser's jar.
import { io } from "socket.io-client";
import readline from "node:readline";

const config = JSON.parse(process.argv[2]);
const out = (message) => process.stdout.write(JSON.stringify(message) + "\n");

const options = { reconnection: config.reconnection ?? false, forceNew: true };
if (config.cookie) options.extraHeaders = { Cookie: config.cookie };
if (config.authorization) {
  options.extraHeaders = { ...(options.extraHeaders || {}), Authorization: config.authorization };
}
// Other headers a browser or a proxy sets (Origin, Host, X-Forwarded-Host).
if (config.headers) options.extraHeaders = { ...(options.extraHeaders || {}), ...config.headers };
if (config.auth) options.auth = config.auth;
if (config.transports) options.transports = config.transports;

function open(i) {
  // Each socket its own headers, so that one tab's cookie can be replaced (see "cookie").
  const own = { ...options, extraHeaders: { ...(options.extraHeaders || {}) } };
  const socket = io(config.url + (config.namespace ?? "/events"), own);
  const tag = (message) => out(config.count ? { ...message, i } : message);
  socket.io.on("open", () => {
    tag({ type: "open", transport: socket.io.engine.transport.name });
    socket.io.engine.once("upgrade", (t) => tag({ type: "upgrade", transport: t.name }));
  });
  socket.on("connect", () =>
    tag({
      type: "connect",
      transport: socket.io.engine.transport.name,
      recovered: socket.recovered,
      pid: socket._pid, // connection state recovery's private id, for the tests that steal it
    }),
  );
  socket.on("connect_error", (error) => tag({ type: "connect_error", message: error.message }));
  socket.on("disconnect", (reason) => tag({ type: "disconnect", reason }));
  socket.io.on("reconnect", () => tag({ type: "reconnect" }));
  socket.onAny((event, ...args) => {
    // socket.io-client's own rule (connection state recovery): once the server gave a pid, a
    // last string argument is the event's offset, not application data. Reported apart, so
    // that args and raw are what Kitsu's handlers use.
    const offset = socket._pid && typeof args.at(-1) === "string" ? args.pop() : undefined;
    tag(
      config.summary
        ? { type: "event", event, index: args[0]?.i, offset }
        : { type: "event", event, args, raw: JSON.stringify(args), offset },
    );
  });
  return socket;
}

const sockets = Array.from({ length: config.count ?? 1 }, (_, i) => open(i));

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  const command = JSON.parse(line);
  const targets = command.i === undefined ? sockets : [sockets[command.i]];
  for (const socket of targets) {
    if (command.emit) {
      const ack = command.ack ? [(...reply) => out({ type: "ack", id: command.ack, reply })] : [];
      socket.emit(command.emit, ...command.args, ...ack);
    } else if (command.close) {
      socket.close();
    } else if (command.connect) {
      socket.connect();
    } else if (command.cookie !== undefined) {
      // A browser sends its cookie jar's current value with every request: the cookie
      // Kitsu renewed meanwhile reaches the server at the next handshake (reconnection).
      socket.io.opts.extraHeaders.Cookie = command.cookie;
    }
  }
  if (command.close) out({ type: "closed" });
});
process.stdin.on("end", () => {
  sockets.forEach((socket) => socket.close());
  process.exit(0);
});
