"""Lua scripts of the Redis room store: each operation runs atomically inside Redis.

Keys are built inside the scripts (a disconnect only learns its rooms from Redis), so the
store needs a single Redis, not Redis Cluster. Commands are limited to Redis 5.0. Empty
LISTs, SETs and HASHes vanish by themselves; the helpers delete the rest with the room.
The state is a HASH of JSON values written and read whole by Python: Lua's cjson would lose
the key order of nested objects, so the scripts never decode it.
"""

from __future__ import annotations

from zou_events.rooms.keys import LUA_KEYS

_HELPERS = """
-- writes after TIME (the opening time of a room): Redis 5 needs effects replication for it
redis.replicate_commands()

-- sid (held by instance) takes part in room
local function link(room, sid, instance)
  if redis.call('SADD', ROOMS, room) == 1 then
    redis.call('SET', room_key(room, 'opened'), redis.call('TIME')[1])
  end
  redis.call('HSET', socket_key(sid), room, instance)
  redis.call('SADD', instance_key(instance, 'sockets'), sid)
  redis.call('SADD', INSTANCES, instance)
end

-- forget the link once sid neither opened nor joined room
local function unlink_if_unused(room, sid)
  if redis.call('SISMEMBER', room_key(room, 'openers'), sid) == 1
      or redis.call('HEXISTS', room_key(room, 'sockets'), sid) == 1 then
    return
  end
  local skey = socket_key(sid)
  local instance = redis.call('HGET', skey, room)
  redis.call('HDEL', skey, room)
  if instance and redis.call('EXISTS', skey) == 0 then
    redis.call('SREM', instance_key(instance, 'sockets'), sid)
  end
end

local function drop_if_unused(room)
  if redis.call('EXISTS', room_key(room, 'people'), room_key(room, 'openers')) == 0 then
    redis.call('DEL', room_key(room, 'state'), room_key(room, 'opened'))
    redis.call('SREM', ROOMS, room)
  end
end

local function has_value(hash, value)
  for _, other in ipairs(redis.call('HVALS', hash)) do
    if other == value then return true end
  end
  return false
end

-- removes the presence of sid; true when people changed
local function remove_presence(room, sid)
  local sockets = room_key(room, 'sockets')
  local person = redis.call('HGET', sockets, sid)
  if not person then return false end
  redis.call('HDEL', sockets, sid)
  if has_value(sockets, person) then return false end
  local people = room_key(room, 'people')
  redis.call('LREM', people, 0, person)
  if redis.call('LLEN', people) == 0 then
    redis.call('DEL', room_key(room, 'state'))  -- Zou deletes the state with the last person
  end
  return true
end

-- forgets sid in every room; adds the rooms whose people changed to changed
local function forget_socket(sid, changed)
  local skey = socket_key(sid)
  local links = redis.call('HGETALL', skey)
  for i = 1, #links, 2 do
    local room, instance = links[i], links[i + 1]
    redis.call('SREM', room_key(room, 'openers'), sid)
    if remove_presence(room, sid) then changed[room] = true end
    drop_if_unused(room)
    redis.call('SREM', instance_key(instance, 'sockets'), sid)
  end
  redis.call('DEL', skey)
end

local function release(instance, changed)
  local sockets = instance_key(instance, 'sockets')
  for _, sid in ipairs(redis.call('SMEMBERS', sockets)) do
    forget_socket(sid, changed)
  end
  redis.call('DEL', sockets)
  redis.call('SREM', INSTANCES, instance)
end

local function people_of(room)
  return redis.call('LRANGE', room_key(room, 'people'), 0, -1)
end

local function report(changed)
  local out = {}
  for room in pairs(changed) do
    out[#out + 1] = {room, people_of(room)}
  end
  return out
end
"""

# ARGV: prefix, then the operation's arguments; field/value pairs always come last.
_BODIES = {
    "open": """
local room, sid, instance = ARGV[2], ARGV[3], ARGV[4]
redis.call('SADD', room_key(room, 'openers'), sid)
link(room, sid, instance)
return people_of(room)
""",
    "close": """
local room, sid = ARGV[2], ARGV[3]
redis.call('SREM', room_key(room, 'openers'), sid)
unlink_if_unused(room, sid)
drop_if_unused(room)
""",
    "join": """
local room, sid, instance, person = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local people, sockets, state = room_key(room, 'people'), room_key(room, 'sockets'),
  room_key(room, 'state')
if redis.call('LLEN', people) == 0 then
  redis.call('HSET', state, unpack(ARGV, 6))  -- the first joiner seeds the state
end
if not has_value(sockets, person) then redis.call('RPUSH', people, person) end
redis.call('HSET', sockets, sid, person)
link(room, sid, instance)
return {people_of(room), redis.call('HGETALL', state)}
""",
    "leave": """
local room, sid = ARGV[2], ARGV[3]
remove_presence(room, sid)
unlink_if_unused(room, sid)
drop_if_unused(room)
return people_of(room)
""",
    "update": """
local room = ARGV[2]
if redis.call('SISMEMBER', ROOMS, room) == 0 then return false end
local state = room_key(room, 'state')
redis.call('HSET', state, unpack(ARGV, 3))
return {people_of(room), redis.call('HGETALL', state)}
""",
    "disconnect": """
local changed = {}
forget_socket(ARGV[2], changed)
return report(changed)
""",
    "release": """
local changed = {}
release(ARGV[2], changed)
return report(changed)
""",
    "reap": """
local changed = {}
for _, instance in ipairs(redis.call('SMEMBERS', INSTANCES)) do
  if redis.call('EXISTS', instance_key(instance, 'alive')) == 0 then
    release(instance, changed)
  end
end
return report(changed)
""",
    "rooms": """
local out = {}
for _, room in ipairs(redis.call('SMEMBERS', ROOMS)) do
  out[#out + 1] = {
    room,
    redis.call('LLEN', room_key(room, 'people')),
    redis.call('HLEN', room_key(room, 'sockets')),
    redis.call('SCARD', room_key(room, 'openers')),
    redis.call('GET', room_key(room, 'opened')) or '',
  }
end
return out
""",
}

SCRIPTS: dict[str, str] = {name: LUA_KEYS + _HELPERS + body for name, body in _BODIES.items()}
