/**
 * `postern keygen`: make an X25519 key pair, save it as a key file (mode 0600), print the
 * public key.
 *
 * @module
 */
import type { Command } from 'commander';
import { resolve } from 'node:path';
import { ErrorCode, formatPublicKey, generateKeyPair, PosternError, saveKeyFile } from '../../src/index.js';
import { out } from '../common.js';

interface KeygenCommandOptions {
  out: string;
  force?: boolean;
  json?: boolean;
}

/** Where `postern keygen` writes when --out is not given. */
export const DEFAULT_KEY_FILE = 'postern.key';

/** Adds `keygen` to `program`. */
export function addKeygenCommand(program: Command): void {
  program
    .command('keygen')
    .description('make a key pair for sealed messages, save it to a key file (mode 0600) and print the public key')
    .option('-o, --out <file>', 'where to write the key file', DEFAULT_KEY_FILE)
    .option('-f, --force', 'replace an existing file (atomically)')
    .option('--json', 'print {"file":"…","publicKey":"…"}')
    .addHelpText(
      'after',
      `
Prints the public key (base64, 44 characters) on stdout; that is what others seal to, and
what "postern listen --key FILE" publishes in the router's key directory. The file holds
the secret key too: keep it private (postern refuses a key file that group or others can
read). Refuses to replace an existing file unless --force (exit 2, POSTERN_ERR_KEY_FILE_EXISTS).

Examples:
  postern keygen                        # writes ./${DEFAULT_KEY_FILE}
  postern keygen --out ~/.postern/me.key
  postern listen --key ~/.postern/me.key`,
    )
    .action(async (opts: KeygenCommandOptions) => {
      const keyPair = generateKeyPair();
      try {
        await saveKeyFile(opts.out, keyPair, { overwrite: opts.force === true });
      } catch (err) {
        if (err instanceof PosternError) throw err;
        const code = (err as NodeJS.ErrnoException).code ?? String(err);
        throw new PosternError(ErrorCode.CONFIG, `cannot write key file ${opts.out}: ${code}`, { cause: err });
      }
      const publicKey = formatPublicKey(keyPair.publicKey);
      if (opts.json === true) out(JSON.stringify({ file: resolve(opts.out), publicKey }));
      else {
        out(publicKey);
        process.stderr.write(`wrote ${opts.out} (mode 0600)\n`);
      }
    });
}
