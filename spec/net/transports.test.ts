/**
 * Through firewalls, for real: agents in network namespaces whose
 * nftables rules let out only TCP 443 to the routers, only the proxy host, or only the web
 * host, reach routers over TLS, WebSocket, HTTP CONNECT and SOCKS5 proxies and an nginx
 * that terminates TLS; and an agent fails over from a killed router to the next.
 *
 *                 ┌───────────────── NET (forwards between its links) ─────────────────┐
 *                 └──┬─────────┬─────────┬─────────┬─────────┬─────────┬─────────┬─────┘
 *          R 10.78.1.2  R2 10.78.2.2  P 10.78.3.2  W 10.78.7.2  A1 .4.2  A2 .5.2  A3 .6.2
 *          router 1     router 2      tinyproxy    nginx (TLS)  only 443  only P   only W:443
 *          7447, 443,   7447, 443     8888, 8889   → R:8080     to R, R2
 *          8080 (http)                danted 1080  (WebSocket)
 *
 * Every agent host drops new inbound connections and lets out only what its case allows.
 * Subnet 10.78.0.0/16 only; namespaces are named `pt-<pid>-*` and removed at the end, at
 * exit, and by the next run when their process is gone. Needs Linux, root, ip, nft and
 * openssl; tinyproxy, danted and nginx each enable their cases (a missing one skips its
 * case and says so). spec/net/deps.sh installs them all.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cleanUpOnExit, Daemon, Helper, prerequisites, removeNamespaces, run, waitListening, which, type Line } from './netns.js';
import { makePki, type TestPki } from '../helpers/certs.js';

const PREFIX = 'pt-';
const RUN = `${PREFIX}${process.pid}-`;
const NET = `${RUN}net`;
const TABLE = 'pt_transports';
const PROBE_MS = 800;

interface Host {
  readonly name: string;
  readonly ns: string;
  readonly addr: string;
  readonly gateway: string;
}

function host(name: string, subnet: number): Host {
  return { name, ns: RUN + name, addr: `10.78.${subnet}.2`, gateway: `10.78.${subnet}.1` };
}

const R = host('r', 1);
const R2 = host('r2', 2);
const P = host('p', 3);
const A1 = host('a1', 4);
const A2 = host('a2', 5);
const A3 = host('a3', 6);
const W = host('w', 7);
const HOSTS = [R, R2, P, A1, A2, A3, W];
const AGENTS = [A1, A2, A3];

const here = fileURLToPath(new URL('.', import.meta.url));
const SCRIPT = { router: join(here, 'node-router.js'), agent: join(here, 'node-agent.js'), probe: join(here, 'node-probe.js') };

/** What each agent host may send out (besides replies): nftables rule text. */
const EGRESS: Record<string, string> = {
  a1: `ip daddr { ${R.addr}, ${R2.addr} } tcp dport 443 accept`,
  a2: `ip daddr ${P.addr} accept`,
  a3: `ip daddr ${W.addr} tcp dport 443 accept`,
};

function ruleset(allow: string): string {
  return `
table inet ${TABLE} {
  chain input {
    type filter hook input priority filter; policy drop;
    iif "lo" accept
    ct state established,related accept
    counter drop
  }
  chain output {
    type filter hook output priority filter; policy drop;
    oif "lo" accept
    ct state established,related accept
    ${allow}
    counter drop
  }
}
`;
}



const tools = prerequisites();
const openssl = which('openssl');

if (typeof tools === 'string' || openssl === undefined) {
  const why = typeof tools === 'string' ? tools : 'openssl not found (spec/net/deps.sh installs it)';
  console.log(`transports test skipped: ${why}`);
  test(`skipped: ${why}`, () => undefined);
} else {
  const t = tools;
  const helpers: Helper[] = [];
  const daemons: Daemon[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'pt-transports-'));
  chmodSync(dir, 0o755);
  let pki: TestPki;
  let ready = false;
  const routers = new Map<Host, Helper>();
  const homes = new Map<Host, string>();
  const daemon = { tinyproxy: which('tinyproxy'), danted: which('danted'), nginx: which('nginx') };

  const start = (label: string, h: Host, script: string, args: string[]): Helper => {
    const x = new Helper(label, t.ip, h.ns, script, args);
    helpers.push(x);
    return x;
  };
  const startDaemon = (label: string, h: Host, argv: string[]): Daemon => {
    const d = new Daemon(label, t.ip, h.ns, argv);
    daemons.push(d);
    return d;
  };
  const onExit = (): void => {
    for (const h of helpers) h.kill();
    for (const d of daemons) d.kill();
    removeNamespaces(t.ip, PREFIX);
    rmSync(dir, { recursive: true, force: true });
  };
  let release = (): void => undefined;

  test.before(() => {
    removeNamespaces(t.ip, PREFIX);
    release = cleanUpOnExit(onExit);
  });

  const cleanUp = async (): Promise<string[]> => {
    await Promise.all([...helpers.map((h) => h.stop()), ...daemons.map((d) => d.stop())]);
    removeNamespaces(t.ip, PREFIX);
    release();
    rmSync(dir, { recursive: true, force: true });
    const left = execFileSync(t.ip, ['netns', 'list'], { encoding: 'utf8', timeout: 5000 });
    return left.split('\n').filter((l) => l.startsWith(RUN));
  };

  test.after(async () => {
    const left = await cleanUp();
    if (left.length > 0) console.error(`transports test: namespaces left behind: ${left.join(', ')}`);
  });

  /** An agent in `h` dialling `router` with more options; resolves with its ID once registered. */
  const agent = async (label: string, h: Host, router: string, extra: Record<string, unknown> = {}): Promise<[Helper, string]> => {
    const a = start(label, h, SCRIPT.agent, [router, JSON.stringify({ ca: pki.caCert, ...extra })]);
    const line = await a.wait((l) => 'id' in l, 8000, 'registered');
    return [a, String(line.id)];
  };

  /** A message each way between `a` (id `ida`) and the home agent of router host `r`. */
  const exchange = async (a: Helper, ida: string, r: Host, text: string): Promise<void> => {
    const home = helpers.find((x) => x.label === `home ${r.name}`)!;
    const idh = homes.get(r)!;
    await a.request({ cmd: 'send', to: idh, text: `${text} out` }, 5000, 'send');
    await home.wait((l) => l.from === ida && l.text === `${text} out`, 5000, `${text} at home`);
    await home.request({ cmd: 'send', to: ida, text: `${text} back` }, 5000, 'send');
    await a.wait((l) => l.from === idh && l.text === `${text} back`, 5000, `${text} back`);
  };

  /** A direct connection from router host R to a port open inside agent host `h` is dropped. */
  const inboundRefused = async (h: Host): Promise<void> => {
    const p = start(`probe r→${h.name}`, R, SCRIPT.probe, ['connect', h.addr, '9', String(PROBE_MS)]);
    const res = await p.wait((l) => 'connected' in l, PROBE_MS + 4000, 'probe');
    assert.equal(res, { connected: false, error: 'TIMEOUT' }, `inbound to ${h.name}`);
  };

  test('setup: seven hosts, firewalls, certificates, two routers with plain, TLS and HTTP listeners', async () => {
    pki = makePki([R.addr, R2.addr, W.addr]);
    const ip = (...args: string[]): Promise<string> => run(t.ip, args);
    for (const ns of [NET, ...HOSTS.map((h) => h.ns)]) await ip('netns', 'add', ns);
    await ip('-n', NET, 'link', 'set', 'lo', 'up');
    await Promise.all(
      HOSTS.map(async (h) => {
        await ip('link', 'add', 'name', 'eth0', 'netns', h.ns, 'type', 'veth', 'peer', 'name', h.name, 'netns', NET);
        await ip('-n', h.ns, 'link', 'set', 'lo', 'up');
        await ip('-n', h.ns, 'address', 'add', `${h.addr}/24`, 'dev', 'eth0');
        await ip('-n', h.ns, 'link', 'set', 'eth0', 'up');
        await ip('-n', h.ns, 'route', 'add', 'default', 'via', h.gateway);
        await ip('-n', NET, 'address', 'add', `${h.gateway}/24`, 'dev', h.name);
        await ip('-n', NET, 'link', 'set', h.name, 'up');
      }),
    );
    await run(t.ip, ['netns', 'exec', NET, 'sh', '-c', 'echo 1 > /proc/sys/net/ipv4/ip_forward']);
    for (const a of AGENTS) await run(t.ip, ['netns', 'exec', a.ns, t.nft, '-f', '-'], ruleset(EGRESS[a.name]!));
    const tlsFiles = { cert: pki.cert, key: pki.key };
    for (const [h, id] of [
      [R, 0x0a4e0001],
      [R2, 0x0a4e0002],
    ] as const) {
      const listeners = [
        { port: 7447 },
        { port: 443, tls: tlsFiles, http: true },
        ...(h === R ? [{ port: 8080, http: true }] : []),
      ];
      routers.set(h, start(`router ${h.name}`, h, SCRIPT.router, [JSON.stringify({ routerId: id, listeners })]));
    }
    await Promise.all([...routers.values()].map((r) => r.wait((l) => l.ready === true, 5000, 'ready')));
    for (const h of [R, R2]) {
      const home = start(`home ${h.name}`, h, SCRIPT.agent, ['127.0.0.1:7447']);
      homes.set(h, String((await home.wait((l) => 'id' in l, 5000, 'home registered')).id));
    }
    // Something to knock on inside each agent host: reachable from inside only.
    for (const a of AGENTS) start(`listener ${a.name}`, a, SCRIPT.probe, ['listen', '0.0.0.0', '9']);
    await Promise.all(AGENTS.map((a) => waitListening(t.ip, a.ns, 9, 3000, `listener ${a.name}`)));
    ready = true;
  });

  test('(a) only TCP 443 out: plain 7447 fails with a coded error; tls:// and wss:// carry messages both ways', async () => {
    assert.ok(ready, 'setup failed');
    const plain = start('a1 plain', A1, SCRIPT.agent, [`${R.addr}:7447`, JSON.stringify({ connectTimeout: 1500 })]);
    const fatal = await plain.wait((l) => 'fatal' in l, 6000, 'the plain attempt to fail');
    assert.match(String(fatal.fatal), /^POSTERN_ERR_CONNECT_TIMEOUT: /);
    const [tls, idt] = await agent('a1 tls', A1, `tls://${R.addr}`);
    const [wss, idw] = await agent('a1 wss', A1, `wss://${R.addr}/postern`);
    await Promise.all([exchange(tls, idt, R, 'tls'), exchange(wss, idw, R, 'wss')]);
    await Promise.all([tls.stop(), wss.stop()]);
    await inboundRefused(A1);
  });

  test('(b) only the proxy host: CONNECT through tinyproxy with and without auth, SOCKS5 through dante; a wrong password is coded', async () => {
    assert.ok(ready, 'setup failed');
    const cases: Promise<void>[] = [];
    if (daemon.tinyproxy === undefined) console.log('transports test: case (b) tinyproxy skipped: tinyproxy not found (spec/net/deps.sh installs it)');
    else {
      for (const [port, auth] of [
        [8888, ''],
        [8889, 'BasicAuth postern s3cret\n'],
      ] as const) {
        const conf = join(dir, `tinyproxy-${port}.conf`);
        writeFileSync(conf, `User nobody\nGroup nogroup\nPort ${port}\nListen ${P.addr}\nTimeout 60\nMaxClients 50\nLogLevel Warning\nAllow 10.78.0.0/16\nConnectPort 443\nConnectPort 7447\n${auth}`);
        const d = startDaemon(`tinyproxy ${port}`, P, [daemon.tinyproxy, '-d', '-c', conf]);
        cases.push(waitListening(t.ip, P.ns, port, 3000, `tinyproxy ${port}`, d));
      }
      await Promise.all(cases.splice(0));
      cases.push(
        (async () => {
          const [a, id] = await agent('a2 connect', A2, `tls://${R.addr}`, { proxy: `http://${P.addr}:8888` });
          await exchange(a, id, R, 'connect');
          const [b, idb] = await agent('a2 connect auth', A2, `${R.addr}:7447`, { proxy: `http://postern:s3cret@${P.addr}:8889` });
          await exchange(b, idb, R, 'connect-auth');
          const wrong = start('a2 wrong password', A2, SCRIPT.agent, [`tls://${R.addr}`, JSON.stringify({ ca: pki.caCert, proxy: `http://postern:nope@${P.addr}:8889`, connectTimeout: 3000 })]);
          const f = await wrong.wait((l) => 'fatal' in l, 6000, 'the wrong password to fail');
          // tinyproxy answers a bad BasicAuth with 401 rather than 407: both are auth failures.
          assert.match(String(f.fatal), /^POSTERN_ERR_PROXY_AUTH_FAILED: .*40[17]/, String(f.fatal));
        })(),
      );
    }
    if (daemon.danted === undefined) console.log('transports test: case (b) dante skipped: danted not found (spec/net/deps.sh installs dante-server)');
    else {
      const conf = join(dir, 'danted.conf');
      writeFileSync(
        conf,
        `logoutput: stderr\ninternal: ${P.addr} port = 1080\nexternal: eth0\nsocksmethod: none\nclientmethod: none\nuser.privileged: root\nuser.unprivileged: nobody\n` +
          `client pass { from: 10.78.0.0/16 to: 0.0.0.0/0 }\nsocks pass { from: 10.78.0.0/16 to: 0.0.0.0/0 command: connect }\n`,
      );
      const d = startDaemon('danted', P, [daemon.danted, '-f', conf, '-p', join(dir, 'danted.pid')]);
      cases.push(
        (async () => {
          await waitListening(t.ip, P.ns, 1080, 3000, 'danted', d);
          const [a, id] = await agent('a2 socks5', A2, `wss://${R.addr}/postern`, { proxy: `socks5://${P.addr}:1080` });
          await exchange(a, id, R, 'socks5');
        })(),
      );
    }
    await Promise.all(cases);
    await inboundRefused(A2);
  });

  test('(c) behind nginx terminating TLS and passing WebSocket to a plain HTTP listener', async () => {
    assert.ok(ready, 'setup failed');
    if (daemon.nginx === undefined) {
      console.log('transports test: case (c) skipped: nginx not found (spec/net/deps.sh installs nginx-light)');
      return;
    }
    const conf = join(dir, 'nginx.conf');
    const temp = (n: string): string => join(dir, `nginx-${n}`);
    writeFileSync(
      conf,
      `user root;\nworker_processes 1;\ndaemon off;\npid ${join(dir, 'nginx.pid')};\nerror_log ${join(dir, 'nginx-error.log')} warn;\nevents { worker_connections 256; }\n` +
        `http {\n  access_log off;\n  client_body_temp_path ${temp('body')};\n  proxy_temp_path ${temp('proxy')};\n  fastcgi_temp_path ${temp('fcgi')};\n  uwsgi_temp_path ${temp('uwsgi')};\n  scgi_temp_path ${temp('scgi')};\n` +
        `  server {\n    listen ${W.addr}:443 ssl;\n    ssl_certificate ${pki.cert};\n    ssl_certificate_key ${pki.key};\n` +
        `    location /postern {\n      proxy_pass http://${R.addr}:8080;\n      proxy_http_version 1.1;\n      proxy_set_header Upgrade $http_upgrade;\n      proxy_set_header Connection "upgrade";\n      proxy_set_header Host $host;\n      proxy_buffering off;\n      proxy_read_timeout 3600s;\n    }\n  }\n}\n`,
    );
    const d = startDaemon('nginx', W, [daemon.nginx, '-c', conf]);
    await waitListening(t.ip, W.ns, 443, 4000, 'nginx', d);
    const [a, id] = await agent('a3 via nginx', A3, `wss://${W.addr}/postern`);
    await exchange(a, id, R, 'nginx');
    // The router itself is out of reach from A3: only the web host is allowed.
    const direct = start('a3 direct', A3, SCRIPT.agent, [`tls://${R.addr}`, JSON.stringify({ ca: pki.caCert, connectTimeout: 1000 })]);
    assert.match(String((await direct.wait((l) => 'fatal' in l, 5000, 'direct to fail')).fatal), /^POSTERN_ERR_(CONNECT_TIMEOUT|CONNECTION_LOST): /);
    await inboundRefused(A3);
  });

  test('(d) failover: the first router is killed, the agent registers on the second within its reconnect delay', async () => {
    assert.ok(ready, 'setup failed');
    const [a, id] = await agent('a1 failover', A1, `tls://${R.addr},tls://${R2.addr}`, { reconnectDelay: 100, reconnectMaxDelay: 400 });
    assert.is(id.slice(0, 8), '0a4e0001');
    await exchange(a, id, R, 'before');
    const t0 = Date.now();
    routers.get(R)!.kill();
    const moved: Line = await a.wait((l) => l.routerId === 0x0a4e0002 && 'registered' in l, 5000, 'registered on router 2');
    const took = Date.now() - t0;
    // Two attempts at most (the dead router first, to resume), each after <= 400 ms backoff.
    assert.ok(took < 2000, `failover took ${took} ms`);
    await exchange(a, String(moved.registered), R2, 'after');
    await inboundRefused(A1);
  });

  test('clean up: helpers and daemons stopped, every namespace of this run gone', async () => {
    assert.equal(await cleanUp(), []);
  });
}

test.run();
