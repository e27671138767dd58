import { describe, expect, it } from 'vitest';
import { defaultAppId, parseAppFileText, renderAppFile } from '../../protocol/app-file.js';
import type { OutpostError } from '../../protocol/errors/index.js';

describe('alwaysai.app.json', () => {
  it('keeps every other key and its order when models change', () => {
    const text = JSON.stringify({
      scripts: { start: 'python app.py' },
      models: { 'alwaysai/mobilenet_ssd': 2 },
      extra: [1, 2],
    });
    const f = parseAppFileText(text);
    expect(f.models).toEqual({ 'alwaysai/mobilenet_ssd': 2 });
    const out = JSON.parse(renderAppFile(f, { ...f.models, 'alice/yolo': 3 }));
    expect(Object.keys(out)).toEqual(['scripts', 'models', 'extra']);
    expect(out.scripts).toEqual({ start: 'python app.py' });
    expect(out.models).toEqual({ 'alice/yolo': 3, 'alwaysai/mobilenet_ssd': 2 });
  });

  it('reads the catalog id from outpost.app', () => {
    expect(parseAppFileText('{"outpost": {"app": "alice/door-cam"}}').appId).toBe('alice/door-cam');
    expect(defaultAppId('alice', 'door-cam')).toBe('alice/door-cam');
    expect(defaultAppId('alice', 'my app')).toBeUndefined();
  });

  it.each([
    ['not JSON', '{"models": '],
    ['an array', '[]'],
    ['models as a list', '{"models": ["a/b"]}'],
    ['a bad model id', '{"models": {"nobody": 1}}'],
    ['a zero version', '{"models": {"a/b": 0}}'],
    ['a string version', '{"models": {"a/b": "1"}}'],
    ['a bad app id', '{"outpost": {"app": "../x"}}'],
  ])('refuses %s with APP_JSON_INVALID', (_n, text) => {
    try {
      parseAppFileText(text);
      throw new Error('no throw');
    } catch (err) {
      expect((err as OutpostError).code).toBe('APP_JSON_INVALID');
    }
  });
});
