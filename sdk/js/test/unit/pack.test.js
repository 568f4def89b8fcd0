// `npm pack` makes a tarball an app can install and import: the module,
// its types and the class table, no dependencies.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const sdkDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

test('npm pack makes a tarball that installs offline and imports, with no dependencies', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wsfleet-pack-'));
  try {
    const out = execFileSync('npm', ['pack', '--json', '--pack-destination', tmp], { cwd: sdkDir, encoding: 'utf8' });
    const [info] = JSON.parse(out);
    assert.deepEqual(info.files.map((f) => f.path).sort(), ['README.md', 'classes.js', 'index.d.ts', 'index.js', 'package.json']);

    const app = path.join(tmp, 'app');
    fs.mkdirSync(app);
    fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
    execFileSync('npm', ['install', '--offline', '--no-audit', '--no-fund', path.join(tmp, info.filename)], { cwd: app, encoding: 'utf8' });
    const installed = fs.readdirSync(path.join(app, 'node_modules')).filter((d) => !d.startsWith('.'));
    assert.deepEqual(installed, ['@wsfleet'], 'no runtime dependencies');

    const script = `
      import { Client, classes } from '@wsfleet/client';
      const c = new Client('ws://127.0.0.1:9/ws');
      console.log(JSON.stringify({ state: c.state, cls: classes.origin_rejected.rejectCloseCode }));
    `;
    const res = execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: app, encoding: 'utf8' });
    assert.deepEqual(JSON.parse(res), { state: 'disconnected', cls: 4403 });
    const pkg = JSON.parse(fs.readFileSync(path.join(app, 'node_modules/@wsfleet/client/package.json'), 'utf8'));
    assert.equal(pkg.dependencies, undefined);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
