// Start `slogate mock` and `slogate serve` on ephemeral loopback ports for the e2e tests, and
// make sure every process started here is killed when the test file ends (even on failure).
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';

const here = path.dirname(fileURLToPath(import.meta.url));

/** The slogate binary: $SLOGATE_BIN (relative to the cwd), else ../../build/slogate. */
export const BIN = process.env.SLOGATE_BIN
  ? path.resolve(process.env.SLOGATE_BIN)
  : path.resolve(here, '..', '..', 'build', 'slogate');

export const MASTER_KEY = 'sk-e2e-master';
export const PROVIDER_KEY = 'key-a';

const children = new Set();
/* Every process runs in a directory of its own: the gateway's default store (slogate.db and its
 * spool in the working directory) stays out of the source tree. */
const workdir = mkdtempSync(path.join(tmpdir(), 'slogate-e2e-run-'));

function killAll(signal = 'SIGKILL') {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) {
      try { c.kill(signal); } catch { /* already gone */ }
    }
  }
}
process.on('exit', () => {
  killAll();
  rmSync(workdir, { recursive: true, force: true });
});

/**
 * Spawn `BIN ...args`, wait for a stdout line matching `ready`, resolve with
 * { child, match, stderr() }. Rejects with the process's stderr if it exits or times out first.
 */
export function start(args, ready, { env = {}, timeoutMs = 10000, name = args[0] } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(BIN, args, {
      cwd: workdir,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.add(child);
    let out = '';
    let err = '';
    let done = false;
    const finish = (e, v) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (e) reject(e); else resolve(v);
    };
    const timer = setTimeout(() => finish(new Error(
      `${name} did not print ${ready} within ${timeoutMs} ms; stdout: ${out}; stderr: ${err}`)),
    timeoutMs);
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (d) => {
      out += d;
      for (const line of out.split('\n')) {
        const m = line.match(ready);
        if (m) finish(null, { child, match: m, stderr: () => err });
      }
    });
    child.stderr.on('data', (d) => { err += d; });
    child.on('error', (e) => finish(new Error(`cannot run ${BIN}: ${e.message}`)));
    child.on('exit', (code, sig) => finish(new Error(
      `${name} exited (${code ?? sig}) before it was ready; stderr: ${err}`)));
  });
}

/** Stop a child: SIGTERM, then SIGKILL after `graceMs`; resolves with its exit code. */
export function stop(child, graceMs = 3000) {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      resolve(child.exitCode);
      return;
    }
    const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', (code) => { clearTimeout(t); children.delete(child); resolve(code); });
    child.kill('SIGTERM');
  });
}

/** A mock provider (`slogate mock --port 0`) with helpers for its control API. */
export async function startMock({ name = 'provider-a', key = PROVIDER_KEY, flags = [] } = {}) {
  const { child, match } = await start(
    ['mock', '--port', '0', '--name', name, '--key', key, '--log-level', 'warn', ...flags],
    /^mock (\S+) listening on http:\/\/127\.0\.0\.1:(\d+)$/, { name: `mock ${name}` });
  const port = Number(match[2]);
  const base = `http://127.0.0.1:${port}`;
  const control = async (method, p, body) => {
    const r = await fetch(base + p, {
      method,
      body: body === undefined ? undefined : JSON.stringify(body),
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
    });
    if (r.status !== 200) throw new Error(`mock control ${method} ${p}: ${r.status} ${await r.text()}`);
    return r.json();
  };
  return {
    child, port, url: `${base}/v1`,
    faults: (f) => control('POST', '/_mock/faults', f),
    clearFaults: () => control('DELETE', '/_mock/faults'),
    stats: () => control('GET', '/_mock/stats'),
    last: () => control('GET', '/_mock/last'),
  };
}

/** `slogate serve` with `lines` as its model_list, started in a directory of its own;
 * resolves with { child, port, dir, baseURL, cleanup }. */
async function serve(lines, workers) {
  const dir = mkdtempSync(path.join(tmpdir(), 'slogate-e2e-'));
  const config = [
    'model_list:',
    ...lines,
    'general_settings:',
    `  master_key: ${MASTER_KEY}`,
    'server:',
    '  drain_timeout_s: 2',
    '',
  ].join('\n');
  const file = path.join(dir, 'slogate.yaml');
  writeFileSync(file, config);
  const { child, match } = await start(
    ['serve', '-c', file, '--port', '0', '--workers', String(workers), '--log-level', 'warn'],
    /^slogate listening on http:\/\/127\.0\.0\.1:(\d+) /, { name: 'gateway' });
  const port = Number(match[1]);
  return {
    child, port, dir, baseURL: `http://127.0.0.1:${port}/v1`,
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** `slogate serve` in front of the given mock; resolves with { child, port, baseURL, dir }. */
export function startGateway(mock, { workers = 1 } = {}) {
  return serve([
    '  - model_name: app/chat',
    '    litellm_params:',
    '      model: openai/gpt-4o-mini',
    `      api_key: ${PROVIDER_KEY}`,
    `      api_base: "${mock.url}"`,
    '      order: 1',
    '      stream_timeout: 2',
    '    model_info: { id: primary }',
  ], workers);
}

/**
 * slogate mock playing both providers behind a gateway that serves app/claude (an Anthropic
 * deployment), app/gpt and app/o4 (OpenAI-compatible ones; o4-mini reasons), with a client of
 * each official SDK.
 * Resolves with { mock, gw, anthropic, openai, close }; close() stops both processes and
 * resolves with the gateway's exit code after SIGTERM.
 */
export async function startBothApis() {
  const mock = await startMock({ name: 'both' });
  const root = `http://127.0.0.1:${mock.port}`;
  const gw = await serve([
    '  - model_name: app/claude',
    '    litellm_params:',
    '      model: anthropic/claude-3-5-haiku-latest',
    `      api_key: ${PROVIDER_KEY}`,
    `      api_base: "${root}"`,
    '    model_info: { id: claude }',
    '  - model_name: app/gpt',
    '    litellm_params:',
    '      model: openai/gpt-4o-mini',
    `      api_key: ${PROVIDER_KEY}`,
    `      api_base: "${root}/v1"`,
    '    model_info: { id: gpt }',
    '  - model_name: app/o4',
    '    litellm_params:',
    '      model: openai/o4-mini',
    `      api_key: ${PROVIDER_KEY}`,
    `      api_base: "${root}/v1"`,
    '    model_info: { id: o4 }',
  ], 1);
  // The Anthropic SDK appends /v1/messages to its base URL; it sends x-api-key.
  const anthropic = new Anthropic({ apiKey: MASTER_KEY, baseURL: `http://127.0.0.1:${gw.port}`,
    maxRetries: 0, timeout: 10000 });
  const openai = new OpenAI({ apiKey: MASTER_KEY, baseURL: gw.baseURL, maxRetries: 0,
    timeout: 10000 });
  const close = async () => {
    const code = await stop(gw.child);
    await stop(mock.child);
    gw.cleanup();
    return code;
  };
  return { mock, gw, anthropic, openai, close };
}
