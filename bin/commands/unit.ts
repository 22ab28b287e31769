/**
 * `postern systemd-unit`: print the shipped systemd unit with an absolute ExecStart naming
 * the node binary and the postern script of the install this command runs from, after
 * checking that the service's dynamic user can read both.
 *
 * Why a command rather than a documented `sed`: the unit must name node itself (systemd
 * has no login PATH, and `/usr/bin/env` finds nothing or a version manager's node), and
 * only the running process knows for sure which node and which install it is.
 *
 * @module
 */
import type { Command } from 'commander';
import { readFileSync, realpathSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ErrorCode, PosternError } from '../../src/index.js';

/** Where the unit template sits in the package (dist/bin/commands/ -> package root). */
const TEMPLATE = fileURLToPath(new URL('../../../deploy/postern-router.service', import.meta.url));
/** The CLI's entry script, beside this file's directory. */
const SCRIPT = fileURLToPath(new URL('../postern.js', import.meta.url));

/** Directories `ProtectHome=yes` hides from the service. */
const HIDDEN = ['/home', '/root', '/run/user'];

interface UnitOptions {
  config: string;
  node?: string;
}

/** Adds `systemd-unit` to `program`. */
export function addUnitCommand(program: Command): void {
  program
    .command('systemd-unit')
    .description('print the systemd unit for this install (absolute node and postern paths), to save as /etc/systemd/system/postern-router.service')
    .option('-c, --config <file>', 'config file the service reads', '/etc/postern/router.json')
    .option('--node <path>', 'node binary the service runs (default: the one running this command)')
    .addHelpText(
      'after',
      `
Run it as the user who installed postern (not through sudo, whose PATH may find another
node), and save its output as root:
  postern systemd-unit | sudo tee /etc/systemd/system/postern-router.service
  sudo systemctl daemon-reload && sudo systemctl enable --now postern-router

The service runs as a dynamic user with ProtectHome=yes: node and postern must be
installed where every user can read them (a global prefix such as /usr or /usr/local),
not under /home or /root. Exits 2 with POSTERN_ERR_CONFIG when they are not.`,
    )
    .action((opts: UnitOptions) => {
      process.stdout.write(renderUnit({ node: opts.node ?? process.execPath, script: SCRIPT, config: opts.config }));
    });
}

/** The unit text for `node`, `script` and `config`; throws POSTERN_ERR_CONFIG when the service could not read them. */
export function renderUnit(p: { node: string; script: string; config: string; template?: string }): string {
  const node = readable(p.node, 'node');
  const script = readable(p.script, 'the postern script');
  const config = resolve(p.config);
  const text = p.template ?? readFileSync(TEMPLATE, 'utf8');
  const exec = `ExecStart=${[node, script, 'router', '--config', config].map(quote).join(' ')}`;
  let found = false;
  const out = text.replace(/^ExecStart=.*$/m, () => {
    found = true;
    return exec;
  });
  if (!found) throw new PosternError(ErrorCode.CONFIG, `${TEMPLATE} has no ExecStart= line`);
  return out;
}

/**
 * The real path of `path`, checked the way the service will see it: outside the
 * directories ProtectHome hides, readable by others, every parent directory searchable.
 */
function readable(path: string, what: string): string {
  let real: string;
  try {
    real = realpathSync(path);
  } catch (err) {
    throw new PosternError(ErrorCode.CONFIG, `${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
  }
  const hidden = HIDDEN.find((h) => real === h || real.startsWith(h + '/'));
  if (hidden !== undefined) {
    throw new PosternError(
      ErrorCode.CONFIG,
      `${what} is ${real}, under ${hidden}, which the service cannot see (ProtectHome=yes): install node and postern under a global prefix such as /usr/local`,
    );
  }
  if ((statSync(real).mode & 0o004) === 0) throw new PosternError(ErrorCode.CONFIG, `${what} ${real} is not readable by other users, as the service's dynamic user is`);
  for (let dir = dirname(real); ; dir = dirname(dir)) {
    if ((statSync(dir).mode & 0o001) === 0) {
      throw new PosternError(ErrorCode.CONFIG, `${what} ${real}: directory ${dir} is not searchable by other users, as the service's dynamic user is`);
    }
    if (dir === '/') break;
  }
  return real;
}

/** One ExecStart word: systemd expands % and $, and splits on white space unless quoted. */
function quote(word: string): string {
  const escaped = word.replaceAll('%', '%%').replaceAll('$', '$$$$');
  return /[\s"'\\]/.test(escaped) ? `"${escaped.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"` : escaped;
}
