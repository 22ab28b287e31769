/**
 * Firewall traversal, for real: hosts built from Linux network namespaces.
 *
 *                       ┌──────────── NET (forwards between its four links) ────────────┐
 *                       │ 10.77.1.1      10.77.2.1       10.77.3.1        10.77.4.1     │
 *                       └────┬──────────────┬───────────────┬────────────────┬─────────┘
 *                      veth  │        veth  │         veth  │          veth  │
 *                  R1 10.77.1.2       R2 10.77.2.2    A1 10.77.3.2     A2 10.77.4.2
 *                  router 1  ◄──link── router 2       agent a1         agent a2
 *                                                     (firewalled)     (firewalled)
 *
 * A1 and A2 run an nftables ruleset whose input chain drops every packet that is neither
 * loopback nor part of an established (or related) connection, so nothing from outside can
 * open a connection to them. Agent a1 dials router 1, agent a2 dials router 2, router 2
 * links to router 1: messages must flow both ways between a1 and a2 across the mesh, and a
 * plain TCP connection to a port open on A1 or A2 must fail from outside while it works from
 * inside.
 *
 * Every address exists only inside the namespaces this file creates; namespace names carry
 * this process's pid and the veth ends are created directly inside those namespaces, so
 * parallel runs cannot clash. Needs Linux, root, `ip` (iproute2) and `nft` (nftables);
 * spec/net/deps.sh installs the tools. Without one of them the file registers a single
 * passing test named "skipped: <reason>" and prints why; with all of them it runs for real.
 *
 * The helper processes (node-router, node-agent, node-probe) exit when their stdin ends, so
 * even a test process killed outright leaves none running; its namespaces are removed by the
 * next run (those of runs whose pid is gone).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cleanUpOnExit, Helper, type Line, prerequisites, removeNamespaces, run } from './netns.js';

const PREFIX = 'postern-net-';
const RUN = `${PREFIX}${process.pid}-`;
const NET = `${RUN}net`;
const PORT = 7447; // every host has its own port space: the default port is free in each
const SECRET = 'firewall test mesh secret';
const TABLE = 'postern_firewall';
/** How long a direct connection attempt to a firewalled host is given before it counts as dropped. */
const PROBE_MS = 1000;

/** One host: its namespace and the /24 it sits on (host .2, NET's side .1). */
interface Host {
  readonly name: 'r1' | 'r2' | 'a1' | 'a2';
  readonly ns: string;
  readonly addr: string;
  readonly gateway: string;
  readonly firewalled: boolean;
}

function host(name: Host['name'], subnet: number, firewalled: boolean): Host {
  return { name, ns: RUN + name, addr: `10.77.${subnet}.2`, gateway: `10.77.${subnet}.1`, firewalled };
}

const R1 = host('r1', 1, false);
const R2 = host('r2', 2, false);
const A1 = host('a1', 3, true);
const A2 = host('a2', 4, true);
const HOSTS = [R1, R2, A1, A2];

const here = fileURLToPath(new URL('.', import.meta.url));
const SCRIPT = {
  router: join(here, 'node-router.js'),
  agent: join(here, 'node-agent.js'),
  probe: join(here, 'node-probe.js'),
};

// ---------------------------------------------------------------------------------------
// Whether this can run (Linux, root, ip and nft), commands and helper processes: spec/net/netns.ts.

// ---------------------------------------------------------------------------------------
// The hosts.

interface Tools {
  ip: string;
  nft: string;
}

const helpers: Helper[] = [];

function start(t: Tools, label: string, h: Host, script: string, args: string[]): Helper {
  const helper = new Helper(label, t.ip, h.ns, script, args);
  helpers.push(helper);
  return helper;
}

/** Namespaces in `ip netns list` (first word of each line). */
function listNamespaces(ip: string): string[] {
  const out = execFileSync(ip, ['netns', 'list'], { encoding: 'utf8', timeout: 5000 });
  return out.split('\n').map((l) => l.trim().split(/\s+/)[0] ?? '').filter((n) => n !== '');
}



async function buildNetwork(t: Tools): Promise<void> {
  const ip = (...args: string[]): Promise<string> => run(t.ip, args);
  for (const ns of [NET, ...HOSTS.map((h) => h.ns)]) await ip('netns', 'add', ns);
  await ip('-n', NET, 'link', 'set', 'lo', 'up');
  const wire = async (h: Host): Promise<void> => {
    // Both ends are created inside their namespaces: no name ever appears in the root one.
    await ip('link', 'add', 'name', 'eth0', 'netns', h.ns, 'type', 'veth', 'peer', 'name', h.name, 'netns', NET);
    await ip('-n', h.ns, 'link', 'set', 'lo', 'up');
    await ip('-n', h.ns, 'address', 'add', `${h.addr}/24`, 'dev', 'eth0');
    await ip('-n', h.ns, 'link', 'set', 'eth0', 'up');
    await ip('-n', h.ns, 'route', 'add', 'default', 'via', h.gateway);
    await ip('-n', NET, 'address', 'add', `${h.gateway}/24`, 'dev', h.name);
    await ip('-n', NET, 'link', 'set', h.name, 'up');
  };
  await Promise.all(HOSTS.map(wire));
  // /proc/sys/net belongs to the namespace of the process reading it.
  await run(t.ip, ['netns', 'exec', NET, 'sh', '-c', 'echo 1 > /proc/sys/net/ipv4/ip_forward']);
}

/** The agent hosts' firewall: no new inbound connection, from anywhere. */
const RULESET = `
table inet ${TABLE} {
  chain input {
    type filter hook input priority filter; policy drop;
    iif "lo" accept
    ct state established,related accept
    counter drop
  }
}
`;

async function firewall(t: Tools, h: Host): Promise<void> {
  await run(t.ip, ['netns', 'exec', h.ns, t.nft, '-f', '-'], RULESET);
}

/** Packets the firewall of `h` dropped so far (the counter of its last rule). */
async function dropped(t: Tools, h: Host): Promise<number> {
  const out = await run(t.ip, ['netns', 'exec', h.ns, t.nft, 'list', 'chain', 'inet', TABLE, 'input']);
  const m = /counter packets (\d+) bytes \d+ drop/.exec(out);
  if (m === null) throw new Error(`no drop counter in the ruleset of ${h.ns}:\n${out}`);
  return Number(m[1]);
}

/** One plain TCP connection attempt from inside `from` to `to:port`. */
async function probe(t: Tools, from: Host, to: string, port: number): Promise<Line> {
  const p = start(t, `probe ${from.name}→${to}`, from, SCRIPT.probe, ['connect', to, String(port), String(PROBE_MS)]);
  return p.wait((l) => 'connected' in l, PROBE_MS + 4000, 'the probe result');
}

// ---------------------------------------------------------------------------------------
// The tests.

const tools = prerequisites();

if (typeof tools === 'string') {
  console.log(`firewall test skipped: ${tools}`);
  test(`skipped: ${tools}`, () => undefined);
} else {
  const t = tools;
  let ready = false;
  const listeners = new Map<Host, Helper>();
  const onExit = (): void => {
    for (const h of helpers) h.kill();
    removeNamespaces(t.ip, PREFIX);
  };
  let release = (): void => undefined;

  test.before(() => {
    removeNamespaces(t.ip, PREFIX);
    release = cleanUpOnExit(onExit);
  });

  /** Stops every helper and removes this run's namespaces (and their veths); idempotent. */
  const cleanUp = async (): Promise<string[]> => {
    await Promise.all(helpers.map((h) => h.stop()));
    removeNamespaces(t.ip, PREFIX);
    release();
    return listNamespaces(t.ip).filter((n) => n.startsWith(RUN));
  };

  // A failing test still reaches the last one, which cleans up; this is for a crash in between.
  test.after(async () => {
    const left = await cleanUp();
    if (left.length > 0) console.error(`firewall test: namespaces left behind: ${left.join(', ')}`);
  });

  test('hosts in namespaces, routed through a fifth; without a firewall an agent host accepts direct connections', async () => {
    await buildNetwork(t);
    for (const h of [A1, A2]) listeners.set(h, start(t, `listener on ${h.name}`, h, SCRIPT.probe, ['listen', '0.0.0.0', String(PORT)]));
    await Promise.all([...listeners.values()].map((l) => l.wait((x) => x.listening === PORT, 5000, 'listening')));
    // Routing works: each agent host reaches the other's port, and a router host reaches it too.
    const [a2a1, a1a2, r1a1] = await Promise.all([probe(t, A2, A1.addr, PORT), probe(t, A1, A2.addr, PORT), probe(t, R1, A1.addr, PORT)]);
    assert.equal(a2a1, { connected: true });
    assert.equal(a1a2, { connected: true });
    assert.equal(r1a1, { connected: true });
    await listeners.get(A1)!.wait((l) => l.accepted === A2.addr, 2000, 'a2 accepted');
    await listeners.get(A1)!.wait((l) => l.accepted === R1.addr, 2000, 'r1 accepted');
    await listeners.get(A2)!.wait((l) => l.accepted === A1.addr, 2000, 'a1 accepted');
    ready = true;
  });

  test('firewalled agent hosts: a direct connection from outside is dropped (and counted), from inside it connects', async () => {
    assert.ok(ready, 'setup failed (see the first test)');
    await Promise.all([firewall(t, A1), firewall(t, A2)]);
    assert.is(await dropped(t, A1), 0);
    assert.is(await dropped(t, A2), 0);
    const acceptedBefore = [...listeners.values()].map((l) => l.lines.filter((x) => 'accepted' in x).length);
    const [a2a1, a1a2, r1a1, r2a2] = await Promise.all([
      probe(t, A2, A1.addr, PORT),
      probe(t, A1, A2.addr, PORT),
      probe(t, R1, A1.addr, PORT),
      probe(t, R2, A2.addr, PORT),
    ]);
    // Dropped, not refused: no RST comes back, the SYN goes unanswered.
    for (const r of [a2a1, a1a2, r1a1, r2a2]) assert.equal(r, { connected: false, error: 'TIMEOUT' });
    // The SYNs did reach the hosts and were dropped by our rule: two sources per host.
    assert.ok((await dropped(t, A1)) >= 2, 'A1 dropped the SYNs');
    assert.ok((await dropped(t, A2)) >= 2, 'A2 dropped the SYNs');
    // From inside, the same port answers, on its own address and on loopback.
    const [own, loop] = await Promise.all([probe(t, A1, A1.addr, PORT), probe(t, A1, '127.0.0.1', PORT)]);
    assert.equal(own, { connected: true });
    assert.equal(loop, { connected: true });
    await listeners.get(A1)!.wait((l) => l.accepted === '127.0.0.1', 2000, 'loopback accepted');
    const ownAccepts = (): number => listeners.get(A1)!.lines.filter((l) => l.accepted === A1.addr).length;
    await listeners.get(A1)!.wait(() => ownAccepts() === 1, 2000, 'own address accepted');
    const acceptedAfter = [...listeners.values()].map((l) => l.lines.filter((x) => 'accepted' in x).length);
    assert.equal(acceptedAfter, [acceptedBefore[0]! + 2, acceptedBefore[1]!], 'only the two inside connections were accepted');
  });

  test('messages flow both ways between firewalled agents on different routers', async () => {
    assert.ok(ready, 'setup failed (see the first test)');
    const common = { host: '0.0.0.0', port: PORT, meshSecret: SECRET, linkRetryMin: 50, linkRetryMax: 200 };
    const r1 = start(t, 'router 1', R1, SCRIPT.router, [JSON.stringify({ ...common, routerId: 0x0a0a0001, peers: [] })]);
    const r2 = start(t, 'router 2', R2, SCRIPT.router, [JSON.stringify({ ...common, routerId: 0x0a0a0002, peers: [`${R1.addr}:${PORT}`] })]);
    await Promise.all([r1.wait((l) => l.ready === true, 5000, 'ready'), r2.wait((l) => l.ready === true, 5000, 'ready')]);
    // Router 2 dials router 1 across NET: wait until both ends report the link.
    const deadline = Date.now() + 5000;
    for (;;) {
      const [l1, l2] = await Promise.all([r1.request({ cmd: 'links' }, 2000, 'links'), r2.request({ cmd: 'links' }, 2000, 'links')]);
      if ((l1.links as unknown[]).length === 1 && (l2.links as unknown[]).length === 1) break;
      if (Date.now() > deadline) assert.unreachable(`mesh link not up in 5 s: ${JSON.stringify([l1, l2])}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const droppedBefore = [await dropped(t, A1), await dropped(t, A2)];

    const a1 = start(t, 'agent a1', A1, SCRIPT.agent, [`${R1.addr}:${PORT}`]);
    const a2 = start(t, 'agent a2', A2, SCRIPT.agent, [`${R2.addr}:${PORT}`]);
    const [h1, h2] = await Promise.all([a1.wait((l) => 'id' in l, 6000, 'registered'), a2.wait((l) => 'id' in l, 6000, 'registered')]);
    const id1 = String(h1.id);
    const id2 = String(h2.id);
    assert.is(id1.slice(0, 8), '0a0a0001', 'a1 is on router 1');
    assert.is(id2.slice(0, 8), '0a0a0002', 'a2 is on router 2');

    const sent = await Promise.all([
      a1.request({ cmd: 'send', to: id2, text: 'from a1 behind its firewall' }, 5000, 'send'),
      a1.request({ cmd: 'send', to: id2, size: 256 * 1024 }, 5000, 'send'),
      a2.request({ cmd: 'send', to: id1, text: 'from a2 behind its firewall' }, 5000, 'send'),
      a2.request({ cmd: 'send', to: id1, size: 256 * 1024 }, 5000, 'send'),
    ]);
    const [text12, big12, text21, big21] = sent;
    const at2 = await Promise.all([
      a2.wait((l) => l.from === id1 && l.text === 'from a1 behind its firewall', 5000, 'text from a1'),
      a2.wait((l) => l.from === id1 && l.len === 256 * 1024, 5000, 'big message from a1'),
    ]);
    const at1 = await Promise.all([
      a1.wait((l) => l.from === id2 && l.text === 'from a2 behind its firewall', 5000, 'text from a2'),
      a1.wait((l) => l.from === id2 && l.len === 256 * 1024, 5000, 'big message from a2'),
    ]);
    assert.is(at2[0].sha256, text12!.sha256);
    assert.is(at2[1].sha256, big12!.sha256);
    assert.is(at1[0].sha256, text21!.sha256);
    assert.is(at1[1].sha256, big21!.sha256);
    // Exactly those messages, nothing refused.
    assert.is(a1.lines.filter((l) => 'from' in l).length, 2);
    assert.is(a2.lines.filter((l) => 'from' in l).length, 2);
    assert.ok(![...a1.lines, ...a2.lines].some((l) => 'undeliverable' in l), 'no undeliverable');
    // The messages crossed the router link, both ways.
    const links = (await r1.request({ cmd: 'links' }, 2000, 'links')).links as { router: number; bytesIn: number; bytesOut: number }[];
    assert.is(links.length, 1);
    assert.is(links[0]!.router, 0x0a0a0002);
    assert.ok(links[0]!.bytesIn > 256 * 1024 && links[0]!.bytesOut > 256 * 1024, `link traffic ${JSON.stringify(links[0])}`);
    // The firewalls stayed up and let all of it in as established traffic: they dropped nothing.
    assert.equal([await dropped(t, A1), await dropped(t, A2)], droppedBefore);
  });

  test('clean up: every helper stopped, every namespace of this run gone (veths with them)', async () => {
    const left = await cleanUp();
    assert.equal(left, []);
    const veths = execFileSync(t.ip, ['-o', 'link', 'show', 'type', 'veth'], { encoding: 'utf8', timeout: 5000 });
    assert.not.match(veths, RUN, 'no veth of this run in the root namespace');
  });
}

test.run();
