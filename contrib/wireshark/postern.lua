-- Wireshark dissector for the postern protocol, version 1 (PROTOCOL.md).
--
-- Load it for one run:   tshark -X lua_script:contrib/wireshark/postern.lua -r capture.pcap
--                        wireshark -X lua_script:contrib/wireshark/postern.lua
-- or for good: copy it into your personal Lua plugins folder (Help > About > Folders).
--
-- Decodes the preamble, every frame type of §3.2 with its fields, MessagePack bodies
-- (REGISTER, REGISTERED, DRAIN, CHALLENGE, LOOKUP*, LINK_*) as fields, flags by name, and frames split
-- across or packed into TCP segments. Runs on TCP port 7447 and, on other ports, on any TCP
-- stream that starts with the postern magic (heuristic). Filter fields: `postern.*`.
-- No build step, no dependencies besides Wireshark's Lua (5.2+).

local postern = Proto("postern", "postern protocol")

-- As hex: a TvbRange's string() maps the non-ASCII 0x89 to U+FFFD, so compare bytes.
local MAGIC_HEX = "89505354"  .. "4e0d0a"
local MAX_TOTAL = 64 * 1024 * 1024 + 4 -- largest maxFrame a router may announce (§4.2)

local TYPES = {
  [0x01] = "REGISTER", [0x02] = "REGISTERED", [0x03] = "ERROR", [0x04] = "CLOSE",
  [0x05] = "PING", [0x06] = "PONG", [0x07] = "DRAIN", [0x08] = "CHALLENGE",
  [0x10] = "SEND", [0x11] = "DELIVER", [0x12] = "LOOKUP", [0x13] = "LOOKUP_RESULT",
  [0x20] = "LINK_HELLO", [0x21] = "LINK_CHALLENGE", [0x22] = "LINK_AUTH", [0x23] = "LINK_READY",
  [0x24] = "SOURCE", [0x25] = "ROUTE_ERROR",
}

local CODES = {
  [0] = "NORMAL", [1] = "UNKNOWN_DESTINATION", [2] = "NOT_REGISTERED", [3] = "ALREADY_REGISTERED",
  [4] = "UNSUPPORTED_FLAGS", [5] = "DESTINATION_SLOW", [6] = "MESSAGE_TOO_LARGE", [7] = "NO_KEY",
  [8] = "NOT_DELIVERED", [16] = "RATE_LIMITED", [17] = "DRAINING", [18] = "UNREACHABLE_ROUTER",
  [20] = "HOP_LIMIT", [64] = "BAD_MAGIC", [65] = "UNSUPPORTED_VERSION", [66] = "MALFORMED",
  [67] = "FRAME_TOO_LARGE", [68] = "UNKNOWN_FRAME", [69] = "KEEPALIVE_TIMEOUT", [70] = "SLOW_CONSUMER",
  [71] = "HANDSHAKE_TIMEOUT", [72] = "GOING_AWAY", [73] = "INTERNAL", [74] = "TOO_MANY_CONNECTIONS",
  [75] = "LINK_AUTH_FAILED", [76] = "DUPLICATE_ROUTER_ID", [77] = "ADMISSION_DENIED",
  [78] = "FRAME_TOO_SLOW", [79] = "OVERLOADED",
}

-- MessagePack map keys the protocol defines; each becomes a field postern.body.<key>.
local BODY_KEYS = {
  "id", "router", "maxFrame", "keepalive", "timeout", "anonymous", "key", "resume", "resumeGrace",
  "resumed", "token", "after", "grace", "alternates", "ref", "from", "to", "nonce", "proof",
}

local f = postern.fields
f.magic = ProtoField.bytes("postern.magic", "Magic")
f.version = ProtoField.uint8("postern.version", "Version")
f.length = ProtoField.uint32("postern.length", "Length")
f.type = ProtoField.uint8("postern.type", "Type", base.HEX, TYPES)
f.type_name = ProtoField.string("postern.type_name", "Type name")
f.flags = ProtoField.uint8("postern.flags", "Flags", base.HEX)
f.flag_anonymous = ProtoField.bool("postern.flags.anonymous", "ANONYMOUS", 8, nil, 0x01)
f.flag_sticky = ProtoField.bool("postern.flags.sticky", "STICKY", 8, nil, 0x02)
f.flag_sealed = ProtoField.bool("postern.flags.sealed", "SEALED", 8, nil, 0x04)
f.flag_names = ProtoField.string("postern.flags.names", "Flag names")
f.to = ProtoField.bytes("postern.to", "Destination ID")
f.from = ProtoField.bytes("postern.from", "Sender ID")
f.seq = ProtoField.uint32("postern.seq", "Seq")
f.payload = ProtoField.bytes("postern.payload", "Payload")
f.payload_len = ProtoField.uint32("postern.payload_len", "Payload length")
f.code = ProtoField.uint16("postern.code", "Code", base.DEC, CODES)
f.code_name = ProtoField.string("postern.code_name", "Code name")
f.error_id = ProtoField.bytes("postern.error.id", "ID")
f.text = ProtoField.string("postern.text", "Text")
f.ping = ProtoField.bytes("postern.ping_payload", "PING/PONG payload")
f.hops = ProtoField.uint8("postern.hops", "Hops")
f.body = ProtoField.bytes("postern.body", "MessagePack body")
f.mp_key = ProtoField.string("postern.mp.key", "Key")
f.mp_value = ProtoField.string("postern.mp.value", "Value")
f.http = ProtoField.string("postern.not_postern", "Not postern (bad magic / HTTP answer)")
local body_fields = {}
for _, k in ipairs(BODY_KEYS) do
  body_fields[k] = ProtoField.string("postern.body." .. k, k)
  f["body_" .. k] = body_fields[k]
end

local ef_malformed = ProtoExpert.new("postern.malformed", "Malformed postern data", expert.group.MALFORMED, expert.severity.ERROR)
postern.experts = { ef_malformed }

-- ---- a small MessagePack reader ----------------------------------------------------------
-- Returns the value rendered as text and the offset after it, or nil on bad data.

local function hex(tvb, off, n)
  if n == 0 then return "" end
  return tostring(tvb:range(off, n):bytes()):lower()
end

local read_value

local function read_seq(tvb, off, n, depth, is_map)
  local parts = {}
  for _ = 1, n do
    local k, v
    k, off = read_value(tvb, off, depth + 1)
    if k == nil then return nil end
    if is_map then
      v, off = read_value(tvb, off, depth + 1)
      if v == nil then return nil end
      parts[#parts + 1] = k .. ": " .. v
    else
      parts[#parts + 1] = k
    end
  end
  if is_map then return "{" .. table.concat(parts, ", ") .. "}", off end
  return "[" .. table.concat(parts, ", ") .. "]", off
end

read_value = function(tvb, off, depth)
  local len = tvb:len()
  if off >= len or depth > 16 then return nil end
  local b = tvb:range(off, 1):uint()
  off = off + 1
  local function need(n) return off + n <= len end
  local function uint(n)
    if not need(n) then return nil end
    if n == 8 then return tostring(tvb:range(off, 8):uint64()) end
    return tvb:range(off, n):uint()
  end
  local function str(n)
    if not need(n) then return nil end
    return '"' .. tvb:range(off, n):string() .. '"', off + n
  end
  local function bin(n)
    if not need(n) then return nil end
    return hex(tvb, off, n), off + n
  end
  if b <= 0x7f then return tostring(b), off end
  if b >= 0xe0 then return tostring(b - 256), off end
  if b >= 0xa0 and b <= 0xbf then return str(b - 0xa0) end
  if b >= 0x90 and b <= 0x9f then return read_seq(tvb, off, b - 0x90, depth, false) end
  if b >= 0x80 and b <= 0x8f then return read_seq(tvb, off, b - 0x80, depth, true) end
  if b == 0xc0 then return "nil", off end
  if b == 0xc2 then return "false", off end
  if b == 0xc3 then return "true", off end
  if b >= 0xc4 and b <= 0xc6 then
    local w = ({ 1, 2, 4 })[b - 0xc3]
    local n = uint(w); if n == nil then return nil end
    off = off + w
    return bin(n)
  end
  if b >= 0xc7 and b <= 0xc9 then
    local w = ({ 1, 2, 4 })[b - 0xc6]
    local n = uint(w); if n == nil or not need(w + 1 + n) then return nil end
    local t = tvb:range(off + w, 1):int()
    return "ext(" .. t .. ", " .. hex(tvb, off + w + 1, n) .. ")", off + w + 1 + n
  end
  if b == 0xca then if not need(4) then return nil end return "float " .. tvb:range(off, 4):float(), off + 4 end
  if b == 0xcb then if not need(8) then return nil end return "float " .. tvb:range(off, 8):float(), off + 8 end
  if b >= 0xcc and b <= 0xcf then
    local w = ({ 1, 2, 4, 8 })[b - 0xcb]
    local v = uint(w); if v == nil then return nil end
    return tostring(v), off + w
  end
  if b >= 0xd0 and b <= 0xd3 then
    local w = ({ 1, 2, 4, 8 })[b - 0xcf]
    if not need(w) then return nil end
    if w == 8 then return tostring(tvb:range(off, 8):int64()), off + 8 end
    return tostring(tvb:range(off, w):int()), off + w
  end
  if b >= 0xd4 and b <= 0xd8 then
    local n = ({ 1, 2, 4, 8, 16 })[b - 0xd3]
    if not need(1 + n) then return nil end
    return "ext(" .. tvb:range(off, 1):int() .. ", " .. hex(tvb, off + 1, n) .. ")", off + 1 + n
  end
  if b >= 0xd9 and b <= 0xdb then
    local w = ({ 1, 2, 4 })[b - 0xd8]
    local n = uint(w); if n == nil then return nil end
    off = off + w
    return str(n)
  end
  if b == 0xdc or b == 0xdd then
    local w = (b == 0xdc) and 2 or 4
    local n = uint(w); if n == nil then return nil end
    return read_seq(tvb, off + w, n, depth, false)
  end
  if b == 0xde or b == 0xdf then
    local w = (b == 0xde) and 2 or 4
    local n = uint(w); if n == nil then return nil end
    return read_seq(tvb, off + w, n, depth, true)
  end
  return nil -- 0xc1, never used
end

-- A MessagePack map body at [off, end of tvb): one subtree item per key, known keys as fields.
local function dissect_map(tvb, off, tree, pinfo)
  local len = tvb:len()
  local bt = tree:add(f.body, tvb:range(off, len - off))
  local b = off < len and tvb:range(off, 1):uint() or -1
  local n, p
  if b >= 0x80 and b <= 0x8f then n, p = b - 0x80, off + 1
  elseif b == 0xde and off + 3 <= len then n, p = tvb:range(off + 1, 2):uint(), off + 3
  elseif b == 0xdf and off + 5 <= len then n, p = tvb:range(off + 1, 4):uint(), off + 5
  else
    bt:add_proto_expert_info(ef_malformed, "body is not a MessagePack map")
    return ""
  end
  local summary = {}
  for _ = 1, n do
    local ks = p
    local k, kp = read_value(tvb, p, 1)
    if k == nil then bt:add_proto_expert_info(ef_malformed, "truncated MessagePack"); break end
    local v, vp = read_value(tvb, kp, 1)
    if v == nil then bt:add_proto_expert_info(ef_malformed, "truncated MessagePack"); break end
    local key = k:match('^"(.*)"$') or k
    if body_fields[key] ~= nil then
      -- a key the protocol defines: its own filterable field, postern.body.<key>
      bt:add(body_fields[key], tvb:range(kp, vp - kp), v):set_text(key .. ": " .. v)
    else
      local item = bt:add(f.mp_key, tvb:range(ks, vp - ks), key)
      item:set_text(key .. ": " .. v .. " (unknown key)")
      item:add(f.mp_value, tvb:range(kp, vp - kp), v)
    end
    if #summary < 4 then summary[#summary + 1] = key end
    p = vp
  end
  if p ~= nil and p < len then bt:add_proto_expert_info(ef_malformed, "bytes after the map") end
  return " {" .. table.concat(summary, ",") .. (n > 4 and ",…" or "") .. "}"
end

local function flag_names(fl)
  local names = {}
  if fl % 2 == 1 then names[#names + 1] = "ANONYMOUS" end
  if math.floor(fl / 2) % 2 == 1 then names[#names + 1] = "STICKY" end
  if math.floor(fl / 4) % 2 == 1 then names[#names + 1] = "SEALED" end
  if fl >= 8 then names[#names + 1] = string.format("0x%02x", fl - fl % 8) end
  return table.concat(names, "|")
end

-- One whole frame in `tvb` (its length field at 0). Returns a short summary for Info.
local function dissect_frame(tvb, pinfo, tree)
  local total = tvb:len()
  local t = tvb:range(4, 1):uint()
  local fl = tvb:range(5, 1):uint()
  local name = TYPES[t] or ((t >= 0x80) and string.format("optional 0x%02x", t) or string.format("unknown 0x%02x", t))
  local ft = tree:add(postern, tvb:range(0, total), "postern " .. name)
  ft:add(f.length, tvb:range(0, 4))
  ft:add(f.type, tvb:range(4, 1))
  ft:add(f.type_name, tvb:range(4, 1), name)
  local flt = ft:add(f.flags, tvb:range(5, 1))
  local info = name
  if fl ~= 0 then
    flt:add(f.flag_anonymous, tvb:range(5, 1))
    flt:add(f.flag_sticky, tvb:range(5, 1))
    flt:add(f.flag_sealed, tvb:range(5, 1))
    local names = flag_names(fl)
    flt:add(f.flag_names, tvb:range(5, 1), names)
    info = info .. " [" .. names .. "]"
  end
  local function short(n) if total < n then ft:add_proto_expert_info(ef_malformed, "frame too short"); return true end return false end
  if t == 0x10 or t == 0x11 then
    if short(26) then return info end
    ft:add(t == 0x10 and f.to or f.from, tvb:range(6, 16))
    ft:add(f.seq, tvb:range(22, 4))
    ft:add(f.payload_len, tvb:range(0, 4), total - 26)
    if total > 26 then ft:add(f.payload, tvb:range(26, total - 26)) end
    info = info .. string.format(" %s %s seq=%d len=%d", t == 0x10 and "to" or "from", hex(tvb, 6, 16), tvb:range(22, 4):uint(), total - 26)
  elseif t == 0x03 then
    if short(28) then return info end
    local code = tvb:range(6, 2):uint()
    ft:add(f.code, tvb:range(6, 2))
    ft:add(f.code_name, tvb:range(6, 2), CODES[code] or "unknown")
    ft:add(f.seq, tvb:range(8, 4))
    ft:add(f.error_id, tvb:range(12, 16))
    if total > 28 then ft:add(f.text, tvb:range(28, total - 28)) end
    info = info .. string.format(" %d %s seq=%d", code, CODES[code] or "?", tvb:range(8, 4):uint())
  elseif t == 0x04 then
    if short(8) then return info end
    local code = tvb:range(6, 2):uint()
    ft:add(f.code, tvb:range(6, 2))
    ft:add(f.code_name, tvb:range(6, 2), CODES[code] or "unknown")
    if total > 8 then ft:add(f.text, tvb:range(8, total - 8)) end
    info = info .. string.format(" %d %s", code, CODES[code] or "?")
  elseif t == 0x05 or t == 0x06 then
    if total > 6 then ft:add(f.ping, tvb:range(6, total - 6)) end
  elseif t == 0x24 then
    if short(26) then return info end
    ft:add(f.from, tvb:range(6, 16))
    ft:add(f.hops, tvb:range(22, 1))
    info = info .. " " .. hex(tvb, 6, 16)
  elseif t == 0x25 then
    if short(44) then return info end
    local code = tvb:range(6, 2):uint()
    ft:add(f.code, tvb:range(6, 2))
    ft:add(f.code_name, tvb:range(6, 2), CODES[code] or "unknown")
    ft:add(f.seq, tvb:range(8, 4))
    ft:add(f.to, tvb:range(12, 16))
    ft:add(f.from, tvb:range(28, 16))
    if total > 44 then ft:add(f.text, tvb:range(44, total - 44)) end
    info = info .. string.format(" %d %s", code, CODES[code] or "?")
  elseif t == 0x01 or t == 0x02 or t == 0x07 or t == 0x08 or t == 0x12 or t == 0x13 or (t >= 0x20 and t <= 0x23) then
    if short(7) then return info end
    info = info .. dissect_map(tvb, 6, ft, pinfo)
  end
  return info
end

-- The stream: preambles (first byte 0x89, which no frame length can start with) and frames.
function postern.dissector(tvb, pinfo, tree)
  local len = tvb:len()
  local off = 0
  local infos = {}
  while off < len do
    local rest = len - off
    local first = tvb:range(off, 1):uint()
    local pdu
    if first == 0x89 then
      pdu = 8
    else
      if rest < 4 then
        pinfo.desegment_offset = off
        pinfo.desegment_len = DESEGMENT_ONE_MORE_SEGMENT
        break
      end
      pdu = tvb:range(off, 4):uint() + 4
      if pdu > MAX_TOTAL or pdu < 6 then
        -- Not postern framing: an HTTP 400 from a router, a wrong peer. Show it and stop.
        local item = tree:add(postern, tvb:range(off, rest), "postern: not a frame")
        item:add(f.http, tvb:range(off, math.min(rest, 200)), tvb:range(off, math.min(rest, 200)):string())
        item:add_proto_expert_info(ef_malformed, "not postern framing")
        infos[#infos + 1] = "not postern"
        off = len
        break
      end
    end
    if rest < pdu then
      pinfo.desegment_offset = off
      pinfo.desegment_len = pdu - rest
      break
    end
    local sub = tvb:range(off, pdu):tvb()
    if first == 0x89 then
      local item = tree:add(postern, tvb:range(off, 8), "postern preamble")
      item:add(f.magic, sub:range(0, 7))
      item:add(f.version, sub:range(7, 1))
      if hex(sub, 0, 7) ~= MAGIC_HEX then item:add_proto_expert_info(ef_malformed, "wrong magic") end
      infos[#infos + 1] = "preamble v" .. sub:range(7, 1):uint()
    else
      infos[#infos + 1] = dissect_frame(sub, pinfo, tree)
    end
    off = off + pdu
  end
  if #infos > 0 then
    pinfo.cols.protocol = "postern"
    pinfo.cols.info = table.concat(infos, ", ")
  end
  return len
end

-- A TCP payload that starts with the magic is postern, whatever the port.
local function heuristic(tvb, pinfo, tree)
  if tvb:len() < 7 or hex(tvb, 0, 7) ~= MAGIC_HEX then return false end
  pinfo.conversation = postern
  postern.dissector(tvb, pinfo, tree)
  return true
end

DissectorTable.get("tcp.port"):add(7447, postern)
postern:register_heuristic("tcp", heuristic)
