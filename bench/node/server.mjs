// The Node.js contender of the benchmark: a socket.io 4.8 server doing what zou-events does
// on the benchmark's path, written the way a Node.js developer would. It is not a product:
// one process, /events only, the token read from the access_token_cookie cookie and checked
// locally (HS256, type "access", exp, revocation of its jti in Redis DB 0), and python-socketio's
// "emit" messages from Redis channel flask-socketio sent to the namespace or a room.
//
// Environment: PORT, SECRET_KEY, REDIS_URL (default redis://127.0.0.1:6379).
import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer } from "node:http";
import { createClient } from "redis";
import { Server } from "socket.io";

const secret = process.env.SECRET_KEY;
const redisUrl = process.env.REDIS_URL || "redis://127.0.0.1:6379";
if (!secret) throw new Error("SECRET_KEY is required");

function cookieToken(header = "") {
  for (const part of header.split(";")) {
    const [name, ...value] = part.trim().split("=");
    if (name === "access_token_cookie") return value.join("=");
  }
  return null;
}

function verify(token) {
  const [header, payload, signature] = token.split(".");
  if (!signature) return null;
  const expected = createHmac("sha256", secret).update(`${header}.${payload}`).digest();
  const given = Buffer.from(signature, "base64url");
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return null;
  const claims = JSON.parse(Buffer.from(payload, "base64url").toString());
  const now = Date.now() / 1000;
  if (claims.type !== "access" || !(claims.exp > now) || (claims.nbf && claims.nbf > now)) {
    return null;
  }
  return claims;
}

const revoked = createClient({ url: `${redisUrl}/0` });
const subscriber = createClient({ url: `${redisUrl}/2` });
await Promise.all([revoked.connect(), subscriber.connect()]);

const httpServer = createServer((request, response) => {
  response.writeHead(200, { "Content-Type": "application/json" });
  response.end('{"name":"Zou Event stream"}');
});
const io = new Server(httpServer, {
  pingInterval: 25000,
  pingTimeout: 20000,
  maxHttpBufferSize: 1e6,
});
const events = io.of("/events");
events.use(async (socket, next) => {
  try {
    const token = cookieToken(socket.handshake.headers.cookie);
    const claims = token && verify(token);
    if (!claims || !claims.jti || (await revoked.get(claims.jti)) === "true") {
      return next(new Error("Signature verification failed"));
    }
    next();
  } catch {
    next(new Error("Signature verification failed"));
  }
});

await subscriber.subscribe("flask-socketio", (raw) => {
  let message;
  try {
    message = JSON.parse(raw);
  } catch {
    return;
  }
  if (message.method !== "emit" || message.namespace !== "/events") return;
  const target = message.room ? events.to(message.room) : events;
  target.emit(message.event, ...message.data);
});

// BACKLOG: the accept queue's length; unset, Node.js's default (511), as a user would run it.
httpServer.listen(Number(process.env.PORT), "127.0.0.1", Number(process.env.BACKLOG) || undefined);
