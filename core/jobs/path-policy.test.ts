import assert from 'node:assert/strict';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { WhittleError } from '../../api/errors.ts';
import { tempHome } from '../store/test-home.ts';
import { createPathPolicy } from './path-policy.ts';

const refused = (err: unknown) => err instanceof WhittleError && err.code === 'BAD_INPUT' && /outside the folders this server may read/.test(err.message);

test('any path goes without roots (Electron); paths are made absolute and real', async () => {
  const dir = await tempHome('policy');
  writeFileSync(join(dir, 'm.onnx'), 'x');
  symlinkSync(join(dir, 'm.onnx'), join(dir, 'link.onnx'));
  const policy = createPathPolicy(null);
  assert.equal(await policy.readable(join(dir, 'link.onnx')), join(dir, 'm.onnx'));
  await assert.rejects(policy.readable(join(dir, 'missing')), (err: unknown) => err instanceof WhittleError && err.code === 'NOT_FOUND');
});

test('with roots, only what resolves inside them is readable or writable', async () => {
  const dir = await tempHome('policy');
  const root = join(dir, 'workspace');
  mkdirSync(join(root, 'models'), { recursive: true });
  mkdirSync(join(dir, 'private'));
  writeFileSync(join(root, 'models', 'a.onnx'), 'x');
  writeFileSync(join(dir, 'private', 'key'), 'secret');
  writeFileSync(join(dir, 'workspace-evil'), 'a sibling whose name starts like the root');
  symlinkSync(join(dir, 'private'), join(root, 'out'));
  symlinkSync(join(root, 'models'), join(dir, 'shortcut'));
  const policy = createPathPolicy([root]);

  assert.equal(await policy.readable(join(root, 'models', 'a.onnx')), join(root, 'models', 'a.onnx'));
  assert.equal(await policy.readable(root), root);
  for (const path of [join(dir, 'private', 'key'), join(root, 'out', 'key'), join(root, '..', 'private', 'key'), join(dir, 'workspace-evil'), '/etc']) {
    await assert.rejects(policy.readable(path), refused, path);
  }
  // outside and missing: refused without saying whether it exists
  await assert.rejects(policy.readable(join(dir, 'nope')), refused);
  // a link from outside into the root is fine: what counts is where it leads
  assert.equal(await policy.readable(join(dir, 'shortcut', 'a.onnx')), join(root, 'models', 'a.onnx'));

  assert.equal(await policy.writable(join(root, 'exports', 'new', 'deeper')), join(root, 'exports', 'new', 'deeper'));
  await assert.rejects(policy.writable(join(root, 'out', 'new')), refused);
  await assert.rejects(policy.writable('/tmp/elsewhere'), refused);
});
